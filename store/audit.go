package store

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/kela-hva/referrals/domain"
)

// The access log (Act 703/2023 §10), append-only and hash-chained:
//
//	audit         seq                          → body | SHA-256(body)
//	audit_index   "r" id16 seq                 → (empty)  a referral's entries
//	              "u" user 0x00 at seq         → (empty)  a user's entries by time
//	              "o" org 0x00 at seq          → (empty)  entries an organisation's auditors see, by time
//	              "c" clientKey 0x00 seq       → (empty)  client searches and extracts
//	privacy_meta  "audit_head"                 → seq | SHA-256 of the last entry
//	              "audit_marks_pruned"         → seq      marks up to seq were deleted
//	audit_pending seq                          → id16…    list pages whose items may not be
//	                                                       indexed yet, with the referrals
//	                                                       they name (auditidx.go)
//
// body is the JSON of a domain.AuditEntry whose Seq is its key and whose Prev is the hex
// SHA-256 of the previous entry's body ("" for seq 1); at is the entry's time as big-endian
// Unix nanoseconds. The digest stored after each body pins that entry, the Prev of the next
// pins it again and the head pins the last, so VerifyAudit names the first entry that was
// edited, removed or reordered. Someone who can write the file can also recompute the whole
// chain: compare the head with one recorded elsewhere (referrald logs it daily; VerifyAudit
// takes it as an anchor) to catch that.

// A list page's entry names up to 200 referrals (Items). Putting its "r" keys in the request's
// transaction would dirty a page of the index per referral before the answer; instead the
// entry is marked pending, in a bucket written only at its end, and IndexAuditItems adds the
// keys later to a file of their own (auditidx.go), many entries in one transaction (an inbox
// shows the same referrals again and again, so their keys share pages). Queries by referral
// read the index, the items file and the pending entries, so they see an entry as soon as it
// is committed. ("r" keys of list pages indexed before the items file existed stay in
// audit_index and are read as well.)
var (
	bucketAudit        = []byte("audit")
	bucketAuditIndex   = []byte("audit_index")
	bucketPrivacyMeta  = []byte("privacy_meta")
	bucketAuditPending = []byte("audit_pending")

	metaAuditHead = []byte("audit_head")
)

// openPrivacyBuckets creates the buckets of the access log and of retention.
func openPrivacyBuckets(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketAudit, bucketAuditIndex, bucketPrivacyMeta, bucketClosed, bucketAuditPending} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	return markClosedIndexIfEmpty(tx) // retention.go
}

// stampAccess gives the access-log entries of ch the purpose and request id of ctx where
// they have none: domain commands record who did what; the request says why.
func stampAccess(ctx context.Context, ch *domain.Change) {
	if ch == nil || len(ch.Audit) == 0 {
		return
	}
	acc := domain.AccessFrom(ctx)
	for i := range ch.Audit {
		if ch.Audit[i].Purpose == "" {
			ch.Audit[i].Purpose = acc.Purpose
		}
		if ch.Audit[i].RequestID == "" {
			ch.Audit[i].RequestID = acc.RequestID
		}
	}
}

// auditBody is an entry as stored: a list page's items refer to a table of the distinct
// disclosures (1-based d) instead of repeating each, legal-basis text and all, and the JSON
// of an entry with items is stored deflated after a 0x00 byte (which no JSON starts with), so
// a page of 50 referrals costs ~30 bytes a referral instead of ~110. Readers get the items
// with their disclosures again. Entries stored before the table, with each item's disclosure
// inline, or before the deflating, read the same. The digest is over the stored bytes.
type auditBody struct {
	domain.AuditEntry
	Items       []auditBodyItem     `json:"items,omitempty"` // shadows AuditEntry.Items
	Disclosures []domain.Disclosure `json:"disclosures,omitempty"`
}

type auditBodyItem struct {
	ReferralID string             `json:"referral_id"`
	Kind       domain.Kind        `json:"kind"`
	Sender     domain.OrgID       `json:"sender"`
	Recipient  domain.OrgID       `json:"recipient"`
	D          int                `json:"d,omitempty"`
	Disclosure *domain.Disclosure `json:"disclosure,omitempty"` // older entries only
}

