package api_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kela-hva/referrals/api"
	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/domain/calendar"
	"github.com/kela-hva/referrals/internal/testkit"
	"github.com/kela-hva/referrals/openapi"
	"github.com/kela-hva/referrals/store"
)

// The fuzz targets of this package (body_fuzz_test.go, cursor_fuzz_test.go) send their
// inputs through the whole HTTP stack: authentication, the OpenAPI validator, the strict
// decoder, the domain and an encrypted bbolt store. A fuzzStack is built once per target
// (once per fuzzing worker process) and reused by every input, so an input costs a request
// or two, not a new store. Every response is checked the same way (fuzzStack.send):
//
//   - never a 5xx (a panic is recovered by the server and shows as a 500);
//   - every 4xx is application/problem+json whose status member is the HTTP status;
//   - no identity code found in the input appears in a problem body or in the logs.
//
// Each target adds what its endpoint must do: nothing stored for a 4xx (storeMark), and
// a 2xx that stored exactly what GET returns.

// fuzzActor is a user the fuzz targets act as.
type fuzzActor struct {
	org  domain.OrgID
	role domain.Role
}

var (
	fzKela        = fuzzActor{"kela", domain.RoleKelaHandler}
	fzHki         = fuzzActor{"hva-90", domain.RoleSocialWorker}
	fzTre         = fuzzActor{"hva-08", domain.RoleSocialWorker}
	fzHkiAuditor  = fuzzActor{"hva-90", domain.RoleAuditor}
	fzKelaAuditor = fuzzActor{"kela", domain.RoleAuditor}
)

// fuzzCursorKey signs the page cursors of every fuzz stack, so the committed seed corpus
// can hold cursors this service issues and the cursor target can tell a genuine cursor
// from a forged one (cursorMAC).
var fuzzCursorKey = func() []byte { k := sha256.Sum256([]byte("fuzz cursor key")); return k[:] }()

type fuzzStack struct {
	db   *store.DB
	srv  *httptest.Server
	logs *logSink

	mu     sync.Mutex
	tokens map[fuzzActor]mintedToken
}

type mintedToken struct {
	token string
	at    time.Time
}

// logSink collects the service's logs between two checks (Take).
type logSink = testkit.Buffer

// newFuzzStack starts the service on a fresh encrypted store in tb's temp dir.
func newFuzzStack(tb testing.TB) *fuzzStack {
	tb.Helper()
	db, err := store.Open(filepath.Join(tb.TempDir(), "referrals.db"), store.Options{MaxBatchDelay: time.Millisecond, Keys: testKeyring})
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	doc, err := openapi.Load()
	if err != nil {
		tb.Fatalf("openapi: %v", err)
	}
	v, err := openapi.NewValidator(doc)
	if err != nil {
		tb.Fatalf("openapi: %v", err)
	}
	reg := domain.DefaultRegistry()
	auth, err := api.NewAuthenticator(api.AuthConfig{Keys: []crypto.PublicKey{testKey.Public()}, Issuer: api.DevIssuer, Audience: api.Audience}, reg)
	if err != nil {
		tb.Fatal(err)
	}
	svc := &domain.Service{
		Store: db, Registry: reg, Clock: testkit.NewClock(time.Date(2026, 11, 23, 9, 12, 44, 0, time.UTC)),
		Policy: domain.NewDeadlinePolicy(calendar.New(calendar.Options{})),
		ClientKey: func(pid string) string {
			s := sha256.Sum256([]byte("fuzz-key:" + pid))
			return hex.EncodeToString(s[:])
		},
	}
	s := &fuzzStack{db: db, logs: &logSink{}, tokens: map[fuzzActor]mintedToken{}}
	log := slog.New(slog.NewJSONHandler(s.logs, nil))
	s.srv = httptest.NewServer(api.NewServer(api.Deps{
		Service: svc, Auth: auth, Validator: v, Logger: log, Audit: log.With("log", "audit"),
		Spec: openapi.YAML(), Registry: reg, CursorKey: fuzzCursorKey,
	}))
	tb.Cleanup(func() {
		s.srv.Close()
		if err := db.Check(); err != nil {
			tb.Errorf("bbolt check: %v", err)
		}
		if err := db.Close(); err != nil {
			tb.Errorf("close store: %v", err)
		}
	})
	return s
}

// token returns a valid token of a, minted afresh every half hour so that long fuzzing
// runs do not turn into runs of 401s.
func (s *fuzzStack) token(tb testing.TB, a fuzzActor) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, ok := s.tokens[a]; ok && time.Since(m.at) < 30*time.Minute {
		return m.token
	}
	now := time.Now()
	tok, err := api.MintToken(testKey, "user-"+string(a.org)+"-"+string(a.role), a.org, []domain.Role{a.role}, "Fuzz User", now, time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	s.tokens[a] = mintedToken{tok, now}
	return tok
}

