package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/internal/yardstick"
)

// Load endpoints.
const (
	opCreate     = "create"
	opList       = "list"
	opGet        = "get"
	opTransition = "transition"
)

var loadOps = []string{opCreate, opList, opGet, opTransition}

// loadConfig is what the load mode can be told.
type loadConfig struct {
	url          string
	dataDir      string
	tokens       multiFlag
	allowRemote  bool
	concurrency  int
	rate         float64
	duration     time.Duration
	warmup       time.Duration
	maxRequests  int64
	mix          map[string]int
	seed         uint64
	natsURL      string
	yardstick    bool
	batchDelay   time.Duration
	yardstickDir string
	listOrg      domain.OrgID
	listStatus   string
	pid          int
	interval     time.Duration
	timeout      time.Duration
}

func parseLoadFlags(args []string, getenv func(string) string, stderr io.Writer) (loadConfig, error) {
	var c loadConfig
	var only, mix, listOrg string
	fs := flag.NewFlagSet("referral-sim load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.url, "url", orDefault(getenv("REFERRAL_URL"), "http://127.0.0.1:8080"), "base URL of the running service; loopback only unless --allow-remote (REFERRAL_URL)")
	fs.StringVar(&c.dataDir, "data-dir", orDefault(getenv("REFERRAL_DATA_DIR"), "./data"), "data directory of referrald --dev, whose dev key signs the tokens (REFERRAL_DATA_DIR)")
	fs.Var(&c.tokens, "token", "a token instead of the dev key: ORG=JWT (repeatable; kela and the counties used)")
	fs.BoolVar(&c.allowRemote, "allow-remote", false, "allow a --url or --nats-url that is not a loopback address")
	fs.IntVar(&c.concurrency, "concurrency", 64, "concurrent clients (closed loop); with --rate, requests in flight at most")
	fs.Float64Var(&c.rate, "rate", 0, "requests per second, open loop (0: as fast as --concurrency clients go); latency counts from the scheduled start")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "how long to send requests (after the warm-up)")
	fs.DurationVar(&c.warmup, "warmup", 0, "requests sent before measuring starts")
	fs.Int64Var(&c.maxRequests, "max-requests", 10_000_000, "stop after this many requests whatever the duration")
	fs.StringVar(&only, "only", "", "a single endpoint: create, list, get or transition")
	fs.StringVar(&mix, "mix", "create=25,list=50,get=15,transition=10", "weights of the endpoints")
	fs.Uint64Var(&c.seed, "seed", 1, "random seed of the request mix and bodies")
	fs.StringVar(&c.natsURL, "nats-url", getenv("NATS_URL"), "NATS of the service (e.g. nats://127.0.0.1:4222): measure commit → consumer event latency of the creates (NATS_URL)")
	fs.BoolVar(&c.yardstick, "yardstick", false, "also run the same creates against the yardstick (raw Echo + bbolt) started in-process, and print the ratio")
	fs.DurationVar(&c.batchDelay, "batch-delay", 2*time.Millisecond, "the yardstick's bbolt batch delay: the service's --batch-delay")
	fs.StringVar(&c.yardstickDir, "yardstick-dir", "", "where the yardstick's bbolt file goes (default: a temporary directory in --data-dir, removed afterwards)")
	fs.StringVar(&listOrg, "list-org", "hva-90", "the county whose inbox the list requests read")
	fs.StringVar(&c.listStatus, "list-status", "sent", "the status filter of the list requests (\"\": every status)")
	fs.IntVar(&c.pid, "pid", 0, "process id of the service: report its resident memory (Linux /proc) before, during and after")
	fs.DurationVar(&c.interval, "interval", 0, "print a line per interval (throughput, p50/p99, errors, and the service's goroutines, heap and RSS from its /metrics): for soak runs")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "timeout of one request")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	c.listOrg = domain.OrgID(listOrg)
	if !c.listOrg.IsCounty() {
		return c, fmt.Errorf("--list-org %q: want a county such as hva-90", listOrg)
	}
	if c.listStatus != "" && !domain.Status(c.listStatus).Valid() {
		return c, fmt.Errorf("--list-status %q: not a state", c.listStatus)
	}
	switch {
	case c.concurrency < 1 || c.concurrency > 1024:
		return c, errors.New("--concurrency must be 1–1024")
	case c.interval < 0 || (c.interval > 0 && c.interval < 100*time.Millisecond):
		return c, errors.New("--interval must be 0 or at least 100ms")
	case c.rate < 0 || c.rate > 1_000_000:
		return c, errors.New("--rate must be 0–1000000")
	case c.duration <= 0 || c.duration > 24*time.Hour:
		return c, errors.New("--duration must be positive and at most 24h")
	case c.warmup < 0 || c.warmup > time.Hour:
		return c, errors.New("--warmup must be 0–1h")
	case c.maxRequests < 1:
		return c, errors.New("--max-requests must be positive")
	case c.timeout <= 0:
		return c, errors.New("--timeout must be positive")
	}
	if only != "" {
		mix = only + "=1"
	}
	m, err := parseMix(mix)
	if err != nil {
		return c, err
	}
	c.mix = m
	if c.yardstick && (len(m) != 1 || m[opCreate] == 0) {
		return c, errors.New("--yardstick compares creates: use it with --only create")
	}
	return c, nil
}

