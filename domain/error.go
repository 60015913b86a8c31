package domain

import (
	"errors"
	"fmt"
)

// Code classifies a domain error. The HTTP layer maps each code to one status in one table.
type Code string

// Error codes. Anything that is not a *Error is internal.
const (
	EInvalid      Code = "invalid"             // input breaks a rule (422)
	EMalformed    Code = "malformed"           // input cannot be read (400)
	EUnauthorized Code = "unauthorized"        // no or bad credentials (401)
	EForbidden    Code = "forbidden"           // the caller's role may not do this (403)
	ENotFound     Code = "not_found"           // does not exist or is not the caller's to see (404)
	EConflict     Code = "conflict"            // illegal transition in the current state (409)
	EPrecondition Code = "precondition_failed" // If-Match did not match (412)
	EInternal     Code = "internal"            // a bug or a broken dependency (500)
)

// FieldError names one field at fault by its JSON pointer (RFC 6901) into the request body.
type FieldError struct {
	Pointer string `json:"pointer"`
	Detail  string `json:"detail"`
}

// Error is the one error type of the domain. Message is safe to show to the caller: it never
// contains personal data.
type Error struct {
	Code    Code
	Message string
	Fields  []FieldError
	// Allowed lists the actions the caller may take in the referral's current state (EConflict).
	Allowed []Action
}

func (e *Error) Error() string {
	if len(e.Fields) > 0 {
		return fmt.Sprintf("%s: %s (%s: %s)", e.Code, e.Message, e.Fields[0].Pointer, e.Fields[0].Detail)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Errorf returns a *Error with the code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err if it is (or wraps) a *Error, else EInternal.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// Violations collects field errors during validation.
type Violations []FieldError

// Add records that the field at pointer is at fault.
func (v *Violations) Add(pointer, format string, args ...any) {
	*v = append(*v, FieldError{Pointer: pointer, Detail: fmt.Sprintf(format, args...)})
}

// Err returns nil if nothing was recorded, else an EInvalid *Error listing every field.
func (v Violations) Err(message string) error {
	if len(v) == 0 {
		return nil
	}
	return &Error{Code: EInvalid, Message: message, Fields: v}
}
