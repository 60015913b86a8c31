package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kela-hva/referrals/api"
	"github.com/kela-hva/referrals/broker"
	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/domain/calendar"
	"github.com/kela-hva/referrals/internal/datadir"
	"github.com/kela-hva/referrals/openapi"
	"github.com/kela-hva/referrals/store"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// run starts the service and blocks until ctx is cancelled, then shuts down gracefully: stop
// accepting, finish requests, flush the outbox while NATS is up, close NATS and bbolt.
// The metrics hear the store's commits: milestones, fired alerts and commit durations
// (store.Options.Observer; the store finds the last two by type assertion).
var _ interface {
	store.AlertObserver
	store.CommitObserver
} = (*api.Metrics)(nil)

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.logLevel)
	deadlines, err := loadDeadlineConfig(cfg.deadlinesConfig) // watch.go
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.dataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}

	keyring, err := encryptionKeyring(cfg) // keys.go
	if err != nil {
		return err
	}
	// Kubernetes mounts secrets 0644 unless told otherwise: warn rather than refuse.
	for _, f := range readableByOthers(cfg.encryptionKeys, cfg.clientIndexKey, cfg.tlsKey, filepath.Join(cfg.dataDir, datadir.CursorKeyFile)) {
		log.Warn("key file is readable by other users than the service's: make it 0600 (or 0400)", "file", f)
	}
	metrics := api.NewMetrics() // metrics.go; the store tells it the milestones and alerts it commits
	db, err := store.Open(filepath.Join(cfg.dataDir, datadir.DBFile), store.Options{MaxBatchDelay: cfg.batchDelay, Keys: keyring,
		Calendar: calendar.New(calendar.Options{CountEvesAsBusinessDays: deadlines.CountEvesAsBusinessDays}), Observer: metrics})
	if err != nil {
		return err
	}
	if f := db.AuditItemsSetAside(); f != "" {
		log.Warn("audit items file unreadable, set aside and rebuilt from the log", "file", f)
	}
	if d := db.AuditItemsRebuilt(); d > 0 {
		log.Info("audit items rebuilt", "took", d.Round(time.Millisecond).String())
	}
	if n, d := db.LegacyIndexDropped(); n > 0 {
		log.Info("old organisation index entries deleted (once, after the upgrade; run referralctl compact once, service stopped, to drop the pages they leave free)", "entries", n, "took", d.Round(time.Millisecond).String())
	}
	defer func() {
		if err := db.Close(); err != nil {
			log.Error("close store", "err", err)
		}
	}()

	indexKey, err := clientIndexKey(cfg) // keys.go
	if err != nil {
		return err
	}
	if err := db.CheckClientIndexKey(datadir.ClientIndexKeyFingerprint(indexKey)); err != nil {
		return err
	}
	cursorKey, err := datadir.LoadOrCreateSecret(cfg.dataDir, datadir.CursorKeyFile)
	if err != nil {
		return err
	}
	registry := domain.DefaultRegistry()
	auth, err := authenticator(ctx, cfg, registry)
	if err != nil {
		return err
	}
	clock := businessClock(cfg, time.Now)
	svc := &domain.Service{
		Store: db, Registry: registry, Clock: clock,
		Policy:    deadlines.Policy(calendar.New(calendar.Options{CountEvesAsBusinessDays: deadlines.CountEvesAsBusinessDays})),
		ClientKey: datadir.ClientKey(indexKey),
	}

	// NATS: external when NATS_URL is set, else embedded with JetStream under the data dir.
	var ns *server.Server
	if cfg.natsURL == "" {
		host, port, err := splitHostPort(cfg.natsListen)
		if err != nil {
			return fmt.Errorf("--nats-listen: %w", err)
		}
		ns, err = broker.StartEmbedded(broker.EmbeddedOptions{StoreDir: filepath.Join(cfg.dataDir, "nats"), Host: host, Port: port, SyncInterval: cfg.natsSync})
		if err != nil {
			return err
		}
		defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
		log.Info("embedded nats listening", "url", ns.ClientURL(), "sync", syncSetting(cfg.natsSync))
	}
	nc, err := broker.Connect(cfg.natsURL, ns, "referrald")
	if err != nil && ns != nil {
		return err
	}
	if err != nil {
		// An external NATS that is down at start must not stop the service: the outbox keeps
		// events until it is back. Retry the connection in the background.
		log.Warn("nats not reachable at start, retrying in the background", "err", err)
		nc, err = nats.Connect(cfg.natsURL, nats.Name("referrald"), nats.MaxReconnects(-1),
			nats.RetryOnFailedConnect(true), nats.ReconnectWait(time.Second), nats.ReconnectBufSize(-1)) // as broker.Connect
		if err != nil {
			return fmt.Errorf("nats: %w", err)
		}
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(5*time.Second))
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	relay := broker.NewRelay(db, js, broker.RelayOptions{Source: "/referrals", Logger: log, OnPublished: metrics.EventPublished,
		KeepFor: cfg.outboxKeep})
	logOutboxKeep(log, cfg)
	if err := watchMetrics(metrics, db, relay, clock); err != nil { // metrics.go
		return err
	}

	spec, err := openapi.Load()
	if err != nil {
		return err
	}
	validator, err := openapi.NewValidator(spec)
	if err != nil {
		return err
	}
	handler := api.NewServer(api.Deps{
		Service: svc, Auth: auth, Validator: validator, Logger: log, Audit: log.With("log", "audit"),
		Spec: openapi.YAML(), Registry: registry, BodyLimit: cfg.bodyLimit, CursorKey: cursorKey, Metrics: metrics,
		RateLimit:         api.RateLimit{PerSecond: cfg.rateLimit, Burst: int(cfg.rateBurst)},
		RequireClientCert: cfg.tlsClientCA != "",
		Ready:             readiness(nc, relay),
		Backup:            db.Backup,
	})
	srv := &http.Server{
		Handler: handler, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if srv.TLSConfig, err = tlsConfig(cfg); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.addr, err)
	}
	if srv.TLSConfig != nil {
		ln = tls.NewListener(ln, srv.TLSConfig)
	}

	relayCtx, stopRelay := context.WithCancel(context.WithoutCancel(ctx))
	if err := serveDebug(relayCtx, cfg.debugAddr, log); err != nil { // debug.go
		stopRelay()
		ln.Close()
		return err
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		ensureStream(relayCtx, js, cfg.natsReplicas, log)
		_ = relay.Run(relayCtx)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		runWatcher(relayCtx, svc, clock, cfg.watchInterval, log) // watch.go
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		runRetention(relayCtx, db, clock, cfg.retention, retentionInterval, log)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		runAuditIndexer(relayCtx, db, auditIndexInterval, log)
	}()
	serveErr := make(chan error, 1)
	go func() {
		defer wg.Done()
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			serveErr <- err
		}
	}()
	log.Info("listening", "addr", ln.Addr().String(), "dev", cfg.dev, "data_dir", cfg.dataDir, "business_time", clock.Now().Format(time.RFC3339))

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		stopRelay()
		wg.Wait()
		return fmt.Errorf("http: %w", err)
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	stopRelay()
	wg.Wait()
	if nc.IsConnected() {
		if err := relay.Flush(shutdownCtx); err != nil {
			log.Warn("outbox not fully flushed; it is delivered at the next start", "err", err)
		}
	}
	log.Info("stopped")
	return nil
}