// parseMix reads "create=25,list=50": endpoint weights.
func parseMix(s string) (map[string]int, error) {
	m := map[string]int{}
	for _, part := range strings.Split(s, ",") {
		name, w, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(w)
		if !ok || err != nil || n < 0 {
			return nil, fmt.Errorf("--mix %q: want endpoint=weight,… with weights ≥ 0", s)
		}
		known := false
		for _, op := range loadOps {
			known = known || op == name
		}
		if !known {
			return nil, fmt.Errorf("unknown endpoint %q (create, list, get, transition)", name)
		}
		if n > 0 {
			m[name] = n
		}
	}
	if len(m) == 0 {
		return nil, errors.New("the mix has no endpoint with a weight")
	}
	return m, nil
}

// checkLoopback refuses a URL whose host is not a loopback address (names must resolve only to
// loopback addresses), so the load tool cannot be pointed at someone else's service by mistake.
func checkLoopback(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not a URL with a host", raw)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); ip != nil {
		if !ip.IsLoopback() {
			return fmt.Errorf("%s is not a loopback address: refusing to send load there without --allow-remote", host)
		}
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupIPAddr(rctx, host)
	if err != nil || len(addrs) == 0 {
		return fmt.Errorf("%s: cannot tell whether it is a loopback address (%v): refusing without --allow-remote", host, err)
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return fmt.Errorf("%s resolves to %s, not a loopback address: refusing to send load there without --allow-remote", host, a.IP)
		}
	}
	return nil
}

// endpointStats are one worker's (or, merged, one phase's) figures for one endpoint.
type endpointStats struct {
	hist   histogram
	ok     int64
	errors map[int]int64 // status → count; 0 = no answer (connection error, timeout)
}

func (e *endpointStats) merge(o *endpointStats) {
	e.hist.Merge(&o.hist)
	e.ok += o.ok
	for k, v := range o.errors {
		if e.errors == nil {
			e.errors = map[int]int64{}
		}
		e.errors[k] += v
	}
}

// phaseResult is what one run against one target measured.
type phaseResult struct {
	target   string
	elapsed  time.Duration
	ops      map[string]*endpointStats
	dropped  int64 // open loop: requests not sent because every worker was busy
	events   *eventResult
	rss      *rssSample
	requests int64
	samples  []intervalSample // --interval
	// CPU time used during the phase: by the service process (--pid; -1 unknown) and by this
	// process (the load generator, and the yardstick when it is the target).
	serviceCPU, selfCPU time.Duration
}

func (p *phaseResult) throughput(op string) float64 {
	if e := p.ops[op]; e != nil && p.elapsed > 0 {
		return float64(e.ok) / p.elapsed.Seconds()
	}
	return 0
}

// target is where load goes: the service (with tokens) or the yardstick (no auth).
type target struct {
	name   string
	base   string
	client *http.Client
	auth   map[domain.OrgID]string // "Bearer …" per organisation; nil for the yardstick
}

// workQueues hold this run's referrals by state, for the get and transition requests.
type workQueues struct {
	mu       sync.Mutex
	recent   []string // ring of ids, for get
	next     int
	sent     []queued
	received []queued
	started  []queued
}

