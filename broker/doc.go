// Package broker connects the referral service to NATS JetStream: an embedded server for
// development and tests, the REFERRALS stream, the CloudEvents envelope of domain events and
// the outbox relay that moves committed events from the store to the stream (DOMAIN §8).
//
// Delivery is at least once and in order per referral. Every message carries the event id in
// the Nats-Msg-Id header, so the stream drops re-publications within its duplicate window;
// consumers must still deduplicate on the event id because the window is finite.
package broker
