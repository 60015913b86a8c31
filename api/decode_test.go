package api

import (
	"reflect"
	"strings"
	"testing"
)

// TestUnknownFieldPath: the pointer to an unknown member is found through objects and arrays,
// with a struct's own field before an embedded one's, and never through a map — whose keys
// are the client's data and must not be echoed.
func TestUnknownFieldPath(t *testing.T) {
	type inner struct {
		NAME int `json:"NAME"`
	}
	type item struct {
		A int `json:"a"`
	}
	type body struct {
		inner
		Name  struct{ A int } `json:"name"`
		Items []item          `json:"items"`
		Extra map[string]item `json:"extra"`
	}
	for _, tc := range []struct {
		body, want string
		ok         bool
	}{
		{`{"nickname":1}`, "nickname", true},
		{`{"name":{"nickname":1}}`, "name/nickname", true}, // the own field, not the embedded NAME
		{`{"items":[{"a":1},{"nickname":1}]}`, "items/1/nickname", true},
		{`{"extra":{"Matti Meikäläinen 010101-123N":{"nickname":1}}}`, "", false},
		{`{"extra":{"a.b":{"nickname":1}}}`, "", false},
	} {
		path, ok := unknownFieldPath([]byte(tc.body), reflect.TypeFor[body](), "nickname")
		if got := strings.Join(path, "/"); ok != tc.ok || got != tc.want {
			t.Errorf("%s: %q (%v), want %q (%v)", tc.body, path, ok, tc.want, tc.ok)
		}
	}
}
