package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kela-hva/referrals/domain"
)

// dayConfig is what the day-in-the-life simulation can be told.
type dayConfig struct {
	url          string
	dataDir      string
	tokens       multiFlag
	days         float64
	perDay       int
	countyPerDay int
	speed        float64
	seed         uint64
	concurrency  int
	lateShare    float64
	quiet        bool
	natsURL      string
}

func parseDayFlags(args []string, getenv func(string) string, stderr io.Writer) (dayConfig, error) {
	var c dayConfig
	fs := flag.NewFlagSet("referral-sim day", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.url, "url", orDefault(getenv("REFERRAL_URL"), "http://127.0.0.1:8080"), "base URL of the running service (REFERRAL_URL)")
	fs.StringVar(&c.dataDir, "data-dir", orDefault(getenv("REFERRAL_DATA_DIR"), "./data"), "data directory of referrald --dev, whose dev key signs the simulated users' tokens (REFERRAL_DATA_DIR)")
	fs.Var(&c.tokens, "token", "a token to use instead of the dev key: ORG=JWT or ORG:ROLE=JWT (repeatable); only counties with a token take part")
	fs.Float64Var(&c.days, "days", 5, "how many days of business time to simulate")
	fs.IntVar(&c.perDay, "per-day", 40, "referrals Kela sends per business day, all counties together")
	fs.IntVar(&c.countyPerDay, "county-per-day", 10, "statements and requests the counties send Kela per business day, together")
	fs.Float64Var(&c.speed, "speed", 600, "business seconds per real second: must match referrald's --dev-clock-speed")
	fs.Uint64Var(&c.seed, "seed", 1, "random seed: the same seed against a service started at the same business time does the same things")
	fs.IntVar(&c.concurrency, "concurrency", 8, "requests in flight at most")
	fs.Float64Var(&c.lateShare, "late-share", 0.12, "share of acknowledgements and of responses that come after the deadline")
	fs.BoolVar(&c.quiet, "quiet", false, "print only the summary, not one line per step")
	fs.StringVar(&c.natsURL, "nats-url", getenv("NATS_URL"), "NATS of the service (e.g. nats://127.0.0.1:4222): also count the events the run caused, as a notification consumer sees them (NATS_URL)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	case c.days <= 0 || c.days > 366:
		return c, errors.New("--days must be more than 0 and at most 366")
	case c.speed <= 0:
		return c, errors.New("--speed must be positive")
	case c.perDay < 0 || c.countyPerDay < 0 || c.perDay+c.countyPerDay == 0:
		return c, errors.New("--per-day and --county-per-day must not be negative, nor both 0")
	case c.perDay > 100_000 || c.countyPerDay > 100_000:
		return c, errors.New("--per-day and --county-per-day are at most 100000 (use load mode for load)")
	case c.concurrency < 1 || c.concurrency > 256:
		return c, errors.New("--concurrency must be 1–256")
	case c.lateShare < 0 || c.lateShare > 1:
		return c, errors.New("--late-share must be between 0 and 1")
	}
	if u, err := url.Parse(c.url); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return c, fmt.Errorf("--url %q: want http(s)://host:port", c.url)
	}
	return c, nil
}

// lockedWriter serialises the lines that concurrent steps print.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// fate is how a referral's story ends.
type fate int

const (
	fateComplete fate = iota
	fateReturn
	fateForward
	fateWithdraw
)

// simRef is one referral as the simulation knows it. The steps of one referral run one after
// another (each schedules the next), so its fields need no lock.
type simRef struct {
	ID        string
	Kind      domain.Kind
	Urgency   domain.Urgency
	Sender    domain.OrgID
	Recipient domain.OrgID
	Status    domain.Status
	Bounces   int
	Forwarded bool // made by forwarding another referral

	client         person
	from, to       user // the sender's and the recipient's worker
	rng            *rand.Rand
	hops           int
	fate           fate
	lateAck        bool
	lateResponse   bool
	askInfo        bool
	infoAfterStart bool
	chat           bool
	resume         domain.Status
}

// referralAnswer is the part of the service's referral answer the simulation reads.
type referralAnswer struct {
	ID          string         `json:"id"`
	Status      domain.Status  `json:"status"`
	Recipient   domain.OrgID   `json:"recipient"`
	CreatedAt   time.Time      `json:"created_at"`
	Bounces     int            `json:"bounces"`
	ForwardedTo string         `json:"forwarded_to"`
	Kind        domain.Kind    `json:"kind"`
	Urgency     domain.Urgency `json:"urgency"`
}

// plannedCreate is a referral someone will send at a business time. The plan is drawn up
// front from the seed, so the same seed sends the same referrals about the same people.
type plannedCreate struct {
	at     time.Time     // set by layOut
	offset time.Duration // drawn: business day number × 24h + time past 08:00
	from   user
	client person
	req    *domain.CreateRequest
	seeds  [2]uint64 // of the referral's own random source, for the decisions on it
}

