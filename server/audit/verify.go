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
	Verified int64       // chain entries checked intact, in every lane, from sequence 1
	Heads    chain.Heads // the stored heads
	Break    *Break      // the first broken link; nil when the chain is intact
}

// Break is a broken link: where, and what is wrong. It names lanes, ids
// and sequence numbers only.
type Break struct {
	Lane   int    // the lane of the event at fault
	Seq    int64  // its sequence number in the lane (0: the chain as a whole)
	ID     string // its AuditEvent id, when known
	Reason string
}

func (b *Break) String() string {
	switch {
	case b.Seq == 0:
		return "the chain as a whole: " + b.Reason
	case b.ID != "":
		return fmt.Sprintf("lane %d, sequence %d (AuditEvent/%s): %s", b.Lane, b.Seq, b.ID, b.Reason)
	}
	return fmt.Sprintf("lane %d, sequence %d: %s", b.Lane, b.Seq, b.Reason)
}

// verifyPage is how many chain entries Verify reads at a time.
const verifyPage = 1000

// Verify walks every lane of the tenant's audit chain from its first event
// and reports the first broken link, lane by lane: a chain entry missing
// (sequence gap), an event whose resource row was deleted or updated (an
// AuditEvent is stored once, as its version 1), an event recording another
// sequence number (reordered, inserted or removed before it), a body that
// does not hash to what the next event (or the lane's head) recorded
// (altered, or moved from another lane), a head that does not match the
// lane's last event; then chain entries or AuditEvents that no lane
// accounts for (added outside the chain). The error is for failing to
// read the chain.
func Verify(ctx context.Context, s chain.Store, tenant string) (*Report, error) {
	heads, err := s.AuditHeads(ctx, tenant)
	if err != nil {
		return nil, fmt.Errorf("reading the audit chain heads: %w", err)
	}
	r := &Report{Tenant: tenant, Heads: heads}
	for _, h := range heads.Lanes {
		n, b, err := verifyLane(ctx, s, tenant, h)
		if err != nil {
			return nil, err
		}
		r.Verified += n
		if b != nil {
			r.Break = b
			return r, nil
		}
	}
	switch {
	case heads.Entries != r.Verified:
		r.Break = &Break{Reason: fmt.Sprintf("%d chain entries are stored but the lanes' heads account for %d: entries were added outside them", heads.Entries, r.Verified)}
	case heads.Stored != r.Verified:
		r.Break = &Break{Reason: fmt.Sprintf("%d AuditEvent resources are stored but the chain holds %d: events were added outside it", heads.Stored, r.Verified)}
	}
	return r, nil
}

// verifyLane walks one lane up to its head h and returns how many entries
// it checked intact and the first broken link.
func verifyLane(ctx context.Context, s chain.Store, tenant string, h chain.Head) (int64, *Break, error) {
	// The walk stops at the head read before: events appended since are
	// not this report's business.
	prev, prevID := chain.Genesis, ""
	var last int64
	for last < h.Seq {
		es, err := s.AuditEntries(ctx, tenant, h.Lane, last, min(verifyPage, int(h.Seq-last)))
		if err != nil {
			return last, nil, fmt.Errorf("reading lane %d of the audit chain after %d: %w", h.Lane, last, err)
		}
		for _, e := range es {
			if b := checkEntry(&e, last+1, prev, prevID); b != nil {
				b.Lane = h.Lane
				return last, b, nil
			}
			prev, prevID, last = chain.Sum(e.Body), e.ID, e.Seq
		}
		if len(es) == 0 {
			break
		}
	}
	var b *Break
	switch {
	case last < h.Seq:
		b = &Break{Seq: last + 1, Reason: fmt.Sprintf("the lane ends at %d but its head is at %d: events at the end were removed", last, h.Seq)}
	case h.Last > h.Seq:
		b = &Break{Seq: h.Seq + 1, Reason: fmt.Sprintf("the lane goes on to %d past its head at %d: the head was rewound or events were added", h.Last, h.Seq)}
	case prev != h.Hash:
		b = &Break{Seq: last, ID: prevID, Reason: "the body does not match the hash the lane's head recorded: altered"}
	}
	if b != nil {
		b.Lane = h.Lane
	}
	return last, b, nil
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
		return &Break{Seq: e.Seq, ID: e.ID, Reason: fmt.Sprintf("the event records sequence %d: events were reordered, inserted or removed", seq)}
	case recorded != prev:
		if e.Seq == 1 {
			return &Break{Seq: 1, ID: e.ID, Reason: "the first event does not start the lane: altered or moved"}
		}
		return &Break{Seq: e.Seq - 1, ID: prevID, Reason: fmt.Sprintf("the body does not match the hash event %d recorded: altered, or event %d was put in its place", e.Seq, e.Seq)}
	}
	return nil
}