// fuzzResponse is a response of the fuzz stack.
type fuzzResponse = response

// send makes one request as a with body (nil: none; sent as application/json otherwise)
// and X-Purpose benefit_processing, headers being name, value pairs added to the request.
// It fails tb on a 5xx, on a 4xx that is not a problem of that status, and when the
// problem body or the logs written meanwhile hold an identity code found in input.
func (s *fuzzStack) send(tb testing.TB, method, path string, a fuzzActor, body, input []byte, headers ...string) fuzzResponse {
	tb.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	r := roundTrip(tb, s.srv.Client(), method, s.srv.URL+path, s.token(tb, a), rd, headers...)
	b := r.body
	pids := identityCodes(input)
	if r.status >= 500 {
		tb.Fatalf("%s %s: status %d (input %q): %s", method, path, r.status, input, b)
	}
	if r.status >= 400 {
		checkProblem(tb, r)
		if pid := leaked(string(b), pids); pid != "" {
			tb.Fatalf("%s %s: problem body holds the identity code %s from the input: %s", method, path, pid, b)
		}
	}
	// The access log line is written after the response; a line that comes late is checked
	// with the next input (or not at all), so this check can miss a leak but never invents one.
	if pid := leaked(s.logs.Take(), pids); pid != "" {
		tb.Fatalf("%s %s: the logs hold the identity code %s from the input", method, path, pid)
	}
	return r
}

// checkProblem fails tb unless r is an RFC 9457 problem of r's status.
func checkProblem(tb testing.TB, r fuzzResponse) {
	tb.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		tb.Fatalf("status %d with Content-Type %q, want application/problem+json: %s", r.status, ct, r.body)
	}
	var p struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
	}
	if err := json.Unmarshal(r.body, &p); err != nil {
		tb.Fatalf("status %d: problem body is not JSON: %v: %s", r.status, err, r.body)
	}
	if p.Status != r.status || p.Type == "" || p.Title == "" {
		tb.Fatalf("status %d: problem %+v does not match: %s", r.status, p, r.body)
	}
}

// wantStatus fails tb unless r.status is one of want.
func wantStatus(tb testing.TB, r fuzzResponse, want ...int) {
	tb.Helper()
	for _, w := range want {
		if r.status == w {
			return
		}
	}
	tb.Fatalf("status %d, want one of %v: %s", r.status, want, r.body)
}

// storeMark is what a request that stores nothing leaves as it was: the access log's
// head and the outbox (which the targets drain after every success).
type storeMark struct {
	audit  uint64
	outbox int
}

func (s *fuzzStack) mark(tb testing.TB) storeMark {
	tb.Helper()
	h, err := s.db.AuditHead()
	if err != nil {
		tb.Fatal(err)
	}
	n, err := s.db.OutboxLen()
	if err != nil {
		tb.Fatal(err)
	}
	return storeMark{audit: h.Seq, outbox: n}
}

// unchanged fails tb if anything was stored since before.
func (s *fuzzStack) unchanged(tb testing.TB, before storeMark, r fuzzResponse) {
	tb.Helper()
	if after := s.mark(tb); after != before {
		tb.Fatalf("status %d stored something: access log %d → %d entries, outbox %d → %d events: %s",
			r.status, before.audit, after.audit, before.outbox, after.outbox, r.body)
	}
}

// drain removes the events in the outbox and returns them, failing tb if any names a
// referral other than one of ids or holds an identity code from input.
func (s *fuzzStack) drain(tb testing.TB, input []byte, ids ...string) []domain.Event {
	tb.Helper()
	pending, err := s.db.PendingEvents(0)
	if err != nil {
		tb.Fatal(err)
	}
	seqs := make([]uint64, len(pending))
	events := make([]domain.Event, len(pending))
	pids := identityCodes(input)
	for i, p := range pending {
		seqs[i], events[i] = p.Seq, p.Event
		if len(ids) > 0 && !oneOf(ids, p.Event.ReferralID) {
			tb.Fatalf("event %s names referral %s, want one of %v", p.Event.Type, p.Event.ReferralID, ids)
		}
		b, _ := json.Marshal(p.Event)
		if pid := leaked(string(b), pids); pid != "" {
			tb.Fatalf("event %s holds the identity code %s", p.Event.Type, pid)
		}
	}
	if err := s.db.DeleteEvents(seqs); err != nil {
		tb.Fatal(err)
	}
	return events
}

