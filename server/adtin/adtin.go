// Package adtin is Pulsewire's inbound ADT service (issue 4, point 5): it
// receives HL7 v2 ADT messages (HL7 v2.5.1/v2.6 chapter 3, Patient
// Administration: A01, A03, A04, A08, A11, A13, A40), applies what
// mappings/adt translates them to — conditional upserts of Patient, Encounter
// and Location (https://hl7.org/fhir/R4/http.html#cond-update) and the A40
// merge through Patient.link (https://hl7.org/fhir/R4/patient.html#links)
// — in one database transaction, and answers with the original-mode
// acknowledgment of HL7 v2.6 chapter 2, section 2.9.2 (AA, AE, AR with ERR
// segments) only after that transaction committed.
//
// The name says what it is: ADT in. mappings/adt is the pure translation;
// this package is the I/O around it (store, locks, duplicate detection,
// device associations), and the MLLP listener in server/app only frames.
//
// # Exactly once
//
// A message is keyed by tenant, sender (MSH-3, MSH-4) and MSH-10. In the
// transaction the service locks that key, looks it up in the store's record
// of applied messages (server/adtin/seen), and, when absent, applies the
// message and records it with the ACK it will send. A resend (same key,
// same content) commits nothing and gets the recorded ACK again, byte for
// byte; a different message under a key already used is rejected (AR, ERR
// 205 at MSH-10) rather than silently dropped. Only applied messages are
// recorded: one answered AE or AR changed nothing, and a resend is simply
// processed again.
//
// Resources are found by identifier under tx.Lock of the normalized
// condition, "cond:<Type>?identifier=<system|value, query-escaped>" — the
// same key server/rest locks for a conditional create or update of that
// identifier — so two messages (or a message and a REST client) racing to
// create one patient make one Patient. All keys of a message are locked in
// sorted order before anything is read, so two messages cannot deadlock.
//
// # What an update keeps
//
// ADT owns the elements mappings/adt writes (managed, below); other
// elements of an existing resource (added through the REST API) are kept.
// Patient.link entries are never dropped, and a Patient replaced by an A40
// merge stays inactive. Encounter.period.start is kept when a message does
// not restate it (A11, A13 without PV1-44), and locations the Encounter
// leaves are kept with status completed (the location history). A write
// that would change nothing is skipped, so a restated message makes no new
// version.
//
// # Beds and devices
//
// With Settings.FollowBeds (off by default) a device follows the patient
// in its bed: a Device whose location references the bed Location (PV1-3
// with a bed component) gets a DeviceUseStatement for the patient placed
// there (a message with PV1-19 whose Encounter is in progress or arrived:
// A01, A04, A08, A13; A02 is not a supported event), from the
// event time (EVN-2, else MSH-7), which ends the previous occupant's open
// association at that time; the patient's open associations with devices
// located elsewhere (a bed move) end then too. When the Encounter ends
// (A03, A08 with PV1-45: at the discharge time; A11: at the event time)
// the patient's open associations with located devices end. An A40 merge
// moves the retired patients' open associations with located devices to
// the survivor at the event time. Associations are never deleted: an ended
// one is a new version with timingPeriod.end and status completed. Device
// writes take server/ingest's device lock ("ingest:Device/<id>"), so they
// serialize with readings being attributed; Config.Associated is told the
// devices after commit (server/app releases their held readings).
//
// Errors, logs and ACKs carry ids, segment positions and table 0357 codes,
// never message values.
//
// Only server/app, server/cmd and tests import it.
package adtin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pulsewire/pulsewire/mappings/adt"
	"github.com/pulsewire/pulsewire/mappings/hl7v2"
	"github.com/pulsewire/pulsewire/server/adtin/seen"
	"github.com/pulsewire/pulsewire/server/audit"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/search"
)

// Settings are a tenant's ADT settings.
type Settings struct {
	// ADT is the translation configuration (assigning authorities, the
	// default identifier system, the time zone of times without offset).
	ADT adt.Config
	// FollowBeds turns on bed-following devices (see the package comment).
	FollowBeds bool
}