// simulation is one run of the day in the life.
type simulation struct {
	cfg         dayConfig
	api         *apiClient
	reg         *domain.Registry
	munis       *municipalityPicker
	work        workday
	sched       *scheduler
	clock       *simClock
	out         io.Writer
	runID       string
	kelaUsers   []user
	countyUsers map[domain.OrgID][]user
	end         time.Time
	events      *eventCounter // with --nats-url

	mu          sync.Mutex
	refs        []*simRef
	counts      map[string]int
	errs        []string
	speedWarned bool
}

// runDay runs the day-in-the-life simulation and prints what happened.
func runDay(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseDayFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	ts, err := newTokenSource(cfg.dataDir, cfg.tokens, time.Hour)
	if err != nil {
		return err
	}
	s, err := newSimulation(cfg, ts, stdout)
	if err != nil {
		return err
	}
	return s.run(ctx)
}

// newSimulation prepares a run: the people at work and where clients live. It returns an
// error if there is no token for Kela or for any county.
func newSimulation(cfg dayConfig, ts *tokenSource, out io.Writer) (*simulation, error) {
	if !ts.has(domain.Kela, domain.RoleKelaHandler) {
		return nil, errors.New("no token for Kela: give --token kela=JWT (a kela_handler) or --data-dir with the dev key")
	}
	reg := domain.DefaultRegistry()
	s := &simulation{
		cfg: cfg, api: newAPIClient(cfg.url, ts, cfg.concurrency), reg: reg, work: newWorkday(),
		sched: newScheduler(), out: &lockedWriter{w: out}, countyUsers: map[domain.OrgID][]user{},
		counts: map[string]int{}, runID: fmt.Sprintf("%x", time.Now().UnixNano()),
	}
	s.munis = newMunicipalityPicker(reg, func(o domain.OrgID) bool { return ts.has(o, domain.RoleSocialWorker) })
	if s.munis.total == 0 {
		return nil, errors.New("no county takes part: give --token hva-NN=JWT for at least one county, or --data-dir with the dev key")
	}
	s.makeUsers()
	return s, nil
}

// makeUsers makes up the people at work: five Kela handlers, three social workers per county.
func (s *simulation) makeUsers() {
	rng := rand.New(rand.NewPCG(s.cfg.seed, 0x5eed))
	name := func() string {
		return firstNames[rng.IntN(len(firstNames))] + " " + lastNames[rng.IntN(len(lastNames))]
	}
	for i := 1; i <= 5; i++ {
		s.kelaUsers = append(s.kelaUsers, user{ID: fmt.Sprintf("sim-kela-%d", i), Name: name(), Org: domain.Kela, Role: domain.RoleKelaHandler})
	}
	for _, o := range s.reg.Organisations() {
		if !o.ID.IsCounty() || !s.api.tokens.has(o.ID, domain.RoleSocialWorker) {
			continue
		}
		for i := 1; i <= 3; i++ {
			s.countyUsers[o.ID] = append(s.countyUsers[o.ID], user{ID: fmt.Sprintf("sim-%s-%d", o.ID, i), Name: name(), Org: o.ID, Role: domain.RoleSocialWorker})
		}
	}
}

func (s *simulation) run(ctx context.Context) error {
	realStart := time.Now()
	if s.cfg.natsURL != "" {
		ec, err := startEventCounter(ctx, s.cfg.natsURL)
		if err != nil {
			return err
		}
		defer ec.stop()
		s.events = ec
	}
	plan := s.drawPlan(time.Now())
	if len(plan) == 0 {
		return errors.New("nothing to do")
	}
	// The first referral goes out at once: its created_at tells the service's business time,
	// to which the rest of the plan is laid out.
	first := plan[0]
	r, err := s.create(ctx, first)
	if err != nil {
		hint := fmt.Sprintf("is the service running at %s?", s.cfg.url)
		if isStatus(err, 401) {
			hint = "is --data-dir the service's own data directory?"
		}
		return fmt.Errorf("first referral: %w (%s)", err, hint)
	}
	s.clock = &simClock{bizAnchor: r.createdAt, realAnchor: time.Now(), speed: s.cfg.speed}
	start := s.clock.Now()
	s.end = start.Add(time.Duration(s.cfg.days * 24 * float64(time.Hour)))
	fmt.Fprintf(s.out, "Simulating %s → %s business time at %g× (about %s real time). Ctrl-C ends early.\n",
		s.bizTime(start), s.bizTime(s.end), s.cfg.speed, s.realDuration(s.end.Sub(start)).Round(time.Second))
	s.progress(r.ref, "created")
	s.onCreated(r.ref, start)
	// Drawn again from the same seed with the business date, for the dates in the content.
	plan = s.layOut(s.drawPlan(start)[1:], start)
	for _, p := range plan {
		s.sched.At(p.at, func(ctx context.Context) {
			r, err := s.create(ctx, p)
			if err != nil {
				s.fail(nil, "create", err)
				return
			}
			s.checkSpeed(r.createdAt)
			s.progress(r.ref, "created")
			s.onCreated(r.ref, s.clock.Now())
		})
	}
	left := s.sched.Run(ctx, s.clock, s.end, s.cfg.concurrency)
	// The summary is printed also after Ctrl-C.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return s.summary(sctx, left, time.Since(realStart))
}

