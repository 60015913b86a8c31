package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/kela-hva/referrals/api"
	"github.com/kela-hva/referrals/domain"
)

// The day in the life against the service's stack with a fast dev clock: two business days
// pass in about four seconds, and the referrals must have been created and moved along.
func TestDayInTheLifeMovesReferralsThroughTheirLifecycle(t *testing.T) {
	const speed = 40_000
	monday := time.Date(2026, 11, 23, 7, 30, 0, 0, newWorkday().loc)
	s := startStack(t, stackOptions{clock: fastClock{start: monday, realStart: time.Now(), speed: speed}, nats: true})

	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := []string{"--url", s.url, "--data-dir", s.dataDir, "--days", "2", "--speed", "40000", "--seed", "1",
		"--per-day", "30", "--county-per-day", "8", "--nats-url", s.natsURL}
	if err := run(ctx, args, noEnv, &out, io.Discard); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}

	refs := s.referrals(t)
	if len(refs) < 50 {
		t.Fatalf("%d referrals in the store, want about 76 (2 days of 30 + 8)", len(refs))
	}
	states := map[domain.Status]int{}
	kinds := map[domain.Kind]int{}
	recipients := map[domain.OrgID]bool{}
	moved, fromCounties := 0, 0
	for _, r := range refs {
		states[r.Status]++
		kinds[r.Kind]++
		recipients[r.Recipient] = true
		if r.Timeline >= 2 { // created and changed
			moved++
		}
		if r.Direction == domain.CountyToKela {
			fromCounties++
		}
		if err := domain.CheckPersonalID(r.Client.PersonalID); err != nil || atoi3(r.Client.PersonalID[7:10]) < 900 {
			t.Errorf("%s: client code %q is not a make-believe temporary code (%v)", r.ID, r.Client.PersonalID, err)
		}
	}
	t.Logf("states %v; kinds %v", states, kinds)
	if states[domain.StatusReceived]+states[domain.StatusInProgress] == 0 || states[domain.StatusCompleted] == 0 {
		t.Errorf("states %v: want referrals received or in progress and some completed", states)
	}
	if moved < len(refs)/3 {
		t.Errorf("only %d of %d referrals moved", moved, len(refs))
	}
	if kinds[domain.KindSocialWorkNeed] < kinds[domain.KindJointMeetingRequest] || kinds[domain.KindSupplementarySupportHandoff] == 0 {
		t.Errorf("kinds %v: want mostly social_work_need and supplementary_support_handoff", kinds)
	}
	if fromCounties == 0 {
		t.Error("no county sent Kela anything")
	}
	if len(recipients) < 6 {
		t.Errorf("referrals went to only %d organisations", len(recipients))
	}
	for _, want := range []string{"What happened", "social_work_need", "Bounces:", "Requests by endpoint and status (0 not 2xx)",
		fmt.Sprintf("Events on NATS about these referrals: created %d,", len(refs))} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	// The counties bounced some (returned or forwarded) and asked for information, and the
	// senders answered.
	var returned, forwarded, asked, answered int
	for _, line := range strings.Split(out.String(), "\n") {
		fmt.Sscanf(line, "Bounces: %d (returned %d, forwarded %d)", new(int), &returned, &forwarded)
		fmt.Sscanf(line, "Information requests: %d asked, %d answered", &asked, &answered)
	}
	if returned == 0 || forwarded == 0 || asked == 0 || answered == 0 {
		t.Errorf("returned %d, forwarded %d, information requests %d asked, %d answered: want some of each", returned, forwarded, asked, answered)
	}
	if states[domain.StatusReturned] != returned || states[domain.StatusForwarded] != forwarded {
		t.Errorf("the summary says returned %d, forwarded %d; the store holds %d and %d", returned, forwarded,
			states[domain.StatusReturned], states[domain.StatusForwarded])
	}
	// The response-time report at the end, as Kela's supervisor sees it, counts every referral.
	if !strings.Contains(out.String(), "as a Kela supervisor sees it") {
		t.Fatalf("no response-time report:\n%s", out.String())
	}
	created := -1
	for _, line := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[0] == "total" {
			fmt.Sscan(f[1], &created)
		}
	}
	if created != len(refs) {
		t.Errorf("the report's total counts %d created, want %d", created, len(refs))
	}
}

func TestDayPlanIsDeterminedByTheSeed(t *testing.T) {
	dir := t.TempDir()
	if _, err := api.LoadOrCreateDevKey(dir); err != nil {
		t.Fatal(err)
	}
	plan := func(seed uint64) string {
		t.Helper()
		cfg, err := parseDayFlags([]string{"--data-dir", dir, "--seed", "0", "--days", "3"}, noEnv, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		cfg.seed = seed
		ts, err := newTokenSource(dir, nil, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		s, err := newSimulation(cfg, ts, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
		for _, p := range s.drawPlan(now) {
			js, _ := json.Marshal(p.req)
			b.WriteString(p.offset.String() + " " + p.from.ID + " " + string(js) + "\n")
		}
		return b.String()
	}
	a, b, c := plan(7), plan(7), plan(8)
	if a != b {
		t.Error("the same seed drew different plans")
	}
	if a == c {
		t.Error("different seeds drew the same plan")
	}
	if n := strings.Count(a, "\n"); n != 4*50 { // days+1 days of 40 + 10
		t.Errorf("%d planned referrals, want 200", n)
	}
}

func TestDayRefusesBadFlagsAndMissingKeys(t *testing.T) {
	for _, args := range [][]string{
		{"--days", "0"}, {"--speed", "-1"}, {"--url", "ftp://x"}, {"--late-share", "2"},
		{"--per-day", "0", "--county-per-day", "0"}, {"stray"},
	} {
		if err := run(context.Background(), append([]string{"day"}, args...), noEnv, io.Discard, io.Discard); err == nil {
			t.Errorf("%v: accepted", args)
		}
	}
	err := run(context.Background(), []string{"--data-dir", t.TempDir()}, noEnv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "dev key") {
		t.Errorf("no dev key: %v", err)
	}
}
