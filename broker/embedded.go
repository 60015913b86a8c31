package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// EmbeddedOptions configures an in-process NATS server with JetStream.
type EmbeddedOptions struct {
	// StoreDir is where JetStream keeps its files; required. Reusing the directory after a
	// restart keeps the stream and its messages.
	StoreDir string
	// Host to listen on; "" means 127.0.0.1.
	Host string
	// Port to listen on: -1 picks a random free port, 0 means the NATS default 4222.
	Port int
	// Logger receives the server's log; nil keeps the server silent.
	Logger *slog.Logger
	// SyncInterval is how often JetStream fsyncs its files. Zero, the default, fsyncs every
	// write before the publish is acknowledged (nats-server's "sync_interval: always"), so an
	// event the relay saw acknowledged, and therefore deleted from the outbox, survives a power
	// loss. A positive interval is much faster, but anything acknowledged within the last
	// interval or so can be lost on power loss (nats-server's own default is 2 minutes): pair
	// it with a relay that keeps acknowledged entries for KeepForSync(SyncInterval), which
	// restores the guarantee.
	SyncInterval time.Duration
}

// KeepForSync returns the RelayOptions.KeepFor that makes a server fsyncing every interval as
// safe as one fsyncing every write: twice the interval. nats-server's flusher syncs the
// stream's files, then waits interval before the next sync, so a message can wait for its
// fsync a full interval plus the time of the sync in progress and of its own; the second
// interval covers that while a sync takes less than half the interval (on a disk whose syncs
// take longer, keep longer). It returns 0 for interval <= 0 (every write is synced).
func KeepForSync(interval time.Duration) time.Duration {
	return 2 * max(interval, 0)
}

// readyTimeout bounds how long StartEmbedded waits for the server to accept connections.
const readyTimeout = 10 * time.Second

// StartEmbedded starts a NATS server with JetStream enabled inside this process and waits until
// it accepts connections. The caller stops it with Shutdown (and WaitForShutdown).
//
// It returns an error, and leaves nothing running, if the options are invalid, the port cannot
// be bound (e.g. it is taken), JetStream cannot start (e.g. the store directory is unusable or
// locked by another server) or the server is not ready within 10 seconds.
func StartEmbedded(opts EmbeddedOptions) (*server.Server, error) {
	if opts.StoreDir == "" {
		return nil, errors.New("broker: start embedded nats: StoreDir is required")
	}
	host := opts.Host
	if host == "" {
		host = "127.0.0.1"
	}
	ns, err := server.NewServer(&server.Options{
		ServerName: "referrals-embedded",
		Host:       host,
		Port:       opts.Port,
		JetStream:  true,
		StoreDir:   opts.StoreDir,
		NoLog:      true,
		NoSigs:     true, // the program owns signal handling
		// One of the two is set: SyncAlways wins over SyncInterval in the server.
		SyncAlways:   opts.SyncInterval <= 0,
		SyncInterval: max(opts.SyncInterval, 0),
	})
	if err != nil {
		return nil, fmt.Errorf("broker: start embedded nats: %w", err)
	}
	sl := &serverLog{log: opts.Logger}
	debug := opts.Logger != nil && opts.Logger.Enabled(context.Background(), slog.LevelDebug)
	ns.SetLogger(sl, debug, false)

	// Start returns once the listener is up in this version, but run it in the background
	// anyway so a future blocking Start cannot hang us; failures surface through Fatalf.
	go ns.Start()

	fail := func(err error) (*server.Server, error) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("broker: start embedded nats on %s:%d: %w", host, opts.Port, err)
	}
	deadline := time.Now().Add(readyTimeout)
	for {
		if err := sl.fatal(); err != nil {
			return fail(err)
		}
		if ns.ReadyForConnections(50 * time.Millisecond) {
			break
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("not ready for connections after %s", readyTimeout))
		}
	}
	if err := sl.fatal(); err != nil {
		return fail(err)
	}
	if !ns.JetStreamEnabled() {
		return fail(errors.New("jetstream is not enabled"))
	}
	return ns, nil
}

// Connect connects to NATS: to the in-process server ns without a socket when ns is not nil,
// otherwise to url (e.g. "nats://127.0.0.1:4222"). The connection reconnects forever with
// jittered waits; name identifies the client in the server's monitoring. It returns an error if
// the first connection attempt fails.
func Connect(url string, ns *server.Server, name string) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
		// No reconnect buffer: a publish while disconnected fails at once and the relay
		// retries it in outbox order. Buffered, it would go out right after a reconnect,
		// possibly ahead of an earlier event of its referral that the relay republishes
		// because the server lost it.
		nats.ReconnectBufSize(-1),
	}
	if ns != nil {
		opts = append(opts, nats.InProcessServer(ns))
		if url == "" {
			url = ns.ClientURL()
		}
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("broker: connect to nats %s: %w", url, err)
	}
	return nc, nil
}

// serverLog adapts the server's logger to slog and remembers the first fatal error, which the
// server reports only through its logger.
type serverLog struct {
	log *slog.Logger

	mu  sync.Mutex
	err error
}

func (l *serverLog) fatal() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

func (l *serverLog) emit(level slog.Level, format string, v []any) {
	if l.log != nil {
		l.log.Log(context.Background(), level, "nats: "+fmt.Sprintf(format, v...))
	}
}

func (l *serverLog) Fatalf(format string, v ...any) {
	l.mu.Lock()
	if l.err == nil {
		l.err = fmt.Errorf(format, v...)
	}
	l.mu.Unlock()
	l.emit(slog.LevelError, format, v)
}

func (l *serverLog) Noticef(format string, v ...any) { l.emit(slog.LevelInfo, format, v) }
func (l *serverLog) Warnf(format string, v ...any)   { l.emit(slog.LevelWarn, format, v) }
func (l *serverLog) Errorf(format string, v ...any)  { l.emit(slog.LevelError, format, v) }
func (l *serverLog) Debugf(format string, v ...any)  { l.emit(slog.LevelDebug, format, v) }
func (l *serverLog) Tracef(format string, v ...any)  { l.emit(slog.LevelDebug-4, format, v) }
