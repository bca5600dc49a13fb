package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/pulsewire/pulsewire/adapters/mllp"
	"github.com/pulsewire/pulsewire/adapters/postgres/pgtest"
	"github.com/pulsewire/pulsewire/mappings/hl7v2"
	"github.com/pulsewire/pulsewire/mappings/oru"
	"github.com/pulsewire/pulsewire/server/delivery"
	"github.com/pulsewire/pulsewire/server/delivery/outbox"
)

// The destination of TestDeliveryCrashSendsOnce. Its ACK timeout is long
// enough that a loaded machine does not time out the peer's AAs (a timeout
// would re-send a message within one run, which the test counts as a
// failure); the lease is the shortest allowed (twice dial + ACK timeout),
// since the restarted server waits for the killed one's leases to end.
const (
	dcLanes       = 2
	dcBatch       = 32
	dcPerPatient  = 8
	dcDialTimeout = 500 * time.Millisecond
	dcAckTimeout  = 2 * time.Second
	dcLease       = 2 * (dcDialTimeout + dcAckTimeout)
	dcPatients    = 20
	dcPeerDelay   = 2 * time.Millisecond // the peer's time to answer: the queue drains slowly enough to be killed mid-way
	dcSystem      = "urn:oid:1.2.3.4.5"  // the Patients' identifier system, authority HOSP in PID-3
)

// TestDeliveryCrashSendsOnce is issue 4's restart proof at the process
// level: the pulsewire binary, configured by its environment with one MLLP
// destination (generic PCD-01) for tenant acme, delivers N Observations of
// 20 patients to an interface engine on loopback (oruPeer) and is killed
// with SIGKILL twice while the queue drains, restarted each time. It runs
// on PostgreSQL and on SQLite with 2,000 Observations
// (PULSEWIRE_DELIVERY_CRASH_N sets another number; 10,000 took 45 s per
// store here), and not under -short. What it asserts is listed at
// checkDeliveryCrash.
func TestDeliveryCrashSendsOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("delivery crash test skipped under -short")
	}
	n := 2000
	if v := os.Getenv("PULSEWIRE_DELIVERY_CRASH_N"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 200 {
			t.Fatalf("PULSEWIRE_DELIVERY_CRASH_N=%q: want an integer >= 200", v)
		}
	}
	bin := buildPulsewire(t)
	stores := []struct {
		name string
		env  func(t *testing.T) []string
	}{
		{"postgres", func(t *testing.T) []string {
			dsn, _ := pgtest.Schema(t)
			return []string{"PULSEWIRE_POSTGRES_DSN=" + dsn}
		}},
		{"sqlite", func(t *testing.T) []string {
			return []string{"PULSEWIRE_POSTGRES_DSN=", "PULSEWIRE_DATA_DIR=" + t.TempDir()}
		}},
	}
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) { deliveryCrash(t, bin, s.env(t), n) })
	}
}

// dcObs is one Observation the test writes: the k-th of its patient.
type dcObs struct {
	ID, Patient string
	K           int
	MRN, Value  string // what PID-3.1 and the first OBX-5 must say
}

// dcObservations are the n Observations in creation order: round robin
// over the patients.
func dcObservations(n int) []dcObs {
	out := make([]dcObs, n)
	for g := range out {
		p, k := g%dcPatients, g/dcPatients
		patient := fmt.Sprintf("dcp%02d", p)
		out[g] = dcObs{ID: fmt.Sprintf("dc-%s-%05d", patient, k), Patient: patient, K: k,
			MRN: fmt.Sprintf("MRN%02d", p), Value: strconv.Itoa(40 + k%150)}
	}
	return out
}

func (o dcObs) body(g int) string {
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC).Add(time.Duration(g) * time.Second).Format(time.RFC3339)
	return fmt.Sprintf(`{"resourceType":"Observation","id":%q,"status":"final",`+
		`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],`+
		`"code":{"coding":[{"system":"urn:iso:std:iso:11073:10101","code":"147842","display":"MDC_ECG_HEART_RATE"},{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}]},`+
		`"subject":{"reference":"Patient/%s"},"effectiveDateTime":%q,`+
		`"valueQuantity":{"value":%s,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`,
		o.ID, o.Patient, at, o.Value)
}

