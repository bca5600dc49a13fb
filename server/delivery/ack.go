package delivery

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/pulsewire/pulsewire/mappings/hl7v2"
)

// Sender sends one HL7 v2 message to a destination and returns the content
// of the response (the ACK). adapters/mllp's Client and adapters/hl7http's
// Client are Senders (server/app passes them in). One Sender is one
// connection: the worker calls Send from one goroutine at a time per
// Sender. Errors must never hold message content. A timeout waiting for
// the ACK should be reported as an error wrapping ErrAckTimeout (or
// context.DeadlineExceeded, or an error with a Timeout() bool method
// returning true): it is counted apart from other transport errors.
type Sender interface {
	Send(ctx context.Context, msg []byte) (ack []byte, err error)
	// Close drops the connection; the next Send makes a new one.
	Close() error
}

// ErrAckTimeout is what a Sender wraps when no ACK came in time.
var ErrAckTimeout = errors.New("delivery: no acknowledgment within the timeout")

// WithTimeoutError returns s with its errors that wrap timeout (the
// transport's own "no ACK in time" error, e.g. adapters/mllp's
// ErrAckTimeout) also wrapping ErrAckTimeout.
func WithTimeoutError(s Sender, timeout error) Sender { return timeoutSender{s, timeout} }

type timeoutSender struct {
	Sender
	timeout error
}

func (t timeoutSender) Send(ctx context.Context, msg []byte) ([]byte, error) {
	ack, err := t.Sender.Send(ctx, msg)
	if err != nil && errors.Is(err, t.timeout) && !errors.Is(err, ErrAckTimeout) {
		err = fmt.Errorf("%w: %w", ErrAckTimeout, err)
	}
	return ack, err
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.Is(err, ErrAckTimeout) || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &t) && t.Timeout())
}

// ackError is an ACK the worker could not use (unreadable, no MSA, unknown
// MSA-1, or the acknowledgment of another message): the connection is out
// of step and is dropped.
type ackError struct{ msg string }

func (e *ackError) Error() string { return e.msg }

// readACK returns MSA-1 of ack and, for an error or reject, a description
// made of table 0357 codes (ERR-3, or ERR-1.4 before v2.5): never the
// engine's free text, which may quote the message. controlID is the MSH-10
// sent; an MSA-2 naming another message is an ackError (an empty MSA-2, as
// engines send for a message they could not parse, is accepted).
func readACK(ack []byte, controlID string) (hl7v2.AckCode, string, error) {
	m, _, err := hl7v2.Parse(ack)
	if m == nil {
		return "", "", &ackError{"unreadable ACK: " + errText(err)}
	}
	msa := m.Segment("MSA", 1)
	if msa == nil {
		return "", "", &ackError{"ACK without an MSA segment"}
	}
	code := hl7v2.AckCode(msa.Value(1, 1, 1, 1))
	switch code {
	case hl7v2.AckAccept, hl7v2.AckCommitAccept, hl7v2.AckError, hl7v2.AckCommitError, hl7v2.AckReject, hl7v2.AckCommitReject:
	default:
		return "", "", &ackError{"ACK with an unknown MSA-1 code"}
	}
	if got := msa.Value(2, 1, 1, 1); got != "" && got != controlID {
		return "", "", &ackError{"ACK for another message (MSA-2 " + got + ", sent " + controlID + ")"}
	}
	if code.Accepted() {
		return code, "", nil
	}
	var codes []string
	for _, e := range m.All("ERR") {
		c := e.Value(3, 1, 1, 1)
		if c == "" {
			c = e.Value(1, 1, 4, 1) // ERR-1 (ELD) component 4, code&text&table
		}
		if n, err := strconv.Atoi(c); err == nil {
			codes = append(codes, strconv.Itoa(n)+" "+hl7v2.ErrorCode(n).String())
		}
	}
	desc := string(code)
	if len(codes) > 0 {
		desc += " (ERR " + strings.Join(codes, "; ") + ")"
	}
	return code, desc, nil
}

// errText is err's text cut to a length fit for LastError.
func errText(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
