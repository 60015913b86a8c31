package api

import (
	"crypto/x509"
	"net/http"
	"strings"

	"github.com/kela-hva/referrals/domain"
)

// CertOrgURIPrefix prefixes the organisation id in a client certificate's URI SAN:
// "urn:referrals:org:hva-08". As on the national exchange layer, the certificate names the
// member organisation, and the token must be for the same organisation.
const CertOrgURIPrefix = "urn:referrals:org:"

// certOrg returns the organisation a verified client certificate names: its URI SAN with
// CertOrgURIPrefix, or else its subject common name.
func certOrg(cert *x509.Certificate) domain.OrgID {
	for _, u := range cert.URIs {
		if s := u.String(); strings.HasPrefix(s, CertOrgURIPrefix) {
			return domain.OrgID(strings.TrimPrefix(s, CertOrgURIPrefix))
		}
	}
	return domain.OrgID(cert.Subject.CommonName)
}

// checkClientCert enforces mutual TLS: the connection must carry a client certificate that
// the TLS layer verified against the configured CA, and it must name the token's organisation.
func checkClientCert(r *http.Request, actor domain.Actor) error {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.PeerCertificates) == 0 {
		return domain.Errorf(domain.EUnauthorized, "a verified client certificate is required")
	}
	if org := certOrg(r.TLS.PeerCertificates[0]); org != actor.Org {
		return domain.Errorf(domain.EUnauthorized, "the client certificate's organisation does not match the token's")
	}
	return nil
}
