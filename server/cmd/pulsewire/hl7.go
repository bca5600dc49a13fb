package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pulsewire/pulsewire/adapters/mllp"
	"github.com/pulsewire/pulsewire/mappings/adt"
	"github.com/pulsewire/pulsewire/mappings/hl7v2"
	"github.com/pulsewire/pulsewire/server/app"
	"github.com/pulsewire/pulsewire/server/fhir"
)

// The hl7 commands let an integration engineer test a feed by hand:
//
//	hl7 send --to HOST:PORT [--tls ...] FILE...   send messages over MLLP, print the ACKs
//	hl7 listen [--addr :2575] [--ack AA|AE|AR]     receive messages, print their MSH, answer
//	hl7 validate FILE...                           check structure and required fields
//
// A FILE holds one or more messages: segments ended by CR, LF or CRLF, a
// new message at each MSH line, or MLLP frames (as captured from the wire).
// Nothing printed holds patient data unless --show-phi says so: headers
// (MSH-3..12), acknowledgments and positions only.

const hl7Usage = `usage: pulsewire hl7 send|listen|validate [flags] [FILE...]

  send --to HOST:PORT [--tls] FILE...   send each message over MLLP, print its ACK;
                                        exit status 1 when one is not AA/CA or has no ACK
  listen [--addr :2575] [--ack AA]      print each received message's header and answer it
  validate FILE...                      check each message; exit status 1 when one is invalid

Run 'pulsewire hl7 <command> -h' for the flags of a command.
`

func hl7Command(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, hl7Usage)
		return errors.New("usage: pulsewire hl7 send|listen|validate")
	}
	switch args[0] {
	case "send":
		return hl7Send(ctx, args[1:], stdout, stderr)
	case "listen":
		return hl7Listen(ctx, args[1:], stdout, stderr)
	case "validate":
		return hl7Validate(args[1:], stdout, stderr)
	}
	fmt.Fprint(stderr, hl7Usage)
	return fmt.Errorf("unknown hl7 command %q", args[0])
}

// --- serve flags ---

// adtFlags are the serve flags of inbound ADT over MLLP (off unless a
// listener is given).
func adtFlags(fs *flag.FlagSet, cfg *app.Config, getenv func(string) string) error {
	l := &listenFlag{cfg: &cfg.ADT}
	if v := getenv("PULSEWIRE_ADT_LISTEN"); v != "" {
		for _, p := range strings.Split(v, ",") {
			if err := l.Set(strings.TrimSpace(p)); err != nil {
				return fmt.Errorf("PULSEWIRE_ADT_LISTEN: %w", err)
			}
		}
		l.fromEnv = true
	}
	fs.Var(l, "adt-listen",
		"receive ADT over MLLP for a tenant: TENANT=ADDR, e.g. acme=:2575 (repeatable; env PULSEWIRE_ADT_LISTEN, comma-separated)")
	fs.StringVar(&cfg.ADT.SettingsFile, "adt-config", getenv("PULSEWIRE_ADT_CONFIG"),
		`per-tenant ADT settings (JSON): {"acme": {"authorities": {"GENHOSP": "urn:oid:..."}, "defaultSystem": "...", "timeZone": "America/Chicago", "followBeds": true}} (env PULSEWIRE_ADT_CONFIG)`)
	fs.StringVar(&cfg.ADT.TLSCertFile, "adt-tls-cert", getenv("PULSEWIRE_ADT_TLS_CERT"),
		"PEM certificate: with --adt-tls-key, the ADT listeners speak MLLP over TLS (env PULSEWIRE_ADT_TLS_CERT)")
	fs.StringVar(&cfg.ADT.TLSKeyFile, "adt-tls-key", getenv("PULSEWIRE_ADT_TLS_KEY"), "PEM private key of --adt-tls-cert (env PULSEWIRE_ADT_TLS_KEY)")
	fs.StringVar(&cfg.ADT.TLSClientCAFile, "adt-tls-client-ca", getenv("PULSEWIRE_ADT_TLS_CLIENT_CA"),
		"PEM CA: engines must present a certificate it signed (mutual TLS) (env PULSEWIRE_ADT_TLS_CLIENT_CA)")
	maxFrame, err := strconv.Atoi(env(getenv, "PULSEWIRE_ADT_MAX_FRAME", strconv.Itoa(mllp.DefaultMaxFrame)))
	if err != nil {
		return fmt.Errorf("PULSEWIRE_ADT_MAX_FRAME: %w", err)
	}
	fs.IntVar(&cfg.ADT.MaxFrame, "adt-max-frame", maxFrame, "largest ADT message accepted, in bytes; larger ones are answered AR (env PULSEWIRE_ADT_MAX_FRAME)")
	return nil
}