type queued struct {
	id        string
	kind      domain.Kind
	recipient domain.OrgID
}

const maxQueued = 100_000

func (q *workQueues) add(r queued) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.recent) < maxQueued {
		q.recent = append(q.recent, r.id)
	} else {
		q.recent[q.next] = r.id
		q.next = (q.next + 1) % maxQueued
	}
	if len(q.sent) < maxQueued {
		q.sent = append(q.sent, r)
	}
}

func (q *workQueues) randomID(rng *rand.Rand) (string, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.recent) == 0 {
		return "", false
	}
	return q.recent[rng.IntN(len(q.recent))], true
}

// take returns the referral to move next and the action: the furthest along first, so the
// queues stay short.
func (q *workQueues) take() (queued, string, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	pop := func(s *[]queued) queued {
		r := (*s)[0]
		*s = (*s)[1:]
		return r
	}
	switch {
	case len(q.started) > 0:
		return pop(&q.started), "complete", true
	case len(q.received) > 0:
		return pop(&q.received), "start", true
	case len(q.sent) > 0:
		return pop(&q.sent), "receive", true
	}
	return queued{}, "", false
}

func (q *workQueues) moved(r queued, action string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch action {
	case "receive":
		q.received = append(q.received, r)
	case "start":
		q.started = append(q.started, r)
	}
}

// loader runs the load phases.
type loader struct {
	cfg    loadConfig
	out    io.Writer
	bodies [][]byte // create bodies, drawn from the seed
	ops    []string // the mix as a wheel of endpoint names
}

// runLoad runs the load mode and prints per-endpoint throughput and latency.
func runLoad(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseLoadFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	_, err = load(ctx, cfg, stdout)
	return err
}

// load runs the phases of cfg (the service, then the yardstick if asked) and returns what
// each measured.
func load(ctx context.Context, cfg loadConfig, stdout io.Writer) ([]*phaseResult, error) {
	if !cfg.allowRemote {
		if err := checkLoopback(ctx, cfg.url); err != nil {
			return nil, fmt.Errorf("--url: %w", err)
		}
		if cfg.natsURL != "" {
			if err := checkLoopback(ctx, cfg.natsURL); err != nil {
				return nil, fmt.Errorf("--nats-url: %w", err)
			}
		}
	}
	l := &loader{cfg: cfg, out: stdout}
	l.drawBodies()
	for _, op := range loadOps {
		for range cfg.mix[op] {
			l.ops = append(l.ops, op)
		}
	}

	ts, err := newTokenSource(cfg.dataDir, cfg.tokens, time.Hour+cfg.duration+cfg.warmup)
	if err != nil {
		return nil, err
	}
	svc := &target{name: "service", base: strings.TrimRight(cfg.url, "/"), client: loadHTTPClient(cfg), auth: map[domain.OrgID]string{}}
	for _, o := range domain.DefaultRegistry().Organisations() {
		role := domain.RoleSocialWorker
		if o.ID.IsKela() {
			role = domain.RoleKelaHandler
		}
		if !ts.has(o.ID, role) {
			continue
		}
		tok, err := ts.token(user{ID: "load-" + string(o.ID), Name: "Load " + string(o.ID), Org: o.ID, Role: role})
		if err != nil {
			return nil, err
		}
		svc.auth[o.ID] = "Bearer " + tok
	}
	if _, ok := svc.auth[domain.Kela]; !ok {
		return nil, errors.New("no token for Kela: give --token kela=JWT or --data-dir with the dev key")
	}

	fmt.Fprintf(stdout, "%s\n", l.describe())
	// The yardstick runs first: after the service's phase, its relay is still publishing the
	// phase's events and would slow the yardstick down, flattering the ratio.
	var yres *phaseResult
	if cfg.yardstick {
		ys, stop, err := l.startYardstick()
		if err != nil {
			return nil, err
		}
		yres, err = l.phase(ctx, ys, "")
		stop()
		if err != nil {
			return nil, err
		}
		l.print(yres)
	}
	res, err := l.phase(ctx, svc, cfg.natsURL)
	if err != nil {
		return nil, err
	}
	l.print(res)
	if !cfg.yardstick {
		return []*phaseResult{res}, nil
	}
	l.compare(res, yres)
	return []*phaseResult{res, yres}, nil
}

