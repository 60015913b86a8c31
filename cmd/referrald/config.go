package main

import (
	"errors"
	"flag"
	"fmt"
	"github.com/kela-hva/referrals/api"
	"github.com/kela-hva/referrals/broker"
	"io"
	"strconv"
	"time"
)

// config is everything referrald can be told, by flag or by environment variable.
type config struct {
	addr          string
	dataDir       string
	natsURL       string
	natsListen    string
	natsSync      time.Duration // embedded JetStream fsync interval; 0 = every write
	natsReplicas  int           // the stream's replicas; 0 = the existing stream's (1 for a new one)
	dev           bool
	jwtPublicKey  string
	jwtIssuer     string
	jwtAudience   string
	jwksURL       string
	jwksFile      string
	jwtAlgs       string
	bodyLimit     int64
	tlsCert       string
	tlsKey        string
	tlsClientCA   string
	rateLimit     float64
	rateBurst     int64
	batchDelay    time.Duration
	devClockStart time.Time
	devClockSpeed float64
	shutdownGrace time.Duration
	// deadlinesConfig is the deadline configuration file (JSON, domain.ParseDeadlineConfig);
	// empty means the defaults of DOMAIN §7.
	deadlinesConfig string
	// watchInterval is how often, in real time, the deadline watcher looks for due alerts.
	watchInterval time.Duration
	logLevel      string
	// Keys at rest (keys.go). encryptionKeys is a keyring file, encryptionKeysJSON the keyring
	// itself (REFERRAL_ENCRYPTION_KEYS); clientIndexKey a file of the client index key,
	// clientIndexKeyHex the key itself (REFERRAL_CLIENT_INDEX_KEY). Without --dev one of each
	// is required; with --dev a missing one is created in the data directory.
	encryptionKeys     string
	encryptionKeysJSON string
	clientIndexKey     string
	clientIndexKeyHex  string
	// retention is how long after closure a referral keeps its personal data.
	retention time.Duration
	// debugAddr serves the Go profiler (debug.go); loopback only, empty for none.
	debugAddr string
	// outboxKeep is how long the relay keeps outbox entries JetStream acknowledged
	// (broker.RelayOptions.KeepFor): --outbox-keep if given, else twice natsSync with the
	// embedded server and 0 with an external one. outboxKeepSet says it was given.
	outboxKeep    time.Duration
	outboxKeepSet bool
}

