package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kela-hva/referrals/domain"
)

// TestRetentionCommand: the first seeded referral was returned (closed) on 23 Nov 2026, the
// second is open. At 1 Dec 2028 (over two years on) a dry run counts one and changes nothing;
// the real run erases it and logs the erasure; a second run finds nothing.
func TestRetentionCommand(t *testing.T) {
	s := seedDataDir(t, 2, time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	now := "2028-12-01T00:00:00Z"
	out, err := privacyRun(t, nil, "retention", "--data-dir", s.dir, "--now", now, "--dry-run")
	if err != nil || !strings.Contains(out, "dry run: 1 referrals") {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	// The default period is 730 days: at 729 days nothing is due, at 731 the closed one is.
	for _, tc := range []struct{ now, want string }{{"2028-11-21T12:00:00Z", "dry run: 0 referrals"}, {"2028-11-24T12:00:00Z", "dry run: 1 referrals"}} {
		if out, err := privacyRun(t, nil, "retention", "--data-dir", s.dir, "--now", tc.now, "--dry-run"); err != nil || !strings.Contains(out, tc.want) {
			t.Errorf("default period at %s: %v\n%s", tc.now, err, out)
		}
	}
	// REFERRAL_RETENTION sets it as for the service.
	if out, err := privacyRun(t, map[string]string{"REFERRAL_RETENTION": "800d"}, "retention", "--data-dir", s.dir, "--now", now, "--dry-run"); err != nil || !strings.Contains(out, "dry run: 0 referrals") {
		t.Errorf("REFERRAL_RETENTION=800d: %v\n%s", err, out)
	}
	// 739 days have passed: with a period of 740 days nothing is due yet.
	if out, err := privacyRun(t, nil, "retention", "--data-dir", s.dir, "--now", now, "--retention", "740d", "--dry-run"); err != nil || !strings.Contains(out, "dry run: 0 referrals") {
		t.Errorf("740d: %v\n%s", err, out)
	}
	out, err = privacyRun(t, nil, "retention", "--data-dir", s.dir, "--now", now)
	if err != nil || !strings.Contains(out, "erased 1 referrals") || !strings.Contains(out, "1 of their messages") {
		t.Fatalf("run: %v\n%s", err, out)
	}
	if out, err := privacyRun(t, nil, "retention", "--data-dir", s.dir, "--now", now); err != nil || !strings.Contains(out, "erased 0 referrals") {
		t.Errorf("second run: %v\n%s", err, out)
	}
	db := s.open(t, nil)
	ctx := context.Background()
	if r, err := db.Referral(ctx, s.ids[0]); err != nil || r.Client.Name != domain.ErasedText || r.Closure.Text != domain.ErasedText {
		t.Errorf("closed referral: %+v %v", r, err)
	}
	if r, err := db.Referral(ctx, s.ids[1]); err != nil || r.Client.Name != seedName {
		t.Errorf("open referral: %+v %v", r, err)
	}
	p, err := db.Audit(ctx, domain.AuditFilter{Org: domain.Kela, ReferralID: s.ids[0]})
	if err != nil || len(p.Items) == 0 || p.Items[len(p.Items)-1].Action != domain.AuditErase {
		t.Errorf("access log of the erased referral: %+v %v", p.Items, err)
	}
	db.Close()
	for _, bad := range [][]string{{"--retention", "0d"}, {"--now", "yesterday"}} {
		if _, err := privacyRun(t, nil, append([]string{"retention", "--data-dir", s.dir}, bad...)...); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
