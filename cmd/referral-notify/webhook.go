package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/kela-hva/referrals/broker"
)

// webhook POSTs events to a URL as structured CloudEvents (application/cloudevents+json, the
// event exactly as it is in the stream). An attempt succeeds on any 2xx. Network errors,
// timeouts, 408, 429 and 5xx are retried after a jittered exponential wait (backoff doubling
// up to maxBackoff, or the server's Retry-After within that bound) until maxAttempts; any
// other status is final at once, and so is a redirect other than 307 and 308 (see keepPOST).
// An event that could not be delivered is appended to the dead-letter file, and only then
// acknowledged.
type webhook struct {
	url         string
	client      *http.Client
	maxAttempts int
	backoff     time.Duration
	maxBackoff  time.Duration
	deadLetter  string
	log         *slog.Logger
	// keepAliveEvery is how often, while an event is being delivered, JetStream is told it
	// is in progress: a third of the ack wait, so a slow POST or a long wait between attempts
	// does not let the ack wait run out and the event be redelivered under it.
	keepAliveEvery time.Duration
}

// deadLetter is one line of the dead-letter file.
type deadLetter struct {
	At          time.Time       `json:"dead_lettered_at"`
	Attempts    int             `json:"attempts"`
	Error       string          `json:"error"`
	NATSSubject string          `json:"nats_subject"`
	StreamSeq   uint64          `json:"stream_seq,omitempty"`
	Event       json.RawMessage `json:"event"`
}

// deliver posts msg's event until it succeeds or the attempts are used up, then dead-letters
// it. Until it returns it tells JetStream every keepAliveEvery that the message is in
// progress (during the attempts and the waits between them), so the ack wait does not run
// out and the event is not redelivered while it is still being handled. It reports whether
// the event was dead-lettered, and returns an error only if ctx ends (the event is not
// acknowledged; the caller hands it back) or the dead-letter file cannot be written. An
// attempt under way when ctx ends is finished (within the client's timeout), not aborted: the
// receiver may already have the event, and if it answers 2xx the event is acknowledged
// instead of being printed and posted again after a restart. A failed attempt is not retried
// once ctx has ended.
func (w *webhook) deliver(ctx context.Context, msg jetstream.Msg, ce broker.CloudEvent, seq uint64) (bool, error) {
	defer keepAlive(msg, w.keepAliveEvery)()
	wait := w.backoff
	var last error
	attempt := 0
	for attempt < w.maxAttempts {
		attempt++
		retryAfter, err := w.post(context.WithoutCancel(ctx), msg.Data())
		if err == nil {
			return false, nil
		}
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		last = err
		var perm *permanentError
		if errors.As(err, &perm) || attempt == w.maxAttempts {
			break
		}
		d := jitter(wait)
		if retryAfter > 0 {
			d = min(retryAfter, w.maxBackoff)
		}
		w.log.Warn("webhook failed; retrying", "id", ce.ID, "attempt", attempt, "err", err, "retry_in", d.Round(time.Millisecond).String())
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return false, ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, w.maxBackoff)
	}
	w.log.Error("webhook gave up; event dead-lettered", "id", ce.ID, "attempts", attempt, "err", last, "file", w.deadLetter)
	return true, w.appendDeadLetter(deadLetter{
		At: time.Now().UTC(), Attempts: attempt, Error: last.Error(), NATSSubject: msg.Subject(),
		StreamSeq: seq, Event: json.RawMessage(msg.Data()),
	})
}

// keepAlive tells JetStream every interval that msg is in progress, until the returned stop
// is called; stop returns once the last of these has been sent, so that the caller's ack or
// Nak comes after it. A failed keep-alive is ignored: the event is then redelivered after the
// ack wait and skipped as a duplicate once handled.
func keepAlive(msg jetstream.Msg, interval time.Duration) (stop func()) {
	if interval <= 0 {
		return func() {}
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	}()
	return func() { close(quit); <-done }
}

// permanentError is a failure that retrying will not change.
type permanentError struct{ msg string }

func (e *permanentError) Error() string { return e.msg }

