package main

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kela-hva/referrals/api"
	"github.com/kela-hva/referrals/domain"
)

// TestMain runs the command itself when the test binary is re-executed as referralctl (see
// TestExitStatus), and the tests otherwise.
func TestMain(m *testing.M) {
	if args, ok := os.LookupEnv("REFERRALCTL_TEST_ARGS"); ok {
		os.Args = append([]string{"referralctl"}, strings.Fields(args)...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestExitStatus: scripts and cron see a refusal as exit status 1 with the reason on stderr,
// and success as 0 — the command as an operator runs it, through main.
func TestExitStatus(t *testing.T) {
	s := seedDataDir(t, 1, time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	for _, tc := range []struct {
		args   string
		status int
	}{
		{"info --data-dir " + s.dir, 0},
		{"info --data-dir " + t.TempDir(), 1}, // no database there
		{"no-such-command", 1},
	} {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "REFERRALCTL_TEST_ARGS="+tc.args)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		status := 0
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			status = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if status != tc.status || (status != 0) != strings.Contains(stderr.String(), "referralctl:") {
			t.Errorf("referralctl %s: exit status %d, stderr %q; want %d", tc.args, status, stderr.String(), tc.status)
		}
	}
}

// ctl runs referralctl with args and an empty environment.
func ctl(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	err = run(context.Background(), args, func(string) string { return "" }, &out, &errb)
	return out.String(), errb.String(), err
}

// devVerifier accepts the tokens of dir's dev key, as referrald --dev does.
func devVerifier(t *testing.T, dir string) *api.Authenticator {
	t.Helper()
	key, err := api.LoadOrCreateDevKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	a, err := api.NewAuthenticator(api.AuthConfig{Keys: []crypto.PublicKey{key.Public()}, Issuer: api.DevIssuer, Audience: api.Audience}, domain.DefaultRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestTokenPrintsOnlyAVerifiableToken(t *testing.T) {
	dir := t.TempDir()
	verify := devVerifier(t, dir)
	cases := []struct {
		name  string
		args  []string
		actor domain.Actor
	}{
		{"default subject", []string{"--org", "kela", "--role", "kela_handler"},
			domain.Actor{UserID: "dev-kela-kela_handler", Name: "Dev kela kela_handler", Org: "kela", Roles: []domain.Role{domain.RoleKelaHandler}}},
		{"roles, subject and name", []string{"--org", "hva-90", "--role", "social_worker", "--role", "supervisor", "--sub", "u-42", "--name", "Liisa"},
			domain.Actor{UserID: "u-42", Name: "Liisa", Org: "hva-90", Roles: []domain.Role{domain.RoleSocialWorker, domain.RoleSupervisor}}},
		{"operator", []string{"--org", "kela", "--role", "operator", "--ttl", "10m"},
			domain.Actor{UserID: "dev-kela-operator", Name: "Dev kela operator", Org: "kela", Roles: []domain.Role{domain.RoleOperator}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, _, err := ctl(t, append([]string{"token", "--data-dir", dir}, c.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			tok, ok := strings.CutSuffix(out, "\n")
			if !ok || strings.ContainsAny(tok, " \n") || strings.Count(tok, ".") != 2 {
				t.Fatalf("stdout %q, want exactly one JWT and a newline", out)
			}
			a, err := verify.Authenticate("Bearer " + tok)
			if err != nil {
				t.Fatalf("the service would refuse the token: %v", err)
			}
			if a.UserID != c.actor.UserID || a.Name != c.actor.Name || a.Org != c.actor.Org || len(a.Roles) != len(c.actor.Roles) {
				t.Errorf("actor %+v, want %+v", a, c.actor)
			}
			for i := range a.Roles {
				if a.Roles[i] != c.actor.Roles[i] {
					t.Errorf("roles %v, want %v", a.Roles, c.actor.Roles)
				}
			}
		})
	}
}

func TestTokenRefusesBadInputAndPrintsNothing(t *testing.T) {
	dir := t.TempDir()
	devVerifier(t, dir)
	cases := map[string][]string{
		"unknown org":    {"--org", "hva-99", "--role", "social_worker"},
		"no role":        {"--org", "kela"},
		"unknown role":   {"--org", "kela", "--role", "admin"},
		"ttl too long":   {"--org", "kela", "--role", "kela_handler", "--ttl", "200h"},
		"no dev key":     {"--org", "kela", "--role", "kela_handler", "--data-dir", t.TempDir()},
		"unknown flag":   {"--org", "kela", "--role", "kela_handler", "--admin"},
		"negative ttl":   {"--org", "kela", "--role", "kela_handler", "--ttl", "-1h"},
		"no org at all":  {"--role", "kela_handler"},
		"empty org name": {"--org", "", "--role", "kela_handler"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			out, _, err := ctl(t, append([]string{"token", "--data-dir", dir}, args...)...)
			if err == nil || out != "" {
				t.Errorf("err %v, stdout %q; want an error and nothing on stdout", err, out)
			}
		})
	}
}

func TestTokenExpiresAfterTTL(t *testing.T) {
	dir := t.TempDir()
	key, err := api.LoadOrCreateDevKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := ctl(t, "token", "--data-dir", dir, "--org", "kela", "--role", "auditor", "--ttl", "1m")
	if err != nil {
		t.Fatal(err)
	}
	later, _ := api.NewAuthenticator(api.AuthConfig{Keys: []crypto.PublicKey{key.Public()}, Issuer: api.DevIssuer,
		Audience: api.Audience, Now: func() time.Time { return time.Now().Add(2 * time.Minute) }}, domain.DefaultRegistry())
	if _, err := later.Authenticate("Bearer " + strings.TrimSpace(out)); err == nil {
		t.Error("a 1m token is still accepted 2 minutes later")
	}
}

func TestCommandDispatch(t *testing.T) {
	if _, stderr, err := ctl(t); err == nil || !strings.Contains(stderr, "usage:") {
		t.Errorf("no command: err %v, stderr %q", err, stderr)
	}
	if _, stderr, err := ctl(t, "frobnicate"); err == nil || !strings.Contains(stderr, "usage:") {
		t.Errorf("unknown command: err %v, stderr %q", err, stderr)
	}
	if out, _, err := ctl(t, "help"); err != nil || !strings.Contains(out, "backup") || !strings.Contains(out, "restore") {
		t.Errorf("help: err %v, stdout %q", err, out)
	}
}
