package main

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kela-hva/referrals/api"
	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/domain/calendar"
	"github.com/kela-hva/referrals/internal/datadir"
	"github.com/kela-hva/referrals/store"
)

const needJSON = `{"kind":"social_work_need","urgency":"normal","kela_case_ref":"TO-2026-0012345",
 "client":{"personal_id":"131052-308T","name":"Matti Meikäläinen","home_municipality":"091","language":"fi","needs_interpreter":false,"phone":"+358401234567","can_use_eservices":false},
 "social_work_need":{"need_flags":["housing_risk"],"consent":"given","immediate_need":false,"description":"No address yet."}}`

var (
	kelaHandler = domain.Actor{UserID: "u-kela", Org: "kela", Roles: []domain.Role{domain.RoleKelaHandler}}
	hkiWorker   = domain.Actor{UserID: "u-hki", Org: "hva-90", Roles: []domain.Role{domain.RoleSocialWorker}}
)

// service is the domain service on db, configured as referrald configures it.
func service(db *store.DB) *domain.Service {
	return &domain.Service{
		Store: db, Registry: domain.DefaultRegistry(),
		Clock:  domain.ClockFunc(func() time.Time { return time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC) }),
		Policy: domain.NewDeadlinePolicy(calendar.New(calendar.Options{})),
		ClientKey: func(pid string) string {
			s := sha256.Sum256([]byte("index-key:" + pid))
			return hex.EncodeToString(s[:])
		},
	}
}

