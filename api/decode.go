package api

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/kela-hva/referrals/domain"
	"github.com/labstack/echo/v4"
)

// decode reads the request body (already size-checked by validate) into dst, refusing
// unknown fields and trailing data. An empty body decodes as {} when emptyOK.
func decode(c echo.Context, dst any, emptyOK bool) error {
	body, _ := c.Get(ctxBody).([]byte)
	if len(bytes.TrimSpace(body)) == 0 {
		if emptyOK {
			return nil
		}
		return &domain.Error{Code: domain.EMalformed, Message: "a JSON body is required",
			Fields: []domain.FieldError{{Pointer: "", Detail: "body is empty"}}}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err, body, reflect.TypeOf(dst))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &domain.Error{Code: domain.EMalformed, Message: "the body must hold one JSON object",
			Fields: []domain.FieldError{{Pointer: "", Detail: "unexpected data after the JSON object"}}}
	}
	return nil
}

// decodeError explains a JSON decoding error of body into a value of type t without echoing
// any of the input.
func decodeError(err error, body []byte, t reflect.Type) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	fe := domain.FieldError{Pointer: "", Detail: "body is not valid JSON"}
	switch {
	case errors.As(err, &syn):
	case errors.As(err, &typ):
		fe = domain.FieldError{Pointer: pointerOf(typ.Field), Detail: "must be a JSON " + jsonKind(typ.Type.Kind().String())}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		fe = domain.FieldError{Pointer: "", Detail: "unknown field"}
		if plainName(name) { // never echo a name that could carry personal data
			// encoding/json names the field but not where it is: find it in the body.
			fe.Pointer = "/" + name
			if path, ok := unknownFieldPath(body, t, name); ok {
				fe.Pointer = "/" + strings.Join(path, "/")
			}
		}
	case errors.Is(err, io.ErrUnexpectedEOF):
		fe.Detail = "body ends before the JSON is complete"
	}
	return &domain.Error{Code: domain.EMalformed, Message: "the request body cannot be read", Fields: []domain.FieldError{fe}}
}

// unknownFieldPath finds, in body, an object member called name that the Go type t has no
// field for where it occurs, and returns its path (member names and array indexes). Members
// are searched in sorted order, so the answer is the same for the same body. Only paths of
// plain names and indexes are returned: a path is echoed to the client, and anything else
// (a map key, say) could be the client's data.
func unknownFieldPath(body []byte, t reflect.Type, name string) ([]string, bool) {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, false
	}
	path, ok := findUnknown(v, t, name, nil)
	for _, p := range path {
		if !plainName(p) && strings.Trim(p, "0123456789") != "" {
			return nil, false
		}
	}
	return path, ok
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

func findUnknown(v any, t reflect.Type, name string, path []string) ([]string, bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return nil, false // decodes itself: its members are not fields
	}
	switch x := v.(type) {
	case map[string]any:
		if t.Kind() != reflect.Struct {
			return nil, false // a map's keys are data, not fields
		}
		for _, k := range slices.Sorted(maps.Keys(x)) {
			ft, ok := jsonField(t, k)
			if !ok {
				if k == name {
					return append(path, k), true
				}
				continue
			}
			if p, ok := findUnknown(x[k], ft, name, append(slices.Clip(path), k)); ok {
				return p, true
			}
		}
	case []any:
		if t.Kind() != reflect.Slice && t.Kind() != reflect.Array {
			return nil, false
		}
		for i, e := range x {
			if p, ok := findUnknown(e, t.Elem(), name, append(slices.Clip(path), strconv.Itoa(i))); ok {
				return p, true
			}
		}
	}
	return nil, false
}

// jsonField returns the type of the field of struct t that encoding/json decodes member key
// into: a field of t's own before one of an embedded struct (the shallower wins), and the
// exact name before a case-insensitive match, as encoding/json matches.
func jsonField(t reflect.Type, key string) (reflect.Type, bool) {
	var fold reflect.Type
	var embedded []reflect.Type
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		n, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && n == "" {
			et := f.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				embedded = append(embedded, et)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if n == "" {
			n = f.Name
		}
		if n == key {
			return f.Type, true
		}
		if fold == nil && strings.EqualFold(n, key) {
			fold = f.Type
		}
	}
	if fold != nil {
		return fold, true
	}
	for _, et := range embedded {
		if ft, ok := jsonField(et, key); ok {
			return ft, true
		}
	}
	return nil, false
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "slice", "array":
		return "array"
	case "struct", "map", "ptr":
		return "object"
	}
	return "number"
}

// pointerOf turns encoding/json's dotted field path ("client.name") into a JSON pointer.
func pointerOf(field string) string {
	if field == "" {
		return ""
	}
	parts := strings.Split(field, ".")
	for i, p := range parts {
		parts[i] = escapePointer(p)
	}
	return "/" + strings.Join(parts, "/")
}

func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// etag is the entity tag of a referral version.
func etag(r *domain.Referral) string { return `"v` + strconv.Itoa(r.Version) + `"` }