func (s *simulation) realDuration(biz time.Duration) time.Duration {
	return time.Duration(float64(biz) / s.cfg.speed)
}

// drawPlan draws the referrals of the whole run from the seed: who sends what about whom and
// on which business day, at what time of the office day; layOut places them in business time
// once the service's clock is known.
func (s *simulation) drawPlan(now time.Time) []plannedCreate {
	rng := rand.New(rand.NewPCG(s.cfg.seed, 0x91a4))
	var people []person
	personIn := func(muni string) person {
		// One client in five has been referred before.
		if len(people) > 0 && rng.IntN(5) == 0 {
			p := people[rng.IntN(len(people))]
			if s.munis.County(p.HomeMunicipality) != "" {
				return p
			}
		}
		p := newPerson(rng, muni, now)
		people = append(people, p)
		return p
	}
	var plan []plannedCreate
	days := int(math.Ceil(s.cfg.days)) + 1
	for day := range days {
		for range s.cfg.perDay {
			p := personIn(s.munis.Pick(rng))
			kind := kelaKinds.pick(rng)
			urgency := domain.Normal
			if kind != domain.KindJointMeetingRequest && rng.IntN(100) < 12 {
				urgency = domain.Urgent
			}
			plan = append(plan, plannedCreate{
				offset: time.Duration(day)*24*time.Hour + between(rng, 0, 8*time.Hour),
				from:   s.kelaUsers[rng.IntN(len(s.kelaUsers))], client: p,
				req:   newKelaRequest(rng, kind, urgency, p, now),
				seeds: [2]uint64{rng.Uint64(), rng.Uint64()},
			})
		}
		for range s.cfg.countyPerDay {
			p := personIn(s.munis.Pick(rng))
			county := s.munis.County(p.HomeMunicipality)
			kind := countyKinds.pick(rng)
			urgency := domain.Normal
			if kind != domain.KindJointMeetingRequest && rng.IntN(100) < 8 {
				urgency = domain.Urgent
			}
			ws := s.countyUsers[county]
			plan = append(plan, plannedCreate{
				offset: time.Duration(day)*24*time.Hour + between(rng, 0, 8*time.Hour),
				from:   ws[rng.IntN(len(ws))], client: p,
				req:   newCountyRequest(rng, kind, urgency, p, now),
				seeds: [2]uint64{rng.Uint64(), rng.Uint64()},
			})
		}
	}
	return plan
}

// layOut turns the plan's day offsets into office hours from start on, dropping what falls
// outside the simulated period. Day n is the n-th business day from start's date (today
// counts if it is one); the offset within the day is time past 08:00.
func (s *simulation) layOut(plan []plannedCreate, start time.Time) []plannedCreate {
	var days []time.Time
	d := s.work.dayStart(start)
	for len(days) < int(math.Ceil(s.cfg.days))+1 {
		if s.work.cal.IsBusinessDay(d) {
			days = append(days, d)
		}
		d = d.AddDate(0, 0, 1)
	}
	var out []plannedCreate
	for _, p := range plan {
		day := int(p.offset / (24 * time.Hour))
		at := days[day].Add(p.offset % (24 * time.Hour))
		if at.Before(start) || !at.Before(s.end) {
			continue
		}
		p.at = at
		out = append(out, p)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].at.Before(out[j].at) })
	return out
}

// created is a referral just made.
type created struct {
	ref       *simRef
	createdAt time.Time
}

// create sends a planned referral and registers it.
func (s *simulation) create(ctx context.Context, p plannedCreate) (created, error) {
	var a referralAnswer
	s.mu.Lock()
	s.counts["create"]++
	key := fmt.Sprintf("sim-%s-%d", s.runID, s.counts["create"])
	s.mu.Unlock()
	if err := s.api.do(ctx, p.from, "POST", "/v1/referrals", "POST /v1/referrals", p.req, &a,
		"Idempotency-Key", key, "X-Purpose", p.from.purposeFor(p.req.Kind)); err != nil {
		return created{}, err
	}
	r := &simRef{
		ID: a.ID, Kind: p.req.Kind, Urgency: p.req.Urgency, Sender: p.from.Org, Recipient: a.Recipient,
		Status: a.Status, client: p.client, from: p.from, rng: rand.New(rand.NewPCG(p.seeds[0], p.seeds[1])),
	}
	r.to = s.workerAt(r.Recipient, r.rng)
	s.mu.Lock()
	s.refs = append(s.refs, r)
	s.mu.Unlock()
	return created{ref: r, createdAt: a.CreatedAt}, nil
}

// workerAt picks who handles a referral at org.
func (s *simulation) workerAt(org domain.OrgID, rng *rand.Rand) user {
	if org.IsKela() {
		return s.kelaUsers[rng.IntN(len(s.kelaUsers))]
	}
	ws := s.countyUsers[org]
	return ws[rng.IntN(len(ws))]
}

