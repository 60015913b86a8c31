package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/kela-hva/referrals/domain"
)

// The "r" keys of list pages' items live in a file of their own next to the store's, so that
// writing them never holds the store's writer lock (a request's commit would wait behind
// them):
//
//	<name>-audit-items<ext>
//	  postings "r" id16 seq → uvarint deltas  the list pages that named referral id, in one
//	                                         indexing pass: seq, then seq+d1, +d2, …
//	  meta     "through2"   → seq | SHA-256   every pending entry up to seq is in postings;
//	                                         the digest is that entry's in the log
//	           "format"     → 2               (1, a key per page and referral, is rebuilt)
//
// One key per referral per pass instead of one per page and referral: an inbox shows the same
// referrals page after page, so a pass of a thousand pages writes a few dozen keys.
//
// The store's own file keeps the to-do list: appendAudit marks each page entry in
// audit_pending in the request's transaction. IndexAuditItems reads the marks after
// "through", writes the keys and moves "through" in the items file, and now and then deletes
// the marks up to "through" from the store (recording how far in privacy_meta
// "audit_marks_pruned"). So every page entry is either marked past "through" or indexed in
// the items file, and a query that reads the store first and the items file second sees
// each page entry at least once.
//
// The items file holds nothing that the log does not: Open rebuilds it from the log when it
// is from another history (its "through" entry has another digest, as after a restore),
// older than the pruned marks (as when it is missing after they were pruned), of another
// format, or unreadable (set aside first). Backups copy the store's file only.
var (
	bucketItems       = []byte("postings")
	bucketItemsMeta   = []byte("meta")
	itemsThrough      = []byte("through2") // not format 1's "through": a binary of either format reads only its own
	itemsFormat       = []byte("format")
	itemsFormatV2     = []byte{2}
	metaMarksPruned   = []byte("audit_marks_pruned")
	errItemsStale     = errors.New("audit items file is stale")
	auditMarksPruneIn = 10 * time.Second // how often IndexAuditItems deletes handled marks
)

// AuditItemsPath is the items file of the store at path: referrals.db →
// referrals-audit-items.db. Tools that copy a data dir leave it out: Open rebuilds it.
func AuditItemsPath(path string) string {
	ext := filepath.Ext(path)
	return strings.TrimSuffix(path, ext) + "-audit-items" + ext
}

// auditItems is the store's items file and the indexer's state.
type auditItems struct {
	bolt      *bolt.DB
	mu        sync.Mutex // one IndexAuditItems at a time
	lastPrune time.Time
	rebuilt   time.Duration // how long Open took to rebuild the file; 0: it did not
	setAside  string        // where Open moved an unreadable file; "": it did not
}

// AuditItemsSetAside returns where Open moved an unreadable items file before rebuilding it,
// or "".
func (db *DB) AuditItemsSetAside() string { return db.items.setAside }

// AuditItemsRebuilt returns how long Open took to rebuild the access log's items file from
// the log (after a restore, or when the file was lost), or 0 if it did not have to.
func (db *DB) AuditItemsRebuilt() time.Duration { return db.items.rebuilt }

// openAuditItems opens (creating) the items file of the store at path and brings it up to
// date with db's log: the pending marks only when it is consistent with the log, the whole
// log otherwise.
func (db *DB) openAuditItems(path string, timeout time.Duration) error {
	ipath := AuditItemsPath(path)
	opts := &bolt.Options{Timeout: timeout, FreelistType: bolt.FreelistArrayType}
	ib, err := bolt.Open(ipath, 0o600, opts)
	var aside string
	if err != nil && !errors.Is(err, berrors.ErrTimeout) {
		// Unreadable (a torn or damaged file): it holds nothing the log does not, so set
		// it aside for inspection and rebuild rather than refuse to start.
		aside = fmt.Sprintf("%s.broken-%d", ipath, time.Now().Unix())
		if rerr := os.Rename(ipath, aside); rerr != nil {
			return fmt.Errorf("store: open %s: %w (and cannot set it aside: %v)", ipath, err, rerr)
		}
		ib, err = bolt.Open(ipath, 0o600, opts)
	}
	if err != nil {
		return fmt.Errorf("store: open %s: %w", ipath, err)
	}
	db.items = &auditItems{bolt: ib, setAside: aside}
	err = ib.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketItemsMeta) == nil { // a new file: of the current format, empty
			meta, err := tx.CreateBucket(bucketItemsMeta)
			if err != nil {
				return err
			}
			if err := meta.Put(itemsFormat, itemsFormatV2); err != nil {
				return err
			}
		}
		_, err := tx.CreateBucketIfNotExists(bucketItems)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: open %s: %w", ipath, err)
	}
	if err := db.itemsConsistent(); errors.Is(err, errItemsStale) {
		start := time.Now()
		if err := db.rebuildAuditItems(); err != nil {
			return err
		}
		db.items.rebuilt = max(time.Since(start), time.Nanosecond)
	} else if err != nil {
		return err
	}
	return nil
}

