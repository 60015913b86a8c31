// Package openapi holds the v1 HTTP contract (openapi.yaml) and validates requests against it.
package openapi

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/kela-hva/referrals/domain"
)

//go:embed openapi.yaml
var specYAML []byte

// YAML returns the specification as served at /openapi.yaml. The caller must not modify it.
func YAML() []byte { return specYAML }

// Load parses and validates the embedded specification.
func Load() (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(specYAML)
	if err != nil {
		return nil, fmt.Errorf("openapi: load: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("openapi: validate: %w", err)
	}
	return doc, nil
}

// Validator validates requests against the spec. It is safe for concurrent use.
type Validator struct {
	routes map[string]*routers.Route // "METHOD /path" in OpenAPI form
	ops    []string
}

// options of openapi3filter: every error at once, no security (the api layer authenticates),
// and no defaults written into the caller's request.
var (
	filterOptions = &openapi3filter.Options{
		MultiError:          true,
		AuthenticationFunc:  openapi3filter.NoopAuthenticationFunc,
		SkipSettingDefaults: true,
	}
	// paramsOnly is used when the body is not JSON and has been reported already.
	paramsOnly = &openapi3filter.Options{
		MultiError:          true,
		AuthenticationFunc:  openapi3filter.NoopAuthenticationFunc,
		SkipSettingDefaults: true,
		ExcludeRequestBody:  true,
	}
)

// NewValidator builds the operation lookup of doc once.
func NewValidator(doc *openapi3.T) (*Validator, error) {
	if doc == nil || doc.Paths == nil {
		return nil, errors.New("openapi: no document")
	}
	v := &Validator{routes: map[string]*routers.Route{}}
	for path, item := range doc.Paths.Map() {
		if item == nil {
			continue
		}
		for method, op := range item.Operations() {
			key := strings.ToUpper(method) + " " + path
			v.routes[key] = &routers.Route{Spec: doc, Path: path, PathItem: item, Method: strings.ToUpper(method), Operation: op}
			v.ops = append(v.ops, key)
		}
	}
	if len(v.ops) == 0 {
		return nil, errors.New("openapi: the document has no operations")
	}
	sort.Strings(v.ops)
	return v, nil
}

// Operations lists "METHOD /path" for every operation in the spec (paths in OpenAPI form,
// "/v1/referrals/{id}"), sorted.
func (v *Validator) Operations() []string { return append([]string(nil), v.ops...) }

// EchoPath converts an Echo route path ("/v1/referrals/:id") to OpenAPI form
// ("/v1/referrals/{id}").
func EchoPath(routePath string) string {
	if !strings.Contains(routePath, ":") {
		return routePath
	}
	segs := strings.Split(routePath, "/")
	for i, s := range segs {
		if name, ok := strings.CutPrefix(s, ":"); ok {
			segs[i] = "{" + name + "}"
		}
	}
	return strings.Join(segs, "/")
}

// ValidateRequest validates the path, query and header parameters and the JSON body of r
// against the operation for r.Method and routePath (Echo form, "/v1/referrals/:id/receive").
// Security is not checked. body is the already-read request body; r.Body is not read and r is
// not modified. It returns nil if the request is valid or the spec has no such operation, and
// otherwise a *domain.Error listing every problem found:
//
//   - a body that is not JSON, an unknown property, or an invalid path, query or header
//     parameter: EMalformed (400);
//   - any other schema violation of the body: EInvalid (422), each with the JSON pointer of
//     the field at fault.
//
// The body is validated as JSON whatever its Content-Type: the media type is the caller's
// concern (415). Error details never contain the offending values.
func (v *Validator) ValidateRequest(ctx context.Context, r *http.Request, routePath string, pathParams map[string]string, body []byte) error {
	route := v.routes[r.Method+" "+EchoPath(routePath)]
	if route == nil {
		return nil
	}
	var c collector
	opts := filterOptions
	hasBody := route.Operation.RequestBody != nil && len(bytes.TrimSpace(body)) > 0
	if hasBody && !json.Valid(body) {
		c.malformed("", "the body is not valid JSON"+syntaxOffset(body))
		opts = paramsOnly
	}

	// A shallow copy: openapi3filter reads (and replaces) Body; the caller's r is left alone.
	req := r.WithContext(ctx)
	req.GetBody = nil
	req.Body = http.NoBody
	req.ContentLength = 0
	if hasBody && opts == filterOptions {
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
		if !isJSON(r.Header.Get("Content-Type")) {
			req.Header = r.Header.Clone()
			req.Header.Set("Content-Type", "application/json")
		}
	}
	input := &openapi3filter.RequestValidationInput{
		Request:    req,
		PathParams: pathParams,
		Route:      route,
		Options:    opts,
	}
	if err := openapi3filter.ValidateRequest(ctx, input); err != nil {
		c.add(err)
	}
	return c.err()
}

func isJSON(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// syntaxOffset names where JSON decoding failed, without quoting the input.
func syntaxOffset(body []byte) string {
	var x any
	err := json.Unmarshal(body, &x)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf(" (syntax error at byte %d)", se.Offset)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || (err != nil && strings.Contains(err.Error(), "unexpected end")) {
		return " (unexpected end of input)"
	}
	return ""
}

// collector turns kin-openapi errors into field errors.
type collector struct {
	fields      []domain.FieldError
	seen        map[domain.FieldError]bool
	isMalformed bool
}

func (c *collector) addField(malformed bool, pointer, detail string) {
	f := domain.FieldError{Pointer: pointer, Detail: detail}
	if c.seen == nil {
		c.seen = map[domain.FieldError]bool{}
	}
	if c.seen[f] {
		return
	}
	c.seen[f] = true
	c.fields = append(c.fields, f)
	c.isMalformed = c.isMalformed || malformed
}

func (c *collector) malformed(pointer, detail string) { c.addField(true, pointer, detail) }

func (c *collector) err() error {
	if len(c.fields) == 0 {
		return nil
	}
	if c.isMalformed {
		return &domain.Error{Code: domain.EMalformed, Message: "the request is malformed", Fields: c.fields}
	}
	return &domain.Error{Code: domain.EInvalid, Message: "the request is invalid", Fields: c.fields}
}

// add records every error in err (an openapi3.MultiError of *openapi3filter.RequestError).
func (c *collector) add(err error) {
	var me openapi3.MultiError
	if errors.As(err, &me) && !isSingle(err) {
		for _, e := range me {
			c.add(e)
		}
		return
	}
	var re *openapi3filter.RequestError
	if !errors.As(err, &re) {
		// Security errors cannot happen (NoopAuthenticationFunc); anything else is reported
		// without its text, which might quote input.
		c.malformed("", "the request does not match the API")
		return
	}
	switch {
	case re.Parameter != nil:
		c.param(re)
	case re.RequestBody != nil:
		c.body(re)
	default:
		c.malformed("", "the request does not match the API")
	}
}

// isSingle reports whether err is itself a *RequestError (which may wrap a MultiError of
// schema errors: those belong to it, not to the top level).
func isSingle(err error) bool {
	_, ok := err.(*openapi3filter.RequestError)
	return ok
}

// param records a path, query or header parameter error: malformed, pointer-less, named.
func (c *collector) param(re *openapi3filter.RequestError) {
	p := re.Parameter
	prefix := p.In + " parameter " + p.Name + ": "
	var reasons []string
	walkSchemaErrors(re.Err, func(se *openapi3.SchemaError) {
		reasons = append(reasons, schemaDetail(se))
	})
	if len(reasons) == 0 {
		var pe *openapi3filter.ParseError
		switch {
		case errors.Is(re.Err, openapi3filter.ErrInvalidRequired):
			reasons = append(reasons, "is required")
		case errors.Is(re.Err, openapi3filter.ErrInvalidEmptyValue):
			reasons = append(reasons, "must not be empty")
		case errors.As(re.Err, &pe) && pe.Reason != "":
			reasons = append(reasons, "is "+pe.Reason) // e.g. "an invalid integer"; never the value
		default:
			reasons = append(reasons, "is invalid")
		}
	}
	for _, r := range reasons {
		c.malformed("", prefix+r)
	}
}

// body records the schema errors of the request body.
func (c *collector) body(re *openapi3filter.RequestError) {
	if errors.Is(re.Err, openapi3filter.ErrInvalidRequired) {
		c.malformed("", "a request body is required")
		return
	}
	found := false
	walkSchemaErrors(re.Err, func(se *openapi3.SchemaError) {
		found = true
		ptr := pointer(se.JSONPointer())
		if unknown, ok := unknownProperty(se); ok {
			if safeKey(unknown) {
				c.malformed(ptr+"/"+escape(unknown), "is not a known property")
			} else {
				c.malformed(ptr, "has an unknown property")
			}
			return
		}
		c.addField(false, ptr, schemaDetail(se))
	})
	if !found {
		// A decoding failure json.Valid let through, or a content-type mismatch.
		c.malformed("", "the body cannot be read as JSON")
	}
}

// walkSchemaErrors calls fn for every *openapi3.SchemaError in err, looking through
// MultiErrors and wrappers.
func walkSchemaErrors(err error, fn func(*openapi3.SchemaError)) {
	switch e := err.(type) {
	case nil:
	case *openapi3.SchemaError:
		fn(e)
	case openapi3.MultiError:
		for _, x := range e {
			walkSchemaErrors(x, fn)
		}
	case interface{ Unwrap() []error }:
		for _, x := range e.Unwrap() {
			walkSchemaErrors(x, fn)
		}
	case interface{ Unwrap() error }:
		walkSchemaErrors(e.Unwrap(), fn)
	}
}

// unknownProperty reports the name of the property a SchemaError rejects because the schema
// has additionalProperties: false. kin-openapi reports it on the enclosing object (its
// JSONPointer is the object's) with SchemaField "properties" (or "additionalProperties") and
// the Reason `property "<name>" is unsupported`; the name is read from the Reason and checked
// against the object's keys and the schema's properties.
func unknownProperty(se *openapi3.SchemaError) (string, bool) {
	if se.SchemaField != "properties" && se.SchemaField != "additionalProperties" {
		return "", false
	}
	if se.Schema == nil || se.Schema.AdditionalProperties.Has == nil || *se.Schema.AdditionalProperties.Has {
		return "", false
	}
	obj, _ := se.Value.(map[string]any)
	if q, ok := strings.CutPrefix(se.Reason, "property "); ok {
		if q, ok = strings.CutSuffix(q, " is unsupported"); ok {
			if name, err := strconv.Unquote(q); err == nil {
				if _, in := obj[name]; in {
					return name, true
				}
			}
		}
	}
	// Fallback, should the Reason change: the first key the schema does not declare.
	keys := make([]string, 0, len(obj))
	for k := range obj {
		if _, declared := se.Schema.Properties[k]; !declared {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return "", false
	}
	sort.Strings(keys)
	return keys[0], true
}

// safeKey reports whether an unknown property name may be echoed: a plain identifier, not
// something that could be a value (an identity code used as a key).
func safeKey(k string) bool {
	if k == "" || len(k) > 64 {
		return false
	}
	for i := 0; i < len(k); i++ {
		b := k[i]
		switch {
		// Only [a-z_]: the contract's names are snake_case without digits, and a name with
		// digits or capitals could carry an identity code behind a letter prefix.
		case b == '_', b >= 'a' && b <= 'z':
		default:
			return false
		}
	}
	return true
}

// pointer builds an RFC 6901 JSON pointer from path segments.
func pointer(path []string) string {
	if len(path) == 0 {
		return ""
	}
	var b strings.Builder
	for _, p := range path {
		b.WriteByte('/')
		b.WriteString(escape(p))
	}
	return b.String()
}

var pointerEscaper = strings.NewReplacer("~", "~0", "/", "~1")

func escape(s string) string {
	if !strings.ContainsAny(s, "~/") {
		return s
	}
	return pointerEscaper.Replace(s)
}

// schemaDetail describes a schema violation from the schema alone, never from the value.
func schemaDetail(se *openapi3.SchemaError) string {
	s := se.Schema
	switch se.SchemaField {
	case "required":
		return "is required"
	case "enum":
		if s != nil && len(s.Enum) > 0 && len(s.Enum) <= 20 {
			vals := make([]string, len(s.Enum))
			for i, e := range s.Enum {
				vals[i] = fmt.Sprint(e)
			}
			return "must be one of " + strings.Join(vals, ", ")
		}
		return "is not one of the allowed values"
	case "type":
		if s != nil && s.Type != nil && len(s.Type.Slice()) > 0 {
			return "must be " + article(s.Type.Slice()[0])
		}
	case "nullable":
		return "must not be null"
	case "minLength":
		if s != nil && s.MinLength == 1 {
			return "must not be empty"
		}
		if s != nil && s.MaxLength != nil && *s.MaxLength == s.MinLength {
			return fmt.Sprintf("must be %d characters", s.MinLength)
		}
		if s != nil {
			return fmt.Sprintf("must be at least %d characters", s.MinLength)
		}
	case "maxLength":
		if s != nil && s.MaxLength != nil && *s.MaxLength == s.MinLength {
			return fmt.Sprintf("must be %d characters", s.MinLength)
		}
		if s != nil && s.MaxLength != nil {
			return fmt.Sprintf("must be at most %d characters", *s.MaxLength)
		}
	case "pattern":
		if s != nil {
			return "must match the pattern " + s.Pattern
		}
	case "format":
		if s != nil {
			switch s.Format {
			case "date":
				return "must be a date YYYY-MM-DD"
			case "date-time":
				return "must be an RFC 3339 date-time"
			}
			return "must have the format " + s.Format
		}
	case "minItems":
		if s != nil && s.MinItems == 1 {
			return "needs at least one value"
		}
		if s != nil {
			return fmt.Sprintf("needs at least %d values", s.MinItems)
		}
	case "maxItems":
		if s != nil && s.MaxItems != nil {
			return fmt.Sprintf("must have at most %d values", *s.MaxItems)
		}
	case "uniqueItems":
		return "must not contain duplicate values"
	case "minimum":
		if s != nil && s.Min != nil {
			return "must be at least " + strconv.FormatFloat(*s.Min, 'f', -1, 64)
		}
	case "maximum":
		if s != nil && s.Max != nil {
			return "must be at most " + strconv.FormatFloat(*s.Max, 'f', -1, 64)
		}
	}
	// Other fields: kin-openapi's Reason, which by its contract never includes the value.
	// Belt and braces: drop it if it does contain a (string) value anyway.
	reason := se.Reason
	if str, ok := se.Value.(string); ok && len(str) >= 3 && strings.Contains(reason, str) {
		reason = ""
	}
	if reason == "" {
		return "is invalid (" + se.SchemaField + ")"
	}
	return reason
}

func article(typ string) string {
	switch typ {
	case "object", "array", "integer":
		return "an " + typ
	}
	return "a " + typ
}
