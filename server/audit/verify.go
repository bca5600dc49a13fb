package audit

import (
	"context"
	"errors"
	"fmt"

	"github.com/pulsewire/pulsewire/server/audit/chain"
)

// Report is what Verify found.
type Report struct {
	Tenant   string
	Verified int64      // chain entries checked intact, from sequence 1
	Head     chain.Head // the stored head
	Break    *Break     // the first broken link; nil when the chain is intact
}

// Break is a broken link: where, and what is wrong. It names ids and
// sequence numbers only.
type Break struct {
	Seq    int64  // the sequence number of the event at fault (0: the chain as a whole)
	ID     string // its AuditEvent id, when known
	Reason string
}

func (b *Break) String() string {
	if b.ID != "" {
		return fmt.Sprintf("sequence %d (AuditEvent/%s): %s", b.Seq, b.ID, b.Reason)
	}
	return fmt.Sprintf("sequence %d: %s", b.Seq, b.Reason)
}

// verifyPage is how many chain entries Verify reads at a time.
const verifyPage = 1000

// Verify walks the tenant's audit chain from its first event and reports
// the first broken link: a chain entry missing (sequence gap), an event
// whose resource row was deleted or updated (an AuditEvent is stored once,
// as its version 1), an event recording another sequence number (reordered), a
// body that does not hash to what the next event (or the head) recorded
// (altered), a head that does not match the last event, AuditEvents
// stored outside the chain. The error is for failing to read the chain.
func Verify(ctx context.Context, s chain.Store, tenant string) (*Report, error) {
	head, err := s.AuditHead(ctx, tenant)
	if err != nil {
		return nil, fmt.Errorf("reading the audit chain head: %w", err)
	}
	r := &Report{Tenant: tenant, Head: head}
	// The walk stops at the head read above: events appended since are
	// not this report's business.
	prev, prevID := chain.Genesis, ""
	var last int64
	for last < head.Seq {
		es, err := s.AuditEntries(ctx, tenant, last, min(verifyPage, int(head.Seq-last)))
		if err != nil {
			return nil, fmt.Errorf("reading the audit chain after %d: %w", last, err)
		}
		for _, e := range es {
			want := last + 1
			if b := checkEntry(&e, want, prev, prevID); b != nil {
				r.Break = b
				return r, nil
			}
			prev, prevID, last = chain.Sum(e.Body), e.ID, e.Seq
			r.Verified++
		}
		if len(es) == 0 {
			break
		}
	}
	switch {
	case last < head.Seq:
		r.Break = &Break{Seq: last + 1, Reason: fmt.Sprintf("the chain ends at %d but its head is at %d: events at the end were removed", last, head.Seq)}
	case head.Last > head.Seq:
		r.Break = &Break{Seq: head.Seq + 1, Reason: fmt.Sprintf("the chain goes on to %d past its head at %d: the head was rewound", head.Last, head.Seq)}
	case prev != head.Hash:
		r.Break = &Break{Seq: last, ID: prevID, Reason: "the body does not match the hash the chain head recorded: altered"}
	case head.Stored != last:
		r.Break = &Break{Reason: fmt.Sprintf("%d AuditEvent resources are stored but the chain holds %d: events were added outside it", head.Stored, last)}
	}
	return r, nil
}

// checkEntry checks chain entry e, expected at sequence want, after an
// event whose body hashed to prev.
func checkEntry(e *chain.Entry, want int64, prev chain.Hash, prevID string) *Break {
	switch {
	case e.Seq != want:
		return &Break{Seq: want, Reason: fmt.Sprintf("the chain entry is missing (the next one is %d): an event was removed", e.Seq)}
	case e.Body == nil && !e.Deleted:
		return &Break{Seq: e.Seq, ID: e.ID, Reason: "the event's resource is missing: it was removed"}
	case e.Deleted || e.Version != 1 || e.Versions != 1:
		return &Break{Seq: e.Seq, ID: e.ID, Reason: fmt.Sprintf("the event was updated or deleted (current version %d, %d versions)", e.Version, e.Versions)}
	}
	seq, recorded, err := chain.Parse(e.Body)
	switch {
	case errors.Is(err, chain.ErrNoLink):
		return &Break{Seq: e.Seq, ID: e.ID, Reason: "the event has no chain link: replaced"}
	case err != nil:
		return &Break{Seq: e.Seq, ID: e.ID, Reason: "the event's chain link is malformed: " + err.Error()}
	case seq != e.Seq:
		return &Break{Seq: e.Seq, ID: e.ID, Reason: fmt.Sprintf("the event records sequence %d: events were reordered", seq)}
	case recorded != prev:
		if e.Seq == 1 {
			return &Break{Seq: 1, ID: e.ID, Reason: "the first event does not start the chain: altered"}
		}
		return &Break{Seq: e.Seq - 1, ID: prevID, Reason: fmt.Sprintf("the body does not match the hash event %d recorded: altered", e.Seq)}
	}
	return nil
}