// readThrough returns the items file's "through" seq and digest.
func readThrough(tx *bolt.Tx) (uint64, []byte) {
	v := tx.Bucket(bucketItemsMeta).Get(itemsThrough)
	if len(v) < 8 {
		return 0, nil
	}
	return binary.BigEndian.Uint64(v), v[8:]
}

// readPruned returns how far the store's marks have been pruned (privacy_meta
// "audit_marks_pruned"), 0 if never.
func readPruned(meta *bolt.Bucket) uint64 {
	if v := meta.Get(metaMarksPruned); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// entryDigest returns the digest stored with log entry seq, nil if there is none.
func entryDigest(tx *bolt.Tx, seq uint64) []byte {
	v := tx.Bucket(bucketAudit).Get(seqKey(seq))
	if len(v) <= sha256.Size {
		return nil
	}
	return v[len(v)-sha256.Size:]
}

// itemsConsistent returns errItemsStale when the items file does not belong to the log
// as it is, or misses keys whose marks the log no longer has.
func (db *DB) itemsConsistent() error {
	return db.bolt.View(func(tx *bolt.Tx) error {
		return db.items.bolt.View(func(itx *bolt.Tx) error {
			if !itemsCurrent(tx, itx) {
				return errItemsStale
			}
			return nil
		})
	})
}

// itemsCurrent reports whether the items file read in itx belongs to the log read in tx: of
// the current format, its "through" entry in the log with the same digest, and not older
// than the pruned marks.
func itemsCurrent(tx, itx *bolt.Tx) bool {
	meta := itx.Bucket(bucketItemsMeta)
	if meta == nil || itx.Bucket(bucketItems) == nil || !bytes.Equal(meta.Get(itemsFormat), itemsFormatV2) {
		return false
	}
	through, sum := readThrough(itx)
	pruned := readPruned(tx.Bucket(bucketPrivacyMeta))
	return (through == 0 || bytes.Equal(entryDigest(tx, through), sum)) && through >= pruned
}

// rebuildAuditItems empties the items file and indexes every page entry of the log, a
// chunk of entries a transaction, then deletes every mark.
func (db *DB) rebuildAuditItems() error {
	err := db.items.bolt.Update(func(itx *bolt.Tx) error {
		if err := itx.DeleteBucket(bucketItems); err != nil {
			return err
		}
		if err := itx.DeleteBucket([]byte("items")); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
			return err // format 1's
		}
		if _, err := itx.CreateBucket(bucketItems); err != nil {
			return err
		}
		if err := itx.Bucket(bucketItemsMeta).Put(itemsFormat, itemsFormatV2); err != nil {
			return err
		}
		return itx.Bucket(bucketItemsMeta).Delete(itemsThrough)
	})
	if err != nil {
		return fmt.Errorf("store: rebuild audit items: %w", err)
	}
	const chunk = 4096
	for next := uint64(1); ; {
		lists := postings{}
		var through uint64
		var sum []byte
		err := db.bolt.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketAudit).Cursor()
			n := 0
			for k, v := c.Seek(seqKey(next)); k != nil && n < chunk; k, v = c.Next() {
				n++
				if len(k) != 8 || len(v) <= sha256.Size {
					continue // VerifyAudit names it
				}
				through, sum = binary.BigEndian.Uint64(k), bytes.Clone(v[len(v)-sha256.Size:])
				body := v[:len(v)-sha256.Size]
				if body[0] != deflated && !bytes.Contains(body, []byte(`"items"`)) {
					continue // not a list page: no need to decode it
				}
				var e domain.AuditEntry
				if decodeAuditBody(body, &e) != nil {
					continue
				}
				_, ik := auditIndexKeys(&e)
				lists.addIDs(through, markIDsOf(ik)) // the key's seq: a body claiming another is verify's to name
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("store: rebuild audit items: %w", err)
		}
		if through < next {
			break
		}
		if err := db.putItems(lists, through, sum); err != nil {
			return fmt.Errorf("store: rebuild audit items: %w", err)
		}
		next = through + 1
	}
	return db.pruneAuditMarks(nil)
}

