package domain_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/store"
)

// alertKey names one alert of one deadline value.
type alertKey struct {
	id, typ, deadline string
	by                time.Time
}

func (k alertKey) String() string {
	return fmt.Sprintf("%s %s %s %s", k.id[len(k.id)-6:], k.typ, k.deadline, k.by.UTC().Format(time.RFC3339))
}

// outboxAlerts returns every deadline_warning and overdue event in the outbox, in commit order.
func outboxAlerts(t testing.TB, db *store.DB) []domain.Event {
	t.Helper()
	all, err := db.PendingEvents(1 << 20)
	if err != nil {
		t.Fatalf("PendingEvents: %v", err)
	}
	var out []domain.Event
	for _, e := range all {
		if e.Event.Type == domain.EventDeadlineWarning || e.Event.Type == domain.EventOverdue {
			out = append(out, e.Event)
		}
	}
	return out
}

func keyOf(e domain.Event) alertKey {
	k := alertKey{id: e.ReferralID, typ: string(e.Type), deadline: e.DeadlineName}
	if e.Deadline != nil {
		k.by = e.Deadline.UTC()
	}
	return k
}

// alertKeys returns the outbox's alerts of referral id, in order.
func alertKeys(t testing.TB, db *store.DB, id string) []alertKey {
	t.Helper()
	var out []alertKey
	for _, e := range outboxAlerts(t, db) {
		if e.ReferralID == id {
			out = append(out, keyOf(e))
		}
	}
	return out
}

// fireAt sets the business clock and runs watcher steps until nothing is due.
func fireAt(t *testing.T, f *fixture, at string) []domain.Alert {
	t.Helper()
	f.clock.Set(mustTime(t, at))
	var all []domain.Alert
	for range 100 {
		fired, err := f.svc.FireDue(context.Background(), f.clock.Now(), 0)
		if err != nil {
			t.Fatalf("FireDue at %s: %v", at, err)
		}
		all = append(all, fired...)
		if len(fired) < domain.DefaultFireBatch {
			return all
		}
	}
	t.Fatalf("at %s the watcher keeps finding alerts: %d so far", at, len(all))
	return nil
}

func overdueIDs(t *testing.T, f *fixture, actor domain.Actor, dir string) []string {
	t.Helper()
	p, err := f.svc.ListOverdue(context.Background(), actor, domain.ListFilter{Direction: dir, Limit: 200})
	if err != nil {
		t.Fatalf("ListOverdue(%s %s): %v", actor.Org, dir, err)
	}
	ids := []string{}
	for _, r := range p.Items {
		ids = append(ids, r.ID)
	}
	return ids
}

func ak(id, typ, deadline, by string) alertKey {
	b, err := time.Parse(time.RFC3339, by)
	if err != nil {
		panic(err)
	}
	return alertKey{id: id, typ: typ, deadline: deadline, by: b}
}

const (
	warn    = string(domain.EventDeadlineWarning)
	overdue = string(domain.EventOverdue)
	ackBy   = domain.DeadlineAcknowledge
	respBy  = domain.DeadlineRespond
)

