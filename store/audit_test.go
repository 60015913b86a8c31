package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"

	"github.com/kela-hva/referrals/domain"
)

var t0 = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

// entry is a read of referral ref by user of org at t0+minutes.
func entry(user string, org domain.OrgID, ref string, minutes int) domain.AuditEntry {
	return domain.AuditEntry{At: t0.Add(time.Duration(minutes) * time.Minute), Action: domain.AuditRead,
		UserID: user, Org: org, Purpose: domain.PurposeBenefitProcessing, ReferralID: ref,
		Sender: domain.Kela, Recipient: "hva-90", Kind: domain.KindSocialWorkNeed}
}

// mustAppend appends n entries by alternating users about one referral.
func mustAppend(t *testing.T, db *DB, n int) string {
	t.Helper()
	ref := uuid.Must(uuid.NewV7()).String()
	var es []domain.AuditEntry
	for i := range n {
		es = append(es, entry(fmt.Sprintf("user-%d", i%2), domain.Kela, ref, i))
	}
	if err := db.AppendAudit(context.Background(), es); err != nil {
		t.Fatal(err)
	}
	return ref
}

func wantChainError(t *testing.T, err error, seq uint64) {
	t.Helper()
	ce, ok := errors.AsType[*ChainError](err)
	if !ok {
		t.Fatalf("err = %v, want a *ChainError at seq %d", err, seq)
	}
	if ce.Seq != seq {
		t.Fatalf("broken at seq %d (%s), want %d", ce.Seq, ce.Reason, seq)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("seq %d", seq)) {
		t.Errorf("message %q does not name seq %d", err, seq)
	}
}

// tamper changes the raw file under the store's back, as someone with the file would.
func tamper(t *testing.T, db *DB, fn func(tx *bolt.Tx) error) {
	t.Helper()
	if err := db.bolt.Update(fn); err != nil {
		t.Fatal(err)
	}
}

func TestAuditChainVerifies(t *testing.T) {
	db := MustOpen(t)
	if head, err := db.VerifyAudit(context.Background(), nil); err != nil || head.Seq != 0 {
		t.Fatalf("empty log: %+v, %v", head, err)
	}
	mustAppend(t, db, 3)
	mustAppend(t, db, 2)
	head, err := db.VerifyAudit(context.Background(), nil)
	if err != nil || head.Seq != 5 {
		t.Fatalf("verify = %+v, %v; want head 5", head, err)
	}
	if h, _ := db.AuditHead(); h != head {
		t.Errorf("AuditHead %+v, VerifyAudit %+v", h, head)
	}
	// Each entry names its predecessor's hash; the first names none.
	err = db.bolt.View(func(tx *bolt.Tx) error {
		var prev string
		for seq := uint64(1); seq <= 5; seq++ {
			v := tx.Bucket(bucketAudit).Get(seqKey(seq))
			e, err := getAuditEntry(tx, seq)
			if err != nil {
				return err
			}
			if e.Seq != seq || e.Prev != prev {
				t.Errorf("entry %d: seq %d prev %q, want prev %q", seq, e.Seq, e.Prev, prev)
			}
			sum := sha256.Sum256(v[:len(v)-sha256.Size])
			prev = hex.EncodeToString(sum[:])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestAuditTamperIsFound changes a stored log in each way someone with the file could and
// checks that verification fails at the right entry.
func TestAuditTamperIsFound(t *testing.T) {
	cases := []struct {
		name    string
		tamper  func(tx *bolt.Tx) error
		wantSeq uint64
	}{
		{"flip a byte in the user id of entry 3", func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketAudit)
			v := append([]byte(nil), b.Get(seqKey(3))...)
			i := strings.Index(string(v), `"user-0"`)
			v[i+6] ^= 0x01 // user-0 → user-1: still valid JSON, another user
			return b.Put(seqKey(3), v)
		}, 3},
		{"flip a byte in the stored digest of entry 2", func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketAudit)
			v := append([]byte(nil), b.Get(seqKey(2))...)
			v[len(v)-1] ^= 0xff
			return b.Put(seqKey(2), v)
		}, 2},
		{"delete entry 3", func(tx *bolt.Tx) error { return tx.Bucket(bucketAudit).Delete(seqKey(3)) }, 3},
		{"delete the first entry", func(tx *bolt.Tx) error { return tx.Bucket(bucketAudit).Delete(seqKey(1)) }, 1},
		{"delete the last entry", func(tx *bolt.Tx) error { return tx.Bucket(bucketAudit).Delete(seqKey(5)) }, 5},
		{"rewrite entry 3 with a fresh digest", func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketAudit)
			e, err := getAuditEntry(tx, 3)
			if err != nil {
				return err
			}
			e.Purpose = domain.PurposeAudit
			body, _ := json.Marshal(&e)
			sum := sha256.Sum256(body)
			return b.Put(seqKey(3), append(body, sum[:]...))
		}, 4},
		{"delete an index entry", func(tx *bolt.Tx) error {
			e, err := getAuditEntry(tx, 4)
			if err != nil {
				return err
			}
			keys, _ := auditIndexKeys(&e)
			return tx.Bucket(bucketAuditIndex).Delete(keys[0])
		}, 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := MustOpen(t)
			mustAppend(t, db, 5)
			if _, err := db.VerifyAudit(context.Background(), nil); err != nil {
				t.Fatalf("before tampering: %v", err)
			}
			tamper(t, db, tc.tamper)
			_, err := db.VerifyAudit(context.Background(), nil)
			wantChainError(t, err, tc.wantSeq)
		})
	}
}

