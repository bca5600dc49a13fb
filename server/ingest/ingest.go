package ingest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"
	"sync"
	"time"

	"github.com/pulsewire/pulsewire/mappings/device"
	"github.com/pulsewire/pulsewire/mappings/fhirobs"
	"github.com/pulsewire/pulsewire/mappings/vocab"
	"github.com/pulsewire/pulsewire/server/audit"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/ingest/tables"
	"github.com/pulsewire/pulsewire/server/search"
)

// Status is what became of one reading.
type Status string

// Reading statuses.
const (
	StatusStored    Status = "stored"    // a new Observation was written
	StatusDuplicate Status = "duplicate" // its Observation already existed
	StatusHeld      Status = "held"      // no patient association at its time: held
	StatusRejected  Status = "rejected"  // cannot be mapped: dead-lettered
)

// Source says where a payload came from and what its sender may send.
type Source struct {
	Kind string // "http", "mqtt", "nats", "replay": recorded with held readings and dead letters
	// Devices restricts the device identifier values the sender may send
	// for; nil or containing "*" allows any (a gateway).
	Devices []string
}

func (s Source) allows(deviceID string) bool {
	if s.Devices == nil {
		return true
	}
	for _, d := range s.Devices {
		if d == "*" || d == deviceID {
			return true
		}
	}
	return false
}

// Result is the outcome of one payload. A payload may make several
// Observations (one per measurement); Status is stored when any was
// stored, else held when any was held, else duplicate.
type Result struct {
	Status       Status   `json:"status"`
	Observations []string `json:"observations,omitempty"` // "Observation/<id>", stored and duplicate
	Reason       string   `json:"reason,omitempty"`       // for rejected
	DeadLetter   string   `json:"deadLetter,omitempty"`   // dead letter id, for rejected
}