// post makes one attempt. It returns the server's Retry-After, if any, with the error.
func (w *webhook) post(ctx context.Context, body []byte) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return 0, &permanentError{"webhook: " + err.Error()}
	}
	req.Header.Set("Content-Type", broker.ContentType)
	req.Header.Set("User-Agent", "referral-notify")
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("webhook: %w", redactURL(err))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch s := resp.StatusCode; {
	case s >= 200 && s < 300:
		return 0, nil
	case s == http.StatusMovedPermanently || s == http.StatusFound || s == http.StatusSeeOther:
		return 0, &permanentError{fmt.Sprintf("webhook answered %d, a redirect that would turn the POST into a GET (not followed; set --webhook to the final URL)", s)}
	case s == http.StatusRequestTimeout || s == http.StatusTooManyRequests || s >= 500:
		var after time.Duration
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
			after = time.Duration(secs) * time.Second
		}
		return after, fmt.Errorf("webhook answered %d", s)
	default:
		return 0, &permanentError{fmt.Sprintf("webhook answered %d (not retried)", s)}
	}
}

// keepPOST is the webhook client's redirect policy: it follows a redirect only if the request
// stays what it was (307 and 308 repeat the POST with its body). After a 301, 302 or 303 Go's
// client would send a bodiless GET, and a 2xx to that would pass for a delivery; instead the
// redirect is the answer, a final failure that sends the event to the dead-letter file.
func keepPOST(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if req.Method != via[0].Method {
		return http.ErrUseLastResponse
	}
	return nil
}

// redactURL drops the URL from a client error: it may carry a secret in its query.
func redactURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// appendDeadLetter appends d as one JSON line and syncs the file before the event is acked;
// a file it creates is made durable by syncing its directory too. An append that fails (also
// part-way, or in the sync) is undone: the file is cut back to its size before it, or removed
// if this append created it, so the next dead letter does not start on a broken line.
func (w *webhook) appendDeadLetter(d deadLetter) error {
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("dead letter: %w", err)
	}
	if err := appendLine(w.deadLetter, append(b, '\n')); err != nil {
		return fmt.Errorf("dead letter %s: %w", w.deadLetter, err)
	}
	return nil
}

// checkDeadLetter tells at start whether dead letters can be written to path, without
// creating the file: an existing file must open for appending, and otherwise its directory
// must exist and take a new file (tried with a temporary file, removed at once). A path found
// unwritable only at the first dead letter would end the program there, and every restart
// would stall on the same event.
func checkDeadLetter(path string) error {
	dir := filepath.Dir(path)
	switch fi, err := os.Stat(dir); {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("directory %s does not exist", dir)
	case err != nil:
		return err
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err == nil {
		return f.Close()
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	probe, err := os.CreateTemp(dir, "."+filepath.Base(path)+".check-*")
	if err != nil {
		return fmt.Errorf("cannot create files in %s: %w", dir, err)
	}
	probe.Close()
	return os.Remove(probe.Name())
}

// writeDeadLetter writes to the dead-letter file; tests replace it to make a write fail.
var writeDeadLetter = (*os.File).Write

// appendLine appends line to the file at path and syncs it, creating the file (and syncing
// its directory) if it does not exist. On failure it leaves the file as it was.
func appendLine(path string, line []byte) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
	created := err == nil
	if errors.Is(err, fs.ErrExist) {
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	}
	if err != nil {
		return err
	}
	var size int64
	if !created {
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return err
		}
		size = fi.Size()
	}
	defer func() {
		if err == nil {
			err = f.Close()
			return
		}
		// Undo the append. A short write may have left part of the line; a failed sync
		// leaves it uncertain on disk, and the event comes back to be written again.
		if created {
			f.Close()
			if rerr := os.Remove(path); rerr != nil {
				err = errors.Join(err, fmt.Errorf("remove the file this append created: %w", rerr))
			}
			return
		}
		if terr := f.Truncate(size); terr != nil {
			err = errors.Join(err, fmt.Errorf("cut back to %d bytes: %w", size, terr))
		} else {
			_ = f.Sync()
		}
		f.Close()
	}()
	n, err := writeDeadLetter(f, line)
	if err != nil {
		return err
	}
	if n < len(line) {
		return io.ErrShortWrite
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if created {
		return syncDir(filepath.Dir(path))
	}
	return nil
}

// syncDir makes the creation of a file in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// jitter returns a wait between d/2 and d, so consumers that failed together spread out.
func jitter(d time.Duration) time.Duration {
	half := d / 2
	return half + rand.N(d-half+1)
}