// TestAuditAnchorCatchesARewrittenChain rewrites the chain from entry 2 on, consistently,
// head included: only a head recorded elsewhere shows it.
func TestAuditAnchorCatchesARewrittenChain(t *testing.T) {
	db := MustOpen(t)
	mustAppend(t, db, 4)
	anchor, err := db.AuditHead()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.VerifyAudit(context.Background(), &anchor); err != nil {
		t.Fatalf("untouched, anchored: %v", err)
	}
	tamper(t, db, func(tx *bolt.Tx) error {
		var es []domain.AuditEntry
		for seq := uint64(2); seq <= 4; seq++ {
			e, err := getAuditEntry(tx, seq)
			if err != nil {
				return err
			}
			if err := tx.Bucket(bucketAudit).Delete(seqKey(seq)); err != nil {
				return err
			}
			e.UserID = "someone-else"
			es = append(es, e)
		}
		v := tx.Bucket(bucketAudit).Get(seqKey(1))
		head := append(seqKey(1), v[len(v)-sha256.Size:]...)
		if err := tx.Bucket(bucketPrivacyMeta).Put(metaAuditHead, head); err != nil {
			return err
		}
		return appendAudit(tx, es)
	})
	if _, err := db.VerifyAudit(context.Background(), nil); err != nil {
		t.Fatalf("a consistent rewrite passes the chain alone (that is what anchors are for): %v", err)
	}
	_, err = db.VerifyAudit(context.Background(), &anchor)
	wantChainError(t, err, 4)
	far := AuditHead{Seq: 9, Hash: anchor.Hash}
	_, err = db.VerifyAudit(context.Background(), &far)
	wantChainError(t, err, 5)
}

func TestAuditQueries(t *testing.T) {
	db := MustOpen(t)
	ctx := context.Background()
	refA, refB := uuid.Must(uuid.NewV7()).String(), uuid.Must(uuid.NewV7()).String()
	var es []domain.AuditEntry
	for i := range 6 {
		es = append(es, entry("kela-user", domain.Kela, refA, i)) // Kela ↔ Helsinki, minutes 0–5
	}
	b := entry("tre-user", "hva-08", refB, 10) // Kela ↔ Tampere
	b.Recipient = "hva-08"
	es = append(es, b)
	q := domain.AuditEntry{At: t0.Add(20 * time.Minute), Action: domain.AuditQuery, UserID: "auditor", Org: "hva-90"}
	es = append(es, q)
	if err := db.AppendAudit(ctx, es); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		f    domain.AuditFilter
		want string
	}{
		{"a referral's entries", domain.AuditFilter{Org: "hva-90", ReferralID: refA}, "[1 2 3 4 5 6]"},
		{"another org's referral is not visible", domain.AuditFilter{Org: "hva-90", ReferralID: refB}, "[]"},
		{"the referral's other party sees it", domain.AuditFilter{Org: "hva-08", ReferralID: refB}, "[7]"},
		{"a referral's entries in a time range", domain.AuditFilter{Org: "kela", ReferralID: refA, From: t0.Add(2 * time.Minute), To: t0.Add(4 * time.Minute)}, "[3 4]"},
		{"a user's entries", domain.AuditFilter{Org: "kela", UserID: "tre-user"}, "[7]"},
		{"a user's entries the auditor's org is not party to", domain.AuditFilter{Org: "hva-90", UserID: "tre-user"}, "[]"},
		{"everything an org sees", domain.AuditFilter{Org: "hva-90"}, "[1 2 3 4 5 6 8]"},
		{"everything in a time range", domain.AuditFilter{Org: "kela", From: t0.Add(5 * time.Minute), To: t0.Add(15 * time.Minute)}, "[6 7]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := db.Audit(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(seqsOf(p.Items)); got != tc.want || p.Next != "" {
				t.Errorf("seqs %s next %q, want %s and no next", got, p.Next, tc.want)
			}
		})
	}
	// Paging: 3 pages of 3, 3 and 1 over the org index, and over the referral index.
	for _, f := range []domain.AuditFilter{{Org: "hva-90", Limit: 3}, {Org: "kela", ReferralID: refA, Limit: 4}} {
		var all []uint64
		pages := 0
		for {
			p, err := db.Audit(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			all = append(all, seqsOf(p.Items)...)
			if p.Next == "" {
				break
			}
			f.After = p.Next
		}
		want := "[1 2 3 4 5 6 8]"
		if f.ReferralID != "" {
			want = "[1 2 3 4 5 6]"
		}
		if fmt.Sprint(all) != want || pages != 3 && f.ReferralID == "" || pages != 2 && f.ReferralID != "" {
			t.Errorf("%+v: paged %v in %d pages, want %s", f, all, pages, want)
		}
	}
	for _, bad := range []domain.AuditFilter{{}, {Org: "kela", ReferralID: "nope"}, {Org: "kela", After: "!!"}} {
		if _, err := db.Audit(ctx, bad); domain.ErrorCode(err) != domain.EMalformed {
			t.Errorf("%+v: err %v, want EMalformed", bad, err)
		}
	}
	// The extract view: referral A and the client key, for Helsinki.
	keyed := entry("kela-user", domain.Kela, "", 30)
	keyed.ClientKey, keyed.Action = "ck-1", domain.AuditClientSearch
	// Another county searched for the same person and found nothing of Helsinki's: its entry
	// is in its own extract only (the client key is the same in every organisation's).
	other := entry("turku-user", "hva-10", "", 31)
	other.ClientKey, other.Action, other.Sender, other.Recipient, other.Kind = "ck-1", domain.AuditClientSearch, "", "", ""
	if err := db.AppendAudit(ctx, []domain.AuditEntry{keyed, other}); err != nil {
		t.Fatal(err)
	}
	if got, err := db.AuditOf(ctx, domain.ExtractFilter{Org: "hva-10", ClientKey: "ck-1"}); err != nil || len(got) != 1 || got[0].Seq != 10 {
		t.Errorf("hva-10's extract: %+v, %v; want its own search (10) only", got, err)
	}
	got, err := db.AuditOf(ctx, domain.ExtractFilter{Org: "hva-90", ReferralIDs: []string{refA, refB}, ClientKey: "ck-1"})
	if err != nil {
		t.Fatal(err)
	}
	var gs []uint64
	for _, e := range got {
		gs = append(gs, e.Seq)
	}
	if fmt.Sprint(gs) != "[1 2 3 4 5 6 9]" {
		t.Errorf("extract seqs %v, want [1 2 3 4 5 6 9]", gs)
	}
}