func encodeAuditBody(e *domain.AuditEntry) ([]byte, error) {
	if len(e.Items) == 0 {
		return json.Marshal(e)
	}
	b := auditBody{AuditEntry: *e, Items: make([]auditBodyItem, len(e.Items))}
	b.AuditEntry.Items = nil
	for i, it := range e.Items {
		bi := auditBodyItem{ReferralID: it.ReferralID, Kind: it.Kind, Sender: it.Sender, Recipient: it.Recipient}
		if it.Disclosure != nil {
			j := slices.Index(b.Disclosures, *it.Disclosure)
			if j < 0 {
				j = len(b.Disclosures)
				b.Disclosures = append(b.Disclosures, *it.Disclosure)
			}
			bi.D = j + 1
		}
		b.Items[i] = bi
	}
	js, err := json.Marshal(&b)
	if err != nil {
		return nil, err
	}
	return deflateBody(js)
}

// deflated marks a stored body as 0x00 followed by the deflated JSON.
const deflated = 0x00

var flaters = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(nil, flate.BestSpeed) // the level is valid: no error
	return w
}}

func deflateBody(js []byte) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(len(js)/3 + 64)
	buf.WriteByte(deflated)
	w := flaters.Get().(*flate.Writer)
	defer func() {
		w.Reset(io.Discard) // drop the reference to buf
		flaters.Put(w)
	}()
	w.Reset(&buf)
	if _, err := w.Write(js); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// inflaters holds flate readers (each ~40 KB of state) for reuse: queries by referral and
// verification inflate many bodies.
var inflaters sync.Pool

// maxInflated bounds an inflated body: a page of 200 items is ~25 KB.
const maxInflated = 4 << 20

func inflateBody(body []byte) ([]byte, error) {
	src := bytes.NewReader(body[1:])
	r, _ := inflaters.Get().(io.ReadCloser)
	if r == nil {
		r = flate.NewReader(src)
	} else if err := r.(flate.Resetter).Reset(src, nil); err != nil {
		return nil, fmt.Errorf("inflate: %w", err)
	}
	defer func() {
		_ = r.(flate.Resetter).Reset(bytes.NewReader(nil), nil) // drop the reference to body
		inflaters.Put(r)
	}()
	js, err := io.ReadAll(io.LimitReader(r, maxInflated+1))
	if err != nil {
		return nil, fmt.Errorf("inflate: %w", err)
	}
	if len(js) > maxInflated {
		return nil, errors.New("inflate: body too large")
	}
	return js, nil
}

func decodeAuditBody(body []byte, e *domain.AuditEntry) error {
	if len(body) > 0 && body[0] == deflated {
		js, err := inflateBody(body)
		if err != nil {
			return err
		}
		body = js
	}
	var b auditBody
	if err := json.Unmarshal(body, &b); err != nil {
		return err
	}
	*e = b.AuditEntry
	e.Items = nil
	if len(b.Items) > 0 {
		e.Items = make([]domain.AuditItem, len(b.Items))
	}
	for i, bi := range b.Items {
		it := domain.AuditItem{ReferralID: bi.ReferralID, Kind: bi.Kind, Sender: bi.Sender, Recipient: bi.Recipient, Disclosure: bi.Disclosure}
		if bi.D > 0 {
			if bi.D > len(b.Disclosures) {
				return fmt.Errorf("item %d refers to disclosure %d of %d", i, bi.D, len(b.Disclosures))
			}
			d := b.Disclosures[bi.D-1]
			it.Disclosure = &d
		}
		e.Items[i] = it
	}
	return nil
}

// AuditHead is the last entry of the access log: its sequence number and the hex SHA-256 of
// its body. Recorded outside the store, it lets VerifyAudit catch a rewritten chain.
type AuditHead struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

func readHead(meta *bolt.Bucket) (uint64, []byte) {
	v := meta.Get(metaAuditHead)
	if len(v) != 8+sha256.Size {
		return 0, nil
	}
	return binary.BigEndian.Uint64(v[:8]), bytes.Clone(v[8:])
}