// Config configures a Service.
type Config struct {
	Store    fhir.Store // its transactions must implement seen.Tx
	Registry *search.Registry
	// Settings returns a tenant's settings; nil means the zero Settings for
	// every tenant.
	Settings func(tenant string) Settings
	// Associated, when set, is called after a commit that started or ended
	// device associations, with the Device ids, before Receive returns (so
	// before the ACK goes out: server/app releases held readings there).
	Associated func(ctx context.Context, tenant string, devices []string)
	// Timeout bounds the processing of one message (0: 20 s), below the
	// 30 s senders commonly wait for an ACK: a message the store cannot take
	// in time is answered AE rather than not at all.
	Timeout time.Duration
	Now     func() time.Time // nil: time.Now
	Logger  *slog.Logger     // nil: discard
}

// Stats counts messages by outcome. Read them with Service.Stats.
type Stats struct {
	Received    int64 // frames or messages handed to the service
	Accepted    int64 // applied and answered AA
	Duplicates  int64 // resends of an applied MSH-10, answered the recorded ACK
	Errors      int64 // answered AE (bad content, or the store failed)
	Rejects     int64 // answered AR (not ADT, unsupported event, unreadable, reused MSH-10)
	StoreErrors int64 // of Errors: the store failed (the sender should resend)
	Lenient     int64 // messages the parser accepted only leniently (see hl7v2.Stats)
}

// Service applies ADT messages. It is safe for concurrent use.
type Service struct {
	cfg Config
	log *slog.Logger

	received, accepted, duplicates, errs, rejects, storeErrs, lenient atomic.Int64
}

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.Settings == nil {
		cfg.Settings = func(string) Settings { return Settings{} }
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 20 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, log: log}
}

// Stats returns the counts so far.
func (s *Service) Stats() Stats {
	return Stats{
		Received: s.received.Load(), Accepted: s.accepted.Load(), Duplicates: s.duplicates.Load(),
		Errors: s.errs.Load(), Rejects: s.rejects.Load(), StoreErrors: s.storeErrs.Load(), Lenient: s.lenient.Load(),
	}
}

// Outcome is what became of one message.
type Outcome struct {
	Code      hl7v2.AckCode
	Ack       []byte // the encoded acknowledgment to send
	Event     string // trigger event, when the message got that far
	Duplicate bool   // a resend of an applied message: Ack is the recorded one
	Issues    []hl7v2.Issue
	// Devices whose associations changed (bed-following), after commit.
	Devices []string
	// Err is the internal cause of an AE the store caused: logged, never
	// sent (the ACK says 207, application internal error).
	Err error
}

// HandleFrame parses one received frame and returns the acknowledgment to
// send (see Receive). A frame that is not an HL7 message (no MSH first,
// unusable delimiters) is answered AR; one with malformed segments AE with
// an ERR per segment: a message missing a segment must not be applied as
// if it were whole.
func (s *Service) HandleFrame(ctx context.Context, tenant string, frame []byte) []byte {
	m, st, err := hl7v2.Parse(frame)
	if len(st.Counts()) > 0 {
		s.lenient.Add(1)
	}
	switch {
	case m == nil:
		s.received.Add(1)
		return s.answer(tenant, nil, &Outcome{Code: hl7v2.AckReject, Issues: []hl7v2.Issue{{
			Segment: "MSH", Index: 1, Occurrence: 1, Code: hl7v2.ErrSegmentSequence,
			Msg: "not an HL7 v2 message: it must start with MSH and its delimiters",
		}}}).Ack
	case err != nil:
		s.received.Add(1)
		var pe *hl7v2.ParseError
		o := &Outcome{Code: hl7v2.AckError}
		if errors.As(err, &pe) {
			o.Issues = pe.Issues
		}
		return s.answer(tenant, m, o).Ack
	}
	return s.Receive(ctx, tenant, m).Ack
}