// TestChangesAreLoggedInTheirTransaction: a change and its log entry commit together, with
// the purpose and request id of the context; a failed change logs nothing.
func TestChangesAreLoggedInTheirTransaction(t *testing.T) {
	db := MustOpen(t)
	svc, _ := serviceOn(db)
	ctx := domain.WithAccess(context.Background(), domain.Access{Purpose: domain.PurposeBenefitProcessing, RequestID: "req-1"})
	r, _, err := svc.Create(ctx, kelaHandler, needRequest(secretPID, secretName), "idem-1")
	if err != nil {
		t.Fatal(err)
	}
	// Not allowed: Kela cannot complete its own notification. Nothing is written.
	if _, err := svc.Act(ctx, kelaHandler, r.ID, domain.Command{Action: domain.ActionComplete, Outcome: "already_client"}); err == nil {
		t.Fatal("complete by the sender succeeded")
	}
	// A replayed create shows the referral again: logged as a read.
	if _, created, err := svc.Create(ctx, kelaHandler, needRequest(secretPID, secretName), "idem-1"); err != nil || created {
		t.Fatalf("replay: created %v, %v", created, err)
	}
	p, err := db.Audit(context.Background(), domain.AuditFilter{Org: domain.Kela, ReferralID: r.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Items) != 2 {
		t.Fatalf("entries %+v, want create and create_replay", p.Items)
	}
	c := p.Items[0]
	if c.Action != "create" || c.Purpose != domain.PurposeBenefitProcessing || c.RequestID != "req-1" ||
		c.UserID != kelaHandler.UserID || c.UserName != kelaHandler.Name || c.Org != domain.Kela ||
		c.Disclosure == nil || c.Disclosure.To != "hva-90" || c.Disclosure.Consent != "given" ||
		!strings.Contains(c.Disclosure.LegalBasis, "§35") {
		t.Errorf("create entry = %+v (disclosure %+v)", c, c.Disclosure)
	}
	if p.Items[1].Action != domain.AuditCreateReplay {
		t.Errorf("second entry = %+v", p.Items[1])
	}
	b, _ := json.Marshal(p.Items)
	if strings.Contains(string(b), secretPID) || strings.Contains(string(b), secretName) {
		t.Errorf("entries hold client data: %s", b)
	}
}

// pageEntry is a list page by a Kela user at t0+minutes showing refs, all Kela → hva-90.
func pageEntry(minutes int, refs ...string) domain.AuditEntry {
	e := domain.AuditEntry{At: t0.Add(time.Duration(minutes) * time.Minute), Action: domain.AuditList,
		UserID: "lister", Org: domain.Kela, Purpose: domain.PurposeBenefitProcessing}
	for _, r := range refs {
		e.Items = append(e.Items, domain.AuditItem{ReferralID: r, Kind: domain.KindSocialWorkNeed, Sender: domain.Kela, Recipient: "hva-90"})
	}
	return e
}

// TestListPageEntriesAreIndexedLater: a page entry's items are not under "r" until
// IndexAuditItems runs, yet queries by referral and extracts find it at once, in seq order
// with the referral's other entries and across cursor pages; the chain verifies before and
// after, and a missing item key is caught once the entry is indexed.
func TestListPageEntriesAreIndexedLater(t *testing.T) {
	ctx := context.Background()
	db := MustOpen(t)
	a, b := uuid.Must(uuid.NewV7()).String(), uuid.Must(uuid.NewV7()).String()
	for _, e := range []domain.AuditEntry{
		entry("u1", domain.Kela, a, 0), // seq 1
		pageEntry(1, a, b),             // seq 2: pending
		entry("u1", domain.Kela, a, 2), // seq 3
		pageEntry(3, b),                // seq 4: pending, not a's
		pageEntry(4, a),                // seq 5: pending
	} {
		if err := db.AppendAudit(ctx, []domain.AuditEntry{e}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(stage string) {
		t.Helper()
		p, err := db.Audit(ctx, domain.AuditFilter{Org: domain.Kela, ReferralID: a})
		if err != nil {
			t.Fatal(err)
		}
		if got := seqsOf(p.Items); fmt.Sprint(got) != "[1 2 3 5]" {
			t.Errorf("%s: a's entries %v, want [1 2 3 5]", stage, got)
		}
		for _, e := range p.Items {
			if len(e.Items) > 0 && (len(e.Items) != 1 || e.Items[0].ReferralID != a) {
				t.Errorf("%s: entry %d not narrowed to a: %+v", stage, e.Seq, e.Items)
			}
		}
		// Two at a time: the cursor crosses from indexed to pending entries.
		if all := pagedSeqs(t, db, a, 2); fmt.Sprint(all) != "[1 2 3 5]" {
			t.Errorf("%s: paged a's entries %v, want [1 2 3 5]", stage, all)
		}
		ext, err := db.AuditOf(ctx, domain.ExtractFilter{Org: "hva-90", ReferralIDs: []string{b}})
		if err != nil {
			t.Fatal(err)
		}
		if got := seqsOf(ext); fmt.Sprint(got) != "[2 4]" {
			t.Errorf("%s: b's extract %v, want [2 4]", stage, got)
		}
		if _, err := db.VerifyAudit(ctx, nil); err != nil {
			t.Errorf("%s: %v", stage, err)
		}
	}
	if n, _ := db.AuditItemsPending(); n != 3 {
		t.Fatalf("%d entries pending, want the 3 pages", n)
	}
	var rKeys int
	_ = db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAuditIndex).Cursor()
		for k, _ := c.Seek([]byte("r")); k != nil && k[0] == 'r'; k, _ = c.Next() {
			rKeys++
		}
		return nil
	})
	if rKeys != 2 {
		t.Fatalf("%d \"r\" keys before indexing, want the 2 single reads'", rKeys)
	}
	check("pending")

	if n, err := db.IndexAuditItems(ctx, 2); err != nil || n != 2 {
		t.Fatalf("IndexAuditItems(2) = %d, %v", n, err)
	}
	check("partly indexed")
	if n, err := db.IndexAuditItems(ctx, 0); err != nil || n != 1 {
		t.Fatalf("IndexAuditItems = %d, %v, want the last 1", n, err)
	}
	if n, _ := db.AuditItemsPending(); n != 0 {
		t.Fatalf("%d pending after indexing", n)
	}
	check("indexed")
	if n, err := db.IndexAuditItems(ctx, 0); err != nil || n != 0 {
		t.Fatalf("nothing pending: IndexAuditItems = %d, %v", n, err)
	}
	// Now the page's keys are owed in the items file: losing one is a broken log.
	dropPosting(t, db, b, 4)
	_, err := db.VerifyAudit(ctx, nil)
	wantChainError(t, err, 4)
}