// checkSpeed warns once if the service's clock does not run at --speed.
func (s *simulation) checkSpeed(createdAt time.Time) {
	elapsed := time.Since(s.clock.realAnchor)
	if elapsed < 5*time.Second || createdAt.IsZero() {
		return
	}
	drift := createdAt.Sub(s.clock.Now())
	if drift.Abs() < max(2*time.Minute, time.Duration(float64(elapsed)*s.cfg.speed/20)) {
		return
	}
	s.mu.Lock()
	warned := s.speedWarned
	s.speedWarned = true
	s.mu.Unlock()
	if !warned {
		seen := float64(createdAt.Sub(s.clock.bizAnchor)) / float64(elapsed)
		fmt.Fprintf(s.out, "WARNING: the service's clock runs at about %.0f×, not %g×: start referrald with --dev --dev-clock-speed %g, or pass --speed %.0f\n",
			seen, s.cfg.speed, s.cfg.speed, seen)
	}
}

// onCreated decides how the referral's story goes and schedules its acknowledgement.
func (s *simulation) onCreated(r *simRef, now time.Time) {
	rng := r.rng
	r.lateAck = rng.Float64() < s.cfg.lateShare
	r.lateResponse = rng.Float64() < s.cfg.lateShare
	switch x := rng.IntN(100); {
	case x < 3:
		r.fate = fateWithdraw
	case x < 9:
		r.fate = fateReturn
	case x < 13 && r.Recipient.IsCounty() && r.hops < 2:
		r.fate = fateForward
	default:
		r.fate = fateComplete
	}
	r.askInfo = rng.IntN(100) < 15
	r.infoAfterStart = rng.IntN(2) == 0
	r.chat = rng.IntN(100) < 20
	var at time.Time
	switch {
	case r.lateAck:
		at = s.work.addBusinessDays(rng, now, 2+rng.IntN(2))
		s.count("late acknowledgements")
	case r.Urgency == domain.Urgent:
		at = s.work.addWork(now, between(rng, 5*time.Minute, time.Hour))
	default:
		at = s.work.addWork(now, between(rng, 15*time.Minute, 5*time.Hour))
	}
	s.sched.At(at, func(ctx context.Context) { s.receive(ctx, r) })
}

func (s *simulation) receive(ctx context.Context, r *simRef) {
	if !s.act(ctx, r, r.to, "receive", struct{}{}) {
		return
	}
	now, rng := s.clock.Now(), r.rng
	switch r.fate {
	case fateWithdraw:
		s.sched.At(s.work.addWork(now, between(rng, time.Hour, 8*time.Hour)), func(ctx context.Context) {
			reason := []string{"client_request", "resolved_otherwise", "sent_in_error", "duplicate"}[rng.IntN(4)]
			s.act(ctx, r, r.from, "withdraw", map[string]string{"reason": reason, "text": "Peruttu."})
		})
	case fateReturn:
		s.sched.At(s.work.addWork(now, between(rng, 10*time.Minute, 3*time.Hour)), func(ctx context.Context) {
			reason := newWeighted[string]("wrong_recipient", 3, "insufficient_information", 4, "not_our_client", 3).pick(rng)
			s.act(ctx, r, r.to, "return", map[string]string{"reason": reason, "text": "Palautetaan lähettäjälle."})
		})
	case fateForward:
		s.sched.At(s.work.addWork(now, between(rng, 30*time.Minute, 8*time.Hour)), func(ctx context.Context) { s.forward(ctx, r) })
	default:
		if r.askInfo && !r.infoAfterStart {
			s.sched.At(s.work.addWork(now, between(rng, 30*time.Minute, 6*time.Hour)), func(ctx context.Context) { s.requestInfo(ctx, r) })
			return
		}
		s.scheduleStart(r, now)
	}
}

func (s *simulation) scheduleStart(r *simRef, now time.Time) {
	rng := r.rng
	var at time.Time
	switch {
	case r.lateResponse && r.Kind == domain.KindSocialWorkNeed:
		// SHL §36: the assessment should start within 7 business days; this one does not.
		at = s.work.addBusinessDays(rng, now, 8+rng.IntN(3))
		s.count("late responses")
	case r.Urgency == domain.Urgent:
		at = s.work.addWork(now, between(rng, 10*time.Minute, 2*time.Hour))
	case r.Kind == domain.KindSocialWorkNeed:
		at = s.work.addWork(now, between(rng, time.Hour, 4*8*time.Hour))
	default:
		at = s.work.addWork(now, between(rng, 30*time.Minute, 8*time.Hour))
	}
	s.sched.At(at, func(ctx context.Context) { s.start(ctx, r) })
}

