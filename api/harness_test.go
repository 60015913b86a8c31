package api_test

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
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

// fakeClock is the business clock of the tests: it moves only when told.
type fakeClock = testkit.Clock

// harness is the whole HTTP stack on a real bbolt file: no NATS (the outbox is read directly).
type harness struct {
	t     *testing.T
	dir   string
	db    *store.DB
	srv   *httptest.Server
	key   ed25519.PrivateKey
	clock *fakeClock
	logs  *syncBuffer
}

// syncBuffer collects the service's logs.
type syncBuffer = testkit.Buffer

var (
	specOnce  sync.Once
	validator *openapi.Validator
	specErr   error
)

func mustValidator(t *testing.T) *openapi.Validator {
	t.Helper()
	specOnce.Do(func() {
		doc, err := openapi.Load()
		if err != nil {
			specErr = err
			return
		}
		validator, specErr = openapi.NewValidator(doc)
	})
	if specErr != nil {
		t.Fatalf("openapi: %v", specErr)
	}
	return validator
}

// testKey signs the tokens of every harness; otherKey signs tokens the service must refuse.
var testKey, otherKey = mustKey(), mustKey()

func mustKey() ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

// harnessOptions change the stack a harness runs.
type harnessOptions struct {
	// noValidator leaves the OpenAPI request validator out: only the strict decoder and the
	// handlers check requests (Deps.Validator nil).
	noValidator bool
	// store, if set, wraps the store the service uses (the harness's db stays the real one).
	store func(*store.DB) domain.Store
}

// newHarness starts the stack on dir (a new temp dir when "").
func newHarness(t *testing.T, dir string) *harness {
	t.Helper()
	return newHarnessWith(t, dir, harnessOptions{})
}

// newHarnessWith is newHarness with options.
func newHarnessWith(t *testing.T, dir string, o harnessOptions) *harness {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	// Encrypted at rest as in production (testKeyring, audit_test.go).
	db, err := store.Open(filepath.Join(dir, "referrals.db"), store.Options{MaxBatchDelay: time.Millisecond, Keys: testKeyring})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	h := &harness{t: t, dir: dir, db: db, key: testKey, logs: &syncBuffer{},
		clock: testkit.NewClock(time.Date(2026, 11, 23, 9, 12, 44, 0, time.UTC))}
	reg := domain.DefaultRegistry()
	auth, err := api.NewAuthenticator(api.AuthConfig{Keys: []crypto.PublicKey{testKey.Public()}, Issuer: api.DevIssuer, Audience: api.Audience}, reg)
	if err != nil {
		t.Fatal(err)
	}
	var st domain.Store = db
	if o.store != nil {
		st = o.store(db)
	}
	var v api.RequestValidator
	if !o.noValidator {
		v = mustValidator(t)
	}
	svc := &domain.Service{
		Store: st, Registry: reg, Clock: h.clock,
		Policy: domain.NewDeadlinePolicy(calendar.New(calendar.Options{})),
		ClientKey: func(pid string) string {
			s := sha256.Sum256([]byte("test-key:" + pid))
			return hex.EncodeToString(s[:])
		},
	}
	log := slog.New(slog.NewJSONHandler(h.logs, nil))
	h.srv = httptest.NewServer(api.NewServer(api.Deps{
		Service: svc, Auth: auth, Validator: v, Logger: log, Audit: log.With("log", "audit"),
		Spec: openapi.YAML(), Registry: reg,
	}))
	t.Cleanup(h.close)
	return h
}

// identityCodeShape matches anything shaped like a Finnish identity code, valid or not.
var identityCodeShape = regexp.MustCompile(`[0-9]{6}[-+ABCDEFYXWVU][0-9]{3}[0-9A-Y]`)

