// Package chain declares the tamper-evident audit chain a store keeps beside
// its resources (issue 5, point 4): every AuditEvent that server/audit
// records is stored as version 1 of an ordinary AuditEvent resource (so
// auditors find it with FHIR search, https://hl7.org/fhir/R4/auditevent.html)
// and carries, in the extension ExtensionURL, its sequence number in its
// lane of its tenant's chain and the SHA-256 of the stored body of the
// event before it in that lane. Changing, removing, inserting or
// reordering stored events therefore breaks a link that server/audit's
// Verify reports.
//
// A tenant's chain runs in lanes: several independent hash chains, each
// with its own head, sequence numbers and links, so that transactions
// committing at the same time append to different lanes instead of
// waiting for one another (PostgreSQL: a commit holds its lane's head
// until its WAL flush is done; with one head, a tenant's commits flushed
// one at a time). A store decides how many lanes it uses: PostgreSQL up to
// eight, SQLite, whose single writer commits one transaction at a time,
// one. The lane is not written into the event: an event moved to another
// lane no longer links to its predecessor there, so the link already
// pins it to its lane and place.
//
// The store, not the caller, assigns lanes, sequence numbers and hashes,
// inside the writing transaction and race-free per lane (PostgreSQL: a
// row lock on the lane's head, taken at COMMIT; SQLite: its single
// writer). That is why the caller hands over a body split around the
// chain link (Event.Prefix and Suffix) rather than a finished body.
//
// It is pure (standard library and server/fhir only) so that the adapters
// can implement it without importing server/audit: adapters/sqlite and
// adapters/postgres implement Store, and their transactions implement
// Appender; server/audit consumes them; both pass server/audit/audittest.
package chain

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// ExtensionURL identifies the extension that holds an event's link. Its
// nested extensions are "sequence" (valueDecimal, an integer: FHIR R4's
// integer is 32-bit and a busy lane passes 2^31 events) and "previous"
// (valueBase64Binary, the SHA-256 of the stored body of the lane's
// previous event; 32 zero bytes for a lane's first event).
const ExtensionURL = "urn:pulsewire:audit-chain"

// Hash is a SHA-256 digest.
type Hash [sha256.Size]byte

// Sum hashes a stored body: the exact bytes the store keeps and serves.
func Sum(body []byte) Hash { return sha256.Sum256(body) }

// Genesis is the previous hash of the first event of a lane.
var Genesis Hash

func (h Hash) String() string { return fmt.Sprintf("%x", h[:]) }