// parseConfig reads flags over environment defaults. Flags win over the environment.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	var c config
	var clockStart string
	var envErrs []error
	envInt := func(name string, def int64) int64 {
		if v := getenv(name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				envErrs = append(envErrs, fmt.Errorf("%s: not a whole number", name))
			}
			return n
		}
		return def
	}
	envFloat := func(name string, def float64) float64 {
		if v := getenv(name); v != "" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				envErrs = append(envErrs, fmt.Errorf("%s: not a number", name))
			}
			return f
		}
		return def
	}
	envDuration := func(name string, def time.Duration) time.Duration {
		if v := getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				envErrs = append(envErrs, fmt.Errorf("%s: not a duration such as 1ms", name))
			}
			return d
		}
		return def
	}
	fs := flag.NewFlagSet("referrald", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.addr, "addr", env("REFERRAL_ADDR", "127.0.0.1:8080"), "HTTP listen address (REFERRAL_ADDR)")
	fs.StringVar(&c.dataDir, "data-dir", env("REFERRAL_DATA_DIR", "./data"), "directory for the bbolt file, keys and the embedded NATS store (REFERRAL_DATA_DIR)")
	fs.StringVar(&c.natsURL, "nats-url", env("NATS_URL", ""), "external NATS server URL; empty runs an embedded server (NATS_URL)")
	fs.StringVar(&c.natsListen, "nats-listen", env("REFERRAL_NATS_LISTEN", "127.0.0.1:4222"), "where the embedded NATS server listens for other clients (REFERRAL_NATS_LISTEN)")
	fs.IntVar(&c.natsReplicas, "nats-replicas", int(envInt("REFERRAL_NATS_REPLICAS", 0)), "servers of a NATS cluster that hold the REFERRALS stream (1, 3 or 5); 0 keeps what an existing stream has and creates a new one with 1 (REFERRAL_NATS_REPLICAS)")
	natsSync := fs.String("nats-sync", env("REFERRAL_NATS_SYNC", "1s"), "embedded NATS only: fsync JetStream writes every DURATION, such as 1s, with the outbox keeping delivered events twice that long so that none is lost on power loss; or \"always\", before each ack (slower) (REFERRAL_NATS_SYNC)")
	outboxKeep := fs.String("outbox-keep", env("REFERRAL_OUTBOX_KEEP", ""), "how long the outbox keeps events JetStream acknowledged, to publish them again after a restart if the server lost them unsynced; default twice --nats-sync with the embedded server, 0 with --nats-url (for a server with sync_interval: always or replicated streams); set it above an external server's sync interval otherwise (REFERRAL_OUTBOX_KEEP)")
	fs.BoolVar(&c.dev, "dev", env("REFERRAL_DEV", "") == "true", "development mode: dev signing key in the data dir, dev clock allowed (REFERRAL_DEV=true)")
	fs.StringVar(&c.jwtPublicKey, "jwt-public-key", env("REFERRAL_JWT_PUBLIC_KEY", ""), "PEM file of public keys (Ed25519, ECDSA or RSA) that sign tokens (REFERRAL_JWT_PUBLIC_KEY); required without --dev")
	fs.StringVar(&c.jwtIssuer, "jwt-issuer", env("REFERRAL_JWT_ISSUER", ""), "required token issuer (REFERRAL_JWT_ISSUER); required without --dev")
	fs.StringVar(&c.jwtAudience, "jwt-audience", env("REFERRAL_JWT_AUDIENCE", "referrals"), "required token audience (REFERRAL_JWT_AUDIENCE)")
	fs.StringVar(&c.jwksURL, "jwks-url", env("REFERRAL_JWKS_URL", ""), "https URL of the identity provider's JSON Web Key Set, refreshed on rotation (REFERRAL_JWKS_URL)")
	fs.StringVar(&c.jwksFile, "jwks-file", env("REFERRAL_JWKS_FILE", ""), "JSON Web Key Set file, re-read when it changes (REFERRAL_JWKS_FILE)")
	fs.StringVar(&c.jwtAlgs, "jwt-algorithms", env("REFERRAL_JWT_ALGORITHMS", "EdDSA"), "comma-separated allowed token algorithms, asymmetric only (REFERRAL_JWT_ALGORITHMS)")
	fs.StringVar(&c.tlsCert, "tls-cert", env("REFERRAL_TLS_CERT", ""), "serve HTTPS with this PEM certificate (REFERRAL_TLS_CERT)")
	fs.StringVar(&c.tlsKey, "tls-key", env("REFERRAL_TLS_KEY", ""), "PEM private key of --tls-cert (REFERRAL_TLS_KEY)")
	fs.StringVar(&c.tlsClientCA, "tls-client-ca", env("REFERRAL_TLS_CLIENT_CA", ""), "require client certificates from this PEM CA (mutual TLS); the certificate must name the token's organisation (REFERRAL_TLS_CLIENT_CA)")
	fs.Int64Var(&c.bodyLimit, "body-limit", envInt("REFERRAL_BODY_LIMIT", 1<<20), "largest request body in bytes (REFERRAL_BODY_LIMIT)")
	fs.Float64Var(&c.rateLimit, "rate-limit", envFloat("REFERRAL_RATE_LIMIT", 200), "requests per second per organisation, 0 for no limit (REFERRAL_RATE_LIMIT)")
	fs.Int64Var(&c.rateBurst, "rate-burst", envInt("REFERRAL_RATE_BURST", 400), "burst of requests per organisation above the rate (REFERRAL_RATE_BURST)")
	fs.DurationVar(&c.batchDelay, "batch-delay", envDuration("REFERRAL_BATCH_DELAY", 0), "group commit: how long an idle store waits for more writes to share a commit; 0 commits at once (under load, writes that arrive during a commit share the next anyway) (REFERRAL_BATCH_DELAY)")
	fs.StringVar(&clockStart, "dev-clock-start", env("REFERRAL_DEV_CLOCK_START", ""), "dev only: the business clock starts at this RFC 3339 time (REFERRAL_DEV_CLOCK_START)")
	fs.Float64Var(&c.devClockSpeed, "dev-clock-speed", envFloat("REFERRAL_DEV_CLOCK_SPEED", 0), "dev only: seconds of business time per real second (REFERRAL_DEV_CLOCK_SPEED)")
	fs.DurationVar(&c.shutdownGrace, "shutdown-grace", 10*time.Second, "how long shutdown waits for requests and the outbox")
	fs.StringVar(&c.deadlinesConfig, "deadlines-config", env("REFERRAL_DEADLINES_CONFIG", ""), "JSON file of deadline rules, eves, warning lead and Kela handoff target; see deadlines.example.json (REFERRAL_DEADLINES_CONFIG)")
	fs.DurationVar(&c.watchInterval, "watch-interval", envDuration("REFERRAL_WATCH_INTERVAL", time.Second), "how often (real time) the deadline watcher fires due warnings and overdue alerts (REFERRAL_WATCH_INTERVAL)")
	fs.StringVar(&c.debugAddr, "debug-addr", env("REFERRAL_DEBUG_ADDR", ""), "serve Go's profiler (/debug/pprof/) on this loopback address, e.g. 127.0.0.1:6060; empty for none (REFERRAL_DEBUG_ADDR)")
	fs.StringVar(&c.logLevel, "log-level", env("REFERRAL_LOG_LEVEL", "info"), "debug, info, warn or error (REFERRAL_LOG_LEVEL)")
	fs.StringVar(&c.encryptionKeys, "encryption-keys", env("REFERRAL_ENCRYPTION_KEYS_FILE", ""), `JSON keyring {"active": "<id>", "keys": {"<id>": "<64 hex>"}} that encrypts client data at rest (REFERRAL_ENCRYPTION_KEYS_FILE, or the JSON itself in REFERRAL_ENCRYPTION_KEYS); required without --dev`)
	c.encryptionKeysJSON = getenv("REFERRAL_ENCRYPTION_KEYS")
	fs.StringVar(&c.clientIndexKey, "client-index-key", env("REFERRAL_CLIENT_INDEX_KEY_FILE", ""), "file of the client search index key, 64 hex digits (REFERRAL_CLIENT_INDEX_KEY_FILE, or the hex itself in REFERRAL_CLIENT_INDEX_KEY); required without --dev; never change it without reindexing")
	c.clientIndexKeyHex = getenv("REFERRAL_CLIENT_INDEX_KEY")
	retention := env("REFERRAL_RETENTION", "730d") // store.DefaultRetention
	fs.StringVar(&retention, "retention", retention, "how long after closure a referral keeps its personal data, in days (730d) or as a duration (REFERRAL_RETENTION)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if len(envErrs) > 0 {
		return c, errors.Join(envErrs...)
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if *natsSync != "always" {
		d, err := time.ParseDuration(*natsSync)
		if err != nil || d <= 0 {
			return c, fmt.Errorf("--nats-sync %q: want \"always\" or a positive duration such as 1s", *natsSync)
		}
		c.natsSync = d
	}
	if err := outboxKeepConfig(&c, *outboxKeep); err != nil {
		return c, err
	}
	if c.natsReplicas < 0 || c.natsReplicas > 5 || c.natsReplicas%2 == 0 && c.natsReplicas != 0 {
		// An even count adds a server without adding a failure the stream survives.
		return c, fmt.Errorf("--nats-replicas %d: want 1, 3 or 5, or 0 to keep the stream's", c.natsReplicas)
	}
	if clockStart != "" {
		t, err := time.Parse(time.RFC3339, clockStart)
		if err != nil {
			return c, fmt.Errorf("--dev-clock-start: want an RFC 3339 time such as 2026-11-23T08:00:00+02:00: %w", err)
		}
		c.devClockStart = t
	}
	if !c.dev && (clockStart != "" || c.devClockSpeed != 0) {
		return c, errors.New("--dev-clock-start and --dev-clock-speed are only allowed with --dev")
	}
	if c.devClockSpeed < 0 {
		return c, errors.New("--dev-clock-speed must be positive")
	}
	if !c.dev && (c.jwtPublicKey == "" && c.jwksURL == "" && c.jwksFile == "" || c.jwtIssuer == "") {
		return c, errors.New("without --dev, --jwt-issuer and one of --jwt-public-key, --jwks-file or --jwks-url are required (refusing to start without token verification keys)")
	}
	if !c.dev && c.jwtIssuer == api.DevIssuer {
		return c, errors.New("--jwt-issuer " + api.DevIssuer + " is the dev issuer: dev tokens are refused outside --dev")
	}
	if n := btoi(c.jwtPublicKey != "") + btoi(c.jwksURL != "") + btoi(c.jwksFile != ""); n > 1 {
		return c, errors.New("give only one of --jwt-public-key, --jwks-file and --jwks-url")
	}
	if (c.tlsCert == "") != (c.tlsKey == "") || (c.tlsClientCA != "" && c.tlsCert == "") {
		return c, errors.New("--tls-cert and --tls-key go together, and --tls-client-ca needs them")
	}
	if c.rateLimit < 0 || c.rateBurst < 1 {
		return c, errors.New("--rate-limit must be 0 or more and --rate-burst at least 1")
	}
	if c.bodyLimit <= 0 {
		return c, errors.New("--body-limit must be positive")
	}
	if c.watchInterval <= 0 {
		return c, errors.New("--watch-interval must be positive")
	}
	if c.debugAddr != "" {
		if err := checkLoopback(c.debugAddr); err != nil { // debug.go
			return c, fmt.Errorf("--debug-addr: %w", err)
		}
	}
	if err := checkKeyConfig(&c, retention); err != nil { // keys.go
		return c, err
	}
	return c, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// outboxKeepConfig sets c.outboxKeep from --outbox-keep (raw, "" when not given) or from the
// NATS settings, and refuses a value the stream's duplicate window cannot cover
// (broker.CheckKeepFor).
func outboxKeepConfig(c *config, raw string) error {
	window := fmt.Sprintf("more than half the stream's %s duplicate window (events published again after a restart could be stored twice)",
		broker.DefaultDuplicates)
	if raw != "" {
		d, err := time.ParseDuration(raw)
		if err != nil || d < 0 {
			return fmt.Errorf("--outbox-keep %q: want a duration of 0 or more, such as 2s", raw)
		}
		c.outboxKeep, c.outboxKeepSet = d, true
		if broker.CheckKeepFor(d, 0) != nil {
			return fmt.Errorf("--outbox-keep %s: %s", d, window)
		}
		return nil
	}
	if c.natsURL != "" {
		return nil // the server's fsync policy is unknown here: see --outbox-keep
	}
	c.outboxKeep = broker.KeepForSync(c.natsSync)
	if broker.CheckKeepFor(c.outboxKeep, 0) != nil {
		return fmt.Errorf("--nats-sync %s: the outbox would keep delivered events for %s (twice the interval), %s; "+
			"use an interval of at most %s or \"always\", or set --outbox-keep", c.natsSync, c.outboxKeep, window, broker.DefaultDuplicates/4)
	}
	return nil
}