// tlsConfig returns the server's TLS settings, or nil to serve plain HTTP (behind a TLS
// terminating proxy or in development). With a client CA, client certificates are required.
func tlsConfig(cfg config) (*tls.Config, error) {
	if cfg.tlsCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.tlsCert, cfg.tlsKey)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if cfg.tlsClientCA != "" {
		pem, err := os.ReadFile(cfg.tlsClientCA)
		if err != nil {
			return nil, fmt.Errorf("--tls-client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-client-ca %s: no PEM certificate", cfg.tlsClientCA)
		}
		tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// retentionInterval is how often, in real time, the retention job runs. The job is meant to
// run daily; running it hourly keeps up with a fast dev clock and costs one index seek when
// there is nothing to erase.
const retentionInterval = time.Hour

// auditIndexInterval is how often the list pages' access-log entries are indexed under their
// referrals (store.IndexAuditItems). Queries see pending entries anyway; the index keeps them
// cheap.
const auditIndexInterval = 250 * time.Millisecond

// runAuditIndexer indexes pending access-log entries every interval until ctx is done, at
// once again while a pass finds a full batch. The keys go to the store's items file, whose
// commits never hold up a request's; a batch of auditIndexBatch entries (each up to 200
// keys) keeps one transaction's memory small.
func runAuditIndexer(ctx context.Context, db *store.DB, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := db.IndexAuditItems(ctx, auditIndexBatch)
		if err != nil && ctx.Err() == nil {
			log.Error("audit index", "err", err)
		}
		if n == auditIndexBatch {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

const auditIndexBatch = 256

// runRetention erases the personal data of referrals closed longer ago than retention, by the
// business clock, at start and then every interval until ctx is done (store.EraseClosedBefore
// logs each erasure in the access log). Each run also logs the access log's head: recorded
// outside the store, it is the anchor that `referralctl audit verify --anchor` checks a
// rewritten chain against. The log lines hold counts and hashes only.
func runRetention(ctx context.Context, db *store.DB, clock domain.Clock, retention, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		now := clock.Now()
		res, err := db.EraseClosedBefore(ctx, now.Add(-retention), now, false)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Error("retention", "err", err)
		case res.Erased > 0 || res.Backfilled > 0:
			log.Info("retention", "erased_referrals", res.Erased, "erased_messages", res.Messages, "backfilled", res.Backfilled)
		}
		if head, err := db.AuditHead(); err == nil {
			log.Info("audit head", "seq", head.Seq, "hash", head.Hash)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ensureStream creates the REFERRALS stream, retrying with backoff until NATS answers.
func ensureStream(ctx context.Context, js jetstream.JetStream, replicas int, log *slog.Logger) {
	wait := 100 * time.Millisecond
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := broker.EnsureStream(cctx, js, broker.StreamOptions{Replicas: replicas})
		cancel()
		if err == nil || ctx.Err() != nil {
			return
		}
		log.Warn("ensure stream failed, retrying", "err", err, "retry_in", wait.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(wait*2, 10*time.Second)
	}
}

func authenticator(ctx context.Context, cfg config, reg *domain.Registry) (*api.Authenticator, error) {
	ac := api.AuthConfig{Issuer: cfg.jwtIssuer, Audience: cfg.jwtAudience, Leeway: api.DefaultLeeway,
		Algorithms: strings.Split(cfg.jwtAlgs, ",")}
	var err error
	switch {
	case cfg.jwksURL != "":
		ac.JWKS, err = api.JWKSFromURL(ctx, cfg.jwksURL, time.Hour)
	case cfg.jwksFile != "":
		ac.JWKS, err = api.JWKSFromFile(cfg.jwksFile)
	case cfg.jwtPublicKey != "":
		ac.Keys, err = api.ReadPublicKeys(cfg.jwtPublicKey)
	}
	if err != nil {
		return nil, err
	}
	if cfg.dev {
		// Dev tokens (referralctl token) are signed with the key in the data dir; they are
		// accepted only in --dev, where the issuer defaults to the dev issuer.
		priv, err := api.LoadOrCreateDevKey(cfg.dataDir)
		if err != nil {
			return nil, err
		}
		if ac.JWKS == nil {
			ac.Keys = append(ac.Keys, priv.Public())
			if !slices.Contains(ac.Algorithms, "EdDSA") {
				ac.Algorithms = append(ac.Algorithms, "EdDSA")
			}
		}
		if ac.Issuer == "" {
			ac.Issuer = api.DevIssuer
		}
	}
	return api.NewAuthenticator(ac, reg)
}

// readiness reports the store, the NATS connection and the outbox relay. outbox_backlog counts
// the events waiting for JetStream; outbox_kept the delivered ones the outbox keeps for
// --outbox-keep.
func readiness(nc *nats.Conn, relay *broker.Relay) api.Readiness {
	return func(ctx context.Context) (string, map[string]string) {
		checks := map[string]string{}
		if waiting, kept, err := relay.Backlog(); err != nil {
			checks["store"] = "error"
			return api.Unavailable, checks
		} else {
			checks["store"] = "ok"
			checks["outbox_backlog"] = strconv.Itoa(waiting)
			checks["outbox_kept"] = strconv.Itoa(kept)
		}
		status := api.Ready
		if nc.IsConnected() {
			checks["nats"] = "ok"
		} else {
			checks["nats"], status = "disconnected", api.Degraded
		}
		if st := relay.Status(); st.Healthy {
			checks["relay"] = "ok"
		} else {
			checks["relay"], status = "failing: events wait in the outbox", api.Degraded
		}
		return status, checks
	}
}

// logOutboxKeep logs how long the outbox keeps delivered events, and warns when that is
// shorter than the embedded server needs to have synced them.
func logOutboxKeep(log *slog.Logger, cfg config) {
	log.Info("outbox relay", "keep", cfg.outboxKeep.String(), "keep_set", cfg.outboxKeepSet)
	if cfg.natsURL == "" && cfg.outboxKeep < broker.KeepForSync(cfg.natsSync) {
		log.Warn("--outbox-keep is shorter than twice --nats-sync: events acknowledged shortly before a power loss can be lost",
			"keep", cfg.outboxKeep.String(), "nats_sync", syncSetting(cfg.natsSync))
	}
}

// syncSetting describes the embedded JetStream fsync setting for the log.
func syncSetting(interval time.Duration) string {
	if interval <= 0 {
		return "always"
	}
	return interval.String()
}

func splitHostPort(hostport string) (string, int, error) {
	host, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	if port == 0 {
		port = -1 // random free port
	}
	return host, port, nil
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}
