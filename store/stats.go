package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"

	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/domain/calendar"
)

// Response-time aggregates (domain/report.go). Every write of a referral changes its cell in
// the same transaction (updateStats, called from write), so the report reads a few thousand
// cells instead of every referral:
//
//	stats          YYYYMM 0x00 sender 0x00 recipient 0x00 kind 0x00 urgency → cell (encodeCell)
//	stats_clients  clientKey                                                → uvarint bounces
//	stats_meta     "version"                                                → statsVersion
//
// YYYYMM is the Helsinki month of the referral's CreatedAt as six ASCII digits, so a period
// is one key range. stats_clients counts each client's bounces (returned + forwarded
// referrals) under the same keyed hash the client index uses: it holds no identity code, but
// like the index it is pseudonymous personal data and must go with the client's referrals
// when they are erased (forgetClientBounces).
//
// The aggregates are derived data. Open (re)builds them from the referrals when stats_meta
// does not hold statsVersion: once on a database written before they existed, and again
// whenever the cell layout changes.
var (
	bucketStats        = []byte("stats")
	bucketStatsClients = []byte("stats_clients")
	bucketStatsMeta    = []byte("stats_meta")
	statsVersionKey    = []byte("version")
)

// statsVersion names the layout of the stats buckets; a stored other value means rebuild.
const statsVersion = "1"

// cellFormat is the first byte of an encoded cell.
const cellFormat = 1

// monthKeyLen is the length of the YYYYMM prefix of a cell key.
const monthKeyLen = 6

var _ domain.ReportStore = (*DB)(nil)

// StatsObserver hears, after each commit, what the commit changed in the report aggregates:
// the milestones reached, with their business durations (metrics observe them). It is called
// once per committed transaction that changed them, never for a rolled-back batch attempt,
// and must not block.
type StatsObserver interface {
	ObserveMilestones(deltas []domain.ReportDelta)
}

// AlertObserver is an Observer that also hears the deadline_warning and overdue events of
// the alerts a commit fired (each alert fires once: a later step finds it recorded), after
// the commit, whether or not they have reached NATS yet. Stale repairs have no event.
type AlertObserver interface {
	ObserveAlerts(events []domain.Event)
}

// CommitObserver is an Observer that also hears of every group commit once it is durable:
// the writes it carried, how long its transaction took from start to durable (queueing
// before it not included), and of that how long bbolt spent writing and syncing pages — the
// disk's share. Called from the store's single writer between commits: it must be quick.
type CommitObserver interface {
	ObserveCommit(writes int, took, disk time.Duration)
}

// statsState is the store's part of the aggregates.
type statsState struct {
	cal      domain.ReportCalendar
	observer StatsObserver
	// inconsistent counts repairs: an aggregate that would have gone below zero (a change
	// the aggregates never saw). Zero in a healthy store.
	inconsistent atomic.Uint64
}

func newStatsState(opts Options) *statsState {
	s := &statsState{cal: opts.Calendar, observer: opts.Observer}
	if s.cal == nil {
		s.cal = calendar.New(calendar.Options{})
	}
	return s
}

// StatsInconsistencies returns how many times an aggregate would have gone below zero since
// Open and was held at zero instead. It is zero unless referrals were changed behind the
// store's write path. Deleting "version" from the stats_meta bucket makes the next Open
// rebuild every aggregate from the referrals.
func (db *DB) StatsInconsistencies() uint64 { return db.stats.inconsistent.Load() }

// initStats creates the aggregate buckets and rebuilds them if they are missing or of another
// layout. Called by Open once the keyring is in place (rebuilding reads every referral).
func (db *DB) initStats() error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketStatsMeta)
		if err != nil {
			return fmt.Errorf("create bucket %s: %w", bucketStatsMeta, err)
		}
		if string(meta.Get(statsVersionKey)) == statsVersion && tx.Bucket(bucketStats) != nil && tx.Bucket(bucketStatsClients) != nil {
			return nil
		}
		return db.rebuildStats(tx)
	})
}