func TestWatcherWarnsThenOverdueExactlyOnce(t *testing.T) {
	f := newFixture(t)
	r := mustCreate(t, f, kelaHandler, needRequest(clientA, "837")) // Mon 23 Nov 2026, to Tampere
	const ackDeadline, respDeadline = "2026-11-24T21:59:59Z", "2026-12-02T21:59:59Z"
	steps := []struct {
		at   string
		want []alertKey
	}{
		{"2026-11-24T09:59:58Z", nil},
		{"2026-11-24T09:59:59Z", []alertKey{ak(r.ID, warn, ackBy, ackDeadline)}}, // 11:59:59 Helsinki
		{"2026-11-24T12:00:00Z", nil},
		{"2026-11-24T21:59:59Z", nil}, // the last second of the deadline is still in time
		{"2026-11-24T22:00:00Z", []alertKey{ak(r.ID, overdue, ackBy, ackDeadline)}},
		{"2026-11-25T08:00:00Z", nil},
		{"2026-12-02T09:59:59Z", []alertKey{ak(r.ID, warn, respBy, respDeadline)}},
		{"2026-12-02T22:00:00Z", []alertKey{ak(r.ID, overdue, respBy, respDeadline)}},
		{"2026-12-31T00:00:00Z", nil},
	}
	var want []alertKey
	for _, s := range steps {
		fired := fireAt(t, f, s.at)
		want = append(want, s.want...)
		if got := alertKeys(t, f.db, r.ID); !slices.Equal(got, want) {
			t.Fatalf("at %s the outbox holds alerts %v, want %v", s.at, got, want)
		}
		if len(fired) != len(s.want) {
			t.Errorf("at %s FireDue returned %d alerts, want %d", s.at, len(fired), len(s.want))
		}
		// A second step at the same time finds nothing.
		if again := fireAt(t, f, s.at); len(again) != 0 {
			t.Errorf("at %s a second step fired %v", s.at, again)
		}
	}

	events := outboxAlerts(t, f.db)
	for _, e := range events {
		if e.ActorOrg != "" || e.Sender != domain.Kela || e.Recipient != "hva-08" || e.Kind != domain.KindSocialWorkNeed ||
			e.Status != domain.StatusSent || e.ID == "" || e.Time.IsZero() {
			t.Errorf("alert event %+v", e)
		}
		if e.Subject() != "referrals.v1.kela.hva-08."+string(e.Type) {
			t.Errorf("subject %s", e.Subject())
		}
		b, _ := json.Marshal(e)
		for _, secret := range []string{clientA, clientName, clientPhone, freeTextNeed, "TO-2026"} {
			if strings.Contains(string(b), secret) {
				t.Errorf("alert event carries %q: %s", secret, b)
			}
		}
	}
	if first := events[0]; !first.Time.Equal(mustTime(t, "2026-11-24T09:59:59Z")) {
		t.Errorf("warning time %s, want the business time it fired", first.Time)
	}

	// Alerts change neither the referral's version nor its timeline.
	got := mustGet(t, f, kelaHandler, r.ID)
	if got.Version != 1 || got.Timeline != 1 || !got.UpdatedAt.Equal(r.UpdatedAt) {
		t.Errorf("after the alerts: version %d, timeline %d, updated %s", got.Version, got.Timeline, got.UpdatedAt)
	}
	if tl := mustTimeline(t, f, kelaHandler, r.ID); len(tl) != 1 {
		t.Errorf("timeline has %d entries, want 1", len(tl))
	}

	// Overdue on both sides, not elsewhere.
	if ids := overdueIDs(t, f, tampereSW, domain.Incoming); !slices.Equal(ids, []string{r.ID}) {
		t.Errorf("Tampere's incoming overdue = %v", ids)
	}
	if ids := overdueIDs(t, f, kelaHandler, domain.Outgoing); !slices.Equal(ids, []string{r.ID}) {
		t.Errorf("Kela's outgoing overdue = %v", ids)
	}
	for _, x := range []struct {
		a   domain.Actor
		dir string
	}{{tampereSW, domain.Outgoing}, {kelaHandler, domain.Incoming}, {helsinkiSW, domain.Incoming}} {
		if ids := overdueIDs(t, f, x.a, x.dir); len(ids) != 0 {
			t.Errorf("%s %s overdue = %v, want none", x.a.Org, x.dir, ids)
		}
	}

	// Saving the referral again (a message) re-arms nothing.
	if _, _, err := f.svc.AddMessage(context.Background(), kelaHandler, r.ID, "Any news?", 0); err != nil {
		t.Fatal(err)
	}
	if again := fireAt(t, f, "2027-01-31T00:00:00Z"); len(again) != 0 {
		t.Errorf("after a message the watcher fired %v", again)
	}
	if n := len(alertKeys(t, f.db, r.ID)); n != 4 {
		t.Errorf("%d alerts, want 4", n)
	}
	if ids := overdueIDs(t, f, tampereSW, domain.Incoming); !slices.Equal(ids, []string{r.ID}) {
		t.Errorf("after a message Tampere's overdue = %v", ids)
	}
}