// listenFlag is the repeatable TENANT=ADDR flag; flags given on the command
// line replace the environment's.
type listenFlag struct {
	cfg     *app.ADTConfig
	fromEnv bool
}

func (l *listenFlag) String() string {
	if l == nil || l.cfg == nil {
		return ""
	}
	var parts []string
	for _, x := range l.cfg.Listeners {
		parts = append(parts, x.Tenant+"="+x.Addr)
	}
	return strings.Join(parts, ",")
}

func (l *listenFlag) Set(v string) error {
	tenant, addr, ok := strings.Cut(v, "=")
	if !ok || addr == "" || !fhir.ValidTenant(tenant) {
		return fmt.Errorf("%q: want TENANT=ADDR, e.g. acme=:2575", v)
	}
	if l.fromEnv {
		l.cfg.Listeners, l.fromEnv = nil, false
	}
	l.cfg.Listeners = append(l.cfg.Listeners, app.ADTListener{Tenant: tenant, Addr: addr})
	return nil
}

// --- reading message files ---

// fileMessage is one message of a file.
type fileMessage struct {
	name string // "FILE #n"
	raw  []byte
}

// readMessages reads every message of the files.
func readMessages(paths []string) ([]fileMessage, error) {
	var out []fileMessage
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", p, err)
		}
		msgs, err := splitMessages(b)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", p, err)
		}
		if len(msgs) == 0 {
			return nil, fmt.Errorf("%s holds no message", p)
		}
		for i, m := range msgs {
			out = append(out, fileMessage{name: fmt.Sprintf("%s #%d", p, i+1), raw: m})
		}
	}
	return out, nil
}

