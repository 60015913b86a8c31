package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/kela-hva/referrals/domain"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metric names. Every label value comes from a closed set (kinds, urgencies, organisation
// ids, route templates, methods, status codes): never a referral id, a raw URL or personal
// data.
const (
	MetricTimeToAcknowledge = "referrals_time_to_acknowledge_business_seconds"
	MetricTimeToRespond     = "referrals_time_to_first_response_business_seconds"
	MetricDeadlineEvents    = "referrals_deadline_events_published_total"
	MetricDeadlineAlerts    = "referrals_deadline_alerts_total"
	MetricOutboxBacklog     = "referrals_outbox_backlog_events"
	MetricOutboxKept        = "referrals_outbox_kept_events"
	MetricRelayLag          = "referrals_relay_lag_seconds"
	MetricRelayLastSuccess  = "referrals_relay_last_success_timestamp_seconds"
	MetricRelayHealthy      = "referrals_relay_healthy"
	MetricRelayPublished    = "referrals_relay_published_events_total"
	MetricRelayFailures     = "referrals_relay_failures_total"
	MetricStatsRepairs      = "referrals_report_aggregate_repairs_total"
	MetricHTTPRequests      = "referrals_http_requests_total"
	MetricStoreCommits      = "referrals_store_commits_total"
	MetricStoreWrites       = "referrals_store_writes_total"
	MetricStorePages        = "referrals_store_pages_written_total"
	MetricAuditPending      = "referrals_audit_index_pending_entries"
	MetricStoreFreePages    = "referrals_store_free_pages"
	MetricHTTPDuration      = "referrals_http_request_duration_seconds"
	MetricCommitDuration    = "referrals_store_commit_duration_seconds"
	MetricCommitDisk        = "referrals_store_commit_disk_seconds"
)

// commitBuckets are the buckets of the commit histograms, in seconds: from half a millisecond
// (one small commit on a fast disk) to two seconds (a disk in trouble).
var commitBuckets = []float64{0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1, 2}

// businessBuckets are the histogram buckets of response times, in business seconds: from a
// quarter of an hour to 30 business days (a business day is 24 business hours).
var businessBuckets = []float64{
	15 * 60, 30 * 60, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 12 * 3600,
	86400, 2 * 86400, 3 * 86400, 5 * 86400, 7 * 86400, 10 * 86400, 14 * 86400, 30 * 86400,
}

// Metrics is the service's Prometheus registry, its own (the global default registry is never
// touched, so tests can make as many as they like). It observes response times when
// milestones commit (store.StatsObserver), counts deadline alerts as they commit
// (store.AlertObserver) and their events as the relay publishes them
// (broker.RelayOptions.OnPublished), reads the outbox and relay at scrape time, and measures
// HTTP requests by route template. Safe for concurrent use.
type Metrics struct {
	reg            *prometheus.Registry
	ack, respond   *prometheus.HistogramVec
	deadlineEvents *prometheus.CounterVec
	deadlineAlerts *prometheus.CounterVec
	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	commit, disk   prometheus.Histogram
}