// rebuildStats replaces the aggregates with ones computed from every stored referral, in id
// (creation) order. Milestones without a time of their own in the record (the start of an
// assessment, a withdrawal) count at the referral's UpdatedAt, and a client's second bounce
// is the one on their later-created referral.
func (db *DB) rebuildStats(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketStats, bucketStatsClients} {
		if err := tx.DeleteBucket(name); err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
			return fmt.Errorf("store: rebuild stats: %w", err)
		}
		if _, err := tx.CreateBucket(name); err != nil {
			return fmt.Errorf("store: rebuild stats: %w", err)
		}
	}
	b := newStatsBuilder(db.stats.cal)
	c := tx.Bucket(bucketReferrals).Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		if len(k) != idLen {
			continue
		}
		r, err := loadReferral(tx, uuid.UUID(k))
		if err != nil {
			return fmt.Errorf("store: rebuild stats: %w", err)
		}
		if r != nil {
			b.add(nil, r)
		}
	}
	if err := b.write(tx); err != nil {
		return err
	}
	db.stats.inconsistent.Add(b.clamped)
	if err := tx.Bucket(bucketStatsMeta).Put(statsVersionKey, []byte(statsVersion)); err != nil {
		return fmt.Errorf("store: rebuild stats: %w", err)
	}
	return nil
}

// updateStats applies to the aggregates what writing refs changes, comparing each referral
// with its stored version (or with the one before it in refs). It runs inside the write
// transaction, before the referrals are put, and registers the observer for after the commit.
func (db *DB) updateStats(tx *bolt.Tx, refs []*domain.Referral) error {
	if len(refs) == 0 {
		return nil
	}
	var deltas []domain.ReportDelta
	var pending map[uuid.UUID]*domain.Referral // earlier versions in this same change
	for _, r := range refs {
		if r == nil {
			continue
		}
		id, ok := parseID(r.ID)
		if !ok {
			continue // putReferral refuses it and the transaction fails
		}
		old := pending[id]
		if old == nil {
			var err error
			if old, err = loadReferral(tx, id); err != nil {
				return err
			}
		}
		if pending == nil {
			pending = map[uuid.UUID]*domain.Referral{}
		}
		pending[id] = r
		d := domain.ComputeReportDelta(old, r, db.stats.cal)
		if d.Empty() {
			continue
		}
		if err := db.applyDelta(tx, &d); err != nil {
			return err
		}
		deltas = append(deltas, d)
	}
	if obs := db.stats.observer; obs != nil && len(deltas) > 0 {
		tx.OnCommit(func() { obs.ObserveMilestones(deltas) })
	}
	return nil
}

// applyDelta writes d into its cells and the client's bounce counter.
func (db *DB) applyDelta(tx *bolt.Tx, d *domain.ReportDelta) error {
	if d.Bounced && d.ClientKey != "" {
		if hasNUL(d.ClientKey) {
			return fmt.Errorf("store: stats: client key: %w", errNUL)
		}
		cb := tx.Bucket(bucketStatsClients)
		n, _ := binary.Uvarint(cb.Get([]byte(d.ClientKey)))
		n++
		if err := cb.Put([]byte(d.ClientKey), binary.AppendUvarint(nil, n)); err != nil {
			return fmt.Errorf("store: stats: client bounces: %w", err)
		}
		if n == 2 {
			d.Counts[domain.CountRepeatBounceClients]++
		}
	}
	keys := []domain.ReportCellKey{d.Cell}
	if d.DueRemoved != nil && d.DueCell != d.Cell {
		keys = append(keys, d.DueCell)
	}
	sb := tx.Bucket(bucketStats)
	var cell domain.ReportCell
	for _, k := range keys {
		key, err := cellKey(k)
		if err != nil {
			return err
		}
		if err := decodeCell(sb.Get(key), &cell); err != nil {
			return fmt.Errorf("store: stats: cell %s: %w", printableKey(key), err)
		}
		cell.ReportCellKey = k
		db.stats.inconsistent.Add(addDelta(&cell, d))
		if err := sb.Put(key, encodeCell(&cell)); err != nil {
			return fmt.Errorf("store: stats: cell %s: %w", printableKey(key), err)
		}
	}
	return nil
}

// forgetClientBounces deletes the bounce counter of clientKey once none of the client's
// referrals is left in the client index, so the keyed hash does not outlive the referrals'
// personal data. The retention job calls it after erasing a referral that had the key; the
// figures already counted stay.
func forgetClientBounces(tx *bolt.Tx, clientKey string) error {
	if clientKey == "" || hasNUL(clientKey) {
		return nil
	}
	prefix := clientPrefix(clientKey)
	if k, _ := tx.Bucket(bucketIndex).Cursor().Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) {
		return nil
	}
	if err := tx.Bucket(bucketStatsClients).Delete([]byte(clientKey)); err != nil {
		return fmt.Errorf("store: stats: forget client bounces: %w", err)
	}
	return nil
}