func loadHTTPClient(cfg loadConfig) *http.Client {
	tr := &http.Transport{
		MaxIdleConns: cfg.concurrency, MaxIdleConnsPerHost: cfg.concurrency,
		IdleConnTimeout: 90 * time.Second, DisableCompression: true,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}
	return &http.Client{Transport: tr, Timeout: cfg.timeout}
}

func (l *loader) describe() string {
	var mix []string
	for _, op := range loadOps {
		if w := l.cfg.mix[op]; w > 0 {
			mix = append(mix, fmt.Sprintf("%s=%d", op, w))
		}
	}
	mode := fmt.Sprintf("%d concurrent clients", l.cfg.concurrency)
	if l.cfg.rate > 0 {
		mode = fmt.Sprintf("%.0f requests/s (at most %d in flight)", l.cfg.rate, l.cfg.concurrency)
	}
	status := "status " + l.cfg.listStatus
	if l.cfg.listStatus == "" {
		status = "every status"
	}
	return fmt.Sprintf("load: %s for %s (warm-up %s), mix %s, seed %d; list = %s inbox, %s, 50 a page",
		mode, l.cfg.duration, l.cfg.warmup, strings.Join(mix, ","), l.cfg.seed, l.cfg.listOrg, status)
}

// drawBodies makes 1024 create bodies from the seed: Kela's two main kinds, clients in
// municipalities weighted by population.
func (l *loader) drawBodies() {
	rng := rand.New(rand.NewPCG(l.cfg.seed, 0x10ad))
	munis := newMunicipalityPicker(domain.DefaultRegistry(), nil)
	now := time.Now()
	for range 1024 {
		p := newPerson(rng, munis.Pick(rng), now)
		kind := domain.KindSocialWorkNeed
		if rng.IntN(100) < 40 {
			kind = domain.KindSupplementarySupportHandoff
		}
		urgency := domain.Normal
		if rng.IntN(100) < 12 {
			urgency = domain.Urgent
		}
		b, err := json.Marshal(newKelaRequest(rng, kind, urgency, p, now))
		if err != nil {
			panic(err) // a struct of strings and slices
		}
		l.bodies = append(l.bodies, b)
	}
}

// startYardstick starts the yardstick on a loopback port.
func (l *loader) startYardstick() (*target, func(), error) {
	dir := l.cfg.yardstickDir
	cleanup := func() {}
	if dir == "" {
		parent := l.cfg.dataDir
		if fi, err := os.Stat(parent); err != nil || !fi.IsDir() {
			parent = ""
		}
		d, err := os.MkdirTemp(parent, "yardstick-")
		if err != nil {
			return nil, nil, err
		}
		dir, cleanup = d, func() { os.RemoveAll(d) }
	}
	st, err := yardstick.Open(filepath.Join(dir, "yardstick.db"), l.cfg.batchDelay)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	srv := httptest.NewServer(st.Handler())
	stop := func() {
		srv.Close()
		st.Close()
		cleanup()
	}
	return &target{name: fmt.Sprintf("yardstick (batch delay %s)", l.cfg.batchDelay), base: srv.URL, client: loadHTTPClient(l.cfg)}, stop, nil
}

// worker is one load client's state.
type worker struct {
	rng      *rand.Rand
	stats    map[string]*endpointStats
	lastDone time.Time // when the last measured request answered

	// The current interval's figures (--interval), all endpoints together.
	imu    sync.Mutex
	ihist  histogram
	ierrs  int64
	itrack bool
}

func (w *worker) record(op string, start time.Time, lat time.Duration, status int, measureFrom time.Time) {
	if start.Before(measureFrom) {
		return
	}
	w.lastDone = start.Add(lat)
	s := w.stats[op]
	if s == nil {
		s = &endpointStats{errors: map[int]int64{}}
		w.stats[op] = s
	}
	ok := status >= 200 && status < 300
	if ok {
		s.ok++
		s.hist.Record(lat)
	} else {
		s.errors[status]++
	}
	if w.itrack {
		w.imu.Lock()
		if ok {
			w.ihist.Record(lat)
		} else {
			w.ierrs++
		}
		w.imu.Unlock()
	}
}