func (s *simulation) start(ctx context.Context, r *simRef) {
	if !s.act(ctx, r, r.to, "start", struct{}{}) {
		return
	}
	now, rng := s.clock.Now(), r.rng
	switch {
	case r.askInfo && r.infoAfterStart:
		s.sched.At(s.work.addWork(now, between(rng, 30*time.Minute, 8*time.Hour)), func(ctx context.Context) { s.requestInfo(ctx, r) })
	case r.chat:
		s.sched.At(s.work.addWork(now, between(rng, time.Hour, 6*time.Hour)), func(ctx context.Context) { s.chat(ctx, r) })
	default:
		s.scheduleComplete(r, now)
	}
}

// chat is a message from the recipient, now and then answered by the sender, before the end.
func (s *simulation) chat(ctx context.Context, r *simRef) {
	if !s.message(ctx, r, r.to, "Asiakas tavoitettu, selvitämme tilannetta.") {
		return
	}
	now, rng := s.clock.Now(), r.rng
	if rng.IntN(2) == 0 {
		s.sched.At(s.work.addWork(now, between(rng, 30*time.Minute, 4*time.Hour)), func(ctx context.Context) {
			if s.message(ctx, r, r.from, "Kiitos tiedosta.") {
				s.scheduleComplete(r, s.clock.Now())
			}
		})
		return
	}
	s.scheduleComplete(r, now)
}

func (s *simulation) requestInfo(ctx context.Context, r *simRef) {
	from := r.Status
	if !s.act(ctx, r, r.to, "request-info", map[string]string{"question": "Pyydämme lisätietoja asiakkaan tilanteesta."}) {
		return
	}
	r.resume = from
	s.count("information requests")
	now, rng := s.clock.Now(), r.rng
	s.sched.At(s.work.addWork(now, between(rng, time.Hour, 2*8*time.Hour)), func(ctx context.Context) {
		// The sender's message answers the request and returns the referral to where it was.
		if !s.message(ctx, r, r.from, "Lisätiedot: asiakkaan tilanne on muuttunut, ks. liitteet.") {
			return
		}
		if r.Status != r.resume {
			s.fail(r, "answer", fmt.Errorf("the answer left the referral %s, want %s", r.Status, r.resume))
			return
		}
		s.count("answers")
		s.progress(r, "answered → "+string(r.Status))
		if r.Status == domain.StatusInProgress {
			s.scheduleComplete(r, s.clock.Now())
		} else {
			s.scheduleStart(r, s.clock.Now())
		}
	})
}

func (s *simulation) scheduleComplete(r *simRef, now time.Time) {
	rng := r.rng
	var at time.Time
	switch {
	case r.lateResponse && r.Kind != domain.KindSocialWorkNeed:
		at = s.work.addBusinessDays(rng, now, 8+rng.IntN(3))
		s.count("late responses")
	case r.Urgency == domain.Urgent:
		at = s.work.addWork(now, between(rng, time.Hour, 6*time.Hour))
	case r.Kind == domain.KindSocialWorkNeed:
		at = s.work.addBusinessDays(rng, now, 1+rng.IntN(8))
	default:
		at = s.work.addBusinessDays(rng, now, rng.IntN(5))
	}
	s.sched.At(at, func(ctx context.Context) { s.act(ctx, r, r.to, "complete", s.outcome(r)) })
}

// outcome is the completion the recipient reports, by kind.
func (s *simulation) outcome(r *simRef) map[string]string {
	rng := r.rng
	switch r.Kind {
	case domain.KindSocialWorkNeed:
		o := map[string]string{"outcome": newWeighted[string]("assessment_started", 45, "already_client", 25,
			"no_social_care_need", 10, "client_not_reached", 15, "client_declined", 5).pick(rng)}
		if f := newWeighted[string]("useful", 60, "not_needed", 15, "insufficient_information", 10, "", 15).pick(rng); f != "" {
			o["feedback"] = f
		}
		return o
	case domain.KindSupplementarySupportHandoff:
		return map[string]string{"outcome": "decided",
			"decision":      newWeighted[string]("granted", 50, "partially_granted", 30, "denied", 20).pick(rng),
			"decision_date": s.clock.Now().In(s.work.loc).Format(time.DateOnly)}
	case domain.KindJointMeetingRequest:
		return map[string]string{"outcome": newWeighted[string]("meeting_held", 60, "meeting_not_needed", 20,
			"client_not_reached", 15, "client_declined", 5).pick(rng)}
	}
	return map[string]string{"outcome": newWeighted[string]("accepted", 60, "rejected", 25, "decision_corrected", 15).pick(rng),
		"text": "Käsitelty Kelassa."}
}