// TooLarge returns the acknowledgment of a frame rejected for its size (AR,
// ERR 104 value too long), for mllp.Server.Reject.
func (s *Service) TooLarge() []byte {
	s.received.Add(1)
	return s.answer("", nil, &Outcome{Code: hl7v2.AckReject, Issues: []hl7v2.Issue{{
		Code: hl7v2.ErrValueTooLong, Msg: "message larger than the frame size limit",
	}}}).Ack
}

// Receive applies one parsed message for tenant and returns its outcome,
// whose Ack is sent to the peer. AA only once the transaction committed;
// AR for a message that is not ADT (200), an unsupported trigger event
// (201) or a reused MSH-10 (205); AE for missing or malformed content
// (the ERR segments locate it) and for any failure of the store (207: the
// sender should resend; nothing was written).
func (s *Service) Receive(ctx context.Context, tenant string, m *hl7v2.Message) *Outcome {
	s.received.Add(1)
	settings := s.cfg.Settings(tenant)
	res, err := adt.Translate(m, &settings.ADT)
	if err != nil {
		code, issues, _ := adt.AckFor(err)
		return s.answer(tenant, m, &Outcome{Code: code, Issues: issues})
	}
	if res.ControlID == "" {
		return s.answer(tenant, m, &Outcome{Code: hl7v2.AckError, Event: res.Event,
			Issues: []hl7v2.Issue{issueAt(m, "MSH", 10, hl7v2.ErrRequiredFieldMissing, "MSH-10 message control id is required")}})
	}
	// The message's writes are inbound ADT's (server/audit records them so).
	ctx, cancel := context.WithTimeout(audit.WithPrincipal(ctx, audit.System("adt")), s.cfg.Timeout)
	defer cancel()
	key := seen.Key{Sender: sender(m), ControlID: res.ControlID}
	digest := digestOf(m)
	o := &Outcome{Code: hl7v2.AckAccept, Event: res.Event}
	err = s.cfg.Store.Tx(ctx, tenant, func(tx fhir.Tx) error {
		o.Duplicate, o.Ack, o.Devices = false, nil, nil
		st, ok := tx.(seen.Tx)
		if !ok {
			return fhir.Errorf(fhir.KindInternal, "the store keeps no record of processed HL7 messages")
		}
		if err := tx.Lock(ctx, "hl7in:"+key.Sender+"\n"+key.ControlID); err != nil {
			return err
		}
		prev, err := st.SeenHL7(ctx, key)
		switch {
		case err == nil && prev.Digest == digest:
			o.Duplicate, o.Ack = true, prev.Ack
			return nil
		case err == nil:
			return errReused
		case !fhir.IsKind(err, fhir.KindNotFound):
			return err
		}
		a := &applier{s: s, ctx: ctx, tenant: tenant, tx: tx, m: m, res: res, set: settings}
		if err := a.apply(); err != nil {
			return err
		}
		o.Devices = a.devices()
		ack, err := s.encodeACK(m, hl7v2.AckAccept, nil)
		if err != nil {
			return err
		}
		o.Ack = ack
		return st.RecordHL7(ctx, &seen.Message{Key: key, Digest: digest, Event: res.Event, Ack: ack, Processed: s.cfg.Now().UTC().Truncate(time.Microsecond)})
	})
	var ie *issueError
	switch {
	case err == nil && o.Duplicate:
		s.duplicates.Add(1)
		s.log.Info("adt: duplicate message answered again", "tenant", tenant, "event", res.Event, "control_id", res.ControlID)
		return o
	case err == nil:
		s.accepted.Add(1)
		s.log.Debug("adt: message applied", "tenant", tenant, "event", res.Event, "control_id", res.ControlID)
		if len(o.Devices) > 0 && s.cfg.Associated != nil {
			s.cfg.Associated(context.WithoutCancel(ctx), tenant, o.Devices)
		}
		return o
	case errors.Is(err, errReused):
		return s.answer(tenant, m, &Outcome{Code: hl7v2.AckReject, Event: res.Event,
			Issues: []hl7v2.Issue{issueAt(m, "MSH", 10, hl7v2.ErrDuplicateKeyIdentifier, "this MSH-10 was already used for a different message")}})
	case errors.As(err, &ie):
		return s.answer(tenant, m, &Outcome{Code: hl7v2.AckError, Event: res.Event, Issues: []hl7v2.Issue{ie.issue}})
	}
	s.storeErrs.Add(1)
	return s.answer(tenant, m, &Outcome{Code: hl7v2.AckError, Event: res.Event, Err: err})
}