// addDelta adds the part of d that belongs to cell c (by c.ReportCellKey) and returns how
// many counts had to be held at zero.
func addDelta(c *domain.ReportCell, d *domain.ReportDelta) (clamped uint64) {
	if c.ReportCellKey == d.Cell {
		for i, n := range d.Counts {
			c.Counts[i] += n
			if c.Counts[i] < 0 {
				c.Counts[i], clamped = 0, clamped+1
			}
		}
		for i, ok := range d.HasObserved {
			if ok {
				c.Hist[i] = addHist(c.Hist[i], domain.DurationBucket(d.Observed[i]))
			}
		}
		if d.DueAdded != nil {
			c.Due = addDue(c.Due, d.DueAdded.UnixNano(), 1)
		}
	}
	if d.DueRemoved != nil && c.ReportCellKey == d.DueCell {
		at := d.DueRemoved.UnixNano()
		if _, found := slices.BinarySearchFunc(c.Due, at, func(b domain.DueBin, t int64) int { return cmpInt64(b.At, t) }); !found {
			return clamped + 1
		}
		c.Due = addDue(c.Due, at, -1)
	}
	return clamped
}

func addHist(h []domain.HistBin, bucket int) []domain.HistBin {
	i, found := slices.BinarySearchFunc(h, bucket, func(b domain.HistBin, t int) int { return b.Bucket - t })
	if found {
		h[i].Count++
		return h
	}
	return slices.Insert(h, i, domain.HistBin{Bucket: bucket, Count: 1})
}

// addDue adds n to the bin at, dropping a bin that reaches zero.
func addDue(due []domain.DueBin, at, n int64) []domain.DueBin {
	i, found := slices.BinarySearchFunc(due, at, func(b domain.DueBin, t int64) int { return cmpInt64(b.At, t) })
	if !found {
		if n <= 0 {
			return due
		}
		return slices.Insert(due, i, domain.DueBin{At: at, Count: n})
	}
	if due[i].Count += n; due[i].Count <= 0 {
		return slices.Delete(due, i, i+1)
	}
	return due
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// ReportCells calls fn with every cell of the months f.From..f.To, and only those where f.Org
// is the sender or the recipient when f.Org is set. It reads one key range of the stats
// bucket and decodes only the cells it passes to fn; the *ReportCell is reused between calls.
func (db *DB) ReportCells(ctx context.Context, f domain.ReportCellFilter, fn func(*domain.ReportCell) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if f.To < f.From {
		return nil
	}
	start, end := monthKey(f.From), monthKey(f.To+1)
	org := []byte(f.Org)
	return db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketStats)
		if b == nil {
			return nil
		}
		var cell domain.ReportCell
		c := b.Cursor()
		n := 0
		for k, v := c.Seek(start); k != nil && bytes.Compare(k, end) < 0; k, v = c.Next() {
			if n++; n%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			parts, ok := splitCellKey(k)
			if !ok {
				return fmt.Errorf("store: stats: malformed cell key %s", printableKey(k))
			}
			if len(org) > 0 && !bytes.Equal(parts[1], org) && !bytes.Equal(parts[2], org) {
				continue
			}
			if err := parseCellKey(parts, &cell.ReportCellKey); err != nil {
				return err
			}
			if err := decodeCell(v, &cell); err != nil {
				return fmt.Errorf("store: stats: cell %s: %w", printableKey(k), err)
			}
			if err := fn(&cell); err != nil {
				return err
			}
		}
		return nil
	})
}

// ---- keys and values ----

// monthKey is the YYYYMM prefix of the cells of month m.
func monthKey(m domain.Month) []byte {
	y := min(max(m.Year(), 0), 9999)
	return fmt.Appendf(make([]byte, 0, monthKeyLen), "%04d%02d", y, int(m.Month()))
}

// cellKey is YYYYMM 0x00 sender 0x00 recipient 0x00 kind 0x00 urgency.
func cellKey(k domain.ReportCellKey) ([]byte, error) {
	parts := []string{string(k.Sender), string(k.Recipient), string(k.Kind), string(k.Urgency)}
	out := monthKey(k.Month)
	for _, p := range parts {
		if hasNUL(p) {
			return nil, fmt.Errorf("store: stats: cell key: %w", errNUL)
		}
		out = append(append(out, 0), p...)
	}
	return out, nil
}

// splitCellKey returns the month and the four names of a cell key.
func splitCellKey(k []byte) ([5][]byte, bool) {
	var parts [5][]byte
	if len(k) < monthKeyLen+4 || k[monthKeyLen] != 0 {
		return parts, false
	}
	parts[0] = k[:monthKeyLen]
	rest := k[monthKeyLen+1:]
	for i := 1; i < 4; i++ {
		j := bytes.IndexByte(rest, 0)
		if j < 0 {
			return parts, false
		}
		parts[i], rest = rest[:j], rest[j+1:]
	}
	parts[4] = rest
	return parts, true
}

