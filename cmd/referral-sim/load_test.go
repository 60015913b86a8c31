package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kela-hva/referrals/domain"
)

func mustLoadConfig(t *testing.T, args ...string) loadConfig {
	t.Helper()
	cfg, err := parseLoadFlags(args, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// checkFigures asserts what every measured endpoint must satisfy: answers, no errors, a
// latency per answer, ordered percentiles.
func checkFigures(t *testing.T, p *phaseResult, ops ...string) {
	t.Helper()
	var total int64
	for _, op := range ops {
		e := p.ops[op]
		if e == nil || e.ok == 0 {
			t.Errorf("%s: no successful %s requests", p.target, op)
			continue
		}
		if len(e.errors) > 0 {
			t.Errorf("%s: %s errors by status: %v", p.target, op, e.errors)
		}
		if e.hist.Count() != uint64(e.ok) {
			t.Errorf("%s: %s: %d latencies for %d answers", p.target, op, e.hist.Count(), e.ok)
		}
		p50, p99, p999 := e.hist.Quantile(0.5), e.hist.Quantile(0.99), e.hist.Quantile(0.999)
		if p50 <= 0 || p50 > p99 || p99 > p999 || p999 > e.hist.Max() {
			t.Errorf("%s: %s: p50 %s p99 %s p99.9 %s max %s", p.target, op, p50, p99, p999, e.hist.Max())
		}
		total += e.ok
	}
	if len(p.ops) != len(ops) {
		t.Errorf("%s: endpoints measured %d, want %v", p.target, len(p.ops), ops)
	}
	if total != p.requests {
		t.Errorf("%s: %d answers by endpoint add up to %d, reported %d requests", p.target, total, total, p.requests)
	}
}

func TestLoadMixAgainstTheServiceWithEventLatency(t *testing.T) {
	s := startStack(t, stackOptions{nats: true})
	cfg := mustLoadConfig(t, "--url", s.url, "--data-dir", s.dataDir, "--nats-url", s.natsURL,
		"--duration", "1500ms", "--concurrency", "8", "--seed", "3")
	var out bytes.Buffer
	res, err := load(context.Background(), cfg, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Log(out.String())
	if len(res) != 1 {
		t.Fatalf("%d phases, want 1", len(res))
	}
	p := res[0]
	checkFigures(t, p, opCreate, opGet, opList, opTransition)

	creates := p.ops[opCreate].ok
	stored := int64(len(s.referrals(t)))
	// A create cut off by the end of the run may still have committed.
	if stored < creates || stored > creates+int64(cfg.concurrency) {
		t.Errorf("%d referrals stored, %d creates answered", stored, creates)
	}
	e := p.events
	if e == nil || e.expected != int(creates) || e.matched != e.expected || e.missing != 0 {
		t.Fatalf("events: %+v, want all %d creates' events", e, creates)
	}
	if e.clockSkew || e.fromCommit.Count() != uint64(e.matched) || e.fromCommit.Quantile(0.5) > e.fromCommit.Quantile(0.99) {
		t.Errorf("commit → receipt: skew %v, %d latencies, p50 %s p99 %s", e.clockSkew, e.fromCommit.Count(),
			e.fromCommit.Quantile(0.5), e.fromCommit.Quantile(0.99))
	}
	// The transitions moved referrals along.
	states := map[domain.Status]int{}
	for _, r := range s.referrals(t) {
		states[r.Status]++
	}
	if states[domain.StatusReceived]+states[domain.StatusInProgress]+states[domain.StatusCompleted] == 0 {
		t.Errorf("states %v: the transitions moved nothing", states)
	}
	for _, want := range []string{"endpoint", "create", "list", "p99.9", "commit (CloudEvents time) → consumer receipt"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

func TestLoadAtAFixedRate(t *testing.T) {
	s := startStack(t, stackOptions{})
	// The inbox of every status (the mix test lists one status).
	cfg := mustLoadConfig(t, "--url", s.url, "--data-dir", s.dataDir, "--only", "list", "--list-status", "",
		"--rate", "200", "--duration", "1s", "--concurrency", "32", "--interval", "300ms")
	var out bytes.Buffer
	res, err := load(context.Background(), cfg, &out)
	if err != nil {
		t.Fatal(err)
	}
	p := res[0]
	checkFigures(t, p, opList)
	// Every request due in the second was sent and answered, or counted as not sent because
	// all workers were busy (a slow machine).
	if n := p.ops[opList].ok; n+p.dropped != 200 || n < 150 {
		t.Errorf("%d lists answered and %d not sent at 200/s for 1s, want 200 in all, most answered", n, p.dropped)
	}
	// The soak lines: one per interval, with the service's goroutines from its /metrics.
	if len(p.samples) < 2 || len(p.samples) > 3 {
		t.Fatalf("%d interval lines in 1s at 300ms, want 3 (2 if a tick was late):\n%s", len(p.samples), out.String())
	}
	for _, smp := range p.samples {
		if smp.ok < 40 || smp.p50 > smp.p99 || smp.goroutines <= 0 {
			t.Errorf("interval %+v: want about 60 answers, ordered percentiles, the service's goroutines", smp)
		}
	}
	if !strings.Contains(out.String(), "hva-90 inbox, every status") {
		t.Errorf("the header does not name the list:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "drift, first interval → last") {
		t.Errorf("no drift line:\n%s", out.String())
	}
}

func TestLoadComparesWithTheYardstick(t *testing.T) {
	s := startStack(t, stackOptions{})
	// The service runs in this process here, so --pid names this process.
	cfg := mustLoadConfig(t, "--url", s.url, "--data-dir", s.dataDir, "--only", "create", "--yardstick",
		"--duration", "700ms", "--concurrency", "4", "--pid", strconv.Itoa(os.Getpid()))
	var out bytes.Buffer
	res, err := load(context.Background(), cfg, &out)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 {
		t.Fatalf("%d phases, want the service and the yardstick", len(res))
	}
	checkFigures(t, res[0], opCreate)
	checkFigures(t, res[1], opCreate)
	if res[0].rss == nil || res[0].rss.err != nil || res[0].rss.peak <= 0 || res[0].serviceCPU <= 0 {
		t.Errorf("service figures: rss %+v, CPU %s", res[0].rss, res[0].serviceCPU)
	}
	if !strings.HasPrefix(res[1].target, "yardstick") || !strings.Contains(out.String(), "service/yardstick") ||
		!strings.Contains(out.String(), "the service (pid") {
		t.Errorf("no comparison printed:\n%s", out.String())
	}
	if leftovers, _ := filepath.Glob(filepath.Join(s.dataDir, "yardstick-*")); len(leftovers) > 0 {
		t.Errorf("yardstick files left behind: %v", leftovers)
	}
}

func TestLoadRefusesTargetsThatAreNotLoopback(t *testing.T) {
	for _, args := range [][]string{
		{"--url", "http://192.0.2.10:8080"},
		{"--url", "http://10.1.2.3"},
		{"--url", "http://127.0.0.1:1", "--nats-url", "nats://192.0.2.10:4222"},
	} {
		err := run(context.Background(), append([]string{"load", "--duration", "1s"}, args...), noEnv, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("%v: %v, want a refusal naming loopback", args, err)
		}
	}
	for _, ok := range []string{"http://127.0.0.1:8080", "http://[::1]:8080", "http://127.0.0.2"} {
		if err := checkLoopback(context.Background(), ok); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
}

func TestLoadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--mix", "create=1,delete=2"}, {"--mix", "create=0"}, {"--only", "nothing"},
		{"--yardstick"}, // the yardstick only creates
		{"--duration", "0s"}, {"--duration", "48h"}, {"--concurrency", "0"}, {"--rate", "-1"},
		{"--list-org", "kela"}, {"--list-status", "lost"},
	} {
		if _, err := parseLoadFlags(args, noEnv, io.Discard); err == nil {
			t.Errorf("%v: accepted", args)
		}
	}
	cfg := mustLoadConfig(t, "--mix", "create=3, list=1,get=0")
	if cfg.mix[opCreate] != 3 || cfg.mix[opList] != 1 || len(cfg.mix) != 2 {
		t.Errorf("mix %v", cfg.mix)
	}
	if cfg := mustLoadConfig(t, "--only", "get"); len(cfg.mix) != 1 || cfg.mix[opGet] != 1 {
		t.Errorf("--only get: mix %v", cfg.mix)
	}
}

// TestLoadCountsErrorsByStatus: refused requests are counted by status, not as answers and
// not as latencies, and the table shows them.
func TestLoadCountsErrorsByStatus(t *testing.T) {
	s := startStack(t, stackOptions{})
	cfg := mustLoadConfig(t, "--url", s.url, "--data-dir", s.dataDir, "--only", "create",
		"--token", "kela=not-a-token", "--duration", "300ms", "--concurrency", "2")
	var out bytes.Buffer
	res, err := load(context.Background(), cfg, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	e := res[0].ops[opCreate]
	if e == nil || e.ok != 0 || e.errors[401] == 0 || len(e.errors) != 1 || e.hist.Count() != 0 {
		t.Fatalf("creates with a bad token: %+v, want only 401s counted as errors", e)
	}
	var line string
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(l, "create ") {
			line = l
		}
	}
	if f := strings.Fields(line); len(f) == 0 || f[len(f)-1] != strconv.Itoa(int(e.errors[401])) {
		t.Errorf("the create line %q does not end with the %d errors", line, e.errors[401])
	}
	if len(s.referrals(t)) != 0 {
		t.Error("refused creates stored referrals")
	}
}

// TestLoadBodiesAreDrawnFromTheSeed: the same seed draws the same create bodies (on the same
// day: their dates follow today's), another seed others.
func TestLoadBodiesAreDrawnFromTheSeed(t *testing.T) {
	draw := func(seed uint64) [][]byte {
		l := &loader{cfg: loadConfig{seed: seed}}
		l.drawBodies()
		return l.bodies
	}
	a, b, c := draw(5), draw(5), draw(6)
	if len(a) != 1024 || !slices.EqualFunc(a, b, bytes.Equal) {
		t.Fatalf("seed 5 drew %d bodies, differently the second time", len(a))
	}
	if slices.EqualFunc(a, c, bytes.Equal) {
		t.Error("seeds 5 and 6 drew the same bodies")
	}
}