// forward passes the referral to the county the client has moved to; the new referral goes on.
func (s *simulation) forward(ctx context.Context, r *simRef) {
	to := s.munis.PickOutside(r.rng, r.Recipient)
	if to == "" { // only one county takes part: nowhere to forward to
		s.act(ctx, r, r.to, "return", map[string]string{"reason": "not_our_client", "text": "Asiakas muuttanut."})
		return
	}
	var a referralAnswer
	if !s.actInto(ctx, r, r.to, "forward", map[string]string{"to_municipality": to, "text": "Asiakas on muuttanut."}, &a) {
		return
	}
	if a.ForwardedTo == "" {
		s.fail(r, "forward", errors.New("the answer names no forwarded_to referral"))
		return
	}
	client := r.client
	client.HomeMunicipality = to
	next := &simRef{
		ID: a.ForwardedTo, Kind: r.Kind, Urgency: r.Urgency, Sender: r.Sender, Recipient: s.munis.County(to),
		Status: domain.StatusSent, Bounces: r.Bounces, Forwarded: true, client: client, from: r.from,
		rng: rand.New(rand.NewPCG(r.rng.Uint64(), r.rng.Uint64())), hops: r.hops + 1,
	}
	next.to = s.workerAt(next.Recipient, next.rng)
	s.mu.Lock()
	s.refs = append(s.refs, next)
	s.mu.Unlock()
	s.progress(next, "created by forwarding")
	s.onCreated(next, s.clock.Now())
}

// act posts a transition as u and records the new state; false if it failed.
func (s *simulation) act(ctx context.Context, r *simRef, u user, action string, body any) bool {
	var a referralAnswer
	return s.actInto(ctx, r, u, action, body, &a)
}

func (s *simulation) actInto(ctx context.Context, r *simRef, u user, action string, body any, a *referralAnswer) bool {
	err := s.api.do(ctx, u, "POST", "/v1/referrals/"+r.ID+"/"+action, "POST /v1/referrals/{id}/"+action, body, a,
		"X-Purpose", u.purposeFor(r.Kind))
	if err != nil {
		s.fail(r, action, err)
		return false
	}
	r.Status, r.Bounces = a.Status, a.Bounces
	s.progress(r, string(r.Status))
	return true
}

// message adds a message to the referral's thread as u and records the state the service
// answers with (an answer to an information request moves the referral back).
func (s *simulation) message(ctx context.Context, r *simRef, u user, text string) bool {
	var a referralAnswer
	err := s.api.do(ctx, u, "POST", "/v1/referrals/"+r.ID+"/messages", "POST /v1/referrals/{id}/messages", map[string]string{"text": text}, &a,
		"X-Purpose", u.purposeFor(r.Kind))
	if err != nil {
		s.fail(r, "message", err)
		return false
	}
	r.Status, r.Bounces = a.Status, a.Bounces
	s.count("messages")
	if !s.cfg.quiet {
		s.progress(r, "message from "+string(u.Org))
	}
	return true
}

func (s *simulation) count(what string) {
	s.mu.Lock()
	s.counts[what]++
	s.mu.Unlock()
}

// fail records a step that went wrong; the referral's story stops there.
func (s *simulation) fail(r *simRef, step string, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	s.mu.Lock()
	s.counts["failed steps"]++
	if len(s.errs) < 10 {
		id := ""
		if r != nil {
			id = r.ID + " "
		}
		s.errs = append(s.errs, fmt.Sprintf("%s%s: %v", id, step, err))
	}
	s.mu.Unlock()
	fmt.Fprintf(s.out, "ERROR %s: %v\n", step, err)
}

// bizTime formats a business time in Helsinki time.
func (s *simulation) bizTime(t time.Time) string {
	return t.In(s.work.loc).Format("Mon 02.01.2006 15:04")
}

// progress prints one line per step: business time, who to whom, kind, what happened.
func (s *simulation) progress(r *simRef, what string) {
	if s.cfg.quiet {
		return
	}
	urgent := ""
	if r.Urgency == domain.Urgent {
		urgent = " (urgent)"
	}
	now := time.Now()
	if s.clock != nil {
		now = s.clock.Now()
	}
	fmt.Fprintf(s.out, "%s  %-6s → %-6s  %-30s %s  %s\n", s.bizTime(now), r.Sender, r.Recipient,
		string(r.Kind)+urgent, shortID(r.ID), what)
}

// shortID is the tail of a referral id, enough to tell referrals apart on screen.
func shortID(id string) string {
	if len(id) > 8 {
		return "…" + id[len(id)-8:]
	}
	return id
}