// phase runs the configured load against t and returns what it measured.
func (l *loader) phase(ctx context.Context, t *target, natsURL string) (*phaseResult, error) {
	cfg := l.cfg
	var ev *eventWatch
	if natsURL != "" {
		var err error
		if ev, err = startEventWatch(ctx, natsURL); err != nil {
			return nil, err
		}
		defer ev.stop()
	}
	var rss *rssWatch
	if cfg.pid > 0 && t.auth != nil {
		rss = startRSSWatch(cfg.pid)
	}
	svcCPU0, svcCPUErr := time.Duration(0), error(nil)
	if cfg.pid > 0 && t.auth != nil {
		svcCPU0, svcCPUErr = readCPU(cfg.pid)
	}
	selfCPU0 := selfCPU()
	queues := &workQueues{}
	start := time.Now()
	measureFrom := start.Add(cfg.warmup)
	end := measureFrom.Add(cfg.duration)
	pctx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	var sent atomic.Int64
	var dropped atomic.Int64

	workers := make([]*worker, cfg.concurrency)
	for i := range workers {
		workers[i] = &worker{rng: rand.New(rand.NewPCG(cfg.seed, uint64(i)+1)), stats: map[string]*endpointStats{}, itrack: cfg.interval > 0}
	}
	var intervals *intervalReporter
	if cfg.interval > 0 {
		intervals = startIntervals(pctx, l.out, t, workers, cfg.interval, measureFrom, rss)
	}
	var wg sync.WaitGroup
	if cfg.rate <= 0 {
		for _, w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Requests under way at the end finish (within --timeout): cutting them off
				// would count as failures on both sides.
				for time.Now().Before(end) && ctx.Err() == nil && sent.Add(1) <= cfg.maxRequests {
					begin := time.Now()
					op, status := l.request(ctx, t, w, queues, ev, measureFrom)
					if ctx.Err() != nil && status == 0 {
						return // interrupted
					}
					w.record(op, begin, time.Since(begin), status, measureFrom)
				}
			}()
		}
	} else {
		// Open loop: requests are due at fixed intervals whether or not earlier ones have
		// answered; latency counts from when a request was due, so a stall shows in it
		// (no coordinated omission). A request due while every worker is busy and the queue
		// is full is dropped and counted.
		due := make(chan time.Time, cfg.concurrency*4)
		for _, w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for at := range due {
					op, status := l.request(ctx, t, w, queues, ev, measureFrom)
					if ctx.Err() != nil && status == 0 {
						continue // interrupted
					}
					w.record(op, at, time.Since(at), status, measureFrom)
				}
			}()
		}
		interval := time.Duration(float64(time.Second) / cfg.rate)
	schedule:
		for i := int64(0); i < cfg.maxRequests; i++ {
			at := start.Add(time.Duration(i) * interval)
			if !at.Before(end) {
				break
			}
			if d := time.Until(at); d > 0 {
				select {
				case <-time.After(d):
				case <-pctx.Done():
					break schedule
				}
			}
			select {
			case due <- at:
			default:
				if !at.Before(measureFrom) {
					dropped.Add(1)
				}
			}
		}
		close(due)
	}
	wg.Wait()
	// Throughput counts over the time the measured requests took, up to the last answer.
	elapsed := cfg.duration
	var last time.Time
	for _, w := range workers {
		if w.lastDone.After(last) {
			last = w.lastDone
		}
	}
	if last.After(measureFrom) {
		elapsed = last.Sub(measureFrom)
	}
	if intervals != nil {
		intervals.stop()
	}
	if ctx.Err() != nil {
		if rss != nil {
			rss.stop()
		}
		return nil, ctx.Err()
	}

	res := &phaseResult{target: t.name + " " + t.base, elapsed: elapsed, ops: map[string]*endpointStats{}, dropped: dropped.Load(),
		selfCPU: selfCPU() - selfCPU0, serviceCPU: -1}
	if cfg.pid > 0 && t.auth != nil && svcCPUErr == nil {
		if c, err := readCPU(cfg.pid); err == nil {
			res.serviceCPU = c - svcCPU0
		}
	}
	for _, w := range workers {
		for op, s := range w.stats {
			if res.ops[op] == nil {
				res.ops[op] = &endpointStats{errors: map[int]int64{}}
			}
			res.ops[op].merge(s)
		}
	}
	for _, s := range res.ops {
		res.requests += s.ok
		for _, n := range s.errors {
			res.requests += n
		}
	}
	if ev != nil {
		res.events = ev.finish(5 * time.Second)
	}
	if rss != nil {
		res.rss = rss.stop()
	}
	if intervals != nil {
		res.samples = intervals.samples
	}
	return res, nil
}