// splitMessages splits a file into messages: its MLLP frames when it has
// start bytes, else at each line that begins with MSH. Segments are ended
// by CR, as HL7 requires on the wire (files are often edited with LF).
func splitMessages(b []byte) ([][]byte, error) {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	if bytes.IndexByte(b, mllp.StartBlock) >= 0 {
		var out [][]byte
		r := mllp.NewReader(bytes.NewReader(b), 0)
		for {
			f, err := r.ReadFrame()
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			if err != nil {
				return nil, fmt.Errorf("reading MLLP frames: %w", err)
			}
			out = append(out, f)
		}
	}
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\r"))
	b = bytes.ReplaceAll(b, []byte("\n"), []byte("\r"))
	var out [][]byte
	var cur []byte
	for _, line := range bytes.Split(b, []byte("\r")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if isHeaderLine(line) && len(cur) > 0 {
			out, cur = append(out, cur), nil
		}
		cur = append(append(cur, line...), '\r')
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out, nil
}

func isHeaderLine(line []byte) bool {
	return len(line) > 3 && string(line[:3]) == "MSH" && !isAlnum(line[3])
}

func isAlnum(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
}

// header describes a message by MSH only: type, control id, sender, version.
func header(m *hl7v2.Message) string {
	msh := m.Segment("MSH", 1)
	hd := func(n int) string {
		var parts []string
		for _, c := range msh.Field(n).Rep(1) {
			parts = append(parts, strings.Join(c, "&"))
		}
		return strings.TrimRight(strings.Join(parts, "^"), "^")
	}
	return fmt.Sprintf("%s control=%s from=%s|%s version=%s", orDash(m.MessageType().String()), orDash(m.ControlID()),
		hd(3), hd(4), orDash(m.Version()))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// printSegments writes a message one segment per line, indented.
func printSegments(w io.Writer, raw []byte) {
	for _, s := range bytes.Split(bytes.TrimRight(raw, "\r\n"), []byte("\r")) {
		fmt.Fprintf(w, "  %s\n", s)
	}
}

// --- send ---

func hl7Send(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hl7 send", flag.ContinueOnError)
	fs.SetOutput(stderr)
	to := fs.String("to", "", "HOST:PORT of the MLLP receiver (required)")
	useTLS := fs.Bool("tls", false, "MLLP over TLS")
	ca := fs.String("ca", "", "PEM CA to verify the receiver with (default: the system roots)")
	serverName := fs.String("server-name", "", "name to verify the receiver's certificate against (default: the host of --to)")
	cert := fs.String("cert", "", "PEM client certificate, for a receiver that requires one")
	key := fs.String("key", "", "PEM private key of --cert")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for each ACK")
	keepGoing := fs.Bool("keep-going", false, "send the remaining messages after one is not accepted (default: stop, as an engine would)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *to == "" || fs.NArg() == 0 {
		return errors.New("usage: pulsewire hl7 send --to HOST:PORT [--tls] FILE [FILE ...]")
	}
	msgs, err := readMessages(fs.Args())
	if err != nil {
		return err
	}
	opts := mllp.Options{AckTimeout: *timeout}
	if *useTLS {
		if opts.TLS, err = clientTLS(*ca, *serverName, *cert, *key); err != nil {
			return err
		}
	}
	c := mllp.NewClient(*to, opts)
	defer c.Close()
	failed := 0
	for i, fm := range msgs {
		desc := "unreadable message"
		if m, _, _ := hl7v2.Parse(fm.raw); m != nil {
			desc = header(m)
		}
		ack, err := c.Send(ctx, fm.raw)
		if err != nil {
			fmt.Fprintf(stdout, "%s %s -> no ACK: %v\n", fm.name, desc, err)
			failed++
		} else {
			code := "?"
			if am, _, _ := hl7v2.Parse(ack); am != nil {
				code = orDash(am.Value("MSA", 1, 1, 1, 1))
			}
			fmt.Fprintf(stdout, "%s %s -> %s\n", fm.name, desc, code)
			printSegments(stdout, ack)
			if !hl7v2.AckCode(code).Accepted() {
				failed++
			}
		}
		if failed > 0 && !*keepGoing {
			if rest := len(msgs) - i - 1; rest > 0 {
				fmt.Fprintf(stdout, "stopped: %d message(s) not sent (--keep-going sends them)\n", rest)
			}
			break
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d message(s) not accepted", failed, len(msgs))
	}
	return nil
}

func clientTLS(caFile, serverName, certFile, keyFile string) (*tls.Config, error) {
	tc := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("reading CA: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
		}
	}
	if certFile != "" || keyFile != "" {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("loading client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{c}
	}
	return tc, nil
}

// --- listen ---

func hl7Listen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hl7 listen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", ":2575", "address to receive MLLP on")
	ackCode := fs.String("ack", "AA", "acknowledgment code to answer: AA, AE or AR (AE/AR carry ERR 207)")
	showPHI := fs.Bool("show-phi", false, "also print every segment of each message: THIS PRINTS PATIENT DATA")
	certFile := fs.String("tls-cert", "", "PEM certificate: with --tls-key, receive MLLP over TLS")
	keyFile := fs.String("tls-key", "", "PEM private key of --tls-cert")
	count := fs.Int("count", 0, "exit after answering this many messages (0: run until interrupted)")
	maxFrame := fs.Int("max-frame", mllp.DefaultMaxFrame, "largest message accepted, in bytes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	code := hl7v2.AckCode(strings.ToUpper(*ackCode))
	switch code {
	case hl7v2.AckAccept, hl7v2.AckError, hl7v2.AckReject:
	default:
		return fmt.Errorf("--ack %q: want AA, AE or AR", *ackCode)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	if *certFile != "" || *keyFile != "" {
		c, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			ln.Close()
			return fmt.Errorf("loading TLS certificate: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{c}, MinVersion: tls.VersionTLS12})
	}
	var mu sync.Mutex
	var acks atomic.Int64
	ackControlID := func() string { return fmt.Sprintf("LSN%06d", acks.Add(1)) }
	out := bufio.NewWriter(stdout)
	fmt.Fprintf(out, "listening on %s (answering %s)\n", ln.Addr(), code)
	out.Flush()
	done := make(chan struct{})
	answered := 0
	srv := &mllp.Server{MaxFrame: *maxFrame}
	srv.Handler = func(_ context.Context, msg []byte) []byte {
		mu.Lock()
		defer mu.Unlock()
		defer out.Flush()
		now := time.Now().UTC().Format(time.RFC3339)
		m, _, perr := hl7v2.Parse(msg)
		var ack *hl7v2.Message
		if m == nil {
			fmt.Fprintf(out, "%s unreadable frame (%d bytes) -> AR\n", now, len(msg))
			ack, _ = hl7v2.NewACK(nil, hl7v2.AckOptions{Code: hl7v2.AckReject, ControlID: ackControlID,
				Issues: []hl7v2.Issue{{Segment: "MSH", Code: hl7v2.ErrSegmentSequence}}})
		} else {
			fmt.Fprintf(out, "%s %s segments=%s -> %s\n", now, header(m), segmentNames(m), code)
			var pe *hl7v2.ParseError
			if errors.As(perr, &pe) {
				for _, is := range pe.Issues {
					fmt.Fprintf(out, "  issue %s: %s\n", position(is), is.Msg)
				}
			}
			if *showPHI {
				printSegments(out, msg)
			}
			ack, _ = hl7v2.NewACK(m, hl7v2.AckOptions{Code: code, ControlID: ackControlID})
		}
		b, err := hl7v2.Encode(ack)
		if err != nil {
			fmt.Fprintf(out, "  cannot answer: %v\n", err)
			return nil
		}
		answered++
		if *count > 0 && answered == *count {
			close(done)
		}
		return b
	}
	srv.Reject = func(error) []byte {
		ack, _ := hl7v2.NewACK(nil, hl7v2.AckOptions{Code: hl7v2.AckReject, ControlID: ackControlID,
			Issues: []hl7v2.Issue{{Code: hl7v2.ErrValueTooLong}}})
		b, _ := hl7v2.Encode(ack)
		return b
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving MLLP: %w", err)
	case <-ctx.Done():
	case <-done:
	}
	// Let the last answer be written before the connections close.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	<-errc
	return nil
}

func segmentNames(m *hl7v2.Message) string {
	names := make([]string, len(m.Segments))
	for i, s := range m.Segments {
		names[i] = s.Name
	}
	return strings.Join(names, ",")
}

// --- validate ---

// finding is one problem of a message: an error (invalid) or a warning.
type finding struct {
	warn  bool
	issue hl7v2.Issue
}

func hl7Validate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hl7 validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := &adt.Config{Authorities: map[string]string{}}
	fs.StringVar(&cfg.DefaultSystem, "default-system", "", "identifier system of CX values without an assigning authority (as the tenant's ADT settings)")
	fs.Func("authority", "NAME=SYSTEM: the identifier system of an assigning authority (repeatable, as the tenant's ADT settings)", func(v string) error {
		name, system, ok := strings.Cut(v, "=")
		if !ok || name == "" || system == "" {
			return fmt.Errorf("%q: want NAME=SYSTEM", v)
		}
		cfg.Authorities[name] = system
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("usage: pulsewire hl7 validate [--authority NAME=SYSTEM] FILE [FILE ...]")
	}
	msgs, err := readMessages(fs.Args())
	if err != nil {
		return err
	}
	invalid := 0
	for _, fm := range msgs {
		desc, fds := check(fm.raw, cfg)
		bad := false
		for _, f := range fds {
			bad = bad || !f.warn
		}
		verdict := "valid"
		if bad {
			verdict = "INVALID"
			invalid++
		}
		fmt.Fprintf(stdout, "%s %s: %s\n", fm.name, desc, verdict)
		for _, f := range fds {
			kind := "error  "
			if f.warn {
				kind = "warning"
			}
			code := ""
			if f.issue.Code != 0 {
				code = fmt.Sprintf(" [%d %s]", f.issue.Code, f.issue.Code)
			}
			fmt.Fprintf(stdout, "  %s %s: %s%s\n", kind, position(f.issue), f.issue.Msg, code)
		}
	}
	if invalid > 0 {
		return fmt.Errorf("%d of %d message(s) invalid", invalid, len(msgs))
	}
	return nil
}

// position writes an issue's place in HL7 notation: "OBX(2)-3 (segment 7)".
func position(is hl7v2.Issue) string {
	if is.Segment == "" {
		return "segment " + strconv.Itoa(is.Index)
	}
	s := is.Segment
	if is.Occurrence > 1 {
		s += "(" + strconv.Itoa(is.Occurrence) + ")"
	}
	if is.Field > 0 {
		s += "-" + strconv.Itoa(is.Field)
	}
	if is.Index > 0 {
		s += " (segment " + strconv.Itoa(is.Index) + ")"
	}
	return s
}

// check parses a message leniently and checks it: parse problems, the
// header every message needs, and per type what Pulsewire needs (ADT: what
// mappings/adt needs; ORU: the required fields of IHE PCD-01).
func check(raw []byte, cfg *adt.Config) (string, []finding) {
	m, st, err := hl7v2.Parse(raw)
	if m == nil {
		return "unreadable message", []finding{{issue: hl7v2.Issue{Segment: "MSH", Index: 1, Code: hl7v2.ErrSegmentSequence,
			Msg: "not an HL7 v2 message: it must start with MSH and its delimiters"}}}
	}
	c := &checker{m: m}
	var pe *hl7v2.ParseError
	if errors.As(err, &pe) {
		for _, is := range pe.Issues {
			c.out = append(c.out, finding{issue: is})
		}
	}
	if counts := st.Counts(); len(counts) > 0 {
		var parts []string
		for k, v := range counts {
			parts = append(parts, fmt.Sprintf("%s=%d", k, v))
		}
		sort.Strings(parts)
		c.out = append(c.out, finding{warn: true, issue: hl7v2.Issue{Segment: "MSH", Index: 1,
			Msg: "parsed leniently (" + strings.Join(parts, ", ") + "); engines may not"}})
	}
	c.header()
	switch m.MessageType().Code {
	case "ADT":
		if _, err := adt.Translate(m, cfg); err != nil {
			_, issues, _ := adt.AckFor(err)
			for _, is := range issues {
				c.out = append(c.out, finding{issue: is})
			}
		}
	case "ORU":
		c.pcd01()
	default:
		c.warn("MSH", 1, 9, "not a message type Pulsewire receives (ADT) or sends (ORU): only the header was checked")
	}
	sort.SliceStable(c.out, func(i, j int) bool { return c.out[i].issue.Index < c.out[j].issue.Index })
	return orDash(m.MessageType().String()) + " " + orDash(m.ControlID()), c.out
}

type checker struct {
	m   *hl7v2.Message
	out []finding
}

// at locates occurrence occ of segment name.
func (c *checker) at(name string, occ, field int) hl7v2.Issue {
	is := hl7v2.Issue{Segment: name, Occurrence: occ, Field: field}
	n := 0
	for i, s := range c.m.Segments {
		if s.Name == name {
			n++
			if n == occ {
				is.Index = i + 1
				break
			}
		}
	}
	return is
}

func (c *checker) fail(name string, occ, field int, code hl7v2.ErrorCode, msg string) {
	is := c.at(name, occ, field)
	is.Code, is.Msg = code, msg
	c.out = append(c.out, finding{issue: is})
}

func (c *checker) warn(name string, occ, field int, msg string) {
	is := c.at(name, occ, field)
	is.Msg = msg
	c.out = append(c.out, finding{warn: true, issue: is})
}

// require reports an empty field of occurrence occ of a segment (a field
// is valued when any part of its first repetition is).
func (c *checker) require(s *hl7v2.Segment, occ, field int, why string) bool {
	for _, comp := range s.Field(field).Rep(1) {
		for _, sub := range comp {
			if sub != "" {
				return true
			}
		}
	}
	c.fail(s.Name, occ, field, hl7v2.ErrRequiredFieldMissing, fmt.Sprintf("%s-%d is required%s", s.Name, field, why))
	return false
}

var dtmPattern = regexp.MustCompile(`^\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2}(\.\d{1,4})?)?)?)?)?)?([+-]\d{4})?$`)

// header checks the MSH fields HL7 v2.5.1/v2.6 chapter 2 requires (MSH-7,
// MSH-9, MSH-10, MSH-11, MSH-12).
func (c *checker) header() {
	msh := c.m.Segment("MSH", 1)
	if c.require(msh, 1, 7, "") && !dtmPattern.MatchString(msh.Value(7, 1, 1, 1)) {
		c.fail("MSH", 1, 7, hl7v2.ErrDataType, "MSH-7 is not a DTM (YYYYMMDD[HHMM[SS[.S]]][+/-ZZZZ])")
	}
	if c.require(msh, 1, 9, "") && msh.Value(9, 1, 2, 1) == "" {
		c.fail("MSH", 1, 9, hl7v2.ErrRequiredFieldMissing, "MSH-9.2 trigger event is required")
	}
	c.require(msh, 1, 10, " (the receiver deduplicates on it)")
	c.require(msh, 1, 11, "")
	c.require(msh, 1, 12, "")
}

// pcd01Profile is the MSH-21 profile id of IHE PCD-01 (TF-2 B.1).
const pcd01Profile = "1.3.6.1.4.1.19376.1.6.1.1.1"

// resultStatuses is HL7 table 0085 (OBX-11).
var resultStatuses = "C D F I N O P R S U W X"

// pcd01 checks the fields IHE PCD TF-2 (DEC, PCD-01 "Communicate PCD
// Data", appendix B) marks required in ORU^R01: MSH-3, MSH-9 ORU^R01^ORU_R01,
// MSH-21 with the PCD-01 profile; PID with PID-3; an OBR with OBR-3 (filler
// order number), OBR-4 and OBR-7; OBX rows after it with OBX-3, OBX-4
// (the containment path), OBX-11 from table 0085, OBX-2 when OBX-5 is
// valued, and OBX-6 for a numeric value.
func (c *checker) pcd01() {
	m := c.m
	msh := m.Segment("MSH", 1)
	c.require(msh, 1, 3, " by PCD-01")
	if mt := m.MessageType(); mt.Trigger != "R01" || mt.Structure != "ORU_R01" {
		c.fail("MSH", 1, 9, hl7v2.ErrUnsupportedEventCode, "PCD-01 is ORU^R01^ORU_R01")
	}
	found := false
	for _, r := range msh.Field(21) {
		found = found || r.Comp(3).Sub(1) == pcd01Profile
	}
	if !found {
		c.fail("MSH", 1, 21, hl7v2.ErrRequiredFieldMissing, "MSH-21 must name the PCD-01 profile ("+pcd01Profile+")")
	}
	if v := m.Version(); v != "2.6" && v != "2.5.1" && v != "" {
		c.warn("MSH", 1, 12, "PCD-01 is HL7 v2.6 (Pulsewire also sends v2.5.1)")
	}
	if pid := m.Segment("PID", 1); pid == nil {
		c.fail("PID", 0, 0, hl7v2.ErrSegmentSequence, "PCD-01 requires a PID segment")
	} else {
		c.require(pid, 1, 3, " by PCD-01")
	}
	obrs, obxs := 0, 0
	for _, s := range m.Segments {
		switch s.Name {
		case "OBR":
			obrs++
			c.require(s, obrs, 3, " by PCD-01 (filler order number)")
			c.require(s, obrs, 4, " by PCD-01")
			if c.require(s, obrs, 7, " by PCD-01") && !dtmPattern.MatchString(s.Value(7, 1, 1, 1)) {
				c.fail("OBR", obrs, 7, hl7v2.ErrDataType, "OBR-7 is not a DTM")
			}
		case "OBX":
			obxs++
			if obrs == 0 {
				c.fail("OBX", obxs, 0, hl7v2.ErrSegmentSequence, "an OBX must follow its OBR")
			}
			c.require(s, obxs, 3, " by PCD-01 (MDC observation identifier)")
			c.require(s, obxs, 4, " by PCD-01 (containment path)")
			if c.require(s, obxs, 11, " by PCD-01") && !strings.Contains(" "+resultStatuses+" ", " "+s.Value(11, 1, 1, 1)+" ") {
				c.fail("OBX", obxs, 11, hl7v2.ErrTableValueNotFound, "OBX-11 is not in HL7 table 0085")
			}
			if s.Value(5, 1, 1, 1) != "" {
				c.require(s, obxs, 2, " when OBX-5 is valued")
			}
			if s.Value(2, 1, 1, 1) == "NM" {
				c.require(s, obxs, 6, " for a numeric value")
			}
		}
	}
	if obrs == 0 {
		c.fail("OBR", 0, 0, hl7v2.ErrSegmentSequence, "PCD-01 requires an OBR segment")
	}
	if obxs == 0 {
		c.fail("OBX", 0, 0, hl7v2.ErrSegmentSequence, "PCD-01 requires OBX segments")
	}
}
