package api_test

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kela-hva/referrals/api"
	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/domain/calendar"
	"github.com/kela-hva/referrals/internal/testkit"
	"github.com/kela-hva/referrals/openapi"
	"github.com/kela-hva/referrals/store"
)

// backupServer is the HTTP stack on a real bbolt file with the backup route wired to backup
// (the store's own Backup when nil).
type backupServer struct {
	t    *testing.T
	db   *store.DB
	srv  *httptest.Server
	logs *syncBuffer
}

func newBackupServer(t *testing.T, backup api.BackupFunc) *backupServer {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "referrals.db"), store.Options{MaxBatchDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Check(); err != nil {
			t.Errorf("bbolt check: %v", err)
		}
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	if backup == nil {
		backup = db.Backup
	}
	reg := domain.DefaultRegistry()
	auth, err := api.NewAuthenticator(api.AuthConfig{Keys: []crypto.PublicKey{testKey.Public()}, Issuer: api.DevIssuer, Audience: api.Audience}, reg)
	if err != nil {
		t.Fatal(err)
	}
	svc := &domain.Service{
		Store: db, Registry: reg, Clock: testkit.NewClock(time.Date(2026, 11, 23, 9, 12, 44, 0, time.UTC)),
		Policy:    domain.NewDeadlinePolicy(calendar.New(calendar.Options{})),
		ClientKey: func(pid string) string { s := sha256.Sum256([]byte(pid)); return hex.EncodeToString(s[:]) },
	}
	s := &backupServer{t: t, db: db, logs: &syncBuffer{}}
	log := slog.New(slog.NewJSONHandler(s.logs, nil))
	s.srv = httptest.NewServer(api.NewServer(api.Deps{
		Service: svc, Auth: auth, Validator: mustValidator(t), Logger: log, Audit: log.With("log", "audit"),
		Spec: openapi.YAML(), Registry: reg, Backup: backup,
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *backupServer) token(org string, roles ...domain.Role) string {
	s.t.Helper()
	tok, err := api.MintToken(testKey, "user-"+org, domain.OrgID(org), roles, "Operator User", time.Now(), time.Hour)
	if err != nil {
		s.t.Fatal(err)
	}
	return tok
}

// get sends GET path with token ("" for none) and returns the response with its body read.
func (s *backupServer) get(path, token string) (*http.Response, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, s.srv.URL+path, nil)
	if err != nil {
		return nil, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil {
		checkResponse(s.t, req, response{status: resp.StatusCode, header: resp.Header, body: b})
	}
	return resp, b, err
}

func TestBackupIsOnlyForKelaOperators(t *testing.T) {
	s := newBackupServer(t, nil)
	cases := []struct {
		name   string
		token  string
		status int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"kela handler", s.token("kela", domain.RoleKelaHandler), http.StatusForbidden},
		{"kela supervisor and auditor", s.token("kela", domain.RoleSupervisor, domain.RoleAuditor), http.StatusForbidden},
		{"county social worker", s.token("hva-90", domain.RoleSocialWorker), http.StatusForbidden},
		{"county operator", s.token("hva-90", domain.RoleOperator), http.StatusForbidden},
		{"kela operator", s.token("kela", domain.RoleOperator), http.StatusOK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body, err := s.get("/v1/admin/backup", c.token)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %.200s", resp.StatusCode, c.status, body)
			}
			if c.status == http.StatusOK {
				return
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type %q, want application/problem+json", ct)
			}
			var p api.Problem
			if err := json.Unmarshal(body, &p); err != nil || p.Status != c.status {
				t.Errorf("problem %+v, err %v", p, err)
			}
			if c.status == http.StatusForbidden && !strings.Contains(p.Detail, "operators of kela") {
				t.Errorf("detail %q does not say who may take backups", p.Detail)
			}
		})
	}
}

func TestBackupStreamsAConsistentCopyWithChecksumTrailers(t *testing.T) {
	s := newBackupServer(t, nil)
	kela := s.token("kela", domain.RoleKelaHandler)
	var ids []string
	for i := range 5 {
		body, _ := json.Marshal(needBody(pidMatti, "091"))
		req, _ := http.NewRequest(http.MethodPost, s.srv.URL+"/v1/referrals", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+kela)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "backup-"+strconv.Itoa(i))
		req.Header.Set("X-Purpose", "benefit_processing")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var r map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("create: %d %v", resp.StatusCode, r)
		}
		ids = append(ids, r["id"].(string))
	}

	resp, body, err := s.get("/v1/admin/backup", s.token("kela", domain.RoleOperator))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if cd := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, `attachment; filename="referrals-`) {
		t.Errorf("Content-Disposition %q", cd)
	}
	sum := sha256.Sum256(body)
	if got := resp.Trailer.Get(api.TrailerBackupSHA256); got != hex.EncodeToString(sum[:]) {
		t.Errorf("trailer %s %q, body hashes to %x", api.TrailerBackupSHA256, got, sum)
	}
	if got := resp.Trailer.Get(api.TrailerBackupBytes); got != strconv.Itoa(len(body)) {
		t.Errorf("trailer %s %q, body has %d bytes", api.TrailerBackupBytes, got, len(body))
	}

	// The copy is a bbolt file with everything in it, outbox included.
	path := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(path, body, 0o600); err != nil {
		t.Fatal(err)
	}
	cp, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	if err := cp.Check(); err != nil {
		t.Errorf("copy fails the consistency check: %v", err)
	}
	for _, id := range ids {
		if _, err := cp.Referral(t.Context(), id); err != nil {
			t.Errorf("referral %s missing from the copy: %v", id, err)
		}
	}
	want, _ := s.db.PendingEvents(100)
	got, _ := cp.PendingEvents(100)
	if len(got) != len(ids) || len(got) != len(want) {
		t.Errorf("copy has %d outbox entries, the store %d, want %d", len(got), len(want), len(ids))
	}

	logs := s.logs.String()
	if !strings.Contains(logs, `"audit":"backup"`) || !strings.Contains(logs, `"user":"user-kela"`) {
		t.Errorf("no audit record of the backup in the log:\n%s", logs)
	}
	page, err := s.db.Audit(t.Context(), domain.AuditFilter{Org: "kela", UserID: "user-kela", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	backups := 0
	for _, e := range page.Items {
		if e.Action == api.AuditBackup && e.Org == "kela" && len(e.Roles) == 1 && e.Roles[0] == domain.RoleOperator {
			backups++
		}
	}
	if backups != 1 {
		t.Errorf("%d backup entries in the access log, want 1: %+v", backups, page.Items)
	}
}

func TestBackupFailingMidwayCutsTheConnection(t *testing.T) {
	s := newBackupServer(t, func(w io.Writer) (int64, error) {
		n, _ := w.Write(bytes.Repeat([]byte{0xAB}, 64<<10))
		return int64(n), errors.New("disk on fire")
	})
	resp, body, err := s.get("/v1/admin/backup", s.token("kela", domain.RoleOperator))
	if err == nil {
		t.Fatalf("read a complete response (status %d, %d bytes, trailers %v), want a cut connection", resp.StatusCode, len(body), resp.Trailer)
	}
	if resp != nil && resp.Trailer.Get(api.TrailerBackupSHA256) != "" {
		t.Errorf("a failed backup carries a checksum trailer")
	}
	if !strings.Contains(s.logs.String(), "disk on fire") {
		t.Errorf("the failure is not logged")
	}
}