// request sends one request of the mix and returns the endpoint it used and the status (0 when
// no answer came).
func (l *loader) request(ctx context.Context, t *target, w *worker, q *workQueues, ev *eventWatch, measureFrom time.Time) (string, int) {
	op := l.ops[w.rng.IntN(len(l.ops))]
	if t.auth == nil {
		op = opCreate // the yardstick only creates
	}
	switch op {
	case opGet:
		id, ok := q.randomID(w.rng)
		if !ok {
			op = opCreate
			break
		}
		return op, l.send(ctx, t, domain.Kela, "GET", "/v1/referrals/"+id, nil, nil)
	case opList:
		path := "/v1/referrals?direction=incoming&limit=50"
		if l.cfg.listStatus != "" {
			path += "&status=" + url.QueryEscape(l.cfg.listStatus)
		}
		return op, l.send(ctx, t, l.cfg.listOrg, "GET", path, nil, nil)
	case opTransition:
		r, action, ok := q.take()
		if !ok {
			op = opCreate
			break
		}
		var body []byte
		switch {
		case action != "complete":
			body = []byte("{}")
		case r.kind == domain.KindSupplementarySupportHandoff:
			body = []byte(`{"outcome":"decided","decision":"granted","decision_date":"` + time.Now().Format(time.DateOnly) + `"}`)
		default:
			body = []byte(`{"outcome":"assessment_started","feedback":"useful"}`)
		}
		status := l.send(ctx, t, r.recipient, "POST", "/v1/referrals/"+r.id+"/"+action, body, nil)
		if status == http.StatusOK {
			q.moved(r, action)
		}
		return op, status
	}
	var a struct {
		ID        string         `json:"id"`
		Kind      domain.Kind    `json:"kind"`
		Recipient domain.OrgID   `json:"recipient"`
		Status    domain.Status  `json:"status"`
		Urgency   domain.Urgency `json:"urgency"`
	}
	status := l.send(ctx, t, domain.Kela, "POST", "/v1/referrals", l.bodies[w.rng.IntN(len(l.bodies))], &a)
	if status == http.StatusCreated && a.ID != "" {
		answered := time.Now()
		if ev != nil && !answered.Before(measureFrom) {
			ev.created(a.ID, answered)
		}
		if t.auth != nil {
			if _, ok := t.auth[a.Recipient]; ok {
				q.add(queued{id: a.ID, kind: a.Kind, recipient: a.Recipient})
			}
		}
	}
	return opCreate, status
}