func TestWatcherCatchesUpInDueOrderOneBatchAtATime(t *testing.T) {
	f := newFixture(t)
	r := mustCreate(t, f, kelaHandler, needRequest(clientA, "837"))
	f.clock.Set(mustTime(t, "2026-12-10T12:00:00Z")) // the watcher was away past both deadlines
	var got []alertKey
	for i := 0; ; i++ {
		fired, err := f.svc.FireDue(context.Background(), f.clock.Now(), 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(fired) == 0 {
			break
		}
		if len(fired) != 1 || i > 4 {
			t.Fatalf("step %d fired %v, want one alert per step, four steps", i, fired)
		}
		got = append(got, alertKeys(t, f.db, r.ID)[len(got):]...)
	}
	want := []alertKey{
		ak(r.ID, warn, ackBy, "2026-11-24T21:59:59Z"), ak(r.ID, overdue, ackBy, "2026-11-24T21:59:59Z"),
		ak(r.ID, warn, respBy, "2026-12-02T21:59:59Z"), ak(r.ID, overdue, respBy, "2026-12-02T21:59:59Z"),
	}
	if !slices.Equal(got, want) {
		t.Errorf("alerts %v, want %v", got, want)
	}
}

func TestAcknowledgingInTimePreventsTheOverdueAlert(t *testing.T) {
	f := newFixture(t)
	warned := mustCreate(t, f, kelaHandler, needRequest(clientA, "837"))
	early := mustCreate(t, f, kelaHandler, needRequest(clientB, "837"))
	mustAct(t, f, tampereSW, early.ID, domain.Command{Action: domain.ActionReceive}) // before any warning
	fireAt(t, f, "2026-11-24T10:00:00Z")
	f.clock.Set(mustTime(t, "2026-11-24T12:00:00Z"))
	mustAct(t, f, tampereSW, warned.ID, domain.Command{Action: domain.ActionReceive}) // after the warning, in time
	fireAt(t, f, "2026-11-25T08:00:00Z")
	if got, want := alertKeys(t, f.db, warned.ID), []alertKey{ak(warned.ID, warn, ackBy, "2026-11-24T21:59:59Z")}; !slices.Equal(got, want) {
		t.Errorf("acknowledged after the warning: alerts %v, want only %v", got, want)
	}
	if got := alertKeys(t, f.db, early.ID); len(got) != 0 {
		t.Errorf("acknowledged at once: alerts %v, want none", got)
	}
	// Starting the service-need assessment answers a social_work_need: no respond_by alerts.
	f.clock.Set(mustTime(t, "2026-11-26T08:00:00Z"))
	mustAct(t, f, tampereSW, early.ID, domain.Command{Action: domain.ActionStart})
	fireAt(t, f, "2026-12-10T00:00:00Z")
	if got := alertKeys(t, f.db, early.ID); len(got) != 0 {
		t.Errorf("answered in time: alerts %v, want none", got)
	}
	if got := alertKeys(t, f.db, warned.ID); len(got) != 3 { // + respond_by warning and overdue
		t.Errorf("received but never started: alerts %v, want 3", got)
	}
	if ids := overdueIDs(t, f, tampereSW, domain.Incoming); !slices.Equal(ids, []string{warned.ID}) {
		t.Errorf("overdue = %v, want only %s", ids, warned.ID)
	}
}

func TestMeetingADeadlineLateTakesTheReferralOffTheOverdueList(t *testing.T) {
	f := newFixture(t)
	r := mustCreate(t, f, kelaHandler, needRequest(clientA, "837"))
	fireAt(t, f, "2026-11-25T08:00:00Z")
	if ids := overdueIDs(t, f, tampereSW, domain.Incoming); len(ids) != 1 {
		t.Fatalf("overdue = %v, want the unacknowledged referral", ids)
	}
	mustAct(t, f, tampereSW, r.ID, domain.Command{Action: domain.ActionReceive})
	if ids := overdueIDs(t, f, tampereSW, domain.Incoming); len(ids) != 0 {
		t.Errorf("acknowledged late, still overdue: %v", ids)
	}
	if ids := overdueIDs(t, f, kelaHandler, domain.Outgoing); len(ids) != 0 {
		t.Errorf("acknowledged late, still on Kela's overdue list: %v", ids)
	}
	if ov := mustGet(t, f, kelaHandler, r.ID).Overdue(f.clock.Now()); ov {
		t.Errorf("Referral.Overdue disagrees with the list")
	}
}

func TestInfoAnswerRearmsRespondBy(t *testing.T) {
	f := newFixture(t)
	r := mustCreate(t, f, kelaHandler, handoffRequest(clientA, "091")) // to Helsinki
	f.clock.Set(mustTime(t, "2026-11-23T10:00:00Z"))
	mustAct(t, f, helsinkiSW, r.ID, domain.Command{Action: domain.ActionReceive})
	const first, second = "2026-12-02T21:59:59Z", "2026-12-16T21:59:59Z"
	fireAt(t, f, "2026-12-02T22:00:00Z")
	want := []alertKey{ak(r.ID, warn, respBy, first), ak(r.ID, overdue, respBy, first)}
	if got := alertKeys(t, f.db, r.ID); !slices.Equal(got, want) {
		t.Fatalf("alerts %v, want %v", got, want)
	}
	if ids := overdueIDs(t, f, helsinkiSW, domain.Incoming); len(ids) != 1 {
		t.Fatalf("overdue = %v, want the handoff", ids)
	}

	// The question pauses respond_by: off the list, and nothing fires while waiting.
	f.clock.Set(mustTime(t, "2026-12-03T08:00:00Z"))
	mustAct(t, f, helsinkiSW, r.ID, domain.Command{Action: domain.ActionRequestInfo, Question: "Which month's rent?"})
	if ids := overdueIDs(t, f, helsinkiSW, domain.Incoming); len(ids) != 0 {
		t.Errorf("waiting for the answer, still overdue: %v", ids)
	}
	fireAt(t, f, "2026-12-07T07:00:00Z")

	// The answer restarts respond_by (7 business days from Mon 7 Dec): armed anew.
	f.clock.Set(mustTime(t, "2026-12-07T08:00:00Z"))
	_, after, err := f.svc.AddMessage(context.Background(), kelaHandler, r.ID, "November's.", 0)
	if err != nil {
		t.Fatal(err)
	}
	checkDeadline(t, "respond_by after the answer", after.Deadlines.RespondBy, second)
	if ids := overdueIDs(t, f, helsinkiSW, domain.Incoming); len(ids) != 0 {
		t.Errorf("after the answer, overdue on the new respond_by already: %v", ids)
	}
	fireAt(t, f, "2026-12-16T09:59:58Z")
	if got := alertKeys(t, f.db, r.ID); !slices.Equal(got, want) {
		t.Fatalf("before the new warning: alerts %v, want %v", got, want)
	}
	fireAt(t, f, "2026-12-16T09:59:59Z")
	fireAt(t, f, "2026-12-16T22:00:00Z")
	want = append(want, ak(r.ID, warn, respBy, second), ak(r.ID, overdue, respBy, second))
	if got := alertKeys(t, f.db, r.ID); !slices.Equal(got, want) {
		t.Errorf("alerts %v, want %v", got, want)
	}
	if ids := overdueIDs(t, f, helsinkiSW, domain.Incoming); len(ids) != 1 {
		t.Errorf("overdue on the new respond_by = %v, want the handoff", ids)
	}
}

// TestWatcherRestartLosesAndDoublesNothing closes and reopens the store between every step,
// with a deadline pending, warned, overdue and after: every alert exactly once.
func TestWatcherRestartLosesAndDoublesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	open := func(at string) *fixture {
		t.Helper()
		f, err := openFixture(path, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		f.clock.Set(mustTime(t, at))
		return f
	}
	shut := func(f *fixture) {
		t.Helper()
		if err := f.db.Check(); err != nil {
			t.Errorf("Check: %v", err)
		}
		if err := f.db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	f := open("2026-11-23T09:12:44Z")
	r := mustCreate(t, f, kelaHandler, needRequest(clientA, "837"))
	shut(f)

	steps := []struct {
		at      string
		warn    int // acknowledge_by warnings in the outbox after the step
		overdue int
	}{
		{"2026-11-24T08:00:00Z", 0, 0}, // pending
		{"2026-11-24T10:00:00Z", 1, 0},
		{"2026-11-24T10:00:00Z", 1, 0}, // the same instant after a restart
		{"2026-11-24T23:00:00Z", 1, 1},
		{"2026-11-24T23:00:00Z", 1, 1},
		{"2026-11-26T08:00:00Z", 1, 1},
	}
	for i, s := range steps {
		f := open(s.at)
		// A step cut short (here: its context ends before it runs) fires nothing and loses nothing.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := f.svc.FireDue(ctx, f.clock.Now(), 0); !errors.Is(err, context.Canceled) {
			t.Errorf("step %d: cancelled FireDue = %v", i, err)
		}
		fireAt(t, f, s.at)
		var w, o int
		for _, k := range alertKeys(t, f.db, r.ID) {
			if k.deadline != ackBy || !k.by.Equal(mustTime(t, "2026-11-24T21:59:59Z")) {
				t.Errorf("step %d: unexpected alert %v", i, k)
			}
			switch k.typ {
			case warn:
				w++
			case overdue:
				o++
			}
		}
		if w != s.warn || o != s.overdue {
			t.Errorf("step %d at %s: %d warnings and %d overdue alerts, want %d and %d", i, s.at, w, o, s.warn, s.overdue)
		}
		if listed := overdueIDs(t, f, tampereSW, domain.Incoming); len(listed) != s.overdue {
			t.Errorf("step %d: overdue list %v", i, listed)
		}
		shut(f)
	}
}

func TestConcurrentWatcherStepsFireEachAlertOnce(t *testing.T) {
	f := newFixture(t)
	var ids []string
	for i := range 12 {
		pid := clientA
		if i%2 == 1 {
			pid = clientB
		}
		ids = append(ids, mustCreate(t, f, kelaHandler, needRequest(pid, "837")).ID)
	}
	now := mustTime(t, "2026-12-10T00:00:00Z")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				fired, err := f.svc.FireDue(context.Background(), now, 3)
				if err != nil {
					errs <- err
					return
				}
				if len(fired) == 0 {
					return
				}
			}
			errs <- errors.New("the watcher keeps finding alerts")
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[alertKey]int{}
	for _, e := range outboxAlerts(t, f.db) {
		seen[keyOf(e)]++
	}
	if len(seen) != 4*len(ids) {
		t.Errorf("%d distinct alerts, want %d", len(seen), 4*len(ids))
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("%v fired %d times", k, n)
		}
	}
}