// dropPosting removes page seq from referral ref's postings in the items file.
func dropPosting(t *testing.T, db *DB, ref string, seq uint64) {
	t.Helper()
	prefix := auditRefPrefix(uuid.MustParse(ref))
	err := db.items.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketItems)
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			seqs, _ := decodePosting(binary.BigEndian.Uint64(k[len(prefix):]), v, nil)
			if !slices.Contains(seqs, seq) {
				continue
			}
			seqs = slices.DeleteFunc(seqs, func(s uint64) bool { return s == seq })
			if err := b.Delete(bytes.Clone(k)); err != nil {
				return err
			}
			if len(seqs) > 0 {
				return b.Put(append(bytes.Clone(prefix), seqKey(seqs[0])...), encodePosting(seqs))
			}
			return nil
		}
		t.Fatalf("page %d is not filed under %s", seq, ref)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestAuditItemsFile: indexing a page's items commits to the items file only (a request's
// commit never waits behind it); the marks go later, through group commit; and a store
// whose items file is missing (a restore) or from another history is rebuilt from the log
// at Open, so queries by referral still find every page.
func TestAuditItemsFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "referrals.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, b := uuid.Must(uuid.NewV7()).String(), uuid.Must(uuid.NewV7()).String()
	for _, e := range []domain.AuditEntry{entry("u1", domain.Kela, a, 0), pageEntry(1, a, b), pageEntry(2, b), pageEntry(3, a)} {
		if err := db.AppendAudit(ctx, []domain.AuditEntry{e}); err != nil {
			t.Fatal(err)
		}
	}
	seqsOf := func(db *DB, ref string) string {
		t.Helper()
		p, err := db.Audit(ctx, domain.AuditFilter{Org: domain.Kela, ReferralID: ref})
		if err != nil {
			t.Fatal(err)
		}
		var out []uint64
		for _, e := range p.Items {
			out = append(out, e.Seq)
		}
		return fmt.Sprint(out)
	}
	db.items.lastPrune = time.Now() // not due: indexing alone
	before := db.CommitStats().Commits
	if n, err := db.IndexAuditItems(ctx, 0); err != nil || n != 3 {
		t.Fatalf("IndexAuditItems = %d, %v", n, err)
	}
	if c := db.CommitStats().Commits; c != before {
		t.Errorf("indexing made %d commits to the store's file, want none", c-before)
	}
	var marks int
	_ = db.bolt.View(func(tx *bolt.Tx) error { marks = tx.Bucket(bucketAuditPending).Stats().KeyN; return nil })
	if n, _ := db.AuditItemsPending(); n != 0 || marks != 3 {
		t.Errorf("%d pending, %d marks; want 0 pending and the 3 handled marks kept until pruned", n, marks)
	}
	if got := seqsOf(db, a); got != "[1 2 4]" {
		t.Errorf("a's entries %s, want [1 2 4]", got)
	}
	if err := db.pruneAuditMarks(nil); err != nil {
		t.Fatal(err)
	}
	_ = db.bolt.View(func(tx *bolt.Tx) error { marks = tx.Bucket(bucketAuditPending).Stats().KeyN; return nil })
	if marks != 0 {
		t.Errorf("%d marks after pruning", marks)
	}
	if got := seqsOf(db, a); got != "[1 2 4]" {
		t.Errorf("after pruning: a's entries %s, want [1 2 4]", got)
	}
	// One more page, pending: a backup now holds its mark but not the items of the others.
	if err := db.AppendAudit(ctx, []domain.AuditEntry{pageEntry(4, a, b)}); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "referrals.db")
	f, err := os.Create(backup)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Backup(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	restored := mustOpenPath(t, backup, Options{}) // no items file next to it
	if got := seqsOf(restored, a); got != "[1 2 4 5]" {
		t.Errorf("restored: a's entries %s, want [1 2 4 5]", got)
	}
	if got := seqsOf(restored, b); got != "[2 3 5]" {
		t.Errorf("restored: b's entries %s, want [2 3 5]", got)
	}
	if n, _ := restored.AuditItemsPending(); n != 0 {
		t.Errorf("restored: %d pending after the rebuild", n)
	}
	if _, err := restored.VerifyAudit(ctx, nil); err != nil {
		t.Errorf("restored: %v", err)
	}

	// The original store with the restored store's items file: another history only if the
	// digests differ; make them differ by putting the other store's file at an entry the
	// original does not have.
	otherPath := filepath.Join(t.TempDir(), "referrals.db")
	other, err := Open(otherPath, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, other, 9)
	if _, err := other.IndexAuditItems(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := other.putItems(nil, 9, entryDigestOf(t, other, 9)); err != nil {
		t.Fatal(err)
	}
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	copyFile(t, AuditItemsPath(otherPath), AuditItemsPath(path))
	again := mustOpenPath(t, path, Options{})
	if got := seqsOf(again, b); got != "[2 3 5]" {
		t.Errorf("foreign items file: b's entries %s, want [2 3 5]", got)
	}
	if _, err := again.VerifyAudit(ctx, nil); err != nil {
		t.Errorf("foreign items file: %v", err)
	}
}

func entryDigestOf(t *testing.T, db *DB, seq uint64) []byte {
	t.Helper()
	var sum []byte
	_ = db.bolt.View(func(tx *bolt.Tx) error { sum = bytes.Clone(entryDigest(tx, seq)); return nil })
	if sum == nil {
		t.Fatalf("no entry %d", seq)
	}
	return sum
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestPageEntryStoresEachDisclosureOnce: a page's items sharing a disclosure store its legal
// basis once and read back with it; an entry stored with inline disclosures (before the
// table) reads the same.
func TestPageEntryStoresEachDisclosureOnce(t *testing.T) {
	ctx := context.Background()
	db := MustOpen(t)
	basis := domain.LegalBasis(domain.KindSocialWorkNeed)
	toHki := &domain.Disclosure{From: domain.Kela, To: "hva-90", LegalBasis: basis, Consent: "given"}
	toTre := &domain.Disclosure{From: domain.Kela, To: "hva-08", LegalBasis: basis}
	var refs []string
	e := pageEntry(0)
	e.Org = "hva-90"
	for i := range 20 {
		ref := uuid.Must(uuid.NewV7()).String()
		refs = append(refs, ref)
		it := domain.AuditItem{ReferralID: ref, Kind: domain.KindSocialWorkNeed, Sender: domain.Kela, Recipient: "hva-90", Disclosure: toHki}
		switch {
		case i%5 == 3:
			it.Recipient, it.Disclosure = "hva-08", toTre
		case i%5 == 4:
			it.Disclosure = nil
		}
		e.Items = append(e.Items, it)
	}
	if err := db.AppendAudit(ctx, []domain.AuditEntry{e}); err != nil {
		t.Fatal(err)
	}
	var raw []byte
	_ = db.bolt.View(func(tx *bolt.Tx) error {
		raw = append([]byte(nil), tx.Bucket(bucketAudit).Get(seqKey(1))...)
		return nil
	})
	body := raw[:len(raw)-sha256.Size]
	if body[0] != deflated || strings.Contains(string(body), string(domain.Kela)) {
		t.Fatalf("a page entry is stored as %.40q…, want it deflated", body)
	}
	js, err := inflateBody(body)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(js), basis); n != 2 {
		t.Errorf("the legal basis is stored %d times, want once per distinct disclosure (2)", n)
	}
	if len(body)*3 > len(js) {
		t.Errorf("deflated to %d bytes from %d, want a third or less", len(body), len(js))
	}
	p, err := db.Audit(ctx, domain.AuditFilter{Org: "hva-90", UserID: "lister"})
	if err != nil || len(p.Items) != 1 {
		t.Fatalf("Audit = %v, %v", p.Items, err)
	}
	got := p.Items[0].Items
	if len(got) != 20 {
		t.Fatalf("%d items read back, want 20", len(got))
	}
	for i, it := range got {
		want := e.Items[i]
		if it.ReferralID != want.ReferralID || it.Recipient != want.Recipient ||
			(it.Disclosure == nil) != (want.Disclosure == nil) || (it.Disclosure != nil && *it.Disclosure != *want.Disclosure) {
			t.Errorf("item %d = %+v (disclosure %v), want %+v (disclosure %v)", i, it, it.Disclosure, want, want.Disclosure)
		}
	}

	// An older body, each disclosure inline, decodes to the same items.
	old, err := json.Marshal(&domain.AuditEntry{Seq: 9, Action: domain.AuditList, UserID: "u", Items: e.Items[:2]})
	if err != nil {
		t.Fatal(err)
	}
	var back domain.AuditEntry
	if err := decodeAuditBody(old, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Items) != 2 || back.Items[0].Disclosure == nil || *back.Items[0].Disclosure != *toHki {
		t.Errorf("old body decoded to %+v", back.Items)
	}
	if err := decodeAuditBody([]byte(`{"seq":1,"items":[{"referral_id":"x","d":3}],"disclosures":[{}]}`), &back); err == nil {
		t.Error("an item referring past the disclosure table decoded")
	}
	// A body stored before deflating (plain JSON with the table) still reads.
	plain, err := json.Marshal(auditBody{AuditEntry: domain.AuditEntry{Seq: 3, Action: domain.AuditList}, Items: []auditBodyItem{{ReferralID: refs[0], D: 1}}, Disclosures: []domain.Disclosure{*toTre}})
	if err != nil {
		t.Fatal(err)
	}
	if err := decodeAuditBody(plain, &back); err != nil || len(back.Items) != 1 || *back.Items[0].Disclosure != *toTre {
		t.Errorf("plain body decoded to %+v, %v", back.Items, err)
	}
	for _, bad := range [][]byte{{deflated}, {deflated, 0xff, 0x00}, append([]byte{deflated}, raw[1:20]...)} {
		if err := decodeAuditBody(bad, &back); err == nil {
			t.Errorf("a broken deflated body %x decoded", bad)
		}
	}
	if _, err := db.VerifyAudit(ctx, nil); err != nil {
		t.Error(err)
	}
}

// TestBadPendingMarks: a pending mark on an entry without items, or past the log's end, is a
// broken log for VerifyAudit; the indexer drops such marks and goes on with the others.
func TestBadPendingMarks(t *testing.T) {
	ctx := context.Background()
	db := MustOpen(t)
	ref := mustAppend(t, db, 1)                                                         // seq 1: a single read
	if err := db.AppendAudit(ctx, []domain.AuditEntry{pageEntry(5, ref)}); err != nil { // seq 2
		t.Fatal(err)
	}
	tamper(t, db, func(tx *bolt.Tx) error { return tx.Bucket(bucketAuditPending).Put(seqKey(1), []byte{}) })
	_, err := db.VerifyAudit(ctx, nil)
	wantChainError(t, err, 1)
	tamper(t, db, func(tx *bolt.Tx) error {
		pb := tx.Bucket(bucketAuditPending)
		return errors.Join(pb.Delete(seqKey(1)), pb.Put(seqKey(9), []byte{}))
	})
	_, err = db.VerifyAudit(ctx, nil)
	wantChainError(t, err, 3)
	// The referral's log still answers, and the indexer indexes seq 2 and drops the bad mark.
	if p, err := db.Audit(ctx, domain.AuditFilter{Org: domain.Kela, ReferralID: ref}); err != nil || len(p.Items) != 2 {
		t.Fatalf("referral log with a bad mark: %d entries, %v", len(p.Items), err)
	}
	if n, err := db.IndexAuditItems(ctx, 0); err != nil || n != 2 {
		t.Fatalf("IndexAuditItems = %d, %v; want both marks handled", n, err)
	}
	if _, err := db.VerifyAudit(ctx, nil); err != nil {
		t.Errorf("after indexing: %v", err)
	}
}

// TestPagesIndexedBeforeTheItemsFile: a store from before the items file has list pages whose
// "r" keys are in the index and whose marks are gone; it verifies and answers as it did, and
// a page with neither keys nor mark is still a broken log.
func TestPagesIndexedBeforeTheItemsFile(t *testing.T) {
	ctx := context.Background()
	db := MustOpen(t)
	a := uuid.Must(uuid.NewV7()).String()
	if err := db.AppendAudit(ctx, []domain.AuditEntry{pageEntry(1, a), pageEntry(2, a)}); err != nil {
		t.Fatal(err)
	}
	// What the old indexer left: the keys in the index, the marks deleted.
	tamper(t, db, func(tx *bolt.Tx) error {
		for seq := uint64(1); seq <= 2; seq++ {
			e, err := getAuditEntry(tx, seq)
			if err != nil {
				return err
			}
			_, ik := auditIndexKeys(&e)
			for _, k := range ik {
				if err := tx.Bucket(bucketAuditIndex).Put(k, []byte{}); err != nil {
					return err
				}
			}
			if err := tx.Bucket(bucketAuditPending).Delete(seqKey(seq)); err != nil {
				return err
			}
		}
		return nil
	})
	if _, err := db.VerifyAudit(ctx, nil); err != nil {
		t.Errorf("a store indexed the old way: %v", err)
	}
	if p, err := db.Audit(ctx, domain.AuditFilter{Org: domain.Kela, ReferralID: a}); err != nil || len(p.Items) != 2 {
		t.Errorf("a's entries: %d, %v; want 2", len(p.Items), err)
	}
	tamper(t, db, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAuditIndex).Delete(append(auditRefPrefix(uuid.MustParse(a)), seqKey(2)...))
	})
	_, err := db.VerifyAudit(ctx, nil)
	wantChainError(t, err, 2)
}