// send makes one request as someone of org and returns the status (0: no answer). The answer
// is decoded into out when out is not nil and the status is 2xx, else read and discarded.
func (l *loader) send(ctx context.Context, t *target, org domain.OrgID, method, path string, body []byte, out any) int {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, t.base+path, rd)
	if err != nil {
		return 0
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if t.auth != nil {
		tok, ok := t.auth[org]
		if !ok {
			return 0
		}
		req.Header.Set("Authorization", tok)
		req.Header.Set("X-Purpose", user{Org: org}.purpose())
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return 0
		}
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

// print writes a phase's figures: one line per endpoint, errors by status, event latency.
func (l *loader) print(p *phaseResult) {
	w := l.out
	fmt.Fprintf(w, "\n%s — %d requests measured over %s\n", p.target, p.requests, p.elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "%-11s %9s %10s %9s %9s %9s %9s %9s %8s\n", "endpoint", "ok", "ok/s", "mean", "p50", "p99", "p99.9", "max", "errors")
	var all endpointStats
	var names []string
	for op := range p.ops {
		names = append(names, op)
	}
	sort.Strings(names)
	row := func(name string, s *endpointStats) {
		var errs int64
		for _, n := range s.errors {
			errs += n
		}
		fmt.Fprintf(w, "%-11s %9d %10.1f %9s %9s %9s %9s %9s %8d\n", name, s.ok, float64(s.ok)/p.elapsed.Seconds(),
			ms(s.hist.Mean()), ms(s.hist.Quantile(0.50)), ms(s.hist.Quantile(0.99)), ms(s.hist.Quantile(0.999)), ms(s.hist.Max()), errs)
	}
	for _, op := range names {
		row(op, p.ops[op])
		all.merge(p.ops[op])
	}
	if len(names) > 1 {
		row("all", &all)
	}
	for _, op := range names {
		if len(p.ops[op].errors) == 0 {
			continue
		}
		var parts []string
		for status, n := range p.ops[op].errors {
			name := strconv.Itoa(status)
			if status == 0 {
				name = "no-answer"
			}
			parts = append(parts, fmt.Sprintf("%s×%d", name, n))
		}
		sort.Strings(parts)
		fmt.Fprintf(w, "errors %-11s %s\n", op, strings.Join(parts, " "))
	}
	for _, s := range p.ops {
		if s.errors[http.StatusTooManyRequests] > 0 {
			fmt.Fprintln(w, "429: the service's per-organisation rate limit; start referrald with --rate-limit 0 to measure it")
			break
		}
	}
	if p.dropped > 0 {
		fmt.Fprintf(w, "not sent: %d requests came due while all %d workers were busy (the target is slower than --rate)\n", p.dropped, l.cfg.concurrency)
	}
	if e := p.events; e != nil {
		fmt.Fprintf(w, "events: %d of %d measured creates' created events received", e.matched, e.expected)
		if e.missing > 0 {
			fmt.Fprintf(w, " (%d not within %s after the run)", e.missing, e.waited)
		}
		fmt.Fprintln(w)
		if e.clockSkew {
			fmt.Fprintln(w, "  commit → receipt: not measured: the events' time is not the machine's (the service runs a dev clock?)")
		} else {
			fmt.Fprintf(w, "  commit (CloudEvents time) → consumer receipt: p50 %s  p99 %s  p99.9 %s  max %s\n",
				ms(e.fromCommit.Quantile(0.5)), ms(e.fromCommit.Quantile(0.99)), ms(e.fromCommit.Quantile(0.999)), ms(e.fromCommit.Max()))
		}
		fmt.Fprintf(w, "  create answered → consumer receipt: p50 %s  p99 %s (%d events arrived before the HTTP answer, counted as 0)\n",
			ms(e.fromAnswer.Quantile(0.5)), ms(e.fromAnswer.Quantile(0.99)), e.beforeAnswer)
	}
	if p.requests > 0 {
		per := func(d time.Duration) string {
			return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond)/float64(p.requests))
		}
		fmt.Fprintf(w, "CPU per request (warm-up included): this process %s", per(p.selfCPU))
		if p.serviceCPU >= 0 {
			fmt.Fprintf(w, ", the service (pid %d) %s", l.cfg.pid, per(p.serviceCPU))
		}
		fmt.Fprintln(w)
	}
	if line := driftLine(p.samples); line != "" {
		fmt.Fprintln(w, line)
	}
	if r := p.rss; r != nil {
		if r.err != nil {
			fmt.Fprintf(w, "service memory: %v\n", r.err)
		} else {
			fmt.Fprintf(w, "service resident memory (pid %d): start %s, end %s, peak during the run %s (VmHWM %s)\n",
				l.cfg.pid, mib(r.start), mib(r.end), mib(r.peak), mib(r.hwm))
		}
	}
}

// compare prints the service's create figures against the yardstick's.
func (l *loader) compare(svc, ys *phaseResult) {
	s, y := svc.throughput(opCreate), ys.throughput(opCreate)
	if y == 0 {
		fmt.Fprintln(l.out, "\nno yardstick creates succeeded: no ratio")
		return
	}
	fmt.Fprintf(l.out, "\ncreate throughput: service %.0f/s, yardstick %.0f/s → service/yardstick %.2f (target ≥ 0.80)\n", s, y, s/y)
	if svc.ops[opCreate] != nil && ys.ops[opCreate] != nil {
		fmt.Fprintf(l.out, "create p99: service %s, yardstick %s\n", ms(svc.ops[opCreate].hist.Quantile(0.99)), ms(ys.ops[opCreate].hist.Quantile(0.99)))
	}
}