// postings are one indexing pass's list pages by referral, seqs ascending.
type postings map[[16]byte][]uint64

// addIDs files page seq under each of ids; seqs come in ascending order.
func (p postings) addIDs(seq uint64, ids [][16]byte) {
	for _, id := range ids {
		if s := p[id]; len(s) == 0 || s[len(s)-1] != seq {
			p[id] = append(s, seq)
		}
	}
}

// encodePosting is the value of a posting key whose seq is seqs[0]: the deltas after it.
func encodePosting(seqs []uint64) []byte {
	v := make([]byte, 0, 2*len(seqs))
	for i := 1; i < len(seqs); i++ {
		v = binary.AppendUvarint(v, seqs[i]-seqs[i-1])
	}
	return v
}

// decodePosting appends the seqs of the posting with key seq first and value v to out; false
// if v is malformed.
func decodePosting(first uint64, v []byte, out []uint64) ([]uint64, bool) {
	out = append(out, first)
	for seq := first; len(v) > 0; {
		d, n := binary.Uvarint(v)
		if n <= 0 || d == 0 || d > math.MaxUint64-seq {
			return out, false
		}
		seq += d
		out = append(out, seq)
		v = v[n:]
	}
	return out, true
}

// putItems writes the postings to the items file and moves "through" to seq with its
// digest.
func (db *DB) putItems(lists postings, seq uint64, sum []byte) error {
	return db.items.bolt.Update(func(itx *bolt.Tx) error {
		b := itx.Bucket(bucketItems)
		ids := slices.SortedFunc(maps.Keys(lists), func(a, b [16]byte) int { return bytes.Compare(a[:], b[:]) })
		for _, id := range ids { // in key order: bbolt's cursor stays near
			seqs := lists[id]
			if err := b.Put(append(auditRefPrefix(id), seqKey(seqs[0])...), encodePosting(seqs)); err != nil {
				return err
			}
		}
		v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(sum)), seq)
		return itx.Bucket(bucketItemsMeta).Put(itemsThrough, append(v, sum...))
	})
}

// beforeItemsView, when set (by tests only), runs in itemsView after it has read the log's
// head and before it opens the items file.
var beforeItemsView func()

// itemsView runs fn with a read transaction of the items file, its "through" seq capped at
// the head of the log as tx sees it. Open it after tx: then each page entry tx sees is
// either marked past the returned seq or under the items file's "r" keys.
func (db *DB) itemsView(tx *bolt.Tx, fn func(items *bolt.Bucket, through uint64) error) error {
	head, _ := readHead(tx.Bucket(bucketPrivacyMeta))
	if beforeItemsView != nil {
		beforeItemsView()
	}
	return db.items.bolt.View(func(itx *bolt.Tx) error {
		through, _ := readThrough(itx)
		return fn(itx.Bucket(bucketItems), min(through, head))
	})
}