// appendAudit appends entries to the log in tx, continuing the chain from the head.
func appendAudit(tx *bolt.Tx, entries []domain.AuditEntry) error {
	if len(entries) == 0 {
		return nil
	}
	meta, log, idx := tx.Bucket(bucketPrivacyMeta), tx.Bucket(bucketAudit), tx.Bucket(bucketAuditIndex)
	// The log is append-only on increasing keys, and its index entries grow within their
	// prefixes: fill pages instead of splitting them in half.
	log.FillPercent, idx.FillPercent = appendOnlyFill, appendOnlyFill
	seq, prev := readHead(meta)
	for i := range entries {
		e := entries[i] // a copy: a rerun batch starts from the caller's entries again
		seq++
		e.Seq, e.Prev = seq, ""
		if prev != nil {
			e.Prev = hex.EncodeToString(prev)
		}
		body, err := encodeAuditBody(&e)
		if err != nil {
			return fmt.Errorf("store: append audit entry %d: %w", seq, err)
		}
		sum := sha256.Sum256(body)
		if err := log.Put(seqKey(seq), append(body, sum[:]...)); err != nil {
			return fmt.Errorf("store: append audit entry %d: %w", seq, err)
		}
		keys, itemKeys := auditIndexKeys(&e)
		for _, k := range keys {
			if err := idx.Put(k, []byte{}); err != nil {
				return fmt.Errorf("store: index audit entry %d: %w", seq, err)
			}
		}
		if len(itemKeys) > 0 {
			pending := tx.Bucket(bucketAuditPending)
			pending.FillPercent = appendOnlyFill
			if err := pending.Put(seqKey(seq), markValue(itemKeys)); err != nil {
				return fmt.Errorf("store: index audit entry %d: %w", seq, err)
			}
		}
		prev = sum[:]
	}
	head := binary.BigEndian.AppendUint64(make([]byte, 0, 8+sha256.Size), seq)
	if err := meta.Put(metaAuditHead, append(head, prev...)); err != nil {
		return fmt.Errorf("store: audit head: %w", err)
	}
	return nil
}

// atKey is t as big-endian Unix nanoseconds (0 before 1970), so keys sort by time.
// maxAtTime is the latest time a big-endian nanosecond key can hold.
var maxAtTime = time.Unix(0, math.MaxInt64)

func atKey(t time.Time) []byte {
	var n int64
	switch {
	case t.IsZero() || t.Before(time.Unix(0, 0)):
		n = 0
	case t.After(maxAtTime): // UnixNano is undefined past 2262: clamp, keep the order
		n = math.MaxInt64
	default:
		n = t.UnixNano()
	}
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), uint64(n))
}

func auditRefPrefix(id [16]byte) []byte { return append([]byte{'r'}, id[:]...) }

func auditTextPrefix(tag byte, s string) []byte {
	k := make([]byte, 0, 2+len(s)+16)
	k = append(k, tag)
	k = append(k, s...)
	return append(k, 0)
}

// auditIndexKeys returns the index keys of an entry with its Seq set: those written with the
// entry, and the "r" keys of its items, written later (IndexAuditItems). Parts that cannot be
// keys (a NUL byte, a referral id that is not a UUID) are left out of the index; the entry is
// still in the chain.
func auditIndexKeys(e *domain.AuditEntry) (keys, itemKeys [][]byte) {
	seq := seqKey(e.Seq)
	at := atKey(e.At)
	if id, ok := parseID(e.ReferralID); ok {
		keys = append(keys, append(auditRefPrefix(id), seq...))
	}
	if e.UserID != "" && !hasNUL(e.UserID) {
		keys = append(keys, append(append(auditTextPrefix('u', e.UserID), at...), seq...))
	}
	orgs := []domain.OrgID{e.Org, e.Sender, e.Recipient}
	for _, it := range e.Items {
		orgs = append(orgs, it.Sender, it.Recipient)
	}
	slices.Sort(orgs)
	for _, o := range slices.Compact(orgs) {
		if o != "" && !hasNUL(string(o)) {
			keys = append(keys, append(append(auditTextPrefix('o', string(o)), at...), seq...))
		}
	}
	if e.ClientKey != "" && !hasNUL(e.ClientKey) {
		keys = append(keys, append(auditTextPrefix('c', e.ClientKey), seq...))
	}
	for _, it := range e.Items {
		if id, ok := parseID(it.ReferralID); ok {
			itemKeys = append(itemKeys, append(auditRefPrefix(id), seq...))
		}
	}
	return keys, itemKeys
}

// AppendAudit appends entries to the access log in their own transaction, through group
// commit, and returns when they are durable. Entries without a Purpose or RequestID get
// those of ctx (domain.WithAccess).
func (db *DB) AppendAudit(ctx context.Context, entries []domain.AuditEntry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(entries) == 0 {
		return nil
	}
	ch := &domain.Change{Audit: slices.Clone(entries)}
	stampAccess(ctx, ch)
	if err := db.group.do(func(tx *bolt.Tx) error { return appendAudit(tx, ch.Audit) }); err != nil {
		return fmt.Errorf("store: append audit: %w", err)
	}
	return nil
}

