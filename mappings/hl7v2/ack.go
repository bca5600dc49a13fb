package hl7v2

import (
	"strconv"
	"strings"
	"time"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// AckCode is MSA-1, HL7 table 0008.
type AckCode string

// Acknowledgment codes: original mode (AA, AE, AR) and enhanced mode commit
// acknowledgments (CA, CE, CR).
const (
	AckAccept       AckCode = "AA"
	AckError        AckCode = "AE"
	AckReject       AckCode = "AR"
	AckCommitAccept AckCode = "CA"
	AckCommitError  AckCode = "CE"
	AckCommitReject AckCode = "CR"
)

// Accepted reports whether the code says the message was accepted (AA, CA).
func (c AckCode) Accepted() bool { return c == AckAccept || c == AckCommitAccept }

// AckOptions says how to acknowledge a message.
type AckOptions struct {
	Code AckCode // required
	// ControlID returns a new, unique MSH-10 for the ACK. Required.
	ControlID func() string
	// Now is MSH-7; the zero time means time.Now().
	Now time.Time
	// Issues become ERR segments when Code is not an accept. With none, one
	// ERR with code 207 (application internal error) is written.
	Issues []Issue
	// Version is MSH-12 when the received message is nil or has none;
	// "" means 2.6.
	Version string
}

// TimeFormat is how MSH-7 is written (DTM to the second with offset).
const TimeFormat = "20060102150405-0700"

// NewACK builds the acknowledgment of received (HL7 v2.6 section 2.9.2): MSH
// with sender and receiver swapped (MSH-3/4 from the received MSH-5/6 and
// MSH-5/6 from MSH-3/4), MSH-9 ACK^<trigger>^ACK, a new MSH-10, MSH-11 and
// MSH-12 from the received message; MSA-1 the code and MSA-2 the received
// MSH-10; and for AE/AR one ERR per issue: ERR-2 location, ERR-3 the table
// 0357 code, ERR-4 severity E (for versions before 2.5, ERR-1 instead).
//
// received may be nil, for a message too broken to parse: the ACK then has
// empty addresses and MSA-2. It uses the received message's delimiters.
func NewACK(received *Message, opts AckOptions) (*Message, error) {
	switch opts.Code {
	case AckAccept, AckError, AckReject, AckCommitAccept, AckCommitError, AckCommitReject:
	default:
		return nil, fhir.Errorf(fhir.KindInvalid, "hl7v2: unknown acknowledgment code").At("MSA-1")
	}
	if opts.ControlID == nil {
		return nil, fhir.Errorf(fhir.KindInternal, "hl7v2: AckOptions.ControlID is required")
	}
	d := DefaultDelimiters
	var in *Segment
	if received != nil {
		d = received.Delims
		in = received.Segment("MSH", 1)
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	ack := NewMessage(d)
	msh := ack.Segments[0]
	set := func(n int, f Field) {
		if len(f) > 0 {
			_ = msh.SetField(n, clone(f))
		}
	}
	set(3, in.Field(5))
	set(4, in.Field(6))
	set(5, in.Field(3))
	set(6, in.Field(4))
	_ = msh.Set(7, 1, 1, 1, now.Format(TimeFormat))
	_ = msh.Set(9, 1, 1, 1, "ACK")
	if trigger := in.Value(9, 1, 2, 1); trigger != "" {
		_ = msh.Set(9, 1, 2, 1, trigger)
	}
	_ = msh.Set(9, 1, 3, 1, "ACK")
	_ = msh.Set(10, 1, 1, 1, opts.ControlID())
	if pid := in.Field(11); len(pid) > 0 {
		set(11, pid)
	} else {
		_ = msh.Set(11, 1, 1, 1, "P")
	}
	version := in.Value(12, 1, 1, 1)
	if version != "" {
		set(12, in.Field(12))
	} else {
		version = opts.Version
		if version == "" {
			version = "2.6"
		}
		_ = msh.Set(12, 1, 1, 1, version)
	}
	msa := ack.Append("MSA")
	_ = msa.Set(1, 1, 1, 1, string(opts.Code))
	_ = msa.Set(2, 1, 1, 1, in.Value(10, 1, 1, 1))
	if opts.Code.Accepted() {
		return ack, nil
	}
	issues := opts.Issues
	if len(issues) == 0 {
		issues = []Issue{{Code: ErrApplicationInternal}}
	}
	old := versionBefore25(version)
	for _, is := range issues {
		err := ack.Append("ERR")
		code := Component{strconv.Itoa(int(is.Code)), is.Code.String(), "HL70357"}
		loc := Repetition{}
		if is.Segment != "" || is.Occurrence > 0 || is.Field > 0 {
			loc = append(loc, Component{is.Segment}, Component{positive(is.Occurrence)}, Component{positive(is.Field)})
		}
		if old {
			// ERR-1 (ELD): segment^sequence^field^code&text&table.
			for len(loc) < 3 {
				loc = append(loc, nil)
			}
			_ = err.SetField(1, Field{append(loc, code)})
			continue
		}
		if len(loc) > 0 {
			_ = err.SetField(2, Field{loc})
		}
		_ = err.SetField(3, Field{Repetition{{code[0]}, {code[1]}, {code[2]}}})
		_ = err.Set(4, 1, 1, 1, "E")
	}
	return ack, nil
}

func positive(n int) string {
	if n <= 0 {
		return ""
	}
	return strconv.Itoa(n)
}

// versionBefore25 reports whether an HL7 version id is 2.1 to 2.4, which
// report errors in ERR-1 rather than ERR-2..4.
func versionBefore25(v string) bool {
	major, rest, _ := strings.Cut(v, ".")
	minor, _, _ := strings.Cut(rest, ".")
	mi, err := strconv.Atoi(minor)
	return major == "2" && err == nil && mi < 5
}

func clone(f Field) Field {
	out := make(Field, len(f))
	for i, r := range f {
		out[i] = make(Repetition, len(r))
		for j, c := range r {
			out[i][j] = append(Component(nil), c...)
		}
	}
	return out
}