// ifMatch reads If-Match: 0 when absent or "*", else the version it names. A value that
// names no version can never match: EPrecondition.
func ifMatch(c echo.Context) (int, error) {
	h := strings.TrimSpace(c.Request().Header.Get("If-Match"))
	if h == "" || h == "*" {
		return 0, nil
	}
	h = strings.TrimPrefix(h, "W/")
	if v, ok := strings.CutPrefix(strings.Trim(h, `"`), "v"); ok {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			return n, nil
		}
	}
	return 0, domain.Errorf(domain.EPrecondition, "If-Match does not name a version of this referral")
}

// cursorCodec makes page cursors opaque and tamper-evident: the last id of a page, bound to
// the organisation and direction it was issued for and signed with HMAC-SHA-256. A forged,
// edited or foreign cursor is refused (400), never read as another position.
type cursorCodec struct{ key []byte }

// cursorPrefix versions the cursor format.
const cursorPrefix = "c1."

func newCursorCodec(key []byte) cursorCodec {
	if len(key) == 0 {
		key = make([]byte, 32)
		_, _ = rand.Read(key) // cursors then live as long as the process
	}
	return cursorCodec{key: key}
}

// mac is the HMAC of parts joined by 0x00, cut to 16 bytes.
func (cc cursorCodec) mac(parts ...[]byte) []byte {
	m := hmac.New(sha256.New, cc.key)
	for i, p := range parts {
		if i > 0 {
			m.Write([]byte{0})
		}
		m.Write(p)
	}
	return m.Sum(nil)[:16]
}

// seal returns prefix and the base64 of payload followed by its MAC over scope and payload.
func (cc cursorCodec) seal(prefix string, payload []byte, scope ...[]byte) string {
	return prefix + base64.RawURLEncoding.EncodeToString(append(payload, cc.mac(append(scope, payload)...)...))
}

// open returns the payload of a cursor seal made with prefix and scope, if its payload is at
// most maxPayload bytes and its MAC matches; ok is false for anything else.
func (cc cursorCodec) open(prefix string, maxPayload int, s string, scope ...[]byte) (payload []byte, ok bool) {
	raw, ok := strings.CutPrefix(s, prefix)
	if !ok || len(raw) > base64.RawURLEncoding.EncodedLen(maxPayload+16) {
		return nil, false
	}
	// Strict: the unused bits of the last character must be zero, so no two texts decode
	// to the same cursor and any edit is refused.
	b, err := base64.RawURLEncoding.Strict().DecodeString(raw)
	if err != nil || len(b) <= 16 {
		return nil, false
	}
	payload = b[:len(b)-16]
	return payload, hmac.Equal(b[len(b)-16:], cc.mac(append(scope, payload)...))
}

// badCursor is the problem for a cursor this service did not issue for what it is used with.
func badCursor(what string) error {
	return &domain.Error{Code: domain.EMalformed, Message: "the cursor is not valid",
		Fields: []domain.FieldError{{Pointer: "", Detail: "query parameter cursor: not a cursor this service issued for this " + what}}}
}

func (cc cursorCodec) encode(org domain.OrgID, dir, id string) string {
	u, err := uuid.Parse(id)
	if id == "" || err != nil {
		return ""
	}
	return cc.seal(cursorPrefix, u[:], []byte(org), []byte(dir))
}

func (cc cursorCodec) decode(org domain.OrgID, dir, s string) (string, error) {
	if s == "" {
		return "", nil
	}
	b, ok := cc.open(cursorPrefix, 16, s, []byte(org), []byte(dir))
	if !ok || len(b) != 16 {
		return "", badCursor("list")
	}
	return uuid.UUID(b).String(), nil
}

// auditCursorPrefix versions the access log's cursor format.
const auditCursorPrefix = "a1."

// maxAuditPosition bounds the store's position in an access-log cursor (at most 16 bytes,
// base64: 24 characters).
const maxAuditPosition = 32

// encodeAudit wraps the store's position after an access-log page (AuditPage.Next) in a
// cursor bound, like a list's, to the organisation and the query it was issued for (the
// referral, the user, or neither): an edited, forged or foreign one is refused, never read
// as another position.
func (cc cursorCodec) encodeAudit(org domain.OrgID, query, pos string) string {
	if pos == "" || len(pos) > maxAuditPosition {
		return ""
	}
	return cc.seal(auditCursorPrefix, []byte(pos), []byte("audit"), []byte(org), []byte(query))
}

// decodeAudit returns the store's position in an access-log cursor that encodeAudit issued
// for org and query, or a 400 problem.
func (cc cursorCodec) decodeAudit(org domain.OrgID, query, s string) (string, error) {
	if s == "" {
		return "", nil
	}
	pos, ok := cc.open(auditCursorPrefix, maxAuditPosition, s, []byte("audit"), []byte(org), []byte(query))
	if !ok {
		return "", badCursor("query")
	}
	return string(pos), nil
}

// plainName reports whether a field name is 1–64 of [a-z_], like every name of the contract,
// and so safe to echo in a problem.
func plainName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '_' && (c < 'a' || c > 'z') {
			return false
		}
	}
	return true
}

// queryLimit reads the page-size query parameter limit, reporting whether it was given;
// a value that is not a whole number 1–200 adds a violation to v.
func queryLimit(q url.Values, v *domain.Violations) (int, bool) {
	l := q.Get("limit")
	if l == "" {
		return 0, false
	}
	n, err := strconv.Atoi(l)
	if err != nil || n < 1 || n > 200 {
		v.Add("", "query parameter limit: must be 1–200")
	}
	return n, true
}