func parseCellKey(parts [5][]byte, out *domain.ReportCellKey) error {
	ym, err := strconv.Atoi(string(parts[0]))
	if err != nil || ym%100 < 1 || ym%100 > 12 {
		return fmt.Errorf("store: stats: malformed month in cell key %q", parts[0])
	}
	*out = domain.ReportCellKey{Month: domain.MakeMonth(ym/100, time.Month(ym%100)),
		Sender: domain.OrgID(parts[1]), Recipient: domain.OrgID(parts[2]),
		Kind: domain.Kind(parts[3]), Urgency: domain.Urgency(parts[4])}
	return nil
}

// printableKey shows a cell key in errors: its parts joined with '|'.
func printableKey(k []byte) string { return string(bytes.ReplaceAll(k, []byte{0}, []byte("|"))) }

// encodeCell writes a cell as
//
//	cellFormat
//	uvarint n, n × uvarint counter
//	uvarint h, h × (uvarint bins, bins × (uvarint bucket − previous bucket, uvarint count))
//	uvarint bins, bins × (varint at − previous at, uvarint count)
//
// Counts are never negative (addDelta holds them at zero). A reader takes the counters and
// histograms it knows and ignores any more, so both may be added at the end later.
func encodeCell(c *domain.ReportCell) []byte {
	size := 3 + 2*len(c.Counts) + 3*len(c.Due)*6
	for _, h := range c.Hist {
		size += 2 + 3*len(h)
	}
	buf := make([]byte, 0, size)
	buf = append(buf, cellFormat)
	buf = binary.AppendUvarint(buf, uint64(len(c.Counts)))
	for _, n := range c.Counts {
		buf = binary.AppendUvarint(buf, uint64(max(n, 0)))
	}
	buf = binary.AppendUvarint(buf, uint64(len(c.Hist)))
	for _, h := range c.Hist {
		buf = binary.AppendUvarint(buf, uint64(len(h)))
		prev := 0
		for _, b := range h {
			buf = binary.AppendUvarint(buf, uint64(b.Bucket-prev))
			buf = binary.AppendUvarint(buf, uint64(b.Count))
			prev = b.Bucket
		}
	}
	buf = binary.AppendUvarint(buf, uint64(len(c.Due)))
	var prev int64
	for _, b := range c.Due {
		buf = binary.AppendVarint(buf, b.At-prev)
		buf = binary.AppendUvarint(buf, uint64(b.Count))
		prev = b.At
	}
	return buf
}

var errCellFormat = errors.New("malformed aggregate cell")

// decodeCell reads v into c, reusing c's slices; an empty v is an empty cell. The key part of
// c is left alone.
func decodeCell(v []byte, c *domain.ReportCell) error {
	c.Counts = [domain.NumReportCounters]int64{}
	for i := range c.Hist {
		c.Hist[i] = c.Hist[i][:0]
	}
	c.Due = c.Due[:0]
	if len(v) == 0 {
		return nil
	}
	if v[0] != cellFormat {
		return fmt.Errorf("%w: format %d", errCellFormat, v[0])
	}
	r := cellReader{b: v[1:]}
	n := r.uvarint()
	for i := uint64(0); i < n && r.err == nil; i++ {
		x := int64(r.uvarint())
		if i < uint64(len(c.Counts)) {
			c.Counts[i] = x
		}
	}
	nh := r.uvarint()
	for i := uint64(0); i < nh && r.err == nil; i++ {
		bins := r.uvarint()
		if bins > uint64(domain.NumDurationBuckets) {
			return fmt.Errorf("%w: %d histogram bins", errCellFormat, bins)
		}
		bucket := 0
		for j := uint64(0); j < bins && r.err == nil; j++ {
			bucket += int(r.uvarint())
			cnt := int64(r.uvarint())
			if i < uint64(len(c.Hist)) {
				c.Hist[i] = append(c.Hist[i], domain.HistBin{Bucket: bucket, Count: cnt})
			}
		}
	}
	nd := r.uvarint()
	if nd > uint64(len(v)) {
		return fmt.Errorf("%w: %d due bins", errCellFormat, nd)
	}
	var at int64
	for j := uint64(0); j < nd && r.err == nil; j++ {
		at += r.varint()
		c.Due = append(c.Due, domain.DueBin{At: at, Count: int64(r.uvarint())})
	}
	return r.err
}

// cellReader reads varints, remembering the first error. Most numbers of a cell (bucket
// steps, counts) fit in one byte, so that case is read inline.
type cellReader struct {
	b   []byte
	p   int
	err error
}