func TestClosingOrForwardingEndsAlerts(t *testing.T) {
	f := newFixture(t)
	withdrawn := mustCreate(t, f, kelaHandler, needRequest(clientA, "837"))
	forwarded := mustCreate(t, f, kelaHandler, needRequest(clientB, "837"))
	fireAt(t, f, "2026-11-25T08:00:00Z") // both acknowledge_by overdue
	mustAct(t, f, kelaHandler, withdrawn.ID, domain.Command{Action: domain.ActionWithdraw, Reason: "client_request"})
	moved := mustAct(t, f, tampereSW, forwarded.ID, domain.Command{Action: domain.ActionForward, ToMunicipality: "091"})
	if ids := overdueIDs(t, f, tampereSW, domain.Incoming); len(ids) != 0 {
		t.Errorf("closed referrals still overdue: %v", ids)
	}
	if ids := overdueIDs(t, f, kelaHandler, domain.Outgoing); len(ids) != 0 {
		t.Errorf("closed referrals still on Kela's overdue list: %v", ids)
	}
	fireAt(t, f, "2027-01-31T00:00:00Z")
	for _, id := range []string{withdrawn.ID, forwarded.ID} {
		if n := len(alertKeys(t, f.db, id)); n != 2 {
			t.Errorf("closed %s: %d alerts, want the 2 from before it closed", id, n)
		}
	}
	// The referral the forward created has clocks of its own, counted from the forward.
	next := moved.ForwardedTo
	got := alertKeys(t, f.db, next)
	if len(got) != 4 || got[0].typ != warn || got[0].deadline != ackBy || !got[0].by.Equal(mustTime(t, "2026-11-26T21:59:59Z")) {
		t.Errorf("forwarded referral's alerts %v", got)
	}
	if ids := overdueIDs(t, f, helsinkiSW, domain.Incoming); !slices.Equal(ids, []string{next}) {
		t.Errorf("Helsinki's overdue = %v, want the forwarded referral", ids)
	}
}