// Config configures an Ingestor.
type Config struct {
	Store     tables.Store
	Registry  *search.Registry
	Templates *device.Set
	// Audit, when set, records each batch's writes as one AuditEvent per
	// principal and interaction (audit.Collect) instead of one per
	// resource; *audit.Auditor. Without it the store's audit hook, if any,
	// records each write.
	Audit BatchAuditor
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

// BatchAuditor appends the audit events collected under a context
// (audit.Collect) inside a transaction.
type BatchAuditor interface {
	FlushBatch(ctx context.Context, tx fhir.Tx) error
}

// Ingestor runs the pipeline. It is safe for concurrent use.
type Ingestor struct {
	store tables.Store
	reg   *search.Registry
	tpl   *device.Set
	now   func() time.Time
	audit BatchAuditor // nil: per-write events (the store's hook)

	// held lists the tenants for which this Ingestor has held a reading
	// (or replayed one), so that the sweep covers them even when they are
	// not configured at start.
	held sync.Map

	// legacyBefore caches the store's LegacyIDsBefore once read (it is fixed
	// by a migration).
	legacyMu     sync.Mutex
	legacyBefore *time.Time
}

// HeldTenants returns the tenants for which readings were held since the
// Ingestor was made, sorted.
func (in *Ingestor) HeldTenants() []string {
	var out []string
	in.held.Range(func(k, _ any) bool {
		out = append(out, k.(string))
		return true
	})
	sort.Strings(out)
	return out
}

// New returns an Ingestor.
func New(cfg Config) *Ingestor {
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Ingestor{store: cfg.Store, reg: cfg.Registry, tpl: cfg.Templates, now: now, audit: cfg.Audit}
}

// Templates is the template set the ingestor maps with (reload it to apply
// new templates; replays use the current ones).
func (in *Ingestor) Templates() *device.Set { return in.tpl }

// ObservationID is the deterministic id of the Observation of a
// measurement: "obs-", the reading's time as 12 hex digits of milliseconds
// since the epoch, and 20 hex digits of SHA-256 over tenant, device
// identifier system and value, reading type and effective time. The time
// prefix makes live readings' ids increase, so every index keyed by id
// takes them at its right edge instead of at a random page.
//
// A reading whose time is before legacyBefore (tables.Store's
// LegacyIDsBefore; zero for a store that never had any) keeps the id the
// first releases gave it, "obs-" and the hash alone, so that a copy sent
// again after an upgrade is still a duplicate.
func ObservationID(tenant string, m *device.Measurement, legacyBefore time.Time) string {
	h := sha256.Sum256([]byte(tenant + "|" + m.Key()))
	var b [4 + 12 + 20]byte
	n := copy(b[:], "obs-")
	if m.Time.Before(legacyBefore) {
		n += hex.Encode(b[n:], h[:10])
		return string(b[:n])
	}
	ms := uint64(m.Time.UnixMilli())
	if m.Time.Before(time.UnixMilli(0)) {
		ms = 0 // before 1970: no device reading; kept in range
	}
	for i := 11; i >= 0; i-- {
		b[n+i] = hexDigits[ms&0xf]
		ms >>= 4
	}
	n += 12
	n += hex.Encode(b[n:], h[:10])
	return string(b[:n])
}

const hexDigits = "0123456789abcdef"

// assignIDs sets the Observation id of every item of ps.
func (in *Ingestor) assignIDs(ctx context.Context, tenant string, ps []prepared) error {
	before, err := in.legacyIDsBefore(ctx)
	if err != nil {
		return err
	}
	for i := range ps {
		for j := range ps[i].items {
			it := &ps[i].items[j]
			it.obs = ObservationID(tenant, &it.m, before)
		}
	}
	return nil
}

// legacyIDsBefore is the store's LegacyIDsBefore, read once.
func (in *Ingestor) legacyIDsBefore(ctx context.Context) (time.Time, error) {
	in.legacyMu.Lock()
	defer in.legacyMu.Unlock()
	if in.legacyBefore == nil {
		t, err := in.store.LegacyIDsBefore(ctx)
		if err != nil {
			return time.Time{}, err
		}
		in.legacyBefore = &t
	}
	return *in.legacyBefore, nil
}

func randomID(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return prefix + hex.EncodeToString(b[:])
}

// item is one measurement ready to be stored.
type item struct {
	m      device.Measurement
	device string // Device resource id
	obs    string // Observation id (assignIDs)
	mjson  []byte
}

// prepared is one payload after the pure mapping step.
type prepared struct {
	kind    string // Source.Kind
	payload []byte
	reason  string // non-empty: rejected
	dlID    string
	items   []item
}

// prepare maps a payload with the current templates (no I/O).
func (in *Ingestor) prepare(tenant string, src Source, payload []byte) prepared {
	p := prepared{kind: src.Kind, payload: payload}
	reject := func(reason string) prepared {
		p.reason, p.dlID, p.items = reason, randomID("dl-"), nil
		return p
	}
	res, err := in.tpl.Templates().Evaluate(payload)
	if err != nil {
		return reject("payload is not a JSON object or array")
	}
	if err := res.Err(); err != nil {
		return reject(clientMsg(err))
	}
	for i := range res.Measurements {
		m := res.Measurements[i]
		switch {
		case m.DeviceID == "":
			return reject("template " + m.TemplateName + ": no device identifier")
		case m.Time.IsZero():
			return reject("template " + m.TemplateName + ": no reading time")
		case !src.allows(m.DeviceID):
			return reject("the credential may not send for this device")
		case m.PatientID != "" && !fhir.ValidID(m.PatientID):
			return reject("template " + m.TemplateName + ": patient id is not a valid FHIR id")
		}
		mj, err := json.Marshal(&m)
		if err != nil {
			return reject("template " + m.TemplateName + ": measurement cannot be encoded")
		}
		p.items = append(p.items, item{
			m:      m,
			device: fhirobs.DeviceResourceID(m.DeviceIdentifierSystem, m.DeviceID),
			mjson:  mj,
		})
	}
	return p
}

// clientMsg is the client-safe message of a mapping error.
func clientMsg(err error) string {
	if fe, ok := err.(*fhir.Error); ok {
		return fe.Msg
	}
	return "payload cannot be mapped"
}

// DeviceLock is the fhir.Tx.Lock key that serializes the writers of one
// device's associations and readings (see the package comment); other
// modules that change associations (server/adtin) take it too.
func DeviceLock(dev string) string { return "ingest:Device/" + dev }

// lockAll takes the device locks of the prepared payloads, all at once (the
// store orders them, so batches cannot deadlock). A reading's Observation
// id is derived from its device, so the device lock also serializes two
// copies of one reading (see the package comment).
func lockAll(ctx context.Context, tx fhir.Tx, ps []prepared) error {
	seen := map[string]bool{}
	var keys []string
	for _, p := range ps {
		for _, it := range p.items {
			if k := DeviceLock(it.device); !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	sort.Strings(keys)
	return tx.Lock(ctx, keys...)
}

// Ingest runs one payload through the pipeline and commits its outcome.
// The error is for a failure to commit (nothing was written; the sender
// should retry); a payload that cannot be mapped is not an error but a
// rejected Result (dead-lettered).
func (in *Ingestor) Ingest(ctx context.Context, tenant string, src Source, payload []byte) (Result, error) {
	rs, err := in.IngestBatch(ctx, tenant, src, [][]byte{payload})
	if err != nil {
		return Result{}, err
	}
	return rs[0], nil
}

// IngestBatch runs payloads through the pipeline in one transaction and
// returns their results in order, after the commit.
func (in *Ingestor) IngestBatch(ctx context.Context, tenant string, src Source, payloads [][]byte) ([]Result, error) {
	ps := make([]prepared, len(payloads))
	for i, pl := range payloads {
		ps[i] = in.prepare(tenant, src, pl)
	}
	return in.commit(ctx, tenant, ps)
}

// commit writes the outcome of prepared payloads in one transaction and
// returns their results in order, after the commit.
func (in *Ingestor) commit(ctx context.Context, tenant string, ps []prepared) ([]Result, error) {
	if err := in.assignIDs(ctx, tenant, ps); err != nil {
		return nil, err
	}
	ctx = attributed(ctx)
	var results []Result
	err := in.store.IngestTx(ctx, tenant, func(tx fhir.Tx, tb tables.Tables) error {
		if in.audit == nil {
			var err error
			results, err = in.apply(ctx, tenant, tx, tb, ps)
			return err
		}
		// One AuditEvent per batch (per principal and interaction), in
		// the batch's transaction; a fresh collection per attempt.
		actx := audit.Collect(ctx)
		var err error
		if results, err = in.apply(actx, tenant, tx, tb, ps); err != nil {
			return err
		}
		return in.audit.FlushBatch(actx, tx)
	})
	if err != nil {
		return nil, err
	}
	return results, nil
}

// attributed returns ctx naming ingestion as the principal of the writes
// made with it (server/audit records them so), unless the caller named
// one (an operator's token, ADT releasing held readings).
func attributed(ctx context.Context) context.Context {
	if _, ok := audit.PrincipalFrom(ctx); ok {
		return ctx
	}
	return audit.WithPrincipal(ctx, audit.System("ingest"))
}

// apply writes the outcome of prepared payloads inside one transaction.
// Round trips, not rows, bound a batch on a networked database, so it reads
// what the whole batch needs at once — its Devices, their associations,
// DeviceMetrics and Observations — and writes the new resources as creates
// with known-fresh ids (fhir.Write.Fresh: the locks taken first and the
// reads under them show they do not exist), which a store may send with
// the commit.
func (in *Ingestor) apply(ctx context.Context, tenant string, tx fhir.Tx, tb tables.Tables, ps []prepared) ([]Result, error) {
	if err := lockAll(ctx, tx, ps); err != nil {
		return nil, err
	}
	now := in.now().UTC()

	// What the batch touches, in order of first appearance.
	var devIDs, metricIDs, obsIDs []string
	firstOfDev := map[string]item{}
	metricOf := map[string]item{}
	for _, p := range ps {
		for _, it := range p.items {
			if _, ok := firstOfDev[it.device]; !ok {
				firstOfDev[it.device] = it
				devIDs = append(devIDs, it.device)
			}
			if id, ok := metricID(it); ok {
				if _, seen := metricOf[id]; !seen {
					metricOf[id] = it
					metricIDs = append(metricIDs, id)
				}
			}
			obsIDs = append(obsIDs, it.obs)
		}
	}

	// Devices are created on first sight; DeviceMetrics likewise.
	haveDev, err := existing(ctx, tenant, tx, "Device", devIDs)
	if err != nil {
		return nil, err
	}
	for _, id := range devIDs {
		if haveDev[id] {
			continue
		}
		body, err := fhirobs.Device(id, firstOfDev[id].m.DeviceIdentifiers, fhirobs.DeviceInfo{})
		if err != nil {
			return nil, err
		}
		if err := in.put(ctx, tx, "Device", id, body, true); err != nil {
			return nil, err
		}
	}
	assocs, err := associationsOf(ctx, tenant, tx, devIDs)
	if err != nil {
		return nil, err
	}
	haveMetric, err := existing(ctx, tenant, tx, "DeviceMetric", metricIDs)
	if err != nil {
		return nil, err
	}
	for _, id := range metricIDs {
		if haveMetric[id] {
			continue
		}
		it := metricOf[id]
		v, _ := vocab.ByKey(it.m.Type)
		body, err := fhirobs.DeviceMetric(id, it.device, it.m.Channel, v)
		if err != nil {
			return nil, err
		}
		if err := in.put(ctx, tx, "DeviceMetric", id, body, true); err != nil {
			return nil, err
		}
	}
	// An Observation that exists, or was deliberately deleted, is a
	// duplicate (never resurrected); so is a second copy in the batch.
	haveObs, err := existing(ctx, tenant, tx, "Observation", obsIDs)
	if err != nil {
		return nil, err
	}

	results := make([]Result, len(ps))
	for i, p := range ps {
		if p.reason != "" {
			if err := tb.AddDeadLetter(ctx, &tables.DeadLetter{ID: p.dlID, Source: p.kind, Reason: p.reason, Payload: p.payload, Received: now}); err != nil {
				return nil, err
			}
			results[i] = Result{Status: StatusRejected, Reason: p.reason, DeadLetter: p.dlID}
			continue
		}
		var stored, held bool
		var obs []string
		for _, it := range p.items {
			if haveObs[it.obs] {
				obs = append(obs, "Observation/"+it.obs)
				continue
			}
			patient := it.m.PatientID
			if patient == "" {
				patient = (&deviceState{assoc: assocs[it.device]}).patientAt(it.m.Time)
			}
			if patient == "" {
				if err := tb.HoldReading(ctx, &tables.Held{ID: it.obs, Device: it.device, Time: it.m.Time, Measurement: it.mjson, Source: p.kind, Received: now}); err != nil {
					return nil, err
				}
				in.held.Store(tenant, true)
				held = true
				continue
			}
			body, err := fhirobs.Observation(&it.m, fhirobs.Refs{ID: it.obs, Patient: patient, Device: it.device})
			if err != nil {
				return nil, err
			}
			if err := in.put(ctx, tx, "Observation", it.obs, body, true); err != nil {
				return nil, err
			}
			haveObs[it.obs] = true
			stored = true
			obs = append(obs, "Observation/"+it.obs)
		}
		r := Result{Status: StatusDuplicate, Observations: obs}
		if held {
			r.Status = StatusHeld
		}
		if stored {
			r.Status = StatusStored
		}
		results[i] = r
	}
	return results, nil
}

// existing reports which of typ/ids exist, deleted ones included.
func existing(ctx context.Context, tenant string, tx fhir.Tx, typ string, ids []string) (map[string]bool, error) {
	rs, err := fhir.ReadMany(ctx, tx, tenant, typ, ids)
	if err != nil {
		return nil, err
	}
	have := make(map[string]bool, len(ids))
	for _, r := range rs {
		have[r.ID] = true
	}
	return have, nil
}

// storeObservation writes the Observation of it for patient unless it
// exists. With no patient it reports StatusHeld (or StatusDuplicate when
// the Observation exists already) and writes nothing.
func (in *Ingestor) storeObservation(ctx context.Context, tenant string, tx fhir.Tx, it item, patient string) (Status, error) {
	_, err := tx.Read(ctx, tenant, "Observation", it.obs)
	switch {
	case err == nil, fhir.IsKind(err, fhir.KindGone):
		// Exists (or was deliberately deleted: not resurrected).
		return StatusDuplicate, nil
	case !fhir.IsKind(err, fhir.KindNotFound):
		return "", err
	}
	if patient == "" {
		return StatusHeld, nil
	}
	body, err := fhirobs.Observation(&it.m, fhirobs.Refs{ID: it.obs, Patient: patient, Device: it.device})
	if err != nil {
		return "", err
	}
	if err := in.put(ctx, tx, "Observation", it.obs, body, true); err != nil {
		return "", err
	}
	return StatusStored, nil
}

// put writes a resource the ingestor made. fresh says the caller checked,
// under the locks it holds, that the resource does not exist (see
// fhir.Write.Fresh).
func (in *Ingestor) put(ctx context.Context, tx fhir.Tx, typ, id string, body []byte, fresh bool) error {
	idx, err := in.reg.Extract(typ, body)
	if err != nil {
		return err
	}
	_, _, err = tx.Put(ctx, &fhir.Write{Type: typ, ID: id, Body: body, Index: idx, Fresh: fresh})
	return err
}

// MetricID is the DeviceMetric id of one channel of a device measuring one
// vital: stable, so the metric is written once, on first sight.
func MetricID(deviceID, channel, vital string) string {
	return "dm-" + HashKey(deviceID + "|" + channel + "|" + vital)[:20]
}

// metricID is the DeviceMetric of the reading's channel, when the template
// reads one and the reading is of a vocabulary vital (whose MDC type the
// metric carries).
func metricID(it item) (string, bool) {
	if it.m.Channel == "" {
		return "", false
	}
	v, ok := vocab.ByKey(it.m.Type)
	if !ok {
		return "", false
	}
	return MetricID(it.device, it.m.Channel, v.Key), true
}

// ensureDevice writes the Device with id when it never existed.
func (in *Ingestor) ensureDevice(ctx context.Context, tenant string, tx fhir.Tx, id string, ids []device.Identifier) error {
	_, err := tx.Read(ctx, tenant, "Device", id)
	if err == nil || fhir.IsKind(err, fhir.KindGone) {
		return nil
	}
	if !fhir.IsKind(err, fhir.KindNotFound) {
		return err
	}
	body, err := fhirobs.Device(id, ids, fhirobs.DeviceInfo{})
	if err != nil {
		return err
	}
	return in.put(ctx, tx, "Device", id, body, true)
}