// fixture is a data dir with referrals in several states, idempotency records and an outbox
// that no relay has drained.
type fixture struct {
	dir    string
	db     *store.DB
	ids    []string // by idempotency key "key-<i>"
	outbox []domain.OutboxEntry
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir()}
	var err error
	f.db, err = store.Open(filepath.Join(f.dir, datadir.DBFile), store.Options{MaxBatchDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.db.Close() })
	svc := service(f.db)
	ctx := context.Background()
	for i := range 5 {
		var req domain.CreateRequest
		if err := json.Unmarshal([]byte(needJSON), &req); err != nil {
			t.Fatal(err)
		}
		r, _, err := svc.Create(ctx, kelaHandler, &req, "key-"+strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		f.ids = append(f.ids, r.ID)
	}
	// 0: in_progress, 1 and 2: received, 3 and 4: sent.
	for i, actions := range [][]domain.Action{{domain.ActionReceive, domain.ActionStart}, {domain.ActionReceive}, {domain.ActionReceive}} {
		for _, a := range actions {
			if _, err := svc.Act(ctx, hkiWorker, f.ids[i], domain.Command{Action: a}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if f.outbox, err = f.db.PendingEvents(1000); err != nil || len(f.outbox) != 9 {
		t.Fatalf("outbox: %d entries, %v; want 9", len(f.outbox), err)
	}
	for _, name := range []string{"client-index.key", "cursor.key"} {
		if err := os.WriteFile(filepath.Join(f.dir, name), []byte(name+"-secret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// checkRestored opens the restored data dir and finds every referral, index entry,
// idempotency record and outbox entry of the fixture.
func (f *fixture) checkRestored(t *testing.T, dir string) {
	t.Helper()
	db, err := store.Open(filepath.Join(dir, datadir.DBFile), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Check(); err != nil {
		t.Errorf("restored store fails its check: %v", err)
	}
	ctx := context.Background()
	svc := service(db)

	got, err := db.PendingEvents(1000)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(got, f.outbox, func(a, b domain.OutboxEntry) bool { return a.Seq == b.Seq && a.Event.ID == b.Event.ID }) {
		t.Errorf("restored outbox has %d entries, want the original %d in the same order", len(got), len(f.outbox))
	}

	want := map[string]domain.Status{f.ids[0]: "in_progress", f.ids[1]: "received", f.ids[2]: "received", f.ids[3]: "sent", f.ids[4]: "sent"}
	for id, status := range want {
		r, err := svc.Get(ctx, hkiWorker, id)
		if err != nil || r.Status != status || r.Client.PersonalID != "131052-308T" {
			t.Errorf("referral %s: %v, err %v; want status %s with its client", id, r, err, status)
		}
	}
	for status, n := range map[domain.Status]int{"sent": 2, "received": 2, "in_progress": 1, "completed": 0} {
		page, err := svc.List(ctx, hkiWorker, domain.ListFilter{Org: "hva-90", Direction: domain.Incoming, Status: status, Limit: 50})
		if err != nil || len(page.Items) != n {
			t.Errorf("inbox with status %s: %d items, err %v; want %d", status, len(page.Items), err, n)
		}
		for _, r := range page.Items {
			if want[r.ID] != status {
				t.Errorf("inbox with status %s lists %s (%s)", status, r.ID, r.Status)
			}
		}
	}
	// The sender's side of the index: Kela's outgoing list, every status, names each of them
	// (callers may have added others).
	outgoing := map[string]bool{}
	for lf := (domain.ListFilter{Org: "kela", Direction: domain.Outgoing, Limit: 200}); ; {
		page, err := svc.List(ctx, kelaHandler, lf)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Items {
			outgoing[r.ID] = true
		}
		if lf.After = page.Next; lf.After == "" {
			break
		}
	}
	for _, id := range f.ids {
		if !outgoing[id] {
			t.Errorf("Kela's outgoing list lacks %s", id)
		}
	}
	// The deadline index: a month later every referral with a deadline still open is overdue
	// (all but the one in progress: a social-work need meets respond_by when it starts).
	fired, err := svc.FireDue(ctx, time.Date(2026, 12, 23, 9, 0, 0, 0, time.UTC), 1000)
	if err != nil {
		t.Fatal(err)
	}
	overdue := map[string]bool{}
	for _, a := range fired {
		if a.Type == domain.EventOverdue && !a.Stale {
			overdue[a.ReferralID] = true
		}
	}
	for i, id := range f.ids {
		if overdue[id] != (i > 0) {
			t.Errorf("after a month referral %d (%s) overdue: %v, want %v: the due index was not restored as it was", i, want[id], overdue[id], i > 0)
		}
	}
	if refs, err := svc.SearchClient(ctx, kelaHandler, "131052-308T"); err != nil || len(refs) != 5 {
		t.Errorf("client search: %d referrals, err %v; want 5", len(refs), err)
	}
	for i, id := range f.ids {
		var req domain.CreateRequest
		_ = json.Unmarshal([]byte(needJSON), &req)
		r, created, err := svc.Create(ctx, kelaHandler, &req, "key-"+strconv.Itoa(i))
		if err != nil || created || r.ID != id {
			t.Errorf("retry of key-%d: created %v, referral %v, err %v; want the restored %s", i, created, r, err, id)
		}
	}
}

func TestOfflineBackupAndRestoreKeepEverything(t *testing.T) {
	f := newFixture(t)
	file := filepath.Join(t.TempDir(), "b.db")

	// While the database is open (referrald running), the offline copy refuses.
	if _, _, err := ctl(t, "backup", "--data-dir", f.dir, "--to", file); err == nil || !strings.Contains(err.Error(), "--url") {
		t.Fatalf("offline backup of an open store: %v, want a refusal pointing to --url", err)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("a refused backup left %s behind", file)
	}
	if err := f.db.Close(); err != nil {
		t.Fatal(err)
	}

	out, _, err := ctl(t, "backup", "--data-dir", f.dir, "--to", file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "consistency check ok, 5 referrals, 9 undelivered events") {
		t.Errorf("backup said %q", out)
	}
	if _, _, err := ctl(t, "backup", "--data-dir", f.dir, "--to", file); err == nil {
		t.Error("backup overwrote an existing file")
	}

	restored := filepath.Join(t.TempDir(), "new")
	out, stderr, err := ctl(t, "restore", "--from", file, "--data-dir", restored, "--keys-from", f.dir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "client-index.key, cursor.key") || stderr != "" {
		t.Errorf("restore said %q, %q", out, stderr)
	}
	if _, err := os.Stat(store.AuditItemsPath(filepath.Join(f.dir, "referrals.db"))); err != nil || strings.Contains(out, "audit-items") {
		t.Errorf("the old dir's access-log items file (%v) was copied as a key: %q", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(restored, "client-index.key")); err != nil || string(b) != "client-index.key-secret\n" {
		t.Errorf("client-index.key not copied: %q %v", b, err)
	}
	f.checkRestored(t, restored)
	entries, _ := os.ReadDir(restored)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".restoring") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
	// Client data and keys: only the service's user may read them.
	if fi, err := os.Stat(restored); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("restored data dir: %v, %v; want 0700", fi.Mode().Perm(), err)
	}
	for _, name := range []string{"referrals.db", "client-index.key", "cursor.key"} {
		if fi, err := os.Stat(filepath.Join(restored, name)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("restored %s: %v; want mode 0600", name, err)
		}
	}
}

func TestOnlineBackupFromARunningServiceRestores(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	key, err := api.LoadOrCreateDevKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	reg := domain.DefaultRegistry()
	auth, err := api.NewAuthenticator(api.AuthConfig{Keys: []crypto.PublicKey{key.Public()}, Issuer: api.DevIssuer, Audience: api.Audience}, reg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.NewServer(api.Deps{
		Service: service(f.db), Auth: auth, Logger: slog.New(slog.DiscardHandler), Registry: reg, Backup: f.db.Backup,
	}))
	defer srv.Close()
	token := func(role string) string {
		out, _, err := ctl(t, "token", "--data-dir", dir, "--org", "kela", "--role", role)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}

	file := filepath.Join(t.TempDir(), "online.db")
	if _, _, err := ctl(t, "backup", "--url", srv.URL, "--token", token("kela_handler"), "--to", file); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("backup with a handler's token: %v, want the service's 403", err)
	}
	var out, errb strings.Builder
	env := func(k string) string {
		if k == "REFERRAL_TOKEN" {
			return token("operator")
		}
		return ""
	}
	if err := run(context.Background(), []string{"backup", "--url", srv.URL, "--to", file}, env, &out, &errb); err != nil {
		t.Fatalf("online backup: %v %s", err, errb.String())
	}
	if !strings.Contains(out.String(), "sha256 ") || !strings.Contains(out.String(), "9 undelivered events") {
		t.Errorf("backup said %q", out.String())
	}

	restored := t.TempDir()
	if _, _, err := ctl(t, "restore", "--from", file, "--data-dir", restored); err != nil {
		t.Fatal(err)
	}
	f.checkRestored(t, restored)
}

func TestOnlineBackupOverHTTPSTrustsTheGivenCA(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	key, err := api.LoadOrCreateDevKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	reg := domain.DefaultRegistry()
	auth, _ := api.NewAuthenticator(api.AuthConfig{Keys: []crypto.PublicKey{key.Public()}, Issuer: api.DevIssuer, Audience: api.Audience}, reg)
	srv := httptest.NewTLSServer(api.NewServer(api.Deps{
		Service: service(f.db), Auth: auth, Logger: slog.New(slog.DiscardHandler), Registry: reg, Backup: f.db.Backup,
	}))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err := ctl(t, "token", "--data-dir", dir, "--org", "kela", "--role", "operator")
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(out)
	file := filepath.Join(t.TempDir(), "tls.db")
	if _, _, err := ctl(t, "backup", "--url", srv.URL, "--token", tok, "--to", file); err == nil {
		t.Error("trusted an unknown certificate authority")
	}
	if _, _, err := ctl(t, "backup", "--url", srv.URL, "--token", tok, "--to", file, "--tls-ca", ca); err != nil {
		t.Fatalf("backup over https with the CA: %v", err)
	}
	restored := t.TempDir()
	if _, _, err := ctl(t, "restore", "--from", file, "--data-dir", restored); err != nil {
		t.Fatal(err)
	}
	f.checkRestored(t, restored)
}

func TestRestoreRefusesAnOccupiedDataDirAndABrokenFile(t *testing.T) {
	f := newFixture(t)
	if err := f.db.Close(); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "b.db")
	if _, _, err := ctl(t, "backup", "--data-dir", f.dir, "--to", file); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(f.dir, datadir.DBFile))
	if _, _, err := ctl(t, "restore", "--from", file, "--data-dir", f.dir); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("restore over an existing database: %v", err)
	}
	if after, _ := os.ReadFile(filepath.Join(f.dir, datadir.DBFile)); string(after) != string(before) {
		t.Error("the existing database changed")
	}

	// A file cut short is not a database: nothing is restored.
	whole, _ := os.ReadFile(file)
	cut := filepath.Join(t.TempDir(), "cut.db")
	if err := os.WriteFile(cut, whole[:len(whole)/3], 0o600); err != nil {
		t.Fatal(err)
	}
	target := t.TempDir()
	if _, _, err := ctl(t, "restore", "--from", cut, "--data-dir", target); err == nil {
		t.Error("restored a truncated file")
	}
	if entries, _ := os.ReadDir(target); len(entries) != 0 {
		t.Errorf("a failed restore left %v behind", entries)
	}
}

func TestBackupFlagRefusals(t *testing.T) {
	cases := map[string][]string{
		"no target":      {"backup", "--data-dir", t.TempDir()},
		"no source":      {"backup", "--to", filepath.Join(t.TempDir(), "x")},
		"both sources":   {"backup", "--to", filepath.Join(t.TempDir(), "x"), "--data-dir", t.TempDir(), "--url", "http://127.0.0.1:1", "--token", "t"},
		"url, no token":  {"backup", "--to", filepath.Join(t.TempDir(), "x"), "--url", "http://127.0.0.1:1"},
		"empty data dir": {"backup", "--to", filepath.Join(t.TempDir(), "x"), "--data-dir", t.TempDir()},
		"restore, no to": {"restore", "--from", "x"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			if _, _, err := ctl(t, args...); err == nil {
				t.Error("accepted")
			}
		})
	}
}

// TestOnlineBackupRefusesACopyItsTrailersDoNotVouchFor: a body that does not hash to the
// service's Backup-Sha256, does not have its Backup-Bytes, or comes without the trailers (cut
// or altered on the way) is not kept.
func TestOnlineBackupRefusesACopyItsTrailersDoNotVouchFor(t *testing.T) {
	body := []byte("a database, as the service streamed it")
	sum := sha256.Sum256(body)
	good := hex.EncodeToString(sum[:])
	for _, tc := range []struct {
		name, sha, bytes, want string
	}{
		{"wrong hash", strings.Repeat("0", 64), strconv.Itoa(len(body)), "hashes to"},
		{"wrong length", good, strconv.Itoa(len(body) + 1), "bytes"},
		{"no trailers", "", "", "trailer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.sha != "" {
					w.Header().Set("Trailer", api.TrailerBackupSHA256+", "+api.TrailerBackupBytes)
				}
				w.WriteHeader(http.StatusOK)
				_, _ = w.Write(body)
				if tc.sha != "" {
					w.Header().Set(api.TrailerBackupSHA256, tc.sha)
					w.Header().Set(api.TrailerBackupBytes, tc.bytes)
				}
			}))
			defer srv.Close()
			file := filepath.Join(t.TempDir(), "b.db")
			_, _, err := ctl(t, "backup", "--url", srv.URL, "--token", "t", "--to", file)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("backup: %v, want an error about %q", err, tc.want)
			}
			if _, err := os.Stat(file); !os.IsNotExist(err) {
				t.Errorf("the refused copy was kept at %s (%v)", file, err)
			}
			if left, _ := filepath.Glob(file + ".*"); len(left) != 0 {
				t.Errorf("partial files left: %v", left)
			}
		})
	}
}