// NewMetrics returns metrics on a new registry that also holds the Go runtime and process
// collectors.
func NewMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	labels := []string{"kind", "urgency", "organisation"}
	m.ack = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    MetricTimeToAcknowledge,
		Help:    "Business time from a referral's creation to its acknowledgement, observed when it is acknowledged; organisation is the recipient.",
		Buckets: businessBuckets,
	}, labels)
	m.respond = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    MetricTimeToRespond,
		Help:    "Business time from a referral's creation to the recipient's first response (anything but acknowledging), observed when it happens; organisation is the recipient.",
		Buckets: businessBuckets,
	}, labels)
	deadlineLabels := []string{"event", "deadline", "kind", "urgency", "organisation"} // countDeadlineEvent
	m.deadlineEvents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricDeadlineEvents,
		Help: "deadline_warning and overdue events acknowledged by JetStream (at least once: an event re-sent after a failed outbox delete counts again); organisation is the recipient.",
	}, deadlineLabels)
	m.deadlineAlerts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricDeadlineAlerts,
		Help: "deadline_warning and overdue alerts fired, each once, counted when the watcher commits them (NATS up or not); organisation is the recipient.",
	}, deadlineLabels)
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricHTTPRequests,
		Help: "HTTP requests by method, route template and status.",
	}, []string{"method", "route", "status"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    MetricHTTPDuration,
		Help:    "HTTP request duration by method, route template and status.",
		Buckets: prometheus.DefBuckets,
	}, []string{"method", "route", "status"})
	m.commit = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    MetricCommitDuration,
		Help:    "Group commits of the data file, from the start of the transaction (including any wait for bbolt's write lock) until it is durable; a write normally waits for the commit in progress and its own.",
		Buckets: commitBuckets,
	})
	m.disk = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    MetricCommitDisk,
		Help:    "Of each group commit, the time spent writing and fsyncing its pages and meta page: the disk's share (the rest is the writes' own work, in one goroutine).",
		Buckets: commitBuckets,
	})
	m.reg.MustRegister(m.ack, m.respond, m.deadlineEvents, m.deadlineAlerts, m.requests, m.duration, m.commit, m.disk,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry returns the registry, for extra collectors and for tests.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// ObserveMilestones observes the acknowledgements and first responses a commit recorded. It
// implements store.StatsObserver.
func (m *Metrics) ObserveMilestones(deltas []domain.ReportDelta) {
	for i := range deltas {
		d := &deltas[i]
		lv := []string{kindLabel(d.Cell.Kind), urgencyLabel(d.Cell.Urgency), orgLabel(d.Cell.Recipient)}
		if d.HasObserved[domain.DurAcknowledge] {
			m.ack.WithLabelValues(lv...).Observe(d.Observed[domain.DurAcknowledge].Seconds())
		}
		if d.HasObserved[domain.DurFirstResponse] {
			m.respond.WithLabelValues(lv...).Observe(d.Observed[domain.DurFirstResponse].Seconds())
		}
	}
}

// EventPublished counts a deadline_warning or overdue event JetStream acknowledged; other
// events are ignored. Meant for broker.RelayOptions.OnPublished.
func (m *Metrics) EventPublished(e domain.Event) { countDeadlineEvent(m.deadlineEvents, e) }

// ObserveAlerts counts the alerts a commit fired. It implements store.AlertObserver.
func (m *Metrics) ObserveAlerts(events []domain.Event) {
	for _, e := range events {
		countDeadlineEvent(m.deadlineAlerts, e)
	}
}

// ObserveCommit observes a group commit's duration and its disk share. It implements
// store.CommitObserver.
func (m *Metrics) ObserveCommit(_ int, took, disk time.Duration) {
	m.commit.Observe(took.Seconds())
	m.disk.Observe(disk.Seconds())
}

// countDeadlineEvent adds e to c if it is a deadline_warning or overdue event.
func countDeadlineEvent(c *prometheus.CounterVec, e domain.Event) {
	if e.Type != domain.EventDeadlineWarning && e.Type != domain.EventOverdue {
		return
	}
	deadline := "other"
	switch e.DeadlineName {
	case "acknowledge_by", "respond_by", "kela_handoff_by":
		deadline = e.DeadlineName
	}
	c.WithLabelValues(string(e.Type), deadline, kindLabel(e.Kind), urgencyLabel(e.Urgency), orgLabel(e.Recipient)).Inc()
}

// RelayHealth is what the metrics read of the outbox relay (broker.RelayStatus).
type RelayHealth struct {
	Healthy     bool
	LastSuccess time.Time // real time; zero before the first publish
	Published   uint64
	Failures    uint64
}

// OutboxProbe reads the outbox and relay when Prometheus scrapes.
type OutboxProbe struct {
	// Backlog returns the number of undelivered events.
	Backlog func() (int, error)
	// Kept returns the number of delivered events the outbox keeps until the stream has
	// surely synced them (broker.RelayOptions.KeepFor); nil leaves out the gauge.
	Kept func() (int, error)
	// Oldest returns the time of the oldest undelivered event (business clock), and false if
	// there is none.
	Oldest func() (time.Time, bool, error)
	// Now is the business clock the event times come from.
	Now func() time.Time
	// Relay returns the relay's health; nil leaves out the relay metrics.
	Relay func() RelayHealth
}

// WatchOutbox registers the outbox and relay gauges: the backlog, the delivered events kept,
// the relay lag (age of the oldest undelivered event on the business clock, 0 when there is
// none) and the relay's health. A probe that fails reports -1 for that scrape. Returns an error if called twice.
func (m *Metrics) WatchOutbox(p OutboxProbe) error {
	cs := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: MetricOutboxBacklog,
			Help: "Events committed to the outbox and not yet acknowledged by JetStream."},
			func() float64 {
				n, err := p.Backlog()
				if err != nil {
					return -1
				}
				return float64(n)
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: MetricRelayLag,
			Help: "Age of the oldest event waiting in the outbox, on the service's business clock (real time outside --dev); 0 when the outbox is empty."},
			func() float64 {
				t, ok, err := p.Oldest()
				if err != nil {
					return -1
				}
				if !ok {
					return 0
				}
				return max(p.Now().Sub(t).Seconds(), 0)
			}),
	}
	if p.Kept != nil {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: MetricOutboxKept,
			Help: "Events JetStream acknowledged that stay in the outbox until the stream has surely written them to disk (--outbox-keep); published again, and dropped as duplicates, after a restart. Not part of the backlog."},
			func() float64 {
				n, err := p.Kept()
				if err != nil {
					return -1
				}
				return float64(n)
			}))
	}
	if p.Relay != nil {
		cs = append(cs,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: MetricRelayLastSuccess,
				Help: "Unix time (real clock) when JetStream last acknowledged an event; 0 before the first."},
				func() float64 {
					if t := p.Relay().LastSuccess; !t.IsZero() {
						return float64(t.UnixNano()) / 1e9
					}
					return 0
				}),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: MetricRelayHealthy,
				Help: "1 while the relay delivers, 0 after a failed delivery attempt until the next success."},
				func() float64 {
					if p.Relay().Healthy {
						return 1
					}
					return 0
				}),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: MetricRelayPublished,
				Help: "Events acknowledged by JetStream since start."},
				func() float64 { return float64(p.Relay().Published) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: MetricRelayFailures,
				Help: "Failed delivery attempts of the relay since start."},
				func() float64 { return float64(p.Relay().Failures) }),
		)
	}
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// WatchAggregates registers the count of report aggregate repairs (store.DB
// StatsInconsistencies): it should stay 0. Returns an error if called twice.
func (m *Metrics) WatchAggregates(repairs func() uint64) error {
	return m.reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: MetricStatsRepairs,
		Help: "Times a report aggregate would have gone below zero and was held at zero (a change the aggregates did not see); should be 0."},
		func() float64 { return float64(repairs()) }))
}