func (h *harness) close() {
	if h.srv == nil {
		return
	}
	h.srv.Close()
	h.srv = nil
	// Whatever a test sent — valid or broken bodies, searches, extracts — the service's logs
	// name no client: no identity code (or anything shaped like one), name or phone number.
	logs := h.logs.String()
	if m := identityCodeShape.FindString(logs); m != "" {
		h.t.Errorf("the logs carry an identity code: %q", m)
	}
	for _, secret := range []string{"Meikäläinen", "Matti", "+35840"} {
		if strings.Contains(logs, secret) {
			h.t.Errorf("the logs carry %q", secret)
		}
	}
	if err := h.db.Check(); err != nil {
		h.t.Errorf("bbolt check: %v", err)
	}
	if err := h.db.Close(); err != nil {
		h.t.Errorf("close store: %v", err)
	}
}

// token mints a valid token for a user of org with roles.
func (h *harness) token(org string, roles ...domain.Role) string {
	h.t.Helper()
	tok, err := api.MintToken(h.key, "user-"+org, domain.OrgID(org), roles, "Test User", time.Now(), time.Hour)
	if err != nil {
		h.t.Fatal(err)
	}
	return tok
}

var (
	kelaHandler = func(h *harness) string { return h.token("kela", domain.RoleKelaHandler) }
	hkiWorker   = func(h *harness) string { return h.token("hva-90", domain.RoleSocialWorker) }
	tampere     = func(h *harness) string { return h.token("hva-08", domain.RoleSocialWorker) }
)

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v: %s", err, r.body)
	}
	return m
}

// do sends a request; body may be nil, a string (sent as it is) or a value (sent as JSON).
// headers are name, value pairs; an empty value removes the header. X-Purpose is
// benefit_processing unless headers say otherwise.
func (h *harness) do(method, path, token string, body any, headers ...string) response {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		js, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(js)
	}
	r := roundTrip(h.t, http.DefaultClient, method, h.srv.URL+path, token, rd, headers...)
	if r.status >= 500 {
		h.t.Errorf("%s %s: status %d: %s", method, path, r.status, r.body)
	}
	return r
}

// Test identity codes: valid check characters, made-up people.
const (
	pidMatti = "131052-308T"
	pidMaija = "010101A123N"
)

// needBody is a valid social_work_need from Kela for a client of municipality muni.
func needBody(pid, muni string) map[string]any {
	return map[string]any{
		"kind": "social_work_need", "urgency": "normal", "kela_case_ref": "TO-2026-0012345",
		"client": map[string]any{
			"personal_id": pid, "name": "Matti Meikäläinen", "home_municipality": muni,
			"language": "fi", "needs_interpreter": false, "phone": "+358401234567", "can_use_eservices": false,
		},
		"social_work_need": map[string]any{
			"need_flags": []string{"housing_risk", "released_from_prison"}, "consent": "given",
			"immediate_need": false, "description": "Released 2026-11-20, no address yet.",
		},
	}
}

// statementBody is a valid social_work_statement from a county to Kela.
func statementBody(pid string) map[string]any {
	return map[string]any{
		"kind": "social_work_statement", "urgency": "normal", "kela_case_ref": "TO-2026-0099999",
		"client": map[string]any{"personal_id": pid, "name": "Maija Mallikas", "home_municipality": "091"},
		"to_kela": map[string]any{"subject": "Lausunto", "text": "Asiakasta on kuultu.",
			"topics": []string{"other_basic_expenses"}, "client_heard": true},
	}
}

// create makes a referral and returns its id.
func (h *harness) create(token string, body map[string]any) string {
	h.t.Helper()
	r := h.do("POST", "/v1/referrals", token, body)
	if r.status != http.StatusCreated {
		h.t.Fatalf("create: status %d: %s", r.status, r.body)
	}
	return r.json(h.t)["id"].(string)
}

// act posts a transition and fails the test unless it answers 200.
func (h *harness) act(token, id, action string, body any) map[string]any {
	h.t.Helper()
	r := h.do("POST", "/v1/referrals/"+id+"/"+action, token, body)
	if r.status != http.StatusOK {
		h.t.Fatalf("%s: status %d: %s", action, r.status, r.body)
	}
	return r.json(h.t)
}