func TestOverdueListFiltersAndPages(t *testing.T) {
	f := newFixture(t)
	var needs []string
	for range 3 {
		needs = append(needs, mustCreate(t, f, kelaHandler, needRequest(clientA, "837")).ID)
	}
	handoff := mustCreate(t, f, kelaHandler, handoffRequest(clientB, "837")).ID
	review := mustCreate(t, f, tampereSW, reviewRequest(clientB)).ID // urgent, to Kela
	onTime := mustCreate(t, f, kelaHandler, needRequest(clientB, "837")).ID
	mustAct(t, f, tampereSW, onTime, domain.Command{Action: domain.ActionReceive})
	fireAt(t, f, "2026-11-25T08:00:00Z")
	ctx := context.Background()

	list := func(actor domain.Actor, lf domain.ListFilter) []string {
		t.Helper()
		p, err := f.svc.ListOverdue(ctx, actor, lf)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range p.Items {
			ids = append(ids, r.ID)
		}
		return ids
	}
	newestFirst := []string{handoff, needs[2], needs[1], needs[0]}
	if got := list(tampereSW, domain.ListFilter{Direction: domain.Incoming}); !slices.Equal(got, newestFirst) {
		t.Errorf("incoming overdue = %v, want %v", got, newestFirst)
	}
	if got := list(tampereSW, domain.ListFilter{Direction: domain.Incoming, Kind: domain.KindSupplementarySupportHandoff}); !slices.Equal(got, []string{handoff}) {
		t.Errorf("kind filter = %v", got)
	}
	if got := list(tampereSW, domain.ListFilter{Direction: domain.Incoming, Status: domain.StatusReceived}); len(got) != 0 {
		t.Errorf("status filter = %v, want none", got)
	}
	if got := list(tampereSW, domain.ListFilter{Direction: domain.Outgoing}); !slices.Equal(got, []string{review}) {
		t.Errorf("Tampere's outgoing overdue = %v, want its review request", got)
	}
	if got := list(kelaHandler, domain.ListFilter{Direction: domain.Incoming, Urgency: domain.Urgent}); !slices.Equal(got, []string{review}) {
		t.Errorf("Kela's urgent incoming overdue = %v", got)
	}
	// Pages of two.
	var paged []string
	after := ""
	for range 5 {
		p, err := f.svc.ListOverdue(ctx, tampereSW, domain.ListFilter{Direction: domain.Incoming, Limit: 2, After: after})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Items {
			paged = append(paged, r.ID)
		}
		if after = p.Next; after == "" {
			break
		}
	}
	if !slices.Equal(paged, newestFirst) {
		t.Errorf("paged = %v, want %v", paged, newestFirst)
	}
	// The supervisor reads it too; an auditor may not.
	if got := list(tampereSuper, domain.ListFilter{Direction: domain.Incoming}); len(got) != 4 {
		t.Errorf("supervisor sees %v", got)
	}
	if _, err := f.svc.ListOverdue(ctx, kelaAuditor, domain.ListFilter{Direction: domain.Incoming}); domain.ErrorCode(err) != domain.EForbidden {
		t.Errorf("auditor: %v, want forbidden", err)
	}
	if _, err := f.svc.ListOverdue(ctx, tampereSW, domain.ListFilter{Direction: "sideways"}); domain.ErrorCode(err) != domain.EMalformed {
		t.Errorf("bad direction: %v, want malformed", err)
	}
}