// AuditHead returns the last entry's sequence number and hash (zero for an empty log).
func (db *DB) AuditHead() (AuditHead, error) {
	var h AuditHead
	err := db.bolt.View(func(tx *bolt.Tx) error {
		seq, sum := readHead(tx.Bucket(bucketPrivacyMeta))
		h = AuditHead{Seq: seq, Hash: hex.EncodeToString(sum)}
		return nil
	})
	return h, err
}

// getAuditEntry decodes the entry with seq.
func getAuditEntry(tx *bolt.Tx, seq uint64) (domain.AuditEntry, error) {
	var e domain.AuditEntry
	v := tx.Bucket(bucketAudit).Get(seqKey(seq))
	if len(v) <= sha256.Size {
		return e, fmt.Errorf("store: audit entry %d is missing", seq)
	}
	if err := decodeAuditBody(v[:len(v)-sha256.Size], &e); err != nil {
		return e, fmt.Errorf("store: audit entry %d: %w", seq, err)
	}
	return e, nil
}

// Page sizes of Audit.
const (
	DefaultAuditLimit = 50
	MaxAuditLimit     = 200
)

// Audit returns one page of the access log as an auditor of f.Org sees it, oldest first:
// a referral's entries (f.ReferralID), a user's (f.UserID), or all the organisation's,
// within [f.From, f.To). Each reads only its own index range; a referral's entries are
// filtered by time in memory (there are few), a user's by the auditor's organisation.
// Returns EMalformed for a missing organisation, a referral id that is not a UUID or a bad
// cursor.
func (db *DB) Audit(ctx context.Context, f domain.AuditFilter) (domain.AuditPage, error) {
	if err := ctx.Err(); err != nil {
		return domain.AuditPage{}, err
	}
	if f.Org == "" || hasNUL(string(f.Org)) || hasNUL(f.UserID) {
		return domain.AuditPage{}, domain.Errorf(domain.EMalformed, "invalid audit filter")
	}
	limit := f.Limit
	switch {
	case limit <= 0:
		limit = DefaultAuditLimit
	case limit > MaxAuditLimit:
		limit = MaxAuditLimit
	}
	var prefix, start []byte
	timed := true // index keys end in at|seq; else in seq alone
	switch {
	case f.ReferralID != "":
		id, ok := parseID(f.ReferralID)
		if !ok {
			return domain.AuditPage{}, domain.Errorf(domain.EMalformed, "referral must be a UUID")
		}
		f.ReferralID = id.String() // entries hold the canonical form; the caller may not
		prefix, timed = auditRefPrefix(id), false
	case f.UserID != "":
		prefix = auditTextPrefix('u', f.UserID)
	default:
		prefix = auditTextPrefix('o', string(f.Org))
	}
	suffixLen := 8
	if timed {
		suffixLen = 16
		start = atKey(f.From)
	}
	var after []byte
	if f.After != "" {
		b, err := base64.RawURLEncoding.DecodeString(f.After)
		if err != nil || len(b) != suffixLen {
			return domain.AuditPage{}, domain.Errorf(domain.EMalformed, "invalid cursor")
		}
		after = b
	}
	page := domain.AuditPage{Items: []domain.AuditEntry{}}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		// A referral's entries come from the index and, merged in seq order, from the
		// list pages that name it: those in the items file and those still pending.
		var pend []uint64
		if !timed {
			err := db.itemsView(tx, func(items *bolt.Bucket, through uint64) error {
				pend = append(itemSeqs(items, prefix, after, through), pendingSeqsOf(tx, through, []string{f.ReferralID})...)
				return nil
			})
			if err != nil {
				return err
			}
			pend = slices.DeleteFunc(pend, func(seq uint64) bool { return after != nil && seq <= binary.BigEndian.Uint64(after) })
			slices.Sort(pend)
			pend = slices.Compact(pend)
		}
		c := tx.Bucket(bucketAuditIndex).Cursor()
		seek := append(bytes.Clone(prefix), start...)
		if after != nil && bytes.Compare(append(bytes.Clone(prefix), after...), seek) >= 0 {
			seek = append(bytes.Clone(prefix), after...)
		}
		k, _ := c.Seek(seek)
		var only []string // a referral's query shows each entry narrowed to it
		if f.ReferralID != "" {
			only = []string{f.ReferralID}
		}
		var last []byte
		for {
			var suffix []byte // the index's next key within the filter, if any
			for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
				if sfx := k[len(prefix):]; len(sfx) == suffixLen && (after == nil || bytes.Compare(sfx, after) > 0) {
					suffix = sfx
					break
				}
			}
			if suffix != nil && timed && !f.To.IsZero() && bytes.Compare(suffix[:8], atKey(f.To)) >= 0 {
				suffix, k = nil, nil
			}
			var seq uint64
			switch {
			case suffix != nil && (len(pend) == 0 || binary.BigEndian.Uint64(suffix[suffixLen-8:]) <= pend[0]):
				seq = binary.BigEndian.Uint64(suffix[suffixLen-8:])
				suffix = bytes.Clone(suffix)
				k, _ = c.Next()
				if len(pend) > 0 && pend[0] == seq { // indexed in both files (before the items file)
					pend = pend[1:]
				}
			case len(pend) > 0:
				seq, pend = pend[0], pend[1:]
				suffix = seqKey(seq) // untimed: the suffix is the seq
			default:
				return nil
			}
			e, err := getAuditEntry(tx, seq)
			if err != nil {
				return err
			}
			e, ok := e.ViewFor(f.Org, only...)
			if !ok || (!timed && !inRange(e.At, f.From, f.To)) {
				continue
			}
			if len(page.Items) == limit {
				page.Next = base64.RawURLEncoding.EncodeToString(last)
				return nil
			}
			page.Items = append(page.Items, e)
			last = suffix
		}
	})
	if err != nil {
		return domain.AuditPage{}, err
	}
	return page, nil
}

