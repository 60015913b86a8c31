// Package yardstick is the baseline the service's create throughput is measured against
// (issue 5, "Performance targets"): the raw stack with none of the service's work. It is an
// Echo handler that decodes the same create JSON and makes one bbolt group-commit write
// (DB.Batch, with the same batch delay as the service) of the record, two index entries and an
// outbox entry — no authentication, no OpenAPI validation, no domain rules, no deadlines, no
// timeline, no audit log.
//
// BenchmarkYardstick measures it with go test; `referral-sim load --yardstick` measures it and
// the service with the same load generator in the same run and prints the ratio.
package yardstick

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	bolt "go.etcd.io/bbolt"

	"github.com/kela-hva/referrals/domain"
)

var (
	bucketRecords = []byte("records")
	bucketIndex   = []byte("index")
	bucketOutbox  = []byte("outbox")
)

// Store is the yardstick's bbolt file.
type Store struct {
	db *bolt.DB
}

// Open creates or opens the bbolt file at path with the given group-commit delay (0 means
// bbolt's default, 10 ms). fsync stays on, as in the service. It returns an error if the file
// cannot be opened or is locked by another process for more than two seconds.
func Open(path string, batchDelay time.Duration) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, FreelistType: bolt.FreelistArrayType})
	if err != nil {
		return nil, fmt.Errorf("yardstick: open %s: %w", path, err)
	}
	if batchDelay > 0 {
		db.MaxBatchDelay = batchDelay
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketRecords, bucketIndex, bucketOutbox} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("yardstick: create buckets: %w", err)
	}
	return &Store{db: db}, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// Counts returns how many records, index entries and outbox entries the file holds.
func (s *Store) Counts() (records, index, outbox int, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		records = tx.Bucket(bucketRecords).Stats().KeyN
		index = tx.Bucket(bucketIndex).Stats().KeyN
		outbox = tx.Bucket(bucketOutbox).Stats().KeyN
		return nil
	})
	return records, index, outbox, err
}

// record is what the yardstick stores and answers: the request as sent, with an id, a state
// and a time.
type record struct {
	ID        string                `json:"id"`
	Kind      domain.Kind           `json:"kind"`
	Status    domain.Status         `json:"status"`
	CreatedAt time.Time             `json:"created_at"`
	Request   *domain.CreateRequest `json:"request"`
}

// event is the yardstick's outbox entry, about the size of the service's.
type event struct {
	ID         string      `json:"id"`
	Type       string      `json:"type"`
	ReferralID string      `json:"referral_id"`
	Kind       domain.Kind `json:"kind"`
	Time       time.Time   `json:"time"`
}

// Handler returns the Echo handler: POST /v1/referrals decodes the body strictly (unknown
// fields refused, as the service does), writes the record, an incoming and an outgoing index
// entry and an outbox entry in one Batch, and answers 201 with the record. Bad JSON gets 400,
// a body without a client 422, a failed write 500.
func (s *Store) Handler() http.Handler {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.POST("/v1/referrals", s.handleCreate)
	return e
}

func (s *Store) handleCreate(c echo.Context) error {
	var req domain.CreateRequest
	dec := json.NewDecoder(http.MaxBytesReader(c.Response(), c.Request().Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return c.JSON(http.StatusBadRequest, map[string]string{"title": "malformed JSON"})
	}
	if req.Client == nil {
		return c.JSON(http.StatusUnprocessableEntity, map[string]string{"title": "client is required"})
	}
	id := uuid.Must(uuid.NewV7())
	now := time.Now().UTC()
	rec, err := json.Marshal(record{ID: id.String(), Kind: req.Kind, Status: domain.StatusSent, CreatedAt: now, Request: &req})
	if err != nil {
		return err
	}
	ev, err := json.Marshal(event{ID: uuid.Must(uuid.NewV7()).String(), Type: "created", ReferralID: id.String(), Kind: req.Kind, Time: now})
	if err != nil {
		return err
	}
	val := []byte(req.Kind)
	err = s.db.Batch(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketRecords).Put(id[:], rec); err != nil {
			return err
		}
		idx := tx.Bucket(bucketIndex)
		if err := idx.Put(indexKey('i', req.Client.HomeMunicipality, id), val); err != nil {
			return err
		}
		if err := idx.Put(indexKey('o', "kela", id), val); err != nil {
			return err
		}
		ob := tx.Bucket(bucketOutbox)
		seq, err := ob.NextSequence()
		if err != nil {
			return err
		}
		return ob.Put(binary.BigEndian.AppendUint64(nil, seq), ev)
	})
	if err != nil {
		return c.JSON(http.StatusInternalServerError, map[string]string{"title": "write failed"})
	}
	return c.JSONBlob(http.StatusCreated, rec)
}

// indexKey is dir org 0x00 id16: an organisation's range in one direction, like the service's
// index entries (which also name the status).
func indexKey(dir byte, org string, id uuid.UUID) []byte {
	k := make([]byte, 0, 2+len(org)+len(id))
	k = append(k, dir)
	k = append(k, org...)
	k = append(k, 0)
	return append(k, id[:]...)
}