// watchMachine drives random commands, clock moves, watcher steps and restarts and checks
// that every alert fires at most once per deadline value, none is lost, the overdue list
// matches the fired overdue alerts, and alerts never touch a referral's version or timeline.
type watchMachine struct {
	t    *testing.T
	path string
	f    *fixture
	ids  []string
}

func (m *watchMachine) Create(t *rapid.T) {
	if len(m.ids) >= 5 {
		t.Skip("enough referrals")
	}
	tpl := rapid.SampledFrom(createTemplates).Draw(t, "template")
	r, _, err := m.f.svc.Create(context.Background(), tpl.actor, tpl.req(clientA), "")
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	m.ids = append(m.ids, r.ID)
}

func (m *watchMachine) Act(t *rapid.T) {
	if len(m.ids) == 0 {
		t.Skip("no referral")
	}
	r, err := m.f.db.Referral(context.Background(), rapid.SampledFrom(m.ids).Draw(t, "referral"))
	if err != nil {
		t.Fatal(err)
	}
	actor := drawActor(t, r)
	c := domain.Command{Action: drawAction(t, r, actor), Question: "Q?", Reason: "client_request", Text: "Text.", ToMunicipality: "091"}
	switch c.Action {
	case domain.ActionComplete:
		switch r.Kind {
		case domain.KindSocialWorkNeed:
			c.Outcome = "already_client"
		case domain.KindSupplementarySupportHandoff:
			c.Outcome, c.Decision, c.DecisionDate = "decided", "granted", "2026-11-30"
		case domain.KindJointMeetingRequest:
			c.Outcome = "meeting_held"
		default:
			c.Outcome = "accepted"
		}
	case domain.ActionReturn:
		c.Reason = "wrong_recipient"
	}
	next, err := m.f.svc.Act(context.Background(), actor, r.ID, c)
	if err == nil && next.ForwardedTo != "" {
		m.ids = append(m.ids, next.ForwardedTo)
	}
}

