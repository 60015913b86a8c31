package store

import (
	"bytes"
	"testing"

	"github.com/kela-hva/referrals/domain"
)

// FuzzDecodeAuditBody: any stored body — plain JSON of either era, deflated, or damaged —
// decodes or fails with an error, never panics; a body that decodes encodes again to one that
// decodes to the same entry.
func FuzzDecodeAuditBody(f *testing.F) {
	page := pageEntry(1, "01a20615-bd1d-7279-8af1-9b96bfc75052", "01a20615-bd32-755b-a7de-48e66b8bd5b4")
	page.Seq = 7
	page.Items[0].Disclosure = &domain.Disclosure{From: domain.Kela, To: "hva-90", LegalBasis: "SHL 35 §"}
	deflatedPage, err := encodeAuditBody(&page)
	if err != nil {
		f.Fatal(err)
	}
	single := entry("u1", domain.Kela, "01a20615-bd1d-7279-8af1-9b96bfc75052", 3)
	plain, err := encodeAuditBody(&single)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(deflatedPage)
	f.Add(plain)
	f.Add([]byte(`{"seq":1,"items":[{"referral_id":"x","d":1}],"disclosures":[{"from":"kela"}]}`))
	f.Add([]byte{deflated})
	f.Add(append([]byte{deflated}, deflatedPage[1:len(deflatedPage)/2]...))
	f.Fuzz(func(t *testing.T, body []byte) {
		var e domain.AuditEntry
		if err := decodeAuditBody(body, &e); err != nil {
			return
		}
		again, err := encodeAuditBody(&e)
		if err != nil {
			t.Fatalf("decoded entry does not encode: %v", err)
		}
		var back domain.AuditEntry
		if err := decodeAuditBody(again, &back); err != nil {
			t.Fatalf("re-encoded body does not decode: %v", err)
		}
		b1, _ := encodeAuditBody(&back)
		if !bytes.Equal(b1, again) {
			t.Fatalf("encode(decode(x)) is not stable:\n%q\n%q", again, b1)
		}
	})
}