func (r *cellReader) uvarint() uint64 {
	if r.p < len(r.b) && r.b[r.p] < 0x80 {
		x := uint64(r.b[r.p])
		r.p++
		return x
	}
	if r.err != nil {
		return 0
	}
	x, n := binary.Uvarint(r.b[r.p:])
	if n <= 0 {
		r.err, r.p = errCellFormat, len(r.b)
		return 0
	}
	r.p += n
	return x
}

func (r *cellReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	x, n := binary.Varint(r.b[r.p:])
	if n <= 0 {
		r.err, r.p = errCellFormat, len(r.b)
		return 0
	}
	r.p += n
	return x
}

// ---- building many cells in memory ----

// statsBuilder sums the deltas of many referrals in memory and writes the cells once: the
// rebuild at Open, and seeding in benchmarks.
type statsBuilder struct {
	cal     domain.ReportCalendar
	cells   map[domain.ReportCellKey]*domain.ReportCell
	clients map[string]uint64
	clamped uint64
}

func newStatsBuilder(cal domain.ReportCalendar) *statsBuilder {
	return &statsBuilder{cal: cal, cells: map[domain.ReportCellKey]*domain.ReportCell{}, clients: map[string]uint64{}}
}

// add counts the change of a referral from old (nil: new) to r.
func (b *statsBuilder) add(old, r *domain.Referral) {
	d := domain.ComputeReportDelta(old, r, b.cal)
	if d.Empty() {
		return
	}
	if d.Bounced && d.ClientKey != "" {
		b.clients[d.ClientKey]++
		if b.clients[d.ClientKey] == 2 {
			d.Counts[domain.CountRepeatBounceClients]++
		}
	}
	keys := []domain.ReportCellKey{d.Cell}
	if d.DueRemoved != nil && d.DueCell != d.Cell {
		keys = append(keys, d.DueCell)
	}
	for _, k := range keys {
		c := b.cells[k]
		if c == nil {
			c = &domain.ReportCell{ReportCellKey: k}
			b.cells[k] = c
		}
		b.clamped += addDelta(c, &d)
	}
}

// write stores the cells and client counters, adding to what tx already holds.
func (b *statsBuilder) write(tx *bolt.Tx) error {
	sb, cb := tx.Bucket(bucketStats), tx.Bucket(bucketStatsClients)
	keys := make([]domain.ReportCellKey, 0, len(b.cells))
	for k := range b.cells {
		keys = append(keys, k)
	}
	encoded := make(map[domain.ReportCellKey][]byte, len(keys))
	for _, k := range keys {
		key, err := cellKey(k)
		if err != nil {
			return err
		}
		encoded[k] = key
	}
	sort.Slice(keys, func(i, j int) bool { return bytes.Compare(encoded[keys[i]], encoded[keys[j]]) < 0 })
	var stored domain.ReportCell
	for _, k := range keys {
		c := b.cells[k]
		if v := sb.Get(encoded[k]); v != nil {
			if err := decodeCell(v, &stored); err != nil {
				return fmt.Errorf("store: stats: cell %s: %w", printableKey(encoded[k]), err)
			}
			mergeCell(c, &stored)
		}
		if err := sb.Put(encoded[k], encodeCell(c)); err != nil {
			return fmt.Errorf("store: stats: write cells: %w", err)
		}
	}
	clients := make([]string, 0, len(b.clients))
	for k := range b.clients {
		clients = append(clients, k)
	}
	sort.Strings(clients)
	for _, k := range clients {
		if hasNUL(k) {
			return fmt.Errorf("store: stats: client key: %w", errNUL)
		}
		n, _ := binary.Uvarint(cb.Get([]byte(k)))
		if err := cb.Put([]byte(k), binary.AppendUvarint(nil, n+b.clients[k])); err != nil {
			return fmt.Errorf("store: stats: write client bounces: %w", err)
		}
	}
	return nil
}

// mergeCell adds src's counts and bins to dst.
func mergeCell(dst, src *domain.ReportCell) {
	for i, n := range src.Counts {
		dst.Counts[i] += n
	}
	for i := range src.Hist {
		for _, b := range src.Hist[i] {
			j, found := slices.BinarySearchFunc(dst.Hist[i], b.Bucket, func(x domain.HistBin, t int) int { return x.Bucket - t })
			if found {
				dst.Hist[i][j].Count += b.Count
			} else {
				dst.Hist[i] = slices.Insert(dst.Hist[i], j, b)
			}
		}
	}
	for _, b := range src.Due {
		dst.Due = addDue(dst.Due, b.At, b.Count)
	}
}