// Link returns the JSON array that is the value of the chain extension's
// "extension" member for the event at seq (1, 2, ... within its lane)
// following an event whose body hashed to prev. The PostgreSQL store builds
// the same bytes in SQL (migration 0043); audittest checks that they agree.
func Link(seq int64, prev Hash) []byte {
	b := make([]byte, 0, 128)
	b = append(b, `[{"url":"sequence","valueDecimal":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `},{"url":"previous","valueBase64Binary":"`...)
	b = base64.StdEncoding.AppendEncode(b, prev[:])
	b = append(b, `"}]`...)
	return b
}

// ErrNoLink is returned by Parse for a body without a chain extension.
var ErrNoLink = errors.New("no audit chain extension")

// Parse reads the link of a stored AuditEvent body: the first top-level
// extension with ExtensionURL. ErrNoLink when there is none; another error
// when it is malformed.
func Parse(body []byte) (seq int64, prev Hash, err error) {
	var doc struct {
		Extension []struct {
			URL       string `json:"url"`
			Extension []struct {
				URL               string      `json:"url"`
				ValueDecimal      json.Number `json:"valueDecimal"`
				ValueBase64Binary string      `json:"valueBase64Binary"`
			} `json:"extension"`
		} `json:"extension"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return 0, prev, fmt.Errorf("decoding the body: %w", err)
	}
	for _, e := range doc.Extension {
		if e.URL != ExtensionURL {
			continue
		}
		var haveSeq, havePrev bool
		for _, x := range e.Extension {
			switch x.URL {
			case "sequence":
				if seq, err = strconv.ParseInt(string(x.ValueDecimal), 10, 64); err != nil || seq < 1 {
					return 0, prev, errors.New("the chain sequence is not a positive integer")
				}
				haveSeq = true
			case "previous":
				raw, err := base64.StdEncoding.DecodeString(x.ValueBase64Binary)
				if err != nil || len(raw) != len(prev) {
					return 0, prev, errors.New("the chain's previous hash is not 32 bytes of base64")
				}
				copy(prev[:], raw)
				havePrev = true
			}
		}
		if !haveSeq || !havePrev {
			return 0, prev, errors.New("the chain extension lacks sequence or previous")
		}
		return seq, prev, nil
	}
	return 0, prev, ErrNoLink
}

// Event is one AuditEvent to append. Its stored body is
// Prefix + Link(seq, prev) + Suffix, which must be the JSON the caller
// validated (with a link of the same length in place), with id ID,
// meta.versionId "1" and meta.lastUpdated LastUpdated already set: the
// store writes it as version 1 unchanged apart from the link.
type Event struct {
	ID          string
	LastUpdated time.Time // microsecond precision, UTC
	Prefix      []byte
	Suffix      []byte
	Index       []fhir.IndexEntry // the search index entries of the body
}

// Appender is implemented by the fhir.Tx of a store that keeps audit
// chains; server/audit reaches it by a type assertion.
type Appender interface {
	// AppendAudit appends events, in order, to one lane of the chain of
	// the transaction's tenant: each gets the lane's next sequence number
	// and the hash of the stored body of the event before it in the lane,
	// and is stored as version 1 of AuditEvent/ID with its index entries,
	// the chain entry and the lane's new head, committing with the
	// transaction or not at all. Write hooks do not run for them. Two
	// transactions appending to one lane append one after the other (the
	// later one sees the earlier one's head), so a lane never forks; two
	// transactions committing at the same time may take different lanes,
	// so the order of events across lanes is not recorded. The events may
	// become readable only at commit (PostgreSQL chains them there).
	// KindInvalid for an invalid id; an id that already exists fails the
	// transaction (ids are random).
	AppendAudit(ctx context.Context, events []*Event) error
}

// Head is the head of one lane of a tenant's chain.
type Head struct {
	Lane int
	Seq  int64 // the lane's last event's sequence number; 0 for an empty lane
	Hash Hash  // the lane's last event's body hash; Genesis for an empty lane
	Last int64 // the largest sequence number among the lane's chain entries
}

// Heads is a tenant's chain: the heads of its lanes, read in one snapshot
// with the counts that tell whether events exist beyond them.
type Heads struct {
	Lanes   []Head // in lane order; none for a tenant that has recorded nothing
	Stored  int64  // AuditEvent resources the tenant has (chained or not)
	Entries int64  // chain entries the tenant has, in every lane (with a head or not)
}

// Events is how many events the heads account for: the sum of the lanes'
// sequence numbers.
func (h Heads) Events() int64 {
	var n int64
	for _, l := range h.Lanes {
		n += l.Seq
	}
	return n
}

// Entry is one chain entry with what the store holds for its event.
type Entry struct {
	Lane int
	Seq  int64
	ID   string // AuditEvent id

	// The event's current resource row: Body nil and Version 0 when the
	// row is missing.
	Body    []byte
	Version int64
	Deleted bool

	Versions int // versions stored of the event, current and superseded (1 when untouched)
}

// Store is a fhir.Store that keeps audit chains. Verify reads through it.
type Store interface {
	fhir.Store
	// AuditHeads returns the heads of the tenant's lanes (none for a tenant
	// that has recorded nothing), all of it as of one instant, so that
	// appends committing meanwhile do not make it inconsistent.
	// KindNotFound for an unknown tenant.
	AuditHeads(ctx context.Context, tenant string) (Heads, error)
	// AuditEntries returns up to limit chain entries of the tenant's lane
	// with a sequence number greater than after, in sequence order.
	AuditEntries(ctx context.Context, tenant string, lane int, after int64, limit int) ([]Entry, error)
}