func inRange(t, from, to time.Time) bool {
	return (from.IsZero() || !t.Before(from)) && (to.IsZero() || t.Before(to))
}

// AuditOf returns the entries of the referrals f.ReferralIDs and those holding f.ClientKey
// that an auditor of f.Org may see, in log order, each once. It reads the referral and
// client-key index ranges only.
func (db *DB) AuditOf(ctx context.Context, f domain.ExtractFilter) ([]domain.AuditEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := []domain.AuditEntry{}
	if f.Org == "" {
		return out, nil
	}
	var prefixes [][]byte
	var ids []string // canonical: entries hold that form
	for _, id := range f.ReferralIDs {
		if uid, ok := parseID(id); ok {
			prefixes = append(prefixes, auditRefPrefix(uid))
			ids = append(ids, uid.String())
		}
	}
	f.ReferralIDs = ids
	if f.ClientKey != "" && !hasNUL(f.ClientKey) {
		prefixes = append(prefixes, auditTextPrefix('c', f.ClientKey))
	}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		seen := map[uint64]bool{}
		var seqs []uint64
		c := tx.Bucket(bucketAuditIndex).Cursor()
		for _, p := range prefixes {
			for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
				if len(k) != len(p)+8 {
					continue
				}
				if seq := binary.BigEndian.Uint64(k[len(p):]); !seen[seq] {
					seen[seq] = true
					seqs = append(seqs, seq)
				}
			}
		}
		err := db.itemsView(tx, func(items *bolt.Bucket, through uint64) error {
			var more []uint64
			for _, p := range prefixes {
				if p[0] == 'r' {
					more = append(more, itemSeqs(items, p, nil, through)...)
				}
			}
			more = append(more, pendingSeqsOf(tx, through, f.ReferralIDs)...) // not in the items file yet
			for _, seq := range more {
				if !seen[seq] {
					seen[seq] = true
					seqs = append(seqs, seq)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		slices.Sort(seqs)
		for _, seq := range seqs {
			e, err := getAuditEntry(tx, seq)
			if err != nil {
				return err
			}
			// A list page's entry shows the client's referrals only (those of the extract;
			// a client-key entry names the client by itself).
			if e.ClientKey != "" && e.ClientKey == f.ClientKey && len(e.Items) == 0 {
				if e.VisibleTo(f.Org) {
					out = append(out, e)
				}
				continue
			}
			if v, ok := e.ViewFor(f.Org, f.ReferralIDs...); ok {
				out = append(out, v)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ChainError says where the access log's chain is broken: Seq is the first entry that is
// missing, altered or out of place.
type ChainError struct {
	Seq    uint64
	Reason string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("access log broken at seq %d: %s", e.Seq, e.Reason)
}

// VerifyAudit walks the whole access log and checks every entry's digest, its sequence
// number, its link to the previous entry, its index entries, and the head. With anchor (a
// head recorded earlier, outside the store) it also checks that entry anchor.Seq still has
// that hash, which catches a chain rewritten from there on. It returns the head, or a
// *ChainError naming the first broken entry. It reads every entry: an operations tool.
func (db *DB) VerifyAudit(ctx context.Context, anchor *AuditHead) (AuditHead, error) {
	var head AuditHead
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return db.itemsView(tx, func(items *bolt.Bucket, through uint64) error {
			var err error
			head, err = verifyAudit(ctx, tx, items, through, anchor)
			return err
		})
	})
	return head, verifyError(err)
}

// VerifyAuditFile is VerifyAudit on the store file at path, opened read-only, without Open:
// it writes nothing, to the file or next to it, so a data dir kept as evidence stays byte for
// byte as it was. The items file (derived data) is read, read-only, when it belongs to the log
// as it is; when it is missing or does not (after a restore, say), the list pages it would
// hold are not checked against it and itemsChecked is false — the chain, the digests, the
// head, the anchor, the index and the pending marks are checked all the same. Like Open it
// waits up to timeout for the lock a running service holds, then returns an error wrapping
// bbolt's ErrTimeout.
func VerifyAuditFile(ctx context.Context, path string, anchor *AuditHead, timeout time.Duration) (head AuditHead, itemsChecked bool, err error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ro := &bolt.Options{ReadOnly: true, Timeout: timeout}
	bdb, err := bolt.Open(path, 0o600, ro)
	if err != nil {
		return head, false, fmt.Errorf("store: open %s: %w", path, err)
	}
	defer bdb.Close()
	var ib *bolt.DB
	ipath := AuditItemsPath(path)
	if _, serr := os.Stat(ipath); serr == nil {
		ib, err = bolt.Open(ipath, 0o600, ro)
		switch {
		case errors.Is(err, berrors.ErrTimeout):
			return head, false, fmt.Errorf("store: open %s: %w", ipath, err)
		case err != nil: // unreadable: Open would set it aside; here it is just not used
			ib = nil
		default:
			defer ib.Close()
		}
	}
	err = bdb.View(func(tx *bolt.Tx) error {
		if err := checkLayout(tx, path); err != nil { // layout.go
			return err
		}
		for _, b := range [][]byte{bucketAudit, bucketAuditIndex, bucketPrivacyMeta, bucketAuditPending} {
			if tx.Bucket(b) == nil {
				return fmt.Errorf("no %s bucket: not a store of this version (start referrald on it once, or verify a copy)", b)
			}
		}
		pruned := readPruned(tx.Bucket(bucketPrivacyMeta))
		without := func() error {
			// Marks after pruned are all still there; the pages before are not checked.
			head, err = verifyAudit(ctx, tx, nil, pruned, anchor)
			return err
		}
		if ib == nil {
			return without()
		}
		return ib.View(func(itx *bolt.Tx) error {
			if !itemsCurrent(tx, itx) {
				return without()
			}
			through, _ := readThrough(itx)
			hseq, _ := readHead(tx.Bucket(bucketPrivacyMeta))
			itemsChecked = true
			head, err = verifyAudit(ctx, tx, itx.Bucket(bucketItems), min(through, hseq), anchor)
			return err
		})
	})
	return head, itemsChecked, verifyError(err)
}

// verifyError returns a *ChainError as it is and wraps any other error of a verification.
func verifyError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*ChainError](err); ok {
		return err
	}
	return fmt.Errorf("store: verify audit: %w", err)
}

// verifyAudit is VerifyAudit in tx, with the items file's bucket and "through" as itemsView
// gives them. With items nil the pages up to through are not checked against postings.
func verifyAudit(ctx context.Context, tx *bolt.Tx, items *bolt.Bucket, through uint64, anchor *AuditHead) (AuditHead, error) {
	var head AuditHead
	err := func() error {
		idx := tx.Bucket(bucketAuditIndex)
		var prev []byte
		next := uint64(1)
		anchored := anchor == nil || anchor.Seq == 0
		c := tx.Bucket(bucketAudit).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if next%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			if len(k) != 8 {
				return &ChainError{Seq: next, Reason: fmt.Sprintf("malformed key %x", k)}
			}
			seq := binary.BigEndian.Uint64(k)
			if seq != next {
				return &ChainError{Seq: next, Reason: fmt.Sprintf("entry missing: the log goes on at seq %d (deleted?)", seq)}
			}
			if len(v) <= sha256.Size {
				return &ChainError{Seq: seq, Reason: "entry truncated"}
			}
			body, sum := v[:len(v)-sha256.Size], v[len(v)-sha256.Size:]
			if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
				return &ChainError{Seq: seq, Reason: "entry altered: its content does not match its digest"}
			}
			var e domain.AuditEntry
			if err := decodeAuditBody(body, &e); err != nil {
				return &ChainError{Seq: seq, Reason: "entry unreadable"}
			}
			if e.Seq != seq {
				return &ChainError{Seq: seq, Reason: fmt.Sprintf("entry claims seq %d", e.Seq)}
			}
			if want := hex.EncodeToString(prev); e.Prev != want {
				return &ChainError{Seq: seq, Reason: fmt.Sprintf("link to seq %d broken: that entry or this one was rewritten", seq-1)}
			}
			keys, itemKeys := auditIndexKeys(&e)
			for _, ik := range keys {
				if idx.Get(ik) == nil {
					return &ChainError{Seq: seq, Reason: "index entry missing: queries and extracts would not find this entry"}
				}
			}
			// A page's item keys are owed in the items file up to through, or in the index
			// (where they were written before the items file existed); after through an
			// entry without them all in the index must be marked pending.
			inIndex := !slices.ContainsFunc(itemKeys, func(ik []byte) bool { return idx.Get(ik) == nil })
			switch {
			case len(itemKeys) == 0 || inIndex:
			case seq > through && tx.Bucket(bucketAuditPending).Get(k) == nil:
				return &ChainError{Seq: seq, Reason: "list page neither indexed nor pending: queries by referral would not find it"}
			case seq <= through && items != nil && slices.ContainsFunc(itemKeys, func(ik []byte) bool {
				return !postingHas(items, ik[:len(ik)-8], seq) && idx.Get(ik) == nil
			}):
				return &ChainError{Seq: seq, Reason: "index entry missing: queries and extracts would not find this entry"}
			}
			if anchor != nil && anchor.Seq == seq {
				if hex.EncodeToString(sum) != anchor.Hash {
					return &ChainError{Seq: seq, Reason: "differs from the anchored head: the chain was rewritten"}
				}
				anchored = true
			}
			prev = bytes.Clone(sum)
			next++
		}
		last := next - 1
		// Every pending mark names an entry of a list page (its items' keys are owed later).
		pc := tx.Bucket(bucketAuditPending).Cursor()
		for k, v := pc.First(); k != nil; k, v = pc.Next() {
			if len(k) != 8 || binary.BigEndian.Uint64(k) == 0 || binary.BigEndian.Uint64(k) > last {
				return &ChainError{Seq: last + 1, Reason: fmt.Sprintf("pending index mark %x names no entry", k)}
			}
			seq := binary.BigEndian.Uint64(k)
			e, err := getAuditEntry(tx, seq)
			if err != nil || len(e.Items) == 0 {
				return &ChainError{Seq: seq, Reason: "pending index mark on an entry without items"}
			}
			// A mark carries the ids the indexer files the page under: they must be the
			// page's (marks written before they carried ids have none).
			if _, itemKeys := auditIndexKeys(&e); len(v) > 0 && !bytes.Equal(v, markValue(itemKeys)) {
				return &ChainError{Seq: seq, Reason: "pending index mark names other referrals than its entry"}
			}
		}
		hseq, hsum := readHead(tx.Bucket(bucketPrivacyMeta))
		switch {
		case hseq > last:
			return &ChainError{Seq: last + 1, Reason: fmt.Sprintf("entries %d–%d missing from the end (the head says %d)", last+1, hseq, hseq)}
		case hseq < last:
			return &ChainError{Seq: hseq + 1, Reason: fmt.Sprintf("entries after the recorded head %d", hseq)}
		case last > 0 && !bytes.Equal(hsum, prev):
			return &ChainError{Seq: last, Reason: "the last entry does not match the recorded head"}
		case !anchored:
			return &ChainError{Seq: last + 1, Reason: fmt.Sprintf("the anchored entry %d is missing", anchor.Seq)}
		}
		head = AuditHead{Seq: last, Hash: hex.EncodeToString(prev)}
		return nil
	}()
	return head, err
}