// IndexAuditItems puts the "r" keys of up to max pending entries (oldest first) in the items
// file, in one of its transactions, and returns how many marks it handled. max <= 0 means
// 1000. Run it often: queries by referral read every pending entry. Every
// auditMarksPruneIn, and when it met marks that name no page entry, it also deletes the
// handled marks, through the store's group commit.
func (db *DB) IndexAuditItems(ctx context.Context, max int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if max <= 0 {
		max = 1000
	}
	db.items.mu.Lock()
	defer db.items.mu.Unlock()
	var bad [][]byte
	lists := postings{}
	var through uint64
	var lastSum []byte
	n := 0
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return db.itemsView(tx, func(_ *bolt.Bucket, done uint64) error {
			through = done
			c := tx.Bucket(bucketAuditPending).Cursor()
			for k, v := c.Seek(seqKey(done + 1)); k != nil && n < max; k, v = c.Next() {
				n++
				if len(k) != 8 {
					bad = append(bad, bytes.Clone(k)) // nothing to index; VerifyAudit names it
					continue
				}
				seq := binary.BigEndian.Uint64(k)
				ids, ok := markIDs(tx, seq, v)
				sum := entryDigest(tx, seq)
				if !ok || sum == nil {
					// A bad mark, or a missing or unreadable entry: the chain check names
					// it; indexing the others must go on.
					bad = append(bad, bytes.Clone(k))
					continue
				}
				lists.addIDs(seq, ids)
				through, lastSum = seq, bytes.Clone(sum)
			}
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("store: index audit items: %w", err)
	}
	if lastSum != nil {
		if err := db.putItems(lists, through, lastSum); err != nil {
			return 0, fmt.Errorf("store: index audit items: %w", err)
		}
	}
	if len(bad) > 0 || time.Since(db.items.lastPrune) >= auditMarksPruneIn {
		if err := db.pruneAuditMarks(bad); err != nil {
			return n, err
		}
	}
	return n, nil
}

// pruneAuditMarks deletes the marks up to the items file's "through" and the marks bad,
// through group commit, and records how far it pruned.
func (db *DB) pruneAuditMarks(bad [][]byte) error {
	var through uint64
	err := db.items.bolt.View(func(itx *bolt.Tx) error {
		through, _ = readThrough(itx)
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: prune audit marks: %w", err)
	}
	due := false // anything to delete or record: no commit for nothing
	err = db.bolt.View(func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bucketAuditPending).Cursor().First()
		due = len(bad) > 0 || (k != nil && bytes.Compare(k, seqKey(through)) <= 0) ||
			readPruned(tx.Bucket(bucketPrivacyMeta)) < through
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: prune audit marks: %w", err)
	}
	if !due {
		db.items.lastPrune = time.Now()
		return nil
	}
	err = db.group.do(func(tx *bolt.Tx) error {
		pending, meta := tx.Bucket(bucketAuditPending), tx.Bucket(bucketPrivacyMeta)
		var del [][]byte
		c := pending.Cursor()
		for k, _ := c.First(); k != nil && bytes.Compare(k, seqKey(through)) <= 0; k, _ = c.Next() {
			del = append(del, bytes.Clone(k))
		}
		for _, k := range append(del, bad...) {
			if err := pending.Delete(k); err != nil {
				return err
			}
		}
		if through > readPruned(meta) {
			return meta.Put(metaMarksPruned, seqKey(through))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: prune audit marks: %w", err)
	}
	db.items.lastPrune = time.Now()
	return nil
}

// AuditItemsPending returns how many entries wait for IndexAuditItems.
func (db *DB) AuditItemsPending() (int, error) {
	var n int
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return db.itemsView(tx, func(_ *bolt.Bucket, through uint64) error {
			c := tx.Bucket(bucketAuditPending).Cursor()
			for k, _ := c.Seek(seqKey(through + 1)); k != nil; k, _ = c.Next() {
				n++
			}
			return nil
		})
	})
	return n, err
}

// markValue is a pending mark's value: the 16-byte ids of the referrals the page names (from
// its "r" item keys), so that the indexer and queries need not decode the entry. Marks written
// before carry none (empty): their entry is read instead.
func markValue(itemKeys [][]byte) []byte {
	v := make([]byte, 0, 16*len(itemKeys))
	for _, id := range markIDsOf(itemKeys) {
		v = append(v, id[:]...)
	}
	return v
}

// markIDsOf returns the referral ids of a page's "r" item keys ("r" id16 seq).
func markIDsOf(itemKeys [][]byte) [][16]byte {
	ids := make([][16]byte, len(itemKeys))
	for i, k := range itemKeys {
		copy(ids[i][:], k[1:17])
	}
	return ids
}

// markIDs returns the referral ids of the pending mark with value v of the entry seq,
// reading the entry for a mark without them (or with a damaged value: the log decides; verify
// names the mark); false if neither tells.
func markIDs(tx *bolt.Tx, seq uint64, v []byte) ([][16]byte, bool) {
	if len(v) > 0 && len(v)%16 == 0 {
		ids := make([][16]byte, len(v)/16)
		for i := range ids {
			copy(ids[i][:], v[16*i:])
		}
		return ids, true
	}
	e, err := getAuditEntry(tx, seq)
	if err != nil || len(e.Items) == 0 {
		return nil, false
	}
	_, ik := auditIndexKeys(&e)
	return markIDsOf(ik), true
}

// pendingSeqsOf returns the seqs, ascending, of the entries marked after through with an item
// of one of the referrals ids (their "r" keys are not in the items file yet).
func pendingSeqsOf(tx *bolt.Tx, through uint64, ids []string) []uint64 {
	var want [][16]byte
	for _, s := range ids {
		if id, ok := parseID(s); ok {
			want = append(want, id)
		}
	}
	var out []uint64
	c := tx.Bucket(bucketAuditPending).Cursor()
	for k, v := c.Seek(seqKey(through + 1)); k != nil; k, v = c.Next() {
		if len(k) != 8 {
			continue
		}
		seq := binary.BigEndian.Uint64(k)
		named, ok := markIDs(tx, seq, v)
		if !ok {
			continue // a broken mark or entry: VerifyAudit names it; it must not stop every query
		}
		if slices.ContainsFunc(named, func(id [16]byte) bool { return slices.Contains(want, id) }) {
			out = append(out, seq)
		}
	}
	return out
}

// itemSeqs returns the seqs, ascending, of the list pages the items file files under prefix
// ("r" id16) that are after after (nil: all) and not past through.
func itemSeqs(items *bolt.Bucket, prefix []byte, after []byte, through uint64) []uint64 {
	var out, seqs []uint64
	c := items.Cursor()
	k, v := c.Seek(prefix)
	if after != nil {
		k, v = seekPosting(c, prefix, after) // the posting that may hold seqs after after
	}
	var min uint64
	if after != nil {
		min = binary.BigEndian.Uint64(after)
	}
	for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if len(k) != len(prefix)+8 {
			continue
		}
		first := binary.BigEndian.Uint64(k[len(prefix):])
		if first > through {
			break
		}
		seqs, _ = decodePosting(first, v, seqs[:0]) // a malformed tail: VerifyAudit names it
		for _, seq := range seqs {
			if (after == nil || seq > min) && seq <= through {
				out = append(out, seq)
			}
		}
	}
	return out
}

// seekPosting positions c at the last posting under prefix ("r" id16) that begins at or
// before seq (8 bytes), the one that may hold seq, or else at the first key after it. Whole
// keys are compared: the next referral's posting may begin at the same seq.
func seekPosting(c *bolt.Cursor, prefix, seq []byte) (k, v []byte) {
	start := append(bytes.Clone(prefix), seq...)
	if k, v = c.Seek(start); bytes.Equal(k, start) {
		return k, v
	}
	if pk, pv := c.Prev(); pk != nil && bytes.HasPrefix(pk, prefix) {
		return pk, pv
	}
	return c.Seek(start)
}

// postingHas reports whether the items file files the page seq under prefix ("r" id16).
func postingHas(items *bolt.Bucket, prefix []byte, seq uint64) bool {
	k, v := seekPosting(items.Cursor(), prefix, seqKey(seq))
	if k == nil || !bytes.HasPrefix(k, prefix) || len(k) != len(prefix)+8 {
		return false
	}
	seqs, ok := decodePosting(binary.BigEndian.Uint64(k[len(prefix):]), v, nil)
	return ok && slices.Contains(seqs, seq)
}