// TestUnreadableItemsFileIsRebuilt: an items file bbolt cannot open is set aside and rebuilt
// from the log; the store opens and queries find every page.
func TestUnreadableItemsFileIsRebuilt(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "referrals.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := uuid.Must(uuid.NewV7()).String()
	if err := db.AppendAudit(ctx, []domain.AuditEntry{pageEntry(1, a), pageEntry(2, a)}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.IndexAuditItems(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := db.pruneAuditMarks(nil); err != nil { // only the items file knows the pages now
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(AuditItemsPath(path), bytes.Repeat([]byte("torn"), 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	again := mustOpenPath(t, path, Options{})
	if aside := again.AuditItemsSetAside(); aside == "" {
		t.Error("the unreadable file was not reported as set aside")
	} else if b, err := os.ReadFile(aside); err != nil || !bytes.HasPrefix(b, []byte("torn")) {
		t.Errorf("set-aside file %s: %v", aside, err)
	}
	if again.AuditItemsRebuilt() == 0 {
		t.Error("not rebuilt")
	}
	if p, err := again.Audit(ctx, domain.AuditFilter{Org: domain.Kela, ReferralID: a}); err != nil || len(p.Items) != 2 {
		t.Errorf("a's entries: %d, %v; want 2", len(p.Items), err)
	}
}

// TestPostingsAcrossPasses: a referral's pages filed over several indexing passes (a posting
// key each) page in seq order at every page size, with the cursor inside a posting and
// between postings; a damaged posting is a broken log.
func TestPostingsAcrossPasses(t *testing.T) {
	ctx := context.Background()
	db := MustOpen(t)
	a, b := uuid.Must(uuid.NewV7()).String(), uuid.Must(uuid.NewV7()).String()
	var want []uint64
	seq := uint64(0)
	for pass := range 4 {
		for i := range 3 {
			e := pageEntry(pass*3+i, a, b)
			if i == 1 {
				e = pageEntry(pass*3+i, b) // not a's
			}
			if err := db.AppendAudit(ctx, []domain.AuditEntry{e}); err != nil {
				t.Fatal(err)
			}
			seq++
			if i != 1 {
				want = append(want, seq)
			}
		}
		if pass < 3 { // the last pass stays pending
			if _, err := db.IndexAuditItems(ctx, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	var keys int
	_ = db.items.bolt.View(func(tx *bolt.Tx) error { keys = tx.Bucket(bucketItems).Stats().KeyN; return nil })
	if keys != 6 {
		t.Errorf("%d posting keys, want one per referral per pass (6)", keys)
	}
	var all []uint64 // b is on every page, and its postings are the items file's last keys
	for s := range seq {
		all = append(all, s+1)
	}
	for _, tc := range []struct {
		ref  string
		want []uint64
	}{{a, want}, {b, all}} {
		for limit := 1; limit <= 4; limit++ {
			if got := pagedSeqs(t, db, tc.ref, limit); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("limit %d: %s's pages %v, want %v", limit, tc.ref, got, tc.want)
			}
		}
	}
	if _, err := db.VerifyAudit(ctx, nil); err != nil {
		t.Fatal(err)
	}
	// A posting whose value is cut short no longer files its later pages.
	if err := db.items.bolt.Update(func(tx *bolt.Tx) error {
		k := append(auditRefPrefix(uuid.MustParse(a)), seqKey(want[0])...)
		return tx.Bucket(bucketItems).Put(k, []byte{0x80})
	}); err != nil {
		t.Fatal(err)
	}
	_, err := db.VerifyAudit(ctx, nil)
	wantChainError(t, err, want[0])
}

// TestPendingMarkCarriesItsReferrals: a page's mark names its referrals, so the indexer files
// it without reading the entry; a mark altered to name another referral is a broken log.
func TestPendingMarkCarriesItsReferrals(t *testing.T) {
	ctx := context.Background()
	db := MustOpen(t)
	a, b := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	if err := db.AppendAudit(ctx, []domain.AuditEntry{pageEntry(1, a.String(), b.String())}); err != nil {
		t.Fatal(err)
	}
	var mark []byte
	_ = db.bolt.View(func(tx *bolt.Tx) error {
		mark = bytes.Clone(tx.Bucket(bucketAuditPending).Get(seqKey(1)))
		return nil
	})
	if !bytes.Equal(mark, append(a[:], b[:]...)) {
		t.Fatalf("mark = %x, want the two ids", mark)
	}
	other := uuid.Must(uuid.NewV7())
	tamper(t, db, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAuditPending).Put(seqKey(1), append(a[:], other[:]...))
	})
	_, err := db.VerifyAudit(ctx, nil)
	wantChainError(t, err, 1)
}

// TestPostingsOfAdjacentReferrals: when the next key after a referral's postings is the next
// referral's posting starting at the same seq, paging and verification still find the
// referral's own posting (the cursor must compare whole keys).
func TestPostingsOfAdjacentReferrals(t *testing.T) {
	ctx := context.Background()
	db := MustOpen(t)
	a := uuid.MustParse("01a20650-0000-7000-8000-000000000001")
	b := uuid.MustParse("01a20650-0000-7000-8000-000000000002")
	for _, e := range []domain.AuditEntry{pageEntry(1, a.String()), pageEntry(2, a.String(), b.String()), pageEntry(3, a.String())} {
		if err := db.AppendAudit(ctx, []domain.AuditEntry{e}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.IndexAuditItems(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if got := pagedSeqs(t, db, a.String(), 1); fmt.Sprint(got) != "[1 2 3]" {
		t.Errorf("a's pages one at a time: %v, want [1 2 3]", got)
	}
	if _, err := db.VerifyAudit(ctx, nil); err != nil {
		t.Error(err)
	}
	// A damaged mark does not hide its page: the entry decides.
	if err := db.AppendAudit(ctx, []domain.AuditEntry{pageEntry(4, b.String())}); err != nil {
		t.Fatal(err)
	}
	tamper(t, db, func(tx *bolt.Tx) error { return tx.Bucket(bucketAuditPending).Put(seqKey(4), []byte{1, 2, 3}) })
	if _, err := db.IndexAuditItems(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if p, err := db.Audit(ctx, domain.AuditFilter{Org: domain.Kela, ReferralID: b.String()}); err != nil || len(p.Items) != 2 {
		t.Errorf("b's pages after a damaged mark: %d, %v; want 2", len(p.Items), err)
	}
}

// TestItemsFileAfterARollback: a binary of the previous items format, run on this format's file,
// indexes into its own keys and prunes the marks; back on this format, Open sees its own
// watermark behind the pruned marks and rebuilds, so no page goes missing.
func TestItemsFileAfterARollback(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "referrals.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := uuid.Must(uuid.NewV7())
	if err := db.AppendAudit(ctx, []domain.AuditEntry{pageEntry(1, a.String()), pageEntry(2, a.String())}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.IndexAuditItems(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := db.AppendAudit(ctx, []domain.AuditEntry{pageEntry(3, a.String())}); err != nil {
		t.Fatal(err)
	}
	// What the previous format's indexer does with page 3: its own bucket and watermark, then
	// the marks pruned.
	sum3 := entryDigestOf(t, db, 3)
	if err := db.items.bolt.Update(func(tx *bolt.Tx) error {
		old, err := tx.CreateBucketIfNotExists([]byte("items"))
		if err != nil {
			return err
		}
		if err := old.Put(append(auditRefPrefix(a), seqKey(3)...), []byte{}); err != nil {
			return err
		}
		return tx.Bucket(bucketItemsMeta).Put([]byte("through"), append(seqKey(3), sum3...))
	}); err != nil {
		t.Fatal(err)
	}
	tamper(t, db, func(tx *bolt.Tx) error {
		for seq := uint64(1); seq <= 3; seq++ {
			if err := tx.Bucket(bucketAuditPending).Delete(seqKey(seq)); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketPrivacyMeta).Put(metaMarksPruned, seqKey(3))
	})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	again := mustOpenPath(t, path, Options{})
	if again.AuditItemsRebuilt() == 0 {
		t.Error("not rebuilt")
	}
	if p, err := again.Audit(ctx, domain.AuditFilter{Org: domain.Kela, ReferralID: a.String()}); err != nil || len(p.Items) != 3 {
		t.Errorf("a's pages: %d, %v; want 3", len(p.Items), err)
	}
	if _, err := again.VerifyAudit(ctx, nil); err != nil {
		t.Error(err)
	}
}

// pagedSeqs returns the seqs of referral ref's access log read limit entries at a time, as an
// auditor at Kela pages through it.
func pagedSeqs(t interface {
	Helper()
	Fatal(...any)
}, db *DB, ref string, limit int) []uint64 {
	t.Helper()
	got := []uint64{}
	after := ""
	for range 1000 {
		p, err := db.Audit(context.Background(), domain.AuditFilter{Org: domain.Kela, ReferralID: ref, Limit: limit, After: after})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range p.Items {
			got = append(got, e.Seq)
		}
		if after = p.Next; after == "" {
			break
		}
	}
	return got
}

// TestClientSearchEntriesNameTheSearchedPerson: a search that found referrals is logged with
// the person's keyed hash too, so that the person's extract finds it by that key alone —
// also once the referrals it found have been erased.
func TestClientSearchEntriesNameTheSearchedPerson(t *testing.T) {
	db := MustOpen(t)
	svc, _ := serviceOn(db)
	ctx := domain.WithAccess(context.Background(), domain.Access{Purpose: domain.PurposeBenefitProcessing})
	r, _, err := svc.Create(ctx, kelaHandler, needRequest(secretPID, secretName), "")
	if err != nil {
		t.Fatal(err)
	}
	found, err := svc.SearchClient(ctx, kelaHandler, secretPID)
	if err != nil || len(found) != 1 {
		t.Fatalf("search: %d found, %v", len(found), err)
	}
	if err := svc.LogClientSearch(ctx, kelaHandler, secretPID, found); err != nil {
		t.Fatal(err)
	}
	got, err := db.AuditOf(ctx, domain.ExtractFilter{Org: domain.Kela, ClientKey: svc.ClientKey(secretPID)})
	if err != nil || len(got) != 1 || got[0].Action != domain.AuditClientSearch || got[0].ReferralID != r.ID {
		t.Errorf("the person's entries by their key alone: %+v, %v; want the search that found %s", got, err, r.ID)
	}
}

// TestReplayAfterTheRecipientActedIsADisclosure: a create retried after the county
// acknowledged the referral shows Kela the county's data again: the replay's entry records
// that disclosure, with its legal basis.
func TestReplayAfterTheRecipientActedIsADisclosure(t *testing.T) {
	db := MustOpen(t)
	svc, _ := serviceOn(db)
	ctx := context.Background()
	r, _, err := svc.Create(ctx, kelaHandler, needRequest(secretPID, secretName), "idem-replay")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Act(ctx, hkiWorker, r.ID, domain.Command{Action: domain.ActionReceive}); err != nil {
		t.Fatal(err)
	}
	if _, created, err := svc.Create(ctx, kelaHandler, needRequest(secretPID, secretName), "idem-replay"); err != nil || created {
		t.Fatalf("replay: created %v, %v", created, err)
	}
	p, err := db.Audit(ctx, domain.AuditFilter{Org: domain.Kela, ReferralID: r.ID})
	if err != nil {
		t.Fatal(err)
	}
	last := p.Items[len(p.Items)-1]
	if d := last.Disclosure; last.Action != domain.AuditCreateReplay || d == nil || d.From != "hva-90" || d.To != domain.Kela || d.LegalBasis == "" {
		t.Errorf("the replay's entry: %+v (disclosure %+v); want hva-90's data disclosed to Kela with its basis", last, last.Disclosure)
	}
}

// TestAQueryDoesNotSeeItemsIndexedAfterItsSnapshot: a query by referral reads the log in one
// read transaction and the items file in another, opened after it. A list page logged and
// indexed between the two is in the items file but not in the query's log: itemsView caps the
// items file at the log's head as the query sees it, so the query answers as of its snapshot
// (without the cap it would look up an entry it cannot see and fail).
func TestAQueryDoesNotSeeItemsIndexedAfterItsSnapshot(t *testing.T) {
	ctx := context.Background()
	// A mapping large enough that the write below, under the query's open read
	// transaction, never has to grow it (which would wait for that transaction).
	db := mustOpenPath(t, filepath.Join(t.TempDir(), "referrals.db"), Options{MaxBatchDelay: time.Millisecond, mmapSize: 64 << 20})
	a := uuid.Must(uuid.NewV7()).String()
	for _, e := range []domain.AuditEntry{entry("u1", domain.Kela, a, 0), pageEntry(1, a)} { // seqs 1, 2
		if err := db.AppendAudit(ctx, []domain.AuditEntry{e}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := db.IndexAuditItems(ctx, 0); err != nil || n != 1 {
		t.Fatalf("IndexAuditItems = %d, %v, want the page at seq 2", n, err)
	}

	indexed := make(chan int, 1)
	t.Cleanup(func() { beforeItemsView = nil })
	beforeItemsView = func() {
		beforeItemsView = nil // once: IndexAuditItems below goes through itemsView too
		done := make(chan error, 1)
		go func() {
			var n int
			err := db.AppendAudit(ctx, []domain.AuditEntry{pageEntry(2, a)}) // seq 3
			if err == nil {
				n, err = db.IndexAuditItems(ctx, 0)
			}
			indexed <- n
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("page logged and indexed during the query: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("the write under the query's read transaction did not finish")
		}
	}
	p, err := db.Audit(ctx, domain.AuditFilter{Org: domain.Kela, ReferralID: a})
	if err != nil {
		t.Fatalf("query during the indexing: %v", err)
	}
	if n := <-indexed; n != 1 {
		t.Fatalf("the indexer took %d pages during the query, want the page at seq 3", n)
	}
	if got := fmt.Sprint(seqsOf(p.Items)); got != "[1 2]" {
		t.Errorf("query during the indexing found seqs %s, want [1 2] (its snapshot)", got)
	}
	p, err = db.Audit(ctx, domain.AuditFilter{Org: domain.Kela, ReferralID: a})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(seqsOf(p.Items)); got != "[1 2 3]" {
		t.Errorf("the next query found seqs %s, want [1 2 3]", got)
	}
}

func seqsOf(es []domain.AuditEntry) []uint64 {
	out := make([]uint64, len(es))
	for i, e := range es {
		out[i] = e.Seq
	}
	return out
}