// dcKill is what the test saw at one SIGKILL.
type dcKill struct {
	received int                      // distinct messages the peer had received
	done     map[string]*outbox.Entry // by control id: the entries recorded done, read while the server was down
	restart  time.Time                // after the process ended, before the next one started
}

// dcControlID is the MSH-10 of an outbox entry never replayed: "PW" and its
// id in base 36 (delivery.DestinationConfig.ControlIDPrefix).
func dcControlID(id int64) string { return "PW" + strings.ToUpper(strconv.FormatInt(id, 36)) }

func deliveryCrash(t *testing.T, bin string, storeEnv []string, n int) {
	// Every wait below fails when nothing moves for a while, so the test
	// ends (and its cleanups kill the server) without a hard timeout.
	began := time.Now()
	logf := func(format string, args ...any) {
		t.Helper()
		t.Logf("[%5.1fs] "+format, append([]any{time.Since(began).Seconds()}, args...)...)
	}

	dir := t.TempDir()
	peer := startORUPeer(t, dcPeerDelay)
	dests := filepath.Join(dir, "destinations.json")
	file, err := json.Marshal(delivery.File{Destinations: []delivery.DestinationConfig{{
		Tenant: "acme", Name: "engine", Address: peer.addr(),
		Profile: &oru.Settings{Kind: "pcd01",
			SendingApplication:   oru.HD{Namespace: "PULSEWIRE"},
			ReceivingApplication: oru.HD{Namespace: "ENGINE"},
			Authorities:          map[string]oru.HD{dcSystem: {Namespace: "HOSP"}}},
		DialTimeout: delivery.Duration(dcDialTimeout), AckTimeout: delivery.Duration(dcAckTimeout),
		Lease: delivery.Duration(dcLease),
		Retry: delivery.RetryPolicy{Initial: delivery.Duration(50 * time.Millisecond), Max: delivery.Duration(500 * time.Millisecond)},
		Lanes: dcLanes, Batch: dcBatch, PerPatient: dcPerPatient,
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dests, file, 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeLoopbackAddr(t)
	env := append(os.Environ(), "PULSEWIRE_ADDR="+addr, "PULSEWIRE_TENANTS=acme", "PULSEWIRE_AUTH=off",
		"PULSEWIRE_ACCESS_LOG=false", "PULSEWIRE_LOG_LEVEL="+cmp.Or(os.Getenv("PULSEWIRE_CRASH_LOG_LEVEL"), "warn"),
		"PULSEWIRE_DESTINATIONS="+dests, "PULSEWIRE_DELIVERY_POLL=50ms")
	env = append(env, storeEnv...)
	p := newCrashProc(t, bin, env, addr, dir)
	p.start()
	logf("server up (run 1)")

	outboxCLI := func(args ...string) []byte {
		t.Helper()
		return pulsewireCLI(t, bin, env, append([]string{"outbox"}, append(args, "--tenant", "acme")...)...)
	}
	list := func(state outbox.State) []*outbox.Entry {
		t.Helper()
		var es []*outbox.Entry
		if err := json.Unmarshal(outboxCLI("list", "--state", string(state), "--limit", strconv.Itoa(2*n)), &es); err != nil {
			t.Fatalf("outbox list --state %s: %v", state, err)
		}
		return es
	}
	stats := func() outbox.DestinationStats {
		t.Helper()
		var ss []outbox.DestinationStats
		if err := json.Unmarshal(outboxCLI("stats"), &ss); err != nil || len(ss) != 1 {
			t.Fatalf("outbox stats: %v, %+v: want the one destination", err, ss)
		}
		return ss[0]
	}

	// The queue fills while the destination is paused, so that every kill
	// falls while it drains, not while it is written.
	obs := dcObservations(n)
	outboxCLI("pause", "--destination", "engine")
	postDeliveryCrashData(t, p.url, obs)
	if s := stats(); s.Pending != int64(n) {
		t.Fatalf("%d outbox entries pending after writing %d Observations", s.Pending, n)
	}
	logf("%d Observations of %d patients written; %d outbox entries pending", n, dcPatients, n)
	outboxCLI("resume", "--destination", "engine")

	// Two kills, at about 30% and 65% of the messages received.
	var kills []dcKill
	for i, frac := range []float64{0.3, 0.65} {
		at := int(float64(n) * frac)
		waitProgress(t, 30*time.Second, 5*time.Millisecond, fmt.Sprintf("%d messages received before kill %d", at, i+1), func() (int, bool) {
			got := peer.distinct()
			return got, got >= at
		})
		p.kill()
		k := dcKill{received: peer.distinct(), done: map[string]*outbox.Entry{}}
		for _, e := range list(outbox.Done) {
			k.done[dcControlID(e.ID)] = e
		}
		k.restart = time.Now()
		kills = append(kills, k)
		logf("SIGKILL #%d: %d of %d messages received, %d recorded done", i+1, k.received, n, len(k.done))
		if k.received >= n || len(k.done) >= n {
			t.Fatalf("kill %d came after the queue drained: the test did not kill mid-queue", i+1)
		}
		p.start()
		logf("server up (run %d)", p.runs)
	}

	// Wait for every message, then for its AA to be recorded: the outbox
	// empty. A second more shows any re-send still to come.
	waitProgress(t, 30*time.Second, 5*time.Millisecond, "every message received", func() (int, bool) {
		got := peer.distinct()
		return got, got >= n
	})
	waitProgress(t, 15*time.Second, 100*time.Millisecond, "the outbox empty", func() (int, bool) {
		s := stats()
		return int(s.Pending), s.Pending == 0
	})
	time.Sleep(time.Second)
	p.kill() // what the peer received is final
	logf("outbox empty; server stopped")

	if pending, dead := list(outbox.Pending), list(outbox.Dead); len(pending) > 0 || len(dead) > 0 {
		t.Errorf("%d entries pending and %d dead letters at the end, want none", len(pending), len(dead))
	}
	r := checkDeliveryCrash(t, obs, list(outbox.Done), peer.receipts(), peer.accepted(), kills)
	logf("%d Observations, %d messages received, %d received twice (AA not recorded before a kill), kills: %d, server runs: %d, re-sent per kill: %v",
		n, r.receipts, r.duplicates, len(kills), p.runs, r.resent)
}

// postDeliveryCrashData writes the Patients, then obs in creation order,
// in transaction Bundles of 200 PUTs (one transaction assigns its outbox
// entries in entry order).
func postDeliveryCrashData(t *testing.T, url string, obs []dcObs) {
	t.Helper()
	post := func(entries []string) {
		t.Helper()
		body := `{"resourceType":"Bundle","type":"transaction","entry":[` + strings.Join(entries, ",") + `]}`
		resp, err := http.Post(url+"/t/acme/fhir", "application/fhir+json", strings.NewReader(body))
		if err != nil {
			t.Fatalf("posting a transaction: %v", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 2000))
			t.Fatalf("transaction: status %d: %s", resp.StatusCode, b)
		}
	}
	entry := func(typ, id, resource string) string {
		return fmt.Sprintf(`{"resource":%s,"request":{"method":"PUT","url":"%s/%s"}}`, resource, typ, id)
	}
	var entries []string
	for i := range dcPatients {
		id := fmt.Sprintf("dcp%02d", i)
		entries = append(entries, entry("Patient", id, fmt.Sprintf(
			`{"resourceType":"Patient","id":%q,"identifier":[{"system":%q,"value":"MRN%02d"}],"name":[{"family":"Synthetic"}],"gender":"female","birthDate":"1970-01-01"}`,
			id, dcSystem, i)))
	}
	post(entries)
	for from := 0; from < len(obs); from += 200 {
		entries = entries[:0]
		for g := from; g < min(from+200, len(obs)); g++ {
			entries = append(entries, entry("Observation", obs[g].ID, obs[g].body(g)))
		}
		post(entries)
	}
}

// waitProgress polls cond every interval until it holds; it fails the
// test when the count cond reports has not moved for timeout.
func waitProgress(t *testing.T, timeout, interval time.Duration, what string, cond func() (count int, ok bool)) {
	t.Helper()
	last, moved := -1, time.Now()
	for {
		c, ok := cond()
		if ok {
			return
		}
		if c != last {
			last, moved = c, time.Now()
		}
		if time.Since(moved) > timeout {
			t.Fatalf("waiting for %s: stuck at %d for %v", what, c, timeout)
		}
		time.Sleep(interval)
	}
}

// dcResult is what checkDeliveryCrash counted.
type dcResult struct {
	receipts, duplicates int
	resent               []int // per kill: messages of the killed run received again later
}

// checkDeliveryCrash checks the peer's receive log against the outbox and
// the kills. done are the entries recorded done at the end; runs are told
// apart by connection: a connection belongs to the server run during which
// the peer accepted it (a killed process's last frames may be read after
// it died, but always came on its own connections).
//
//  1. Nothing lost: every Observation has exactly one done entry, and the
//     peer received each done entry's message: MSH-10 is the entry's
//     control id (the same on every attempt), OBR-3 the entry's
//     Observation, PID-3 its patient's MRN, OBX-5 its value. The peer
//     received nothing else.
//  2. Nothing sent twice after its AA was recorded. (a) An entry recorded
//     done at a kill (read from the outbox while the server was down) is
//     never received on a connection of a later run, and its record is the
//     same at the end (done is final: same Updated, same Attempts). (b)
//     Every receipt of a message was read before its entry's recorded-done
//     time (Entry.Updated: the time the server passed to the settling
//     transaction, taken after it read the AA; same host clock), which
//     covers re-sends within a run and in the last run too. A worker that
//     sent done entries again, after a restart or not, fails (a) or (b).
//  3. Re-sending is the at-least-once window only: a message is received
//     at most once per run, so every repeat crossed a kill; on each of a
//     killed run's connections (one per lane), the messages received again
//     later lie within the last Batch it carried (a lane's last claim, sent
//     but not settled when the process died); per kill at most Lanes x
//     Batch are re-sent. A restart that re-sent claims a lane had settled
//     fails this even when (2) could not tell.
//  4. Order: per patient, the first receipts of its messages come in
//     creation order, and within one run each receipt of a patient is
//     later in creation order than the one before (a restart resumes at
//     the oldest entry not recorded done).
func checkDeliveryCrash(t *testing.T, obs []dcObs, done []*outbox.Entry, log []oruReceipt, conns []time.Time, kills []dcKill) dcResult {
	t.Helper()
	const maxErrs = 10
	errs := 0
	errorf := func(format string, args ...any) {
		t.Helper()
		if errs++; errs <= maxErrs {
			t.Errorf(format, args...)
		}
	}
	defer func() {
		if errs > maxErrs {
			t.Errorf("... and %d more errors", errs-maxErrs)
		}
	}()
	runOf := func(conn int) int {
		r := 0
		for _, k := range kills {
			if conns[conn].After(k.restart) {
				r++
			}
		}
		return r
	}

	// 1. Nothing lost.
	want := make(map[string]dcObs, len(obs))
	for _, o := range obs {
		want[o.ID] = o
	}
	byCID := make(map[string]*outbox.Entry, len(done))
	doneOf := map[string]int{}
	for _, e := range done {
		byCID[dcControlID(e.ID)] = e
		doneOf[e.ResourceID]++
	}
	var wantDone, gotDone []string
	for _, o := range obs {
		wantDone = append(wantDone, o.ID+" x1")
		gotDone = append(gotDone, fmt.Sprintf("%s x%d", o.ID, doneOf[o.ID]))
	}
	if d := gocmp.Diff(wantDone, gotDone); d != "" || len(done) != len(obs) {
		t.Errorf("%d done entries for %d Observations; done entries per Observation (-want +got):\n%s", len(done), len(obs), d)
	}
	received := map[string]bool{}
	for _, rc := range log {
		received[rc.ControlID] = true
		e := byCID[rc.ControlID]
		if e == nil {
			errorf("received MSH-10 %s (OBR-3 %s), which no done entry has", rc.ControlID, rc.Observation)
			continue
		}
		o := want[e.ResourceID]
		wantRc := oruReceipt{ControlID: rc.ControlID, Observation: o.ID, Patient: o.MRN, Value: o.Value}
		gotRc := oruReceipt{ControlID: rc.ControlID, Observation: rc.Observation, Patient: rc.Patient, Value: rc.Value}
		if d := gocmp.Diff(wantRc, gotRc); d != "" {
			errorf("message of entry %d (-want +got):\n%s", e.ID, d)
		}
		// 2b. Never read after its AA was recorded.
		if rc.At.After(e.Updated) {
			errorf("MSH-10 %s (entry %d) received at %s, after it was recorded done at %s",
				rc.ControlID, e.ID, rc.At.Format(time.RFC3339Nano), e.Updated.Format(time.RFC3339Nano))
		}
		// 2a. Never received by a run after a kill at which it was done.
		for k := range runOf(rc.Conn) {
			if kills[k].done[rc.ControlID] != nil {
				errorf("MSH-10 %s (entry %d) was recorded done at kill %d and received again in server run %d", rc.ControlID, e.ID, k+1, runOf(rc.Conn)+1)
			}
		}
	}
	for cid, e := range byCID {
		if !received[cid] {
			errorf("entry %d (%s) is done, but the peer never received MSH-10 %s", e.ID, e.ResourceID, cid)
		}
	}
	for k, kill := range kills {
		for cid, then := range kill.done {
			now := byCID[cid]
			if now == nil || !now.Updated.Equal(then.Updated) || now.Attempts != then.Attempts {
				errorf("entry %d, done at kill %d (updated %s, %d attempts), changed since: %+v", then.ID, k+1, then.Updated.Format(time.RFC3339Nano), then.Attempts, now)
			}
		}
	}

	// 3. Repeats only across a kill, within the last claim of a lane.
	lastRun := map[string]int{} // control id -> last run that received it
	type runCID struct {
		run int
		cid string
	}
	seen := map[runCID]bool{}
	perConn := map[int][]oruReceipt{}
	for _, rc := range log {
		run := runOf(rc.Conn)
		if seen[runCID{run, rc.ControlID}] {
			errorf("MSH-10 %s received twice in server run %d (no kill in between)", rc.ControlID, run+1)
		}
		seen[runCID{run, rc.ControlID}] = true
		lastRun[rc.ControlID] = max(lastRun[rc.ControlID], run)
		perConn[rc.Conn] = append(perConn[rc.Conn], rc)
	}
	res := dcResult{receipts: len(log), duplicates: len(log) - len(received), resent: make([]int, len(kills))}
	for conn, rcs := range perConn {
		run := runOf(conn)
		if run >= len(kills) {
			continue // the last run was not killed
		}
		first := -1
		for i, rc := range rcs {
			if lastRun[rc.ControlID] > run {
				res.resent[run]++
				if first < 0 {
					first = i
				}
			}
		}
		if first >= 0 && len(rcs)-first > dcBatch {
			errorf("kill %d: the messages of connection %d sent again span its last %d, more than one claim (%d): entries settled before the kill were re-sent",
				run+1, conn, len(rcs)-first, dcBatch)
		}
	}
	for k, r := range res.resent {
		if r > dcLanes*dcBatch {
			errorf("kill %d: %d messages sent again, more than the lanes' claims in flight (%d x %d)", k+1, r, dcLanes, dcBatch)
		}
	}

	// 4. Per-patient order.
	firstK := map[string]int{} // patient -> k of the last first receipt
	type runPatient struct {
		run     int
		patient string
	}
	runK := map[runPatient]int{}
	firstSeen := map[string]bool{}
	for _, rc := range log {
		e := byCID[rc.ControlID]
		if e == nil {
			continue
		}
		o := want[e.ResourceID]
		if !firstSeen[rc.ControlID] {
			firstSeen[rc.ControlID] = true
			if prev, ok := firstK[o.Patient]; ok && o.K <= prev {
				errorf("patient %s: Observation %d first received after Observation %d (out of creation order)", o.Patient, o.K, prev)
			}
			firstK[o.Patient] = o.K
		}
		rp := runPatient{runOf(rc.Conn), o.Patient}
		if prev, ok := runK[rp]; ok && o.K <= prev {
			errorf("patient %s, server run %d: Observation %d received after Observation %d", o.Patient, rp.run+1, o.K, prev)
		}
		runK[rp] = o.K
	}
	return res
}

// oruReceipt is one message the peer read.
type oruReceipt struct {
	Conn        int       // which connection, in the order they were accepted
	ControlID   string    // MSH-10
	Observation string    // OBR-3.1
	Patient     string    // PID-3.1
	Value       string    // OBX-5 of the first OBX
	At          time.Time // when it was read, before it was answered
}

// oruPeer is the interface engine: an MLLP listener on loopback (on
// adapters/mllp's framing, with an accept loop of its own so that it knows
// which connection, hence which server run, each message came on) that
// answers every message AA after a delay and records what it read.
type oruPeer struct {
	t     *testing.T
	ln    net.Listener
	delay time.Duration
	wg    sync.WaitGroup

	mu     sync.Mutex
	conns  []time.Time // when each connection was accepted
	open   map[net.Conn]bool
	log    []oruReceipt
	unique map[string]bool // control ids received
}

func startORUPeer(t *testing.T, delay time.Duration) *oruPeer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &oruPeer{t: t, ln: ln, delay: delay, open: map[net.Conn]bool{}, unique: map[string]bool{}}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for c := range p.open {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *oruPeer) addr() string { return p.ln.Addr().String() }

func (p *oruPeer) accept() {
	for {
		nc, err := p.ln.Accept()
		if err != nil {
			return // closed at cleanup
		}
		p.mu.Lock()
		conn := len(p.conns)
		p.conns = append(p.conns, time.Now())
		p.open[nc] = true
		p.mu.Unlock()
		p.wg.Go(func() {
			defer func() {
				nc.Close()
				p.mu.Lock()
				delete(p.open, nc)
				p.mu.Unlock()
			}()
			p.serve(nc, conn)
		})
	}
}

// serve answers one connection's messages until it ends (a killed server's
// connection ends with an error: that is expected).
func (p *oruPeer) serve(nc net.Conn, conn int) {
	r, w := mllp.NewReader(nc, 0), mllp.NewWriter(nc)
	for n := 0; ; n++ {
		msg, err := r.ReadFrame()
		if err != nil {
			return
		}
		m, _, err := hl7v2.Parse(msg)
		if err != nil {
			p.t.Errorf("peer: message %d of connection %d does not parse: %v", n, conn, err)
			return
		}
		rc := oruReceipt{Conn: conn, ControlID: m.ControlID(), Observation: m.Value("OBR", 3, 1, 1, 1),
			Patient: m.Value("PID", 3, 1, 1, 1), Value: m.Value("OBX", 5, 1, 1, 1), At: time.Now()}
		p.mu.Lock()
		p.log = append(p.log, rc)
		p.unique[rc.ControlID] = true
		p.mu.Unlock()
		time.Sleep(p.delay)
		ack, err := hl7v2.NewACK(m, hl7v2.AckOptions{Code: hl7v2.AckAccept, ControlID: func() string { return "A" + rc.ControlID }})
		if err != nil {
			p.t.Errorf("peer: building an ACK: %v", err)
			return
		}
		b, err := hl7v2.Encode(ack)
		if err != nil {
			p.t.Errorf("peer: encoding an ACK: %v", err)
			return
		}
		if err := w.WriteFrame(b); err != nil {
			return // the server was killed while the message was in flight
		}
	}
}

// distinct is the number of different messages (MSH-10) received.
func (p *oruPeer) distinct() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.unique)
}

func (p *oruPeer) receipts() []oruReceipt {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]oruReceipt(nil), p.log...)
}

// accepted returns when each connection was accepted, by connection number.
func (p *oruPeer) accepted() []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.conns...)
}