// summary prints what happened: referrals by kind and state, bounces, deadlines, requests,
// and the service's response-time report.
func (s *simulation) summary(ctx context.Context, left int, real time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.out
	now := s.clock.Now()
	fmt.Fprintf(w, "\n== What happened: %s → %s business time, %s real time ==\n\n", s.bizTime(s.clock.bizAnchor), s.bizTime(earlier(now, s.end)), real.Round(time.Second))

	byKind := map[domain.Kind]map[domain.Status]int{}
	total := map[domain.Status]int{}
	var fromKela, fromCounties, forwarded int
	returned, forwardedOn := 0, 0
	bouncesPerClient := map[string]int{}
	for _, r := range s.refs {
		m := byKind[r.Kind]
		if m == nil {
			m = map[domain.Status]int{}
			byKind[r.Kind] = m
		}
		m[r.Status]++
		total[r.Status]++
		switch {
		case r.Forwarded:
			forwarded++
		case r.Sender.IsKela():
			fromKela++
		default:
			fromCounties++
		}
		if r.Status.Bounce() {
			bouncesPerClient[r.client.PersonalID]++
			if r.Status == domain.StatusReturned {
				returned++
			} else {
				forwardedOn++
			}
		}
	}
	fmt.Fprintf(w, "Referrals: %d — %d sent by Kela, %d by counties, %d made by forwarding\n\n", len(s.refs), fromKela, fromCounties, forwarded)
	fmt.Fprintf(w, "%-30s", "kind \\ state")
	for _, st := range domain.Statuses {
		fmt.Fprintf(w, " %*s", colWidth(st), st)
	}
	fmt.Fprintf(w, " %6s\n", "total")
	row := func(name string, m map[domain.Status]int) {
		fmt.Fprintf(w, "%-30s", name)
		n := 0
		for _, st := range domain.Statuses {
			fmt.Fprintf(w, " %*d", colWidth(st), m[st])
			n += m[st]
		}
		fmt.Fprintf(w, " %6d\n", n)
	}
	for _, k := range domain.Kinds {
		if m, ok := byKind[k]; ok {
			row(string(k), m)
		}
	}
	row("total", total)

	passedOnTwice := 0
	for _, n := range bouncesPerClient {
		if n > 1 {
			passedOnTwice++
		}
	}
	fmt.Fprintf(w, "\nBounces: %d (returned %d, forwarded %d); clients passed on more than once: %d\n",
		returned+forwardedOn, returned, forwardedOn, passedOnTwice)
	fmt.Fprintf(w, "Information requests: %d asked, %d answered; messages: %d\n",
		s.counts["information requests"], s.counts["answers"], s.counts["messages"])
	fmt.Fprintf(w, "Late on purpose: %d acknowledgements, %d responses", s.counts["late acknowledgements"], s.counts["late responses"])
	if n, err := s.overdueNow(ctx); err == nil {
		fmt.Fprintf(w, "; overdue now, as the service sees it: %d\n", n)
	} else {
		fmt.Fprintf(w, "; overdue now: could not ask the service (%v)\n", err)
	}
	fmt.Fprintf(w, "Steps still scheduled for after the end: %d (those referrals stay open)\n", left)
	if s.events != nil {
		ours := map[string]bool{}
		for _, r := range s.refs {
			ours[r.ID] = true
		}
		// The relay publishes the last changes' events after they commit: wait (a little)
		// until every referral's created event is in.
		n := s.events.counts(ours)
		for deadline := time.Now().Add(5 * time.Second); n[string(domain.EventCreated)] < len(ours) && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
			n = s.events.counts(ours)
		}
		time.Sleep(200 * time.Millisecond) // and the changes committed with the last ones
		n = s.events.counts(ours)
		var parts []string
		for _, t := range []domain.EventType{domain.EventCreated, domain.EventReceived, domain.EventStatusChanged,
			domain.EventMessageAdded, domain.EventDeadlineWarning, domain.EventOverdue} {
			parts = append(parts, fmt.Sprintf("%s %d", t, n[string(t)]))
		}
		fmt.Fprintf(w, "Events on NATS about these referrals: %s\n", strings.Join(parts, ", "))
	}

	lines, failed := s.api.statusLines()
	fmt.Fprintf(w, "\nRequests by endpoint and status (%d not 2xx):\n", failed)
	for _, l := range lines {
		fmt.Fprintln(w, "  "+l)
	}
	for _, e := range s.errs {
		fmt.Fprintln(w, "  error: "+e)
	}
	s.printReport(ctx)
	if n := s.counts["failed steps"]; n > 0 {
		return fmt.Errorf("%d steps failed", n)
	}
	return nil
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func colWidth(st domain.Status) int { return max(len(st), 4) }

// overdueNow asks the service how many of the simulation's referrals are overdue now.
func (s *simulation) overdueNow(ctx context.Context) (int, error) {
	ours := map[string]bool{}
	for _, r := range s.refs {
		ours[r.ID] = true
	}
	n := 0
	for _, dir := range []string{"outgoing", "incoming"} {
		cursor := ""
		for range 1000 {
			var page struct {
				Items      []struct{ ID string } `json:"items"`
				NextCursor string                `json:"next_cursor"`
			}
			q := url.Values{"direction": {dir}, "overdue": {"true"}, "limit": {"200"}}
			if cursor != "" {
				q.Set("cursor", cursor)
			}
			if err := s.api.do(ctx, s.kelaUsers[0], "GET", "/v1/referrals?"+q.Encode(), "GET /v1/referrals?overdue=true", nil, &page); err != nil {
				return 0, err
			}
			for _, it := range page.Items {
				if ours[it.ID] {
					n++
				}
			}
			if cursor = page.NextCursor; cursor == "" {
				break
			}
		}
	}
	return n, nil
}