// errReused is a control id recorded with a different message.
var errReused = errors.New("adtin: MSH-10 reused for a different message")

// issueError is a message the store's state makes unprocessable (e.g. two
// Patients with its identifier): AE with the issue.
type issueError struct{ issue hl7v2.Issue }

func (e *issueError) Error() string { return "adtin: " + e.issue.Location() + ": " + e.issue.Msg }

// issueAt locates an issue at the first segment named seg.
func issueAt(m *hl7v2.Message, seg string, field int, code hl7v2.ErrorCode, msg string) hl7v2.Issue {
	is := hl7v2.Issue{Segment: seg, Field: field, Code: code, Msg: msg}
	for i, sg := range m.Segments {
		if sg.Name == seg {
			is.Index, is.Occurrence = i+1, 1
			break
		}
	}
	return is
}

// answer builds the acknowledgment of a message that was not applied (or
// o.Code is AA for one already encoded), counts and logs the outcome.
func (s *Service) answer(tenant string, m *hl7v2.Message, o *Outcome) *Outcome {
	switch o.Code {
	case hl7v2.AckReject:
		s.rejects.Add(1)
	default:
		s.errs.Add(1)
	}
	attrs := []any{"tenant", tenant, "code", string(o.Code), "event", o.Event}
	if m != nil {
		attrs = append(attrs, "control_id", m.ControlID())
	}
	for _, is := range o.Issues {
		attrs = append(attrs, "issue", is.Location()+" code "+strconv.Itoa(int(is.Code)))
	}
	if o.Err != nil {
		attrs = append(attrs, "err", o.Err)
	}
	s.log.Warn("adt: message not applied", attrs...)
	ack, err := s.encodeACK(m, o.Code, o.Issues)
	if err != nil {
		// Only a received message with unusable content can fail here:
		// answer without echoing it.
		ack, _ = s.encodeACK(nil, o.Code, o.Issues)
	}
	o.Ack = ack
	return o
}

func (s *Service) encodeACK(m *hl7v2.Message, code hl7v2.AckCode, issues []hl7v2.Issue) ([]byte, error) {
	ack, err := hl7v2.NewACK(m, hl7v2.AckOptions{Code: code, ControlID: newControlID, Now: s.cfg.Now(), Issues: issues})
	if err != nil {
		return nil, err
	}
	return hl7v2.Encode(ack)
}

// newControlID is a random MSH-10 for an ACK: "PWA" and 16 hex digits, 19
// characters (v2.5.1 limits MSH-10 to 20).
func newControlID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return "PWA" + strings.ToUpper(hex.EncodeToString(b[:]))
}

// sender is MSH-3 and MSH-4 (their components joined by ^, subcomponents
// by &), the scope of MSH-10.
func sender(m *hl7v2.Message) string {
	msh := m.Segment("MSH", 1)
	hd := func(f hl7v2.Field) string {
		var parts []string
		for _, c := range f.Rep(1) {
			parts = append(parts, strings.Join(c, "&"))
		}
		return strings.TrimRight(strings.Join(parts, "^"), "^")
	}
	return hd(msh.Field(3)) + "|" + hd(msh.Field(4))
}

// digestOf hashes what a message says: MSH-9 and every segment after MSH.
// MSH-7 and the rest of MSH may differ when an engine rebuilds a message to
// resend it, the terminators and delimiters when it is re-encoded.
func digestOf(m *hl7v2.Message) string {
	b, _ := json.Marshal(struct {
		Type     string
		Segments []*hl7v2.Segment
	}{m.MessageType().String(), m.Segments[1:]}) // strings only: cannot fail
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