// referral reads a referral from the store, bypassing the HTTP layer and the access log.
func (s *fuzzStack) referral(tb testing.TB, id string) *domain.Referral {
	tb.Helper()
	r, err := s.db.Referral(context.Background(), id)
	if err != nil {
		tb.Fatalf("store: referral %s: %v", id, err)
	}
	return r
}

// mustCreate creates a referral as a from a seed body and returns its id.
func (s *fuzzStack) mustCreate(tb testing.TB, a fuzzActor, body map[string]any) string {
	tb.Helper()
	js, err := json.Marshal(body)
	if err != nil {
		tb.Fatal(err)
	}
	r := s.send(tb, "POST", "/v1/referrals", a, js, js)
	if r.status != http.StatusCreated {
		tb.Fatalf("create: status %d: %s", r.status, r.body)
	}
	var ref struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(r.body, &ref); err != nil || ref.ID == "" {
		tb.Fatalf("create: no id in %s", r.body)
	}
	s.drain(tb, js, ref.ID)
	return ref.ID
}

// mustAct makes a transition that must succeed.
func (s *fuzzStack) mustAct(tb testing.TB, a fuzzActor, id, action string) {
	tb.Helper()
	r := s.send(tb, "POST", "/v1/referrals/"+id+"/"+action, a, []byte(`{}`), nil)
	if r.status != http.StatusOK {
		tb.Fatalf("%s: status %d: %s", action, r.status, r.body)
	}
	s.drain(tb, nil, id)
}

// sameJSON fails tb unless a and b hold the same JSON value.
func sameJSON(tb testing.TB, what string, a, b []byte) {
	tb.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		tb.Fatalf("%s: %v: %s", what, err, a)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		tb.Fatalf("%s: %v: %s", what, err, b)
	}
	if !reflect.DeepEqual(x, y) {
		tb.Fatalf("%s differ:\n%s\n%s", what, a, b)
	}
}

// pidShaped reports whether s has the shape of a Finnish identity code: six digits, a
// century sign, three digits and a check character. Whether the check character is right
// does not matter: a mistyped identity code is still personal data.
func pidShaped(s string) bool {
	if len(s) != 11 {
		return false
	}
	for _, i := range []int{0, 1, 2, 3, 4, 5, 7, 8, 9} {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return strings.IndexByte("+-YXWVUABCDEF", s[6]) >= 0 && strings.IndexByte("0123456789ABCDEFHJKLMNPRSTUVWXY", s[10]) >= 0
}

// identityCodes returns every identity-code-shaped run of 11 bytes in input, as it is and
// inside the JSON strings (keys and values) it decodes to, so an escaped code counts too.
func identityCodes(input []byte) []string {
	var out []string
	scan := func(s string) {
		for i := 0; i+11 <= len(s); i++ {
			if pidShaped(s[i : i+11]) {
				out = append(out, s[i:i+11])
			}
		}
	}
	scan(string(input))
	var v any
	if json.Unmarshal(input, &v) == nil {
		var walk func(any)
		walk = func(v any) {
			switch x := v.(type) {
			case string:
				scan(x)
			case []any:
				for _, e := range x {
					walk(e)
				}
			case map[string]any:
				for k, e := range x {
					scan(k)
					walk(e)
				}
			}
		}
		walk(v)
	}
	return out
}

// leaked returns the first of pids that out contains, or "".
func leaked(out string, pids []string) string {
	for _, p := range pids {
		if strings.Contains(out, p) {
			return p
		}
	}
	return ""
}

func oneOf(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

// TestIdentityCodesFindsEscapedCodes checks the leak detector the fuzz targets rely on.
func TestIdentityCodesFindsEscapedCodes(t *testing.T) {
	for _, c := range []struct {
		input string
		want  []string
	}{
		{`{"personal_id":"131052-308T"}`, []string{"131052-308T", "131052-308T"}},
		{`{"personal_id":"\u0031\u0033\u0031052-308T"}`, []string{"031052-308T", "131052-308T"}}, // the raw text has one too
		{`{"131052-308U":1}`, []string{"131052-308U", "131052-308U"}},
		{`131052Z308T 1310523308T`, nil},
		{`{"personal_id":"010101A123N"}`, []string{"010101A123N", "010101A123N"}},
	} {
		if got := identityCodes([]byte(c.input)); !reflect.DeepEqual(got, c.want) {
			t.Errorf("identityCodes(%s) = %q, want %q", c.input, got, c.want)
		}
	}
	if leaked(`{"detail":"x 131052-308T"}`, []string{"131052-308T"}) == "" {
		t.Error("leaked misses a code")
	}
}