func (m *watchMachine) Message(t *rapid.T) {
	if len(m.ids) == 0 {
		t.Skip("no referral")
	}
	r, err := m.f.db.Referral(context.Background(), rapid.SampledFrom(m.ids).Draw(t, "referral"))
	if err != nil {
		t.Fatal(err)
	}
	_, _, _ = m.f.svc.AddMessage(context.Background(), drawActor(t, r), r.ID, "Message.", 0) // an answer when info_requested
}

func (m *watchMachine) Advance(t *rapid.T) {
	m.f.clock.Advance(time.Duration(rapid.IntRange(1, 3*24*60).Draw(t, "minutes")) * time.Minute)
}

func (m *watchMachine) Fire(t *rapid.T) {
	now := m.f.clock.Now()
	limit := rapid.IntRange(1, 4).Draw(t, "limit")
	for i := 0; ; i++ {
		fired, err := m.f.svc.FireDue(context.Background(), now, limit)
		if err != nil {
			t.Fatalf("FireDue: %v", err)
		}
		if len(fired) < limit {
			break
		}
		if i > 100 {
			t.Fatalf("the watcher keeps finding alerts")
		}
	}
	// Nothing due is left unfired.
	fired := map[alertKey]bool{}
	for _, e := range outboxAlerts(m.t, m.f.db) {
		fired[keyOf(e)] = true
	}
	for _, id := range m.ids {
		r, err := m.f.db.Referral(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range r.OpenDeadlines() {
			if d.By.Before(now) && !fired[alertKey{id, overdue, d.Name, d.By.UTC()}] {
				t.Fatalf("%s: %s %s passed at %s, no overdue alert", id, d.Name, d.By, now)
			}
			if !m.f.svc.Policy.WarnAt(d.By).After(now) && !fired[alertKey{id, warn, d.Name, d.By.UTC()}] {
				t.Fatalf("%s: %s %s warning due at %s, not fired", id, d.Name, d.By, now)
			}
		}
	}
}

func (m *watchMachine) Restart(t *rapid.T) {
	now := m.f.clock.Now()
	if err := m.f.db.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := openFixture(m.path, store.Options{MaxBatchSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Set(now)
	m.f = f
}

func (m *watchMachine) Check(t *rapid.T) {
	ctx := context.Background()
	fired := map[alertKey]int{}
	for _, e := range outboxAlerts(m.t, m.f.db) {
		k := keyOf(e)
		if fired[k]++; fired[k] > 1 {
			t.Fatalf("alert %v fired twice", k)
		}
	}
	wantListed := map[domain.OrgID]map[string][]string{}
	add := func(org domain.OrgID, dir, id string) {
		if wantListed[org] == nil {
			wantListed[org] = map[string][]string{}
		}
		wantListed[org][dir] = append(wantListed[org][dir], id)
	}
	for _, id := range m.ids {
		r, err := m.f.db.Referral(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		tl, err := m.f.db.Timeline(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if r.Version != len(tl) || r.Timeline != len(tl) {
			t.Fatalf("%s: version %d, timeline_count %d, %d timeline entries", id, r.Version, r.Timeline, len(tl))
		}
		for _, d := range r.OpenDeadlines() {
			if fired[alertKey{id, overdue, d.Name, d.By.UTC()}] > 0 {
				add(r.Recipient, domain.Incoming, id)
				add(r.Sender, domain.Outgoing, id)
				break
			}
		}
	}
	for _, org := range []domain.OrgID{domain.Kela, "hva-08", "hva-90", "hva-16"} {
		for _, dir := range []string{domain.Incoming, domain.Outgoing} {
			p, err := m.f.db.ListOverdue(ctx, domain.ListFilter{Org: org, Direction: dir, Limit: 200})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range p.Items {
				got = append(got, r.ID)
			}
			want := wantListed[org][dir]
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("overdue list of %s %s = %v, want %v", org, dir, got, want)
			}
		}
	}
}

func TestWatcherStateMachine(t *testing.T) {
	dir := t.TempDir()
	rapid.Check(t, func(rt *rapid.T) {
		path := filepath.Join(dir, fmt.Sprintf("w%d.db", machineDB.Add(1)))
		f, err := openFixture(path, store.Options{MaxBatchSize: 1})
		if err != nil {
			rt.Fatalf("open store: %v", err)
		}
		m := &watchMachine{t: t, path: path, f: f}
		defer func() {
			if err := m.f.db.Close(); err != nil {
				rt.Errorf("close store: %v", err)
			}
		}()
		rt.Repeat(rapid.StateMachineActions(m))
	})
}

// alertCounter is a store observer that counts the alerts each commit fired.
type alertCounter struct {
	mu     sync.Mutex
	events []string
}

func (c *alertCounter) ObserveMilestones([]domain.ReportDelta) {}

func (c *alertCounter) ObserveAlerts(events []domain.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range events {
		c.events = append(c.events, string(e.Type)+" "+e.DeadlineName)
	}
}

func (c *alertCounter) seen() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.events)
}

// TestStoreTellsItsObserverOfEachAlertOnce: the store tells an AlertObserver (the metrics) of
// each alert when it commits, once, with no NATS anywhere: the count does not wait for the
// relay and does not grow when a step finds nothing new.
func TestStoreTellsItsObserverOfEachAlertOnce(t *testing.T) {
	obs := &alertCounter{}
	f, err := openFixture(filepath.Join(t.TempDir(), "r.db"), store.Options{Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.db.Close() })
	mustCreate(t, f, kelaHandler, needRequest(clientA, "837"))
	var want []string
	for _, s := range []struct{ at, fires string }{
		{"2026-11-24T09:59:59Z", "deadline_warning acknowledge_by"},
		{"2026-11-24T22:00:00Z", "overdue acknowledge_by"},
		{"2026-12-02T09:59:59Z", "deadline_warning respond_by"},
		{"2026-12-02T22:00:00Z", "overdue respond_by"},
	} {
		fireAt(t, f, s.at)
		fireAt(t, f, s.at) // nothing new
		want = append(want, s.fires)
		if got := obs.seen(); !slices.Equal(got, want) {
			t.Fatalf("at %s the observer heard %v, want %v", s.at, got, want)
		}
	}
}

// TestAlertsFireInTheOrderTheyFellDue: with a warning lead longer than the gap between two
// referrals' deadlines, the later deadline's warning fell due before the earlier one's
// overdue alert, and the watcher catching up one alert a step fires them in that order — not
// in deadline order.
func TestAlertsFireInTheOrderTheyFellDue(t *testing.T) {
	f := newFixture(t)
	f.svc.Policy.WarningLead = 36 * time.Hour
	f.clock.Set(mustTime(t, "2026-11-23T08:00:00Z")) // Monday
	a := mustCreate(t, f, kelaHandler, needRequest(clientA, "837"))
	f.clock.Set(mustTime(t, "2026-11-24T08:00:00Z")) // Tuesday: B's acknowledge_by is a day after A's
	b := mustCreate(t, f, kelaHandler, needRequest(clientA, "837"))
	f.clock.Set(mustTime(t, "2026-11-26T12:00:00Z")) // past both acknowledge_by deadlines
	var got []string
	for range 10 {
		fired, err := f.svc.FireDue(context.Background(), f.clock.Now(), 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(fired) == 0 {
			break
		}
		if fired[0].Deadline == ackBy {
			name := map[string]string{a.ID: "A", b.ID: "B"}[fired[0].ReferralID]
			got = append(got, name+" "+string(fired[0].Type))
		}
	}
	if want := []string{"A " + warn, "B " + warn, "A " + overdue, "B " + overdue}; !slices.Equal(got, want) {
		t.Errorf("acknowledge_by alerts fired %v, want %v (the order they fell due)", got, want)
	}
}