// StoreCounters are the store's group-commit counters (store.DB.CommitStats).
type StoreCounters struct {
	Commits, Writes, Pages uint64
	// AuditPending is how many access-log entries wait to be indexed under their referrals.
	AuditPending int
	// FreePages is how many pages of the data file are free (their list is rewritten with
	// every commit).
	FreePages int
}

// WatchStore registers the group-commit counters read from stats at scrape time: committed
// transactions, the writes (commands, access-log appends, outbox deletes) they carried, and
// the pages written. writes/commits is the batch size, pages/writes the write cost. Returns an
// error if called twice.
func (m *Metrics) WatchStore(stats func() StoreCounters) error {
	for _, c := range []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: MetricStoreCommits,
			Help: "Write transactions committed (each one durable commit of the data file: bbolt fsyncs its pages, then its meta page) since start."},
			func() float64 { return float64(stats().Commits) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: MetricStoreWrites,
			Help: "Writes committed since start; divided by the commits, the group-commit batch size."},
			func() float64 { return float64(stats().Writes) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: MetricStorePages,
			Help: "Page writes to the data file since start (all transactions; a value spanning several pages is one)."},
			func() float64 { return float64(stats().Pages) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: MetricStoreFreePages,
			Help: "Free pages in the data file; bbolt rewrites their list with every commit, so tens of thousands slow every write: compact the file (referralctl compact) in a maintenance window."},
			func() float64 { return float64(stats().FreePages) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: MetricAuditPending,
			Help: "Access-log entries of list pages not yet indexed under their referrals; stays near 0 unless the indexer falls behind."},
			func() float64 { return float64(stats().AuditPending) }),
	} {
		if err := m.reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// httpMetrics counts and times every request by method, route template (c.Path(), never the
// URL) and final status. It sits outside accessLog, which has already rendered any error.
func httpMetrics(m *Metrics) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			if err := next(c); err != nil {
				c.Error(err)
			}
			route := c.Path()
			if route == "" {
				route = "unmatched"
			}
			lv := []string{methodLabel(c.Request().Method), route, strconv.Itoa(c.Response().Status)}
			m.requests.WithLabelValues(lv...).Inc()
			m.duration.WithLabelValues(lv...).Observe(time.Since(start).Seconds())
			return nil
		}
	}
}

func handleMetrics(m *Metrics) echo.HandlerFunc { return echo.WrapHandler(m.Handler()) }

func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER"
}

func kindLabel(k domain.Kind) string {
	if k.Valid() {
		return string(k)
	}
	return "unknown"
}

func urgencyLabel(u domain.Urgency) string {
	if u.Valid() {
		return string(u)
	}
	return "unknown"
}

func orgLabel(o domain.OrgID) string {
	if o.IsKela() || o.IsCounty() {
		return string(o)
	}
	return "unknown"
}