// reportFigures is the part of the response-time report the summary shows.
type reportFigures struct {
	Counts struct {
		Created, Acknowledged, Responded, Completed, Returned, Forwarded, Withdrawn int64
	} `json:"counts"`
	TimeToAcknowledge   durationFigures `json:"time_to_acknowledge"`
	TimeToFirstResponse durationFigures `json:"time_to_first_response"`
	TimeToCompletion    durationFigures `json:"time_to_completion"`
	WithinDeadline      struct {
		AcknowledgeBy deadlineFigures `json:"acknowledge_by"`
		RespondBy     deadlineFigures `json:"respond_by"`
	} `json:"within_deadline"`
	OpenOverdue int64 `json:"open_overdue"`
	Bounces     struct {
		Total int64 `json:"total"`
	} `json:"bounces"`
}

type durationFigures struct {
	Count int64         `json:"count"`
	P50   *businessTime `json:"p50"`
	P90   *businessTime `json:"p90"`
}

type businessTime struct {
	Hours float64 `json:"business_hours"`
	Days  float64 `json:"business_days"`
}

type deadlineFigures struct {
	Met    int64    `json:"met"`
	Missed int64    `json:"missed"`
	Share  *float64 `json:"share"`
}

type reportAnswer struct {
	From   string        `json:"from"`
	To     string        `json:"to"`
	Total  reportFigures `json:"total"`
	Groups []struct {
		Kind    string        `json:"kind"`
		Figures reportFigures `json:"figures"`
	} `json:"groups"`
}

// printReport prints the service's response-time report as a Kela supervisor sees it, if the
// service has one: per kind, for the months of the simulated period.
func (s *simulation) printReport(ctx context.Context) {
	w := s.out
	sup := user{ID: "sim-kela-supervisor", Name: "Simulated Supervisor", Org: domain.Kela, Role: domain.RoleSupervisor}
	if !s.api.tokens.has(sup.Org, sup.Role) {
		fmt.Fprintln(w, "\nResponse-time report: skipped (give --token kela:supervisor=JWT)")
		return
	}
	// The report is by whole months of creation.
	from := s.clock.bizAnchor.In(s.work.loc)
	to := earlier(s.clock.Now(), s.end).In(s.work.loc)
	q := url.Values{
		"from":     {time.Date(from.Year(), from.Month(), 1, 12, 0, 0, 0, time.UTC).Format(time.DateOnly)},
		"to":       {time.Date(to.Year(), to.Month()+1, 0, 12, 0, 0, 0, time.UTC).Format(time.DateOnly)},
		"group_by": {"kind"},
	}
	var raw json.RawMessage
	err := s.api.do(ctx, sup, "GET", "/v1/reports/response-times?"+q.Encode(), "GET /v1/reports/response-times", nil, &raw)
	switch {
	case isStatus(err, 404) || isStatus(err, 405):
		fmt.Fprintln(w, "\nResponse-time report: this version of the service has none (GET /v1/reports/response-times answered 404)")
		return
	case err != nil:
		fmt.Fprintf(w, "\nResponse-time report: %v\n", err)
		s.counts["failed steps"]++ // the report is part of the day's result
		return
	}
	var rep reportAnswer
	if err := json.Unmarshal(raw, &rep); err != nil || rep.Total.Counts.Created == 0 {
		var v any
		_ = json.Unmarshal(raw, &v)
		b, _ := json.MarshalIndent(v, "  ", "  ")
		fmt.Fprintf(w, "\nResponse-time report (GET /v1/reports/response-times?%s), not as expected:\n  %s\n", q.Encode(), b)
		s.counts["failed steps"]++
		return
	}
	fmt.Fprintf(w, "\nResponse-time report, %s … %s, as a Kela supervisor sees it (every referral created in those months,\n"+
		"not only this run's; times in business hours, p50/p90; share within deadline):\n", rep.From, rep.To)
	fmt.Fprintf(w, "%-30s %7s %7s %7s %13s %13s %13s %6s %6s %7s %7s\n", "kind", "created", "acked", "closed",
		"to ack", "to response", "to complete", "ack ok", "resp ok", "overdue", "bounces")
	line := func(name string, f reportFigures) {
		fmt.Fprintf(w, "%-30s %7d %7d %7d %13s %13s %13s %6s %6s %7d %7d\n", name, f.Counts.Created, f.Counts.Acknowledged,
			f.Counts.Completed+f.Counts.Returned+f.Counts.Forwarded+f.Counts.Withdrawn,
			f.TimeToAcknowledge.pair(), f.TimeToFirstResponse.pair(), f.TimeToCompletion.pair(),
			f.WithinDeadline.AcknowledgeBy.share(), f.WithinDeadline.RespondBy.share(), f.OpenOverdue, f.Bounces.Total)
	}
	for _, g := range rep.Groups {
		line(g.Kind, g.Figures)
	}
	line("total", rep.Total)
}

// pair formats p50/p90 in business hours.
func (d durationFigures) pair() string {
	if d.P50 == nil || d.P90 == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f/%.1f", d.P50.Hours, d.P90.Hours)
}

func (d deadlineFigures) share() string {
	if d.Share == nil {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", *d.Share*100)
}
