package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/storesql"
)

// maxRetries is how many times Tx runs fn again after a serialization
// failure (40001) or a deadlock (40P01).
const maxRetries = 3

// Tx runs fn in one READ COMMITTED transaction for tenant (see fhir.Store).
// fn's error is returned unchanged; on a serialization failure or deadlock
// anywhere in fn or the commit, the whole of fn runs again, at most
// maxRetries more times; so it does, without blind writes, when a blind
// write of a Fresh resource (see putBlind) finds the resource exists.
//
// Round trips are what bound write throughput, so the transaction is
// pipelined (see txConn): BEGIN, set_config and the tenant check travel with
// fn's first statements, and writes travel with the next statement or the
// COMMIT. A Tx holding one Put is two round trips; one Put of a Fresh
// resource (a create), one (see putBlind).
func (s *Store) Tx(ctx context.Context, tenant string, fn func(fhir.Tx) error) error {
	if !fhir.ValidTenant(tenant) {
		return tenantNotFound()
	}
	blind := true
	for attempt := 0; ; attempt++ {
		r, err := s.tryTx(ctx, tenant, fn, blind)
		if err == nil || attempt == maxRetries || ctx.Err() != nil {
			return err
		}
		switch code := pgCode(err); {
		case r.grouped:
			// The group it was committed with failed, maybe for another
			// member's sake: run fn again on its own, reading first.
			blind = false
			continue
		case code == "40001", code == "40P01":
			continue
		case code == "23505" && r.wroteBlind:
			// A blind write of version 1 (see Put) met an existing row:
			// run fn again, reading first.
			blind = false
			continue
		}
		return err
	}
}

// tryResult says how a tryTx went, for Tx's retry decision.
type tryResult struct {
	wroteBlind bool // a Put wrote a Fresh resource without reading it
	grouped    bool // the transaction was committed in a group (see commitGroup)
}

// tryTx runs fn once. blind allows Put to write a Fresh resource without
// reading it first. A transaction that only wrote blindly (and what write
// hooks queued) and never waited for the database is committed in a group
// with others (see runCommits); any other is sent on its own connection,
// which is acquired when fn first needs the database.
func (s *Store) tryTx(ctx context.Context, tenant string, fn func(fhir.Tx) error, blind bool) (tryResult, error) {
	c := &txConn{s: s, tenant: tenant, head: &pgx.Batch{}, pending: &pgx.Batch{}, blind: blind}
	defer c.release(ctx)
	c.head.Queue("BEGIN ISOLATION LEVEL READ COMMITTED")
	c.head.Queue(setTenantSQL, tenant)
	if _, ok := s.known.Load(tenant); !ok {
		c.exists = new(bool)
		c.head.Queue(tenantExistsSQL, tenant).QueryRow(func(row pgx.Row) error { return row.Scan(c.exists) })
	}
	t := &txn{reader: reader{sc: c, tenant: tenant}, c: c, tenant: tenant}
	if err := fn(t); err != nil {
		return tryResult{wroteBlind: len(c.blinds) > 0 || c.sentBlind}, err
	}
	if c.conn == nil && len(c.blinds) > 0 && c.exists == nil && s.commits != nil {
		r := &commitReq{tenant: tenant, blinds: c.blinds, audits: c.audits, pending: c.pending.QueuedQueries, done: make(chan struct{})}
		err := s.commits.submit(r, r.done)
		if err == nil {
			err = r.err
		}
		if err != nil {
			return tryResult{wroteBlind: true, grouped: true}, internal("committing", err)
		}
		return tryResult{wroteBlind: true, grouped: true}, nil
	}
	b := &pgx.Batch{}
	// send queues b after everything else: the seal is the last statement
	// before COMMIT (see queueSeal).
	queueSeal(b, tenant, slices.Concat(c.sealing, c.audits))
	b.Queue("COMMIT")
	wrote := len(c.blinds) > 0 || c.sentBlind
	if err := c.send(ctx, b); err != nil {
		return tryResult{wroteBlind: wrote}, internal("committing", err)
	}
	return tryResult{wroteBlind: wrote}, nil
}

// txConn is a pipelined transaction on one pooled connection. Statements
// that need no answer before fn goes on (BEGIN, set_config, a Put's writes)
// wait and are sent in front of the next batch, so the server runs
// everything in order while the client pays one round trip per batch that
// fn actually waits for: first head (BEGIN, set_config and, until the tenant
// is known to be registered, the tenant check, whose answer must be true
// before anything else is queued behind it), then the blind writes and the
// audit events' index rows (queueWrites), then pending; the audit events
// themselves go last in the COMMIT's batch (queueSeal).
type txConn struct {
	s       *Store
	conn    *pgxpool.Conn // acquired by the first send
	tenant  string
	head    *pgx.Batch // nil once sent
	blinds  []blindWrite
	audits  []auditWrite // AppendAudit's events whose index rows wait to be sent with the blind writes
	sealing []auditWrite // the events whose index rows are sent, to be sealed at COMMIT
	pending *pgx.Batch
	exists  *bool // the tenant check's answer while it is in flight; nil when known
	failed  bool

	blind     bool // Put may write a Fresh resource without reading it
	sentBlind bool // blind writes have been sent
}

// send sends the waiting statements followed by b's, in one round trip.
func (c *txConn) send(ctx context.Context, b *pgx.Batch) error {
	if c.failed {
		return fhir.Errorf(fhir.KindInternal, "transaction already failed")
	}
	if c.conn == nil {
		conn, err := c.s.pool.Acquire(ctx)
		if err != nil {
			c.failed = true
			return err
		}
		c.conn = conn
	}
	full := &pgx.Batch{}
	if c.head != nil {
		full.QueuedQueries = append(full.QueuedQueries, c.head.QueuedQueries...)
		c.head = nil
	}
	if len(c.blinds) > 0 || len(c.audits) > 0 {
		if err := queueWrites(full, c.tenant, c.blinds, c.audits); err != nil {
			c.failed = true
			return err
		}
		c.sentBlind = c.sentBlind || len(c.blinds) > 0
		c.sealing = append(c.sealing, c.audits...)
		c.blinds, c.audits = nil, nil
	}
	full.QueuedQueries = append(full.QueuedQueries, c.pending.QueuedQueries...)
	full.QueuedQueries = append(full.QueuedQueries, b.QueuedQueries...)
	c.pending = &pgx.Batch{}
	if err := c.conn.SendBatch(ctx, full).Close(); err != nil {
		c.failed = true
		return err
	}
	if c.exists != nil {
		if !*c.exists {
			c.failed = true
			return tenantNotFound()
		}
		c.exists = nil
		c.s.known.Store(c.tenant, true)
	}
	return nil
}

// later queues b to be sent in front of the next batch (or the COMMIT).
// Its errors surface there, and fail the transaction.
func (c *txConn) later(b *pgx.Batch) {
	c.pending.QueuedQueries = append(c.pending.QueuedQueries, b.QueuedQueries...)
}

// release rolls back whatever is still open and returns the connection.
func (c *txConn) release(ctx context.Context) {
	if c.conn == nil {
		return
	}
	if c.conn.Conn().PgConn().TxStatus() != 'I' {
		if _, err := c.conn.Exec(context.WithoutCancel(ctx), "ROLLBACK"); err != nil {
			// A connection in an unknown state must not go back to the pool.
			_ = c.conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}
	c.conn.Release()
}

// txn is a fhir.Tx.
type txn struct {
	reader
	c      *txConn
	tenant string
}

var _ fhir.Tx = (*txn)(nil)

// otherTenant guards the Reader methods, which name a tenant: a transaction
// belongs to one. RLS would hide the other tenant's rows anyway.
func (t *txn) otherTenant(tenant string) error {
	if tenant != t.tenant {
		return fhir.Errorf(fhir.KindInternal, "transaction used for another tenant")
	}
	return nil
}

func (t *txn) Read(ctx context.Context, tenant, typ, id string) (*fhir.Resource, error) {
	if err := t.otherTenant(tenant); err != nil {
		return nil, err
	}
	return t.reader.Read(ctx, tenant, typ, id)
}

func (t *txn) VRead(ctx context.Context, tenant, typ, id string, version int64) (*fhir.Resource, error) {
	if err := t.otherTenant(tenant); err != nil {
		return nil, err
	}
	return t.reader.VRead(ctx, tenant, typ, id, version)
}

func (t *txn) Search(ctx context.Context, tenant string, q *fhir.Query) (*fhir.SearchResult, error) {
	if err := t.otherTenant(tenant); err != nil {
		return nil, err
	}
	return t.reader.Search(ctx, tenant, q)
}

func (t *txn) LastN(ctx context.Context, tenant string, q *fhir.Query, max int) ([]*fhir.Resource, error) {
	if err := t.otherTenant(tenant); err != nil {
		return nil, err
	}
	return t.reader.LastN(ctx, tenant, q, max)
}

// Lock takes pg_advisory_xact_lock(hashtextextended(tenant || ':' || key, 0)):
// an exclusive, transaction-scoped lock in the database, so it serializes
// transactions across every replica of the server, and is released by commit
// or rollback. Keys are hashed to 64 bits; two keys that collide only wait for
// each other needlessly, never skip a wait. Resource writes lock with seed 1
// (see lockResource), so a Lock key never shares a hash space with them.
func (t *txn) Lock(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	if len(keys) == 1 {
		b.Queue("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", t.tenant+":"+keys[0])
	} else {
		full := make([]string, len(keys))
		for i, k := range keys {
			full[i] = t.tenant + ":" + k
		}
		slices.Sort(full)
		full = slices.Compact(full)
		b.Queue("SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM unnest($1::text[]) WITH ORDINALITY AS u(k, n) ORDER BY n", full)
	}
	if err := t.c.send(ctx, b); err != nil {
		return internal("taking lock", err)
	}
	return nil
}

// ReadMany implements fhir.ManyReader in the transaction (see
// reader.ReadMany).
func (t *txn) ReadMany(ctx context.Context, tenant, typ string, ids []string) ([]*fhir.Resource, error) {
	if err := t.otherTenant(tenant); err != nil {
		return nil, err
	}
	return t.reader.ReadMany(ctx, tenant, typ, ids)
}

// supersedeSQL copies the current row of a resource into resource_versions.
const supersedeSQL = `INSERT INTO resource_versions (tenant, type, id, version, last_updated, deleted, body)
	SELECT tenant, type, id, version, last_updated, deleted, body FROM resources
	WHERE tenant = $1 AND type = $2 AND id = $3
	ON CONFLICT (tenant, type, id, version) DO NOTHING`

// current is what a write needs to know of a resource's current row.
type current struct {
	exists  bool
	version int64
	lu      int64 // last_updated, micros
	deleted bool
}

// lockResource serializes writers of one resource with a transaction-scoped
// advisory lock (seed 1), then reads its current row. A lock rather than
// SELECT ... FOR UPDATE because it also covers a resource that does not exist
// yet: two creates of one id queue on it instead of racing to version 1. The
// read is a separate statement of the same pipelined batch (one round trip),
// so under READ COMMITTED its snapshot is taken after the lock is granted and
// sees the previous holder's commit.
func (t *txn) lockResource(ctx context.Context, typ, id string) (current, error) {
	var c current
	var scanErr error
	b := &pgx.Batch{}
	b.Queue("SELECT pg_advisory_xact_lock(hashtextextended($1, 1))", t.tenant+"\n"+typ+"/"+id)
	b.Queue("SELECT version, last_updated, deleted FROM resources WHERE tenant = $1 AND type = $2 AND id = $3",
		t.tenant, typ, id).QueryRow(func(row pgx.Row) error {
		var del int16
		scanErr = row.Scan(&c.version, &c.lu, &del)
		switch {
		case scanErr == nil:
			c.exists, c.deleted = true, del != 0
		case errors.Is(scanErr, pgx.ErrNoRows):
			scanErr = nil
		}
		return nil
	})
	if err := t.sc.send(ctx, b); err != nil {
		return c, internal("locking resource", err)
	}
	if scanErr != nil {
		return c, internal("reading current version", scanErr)
	}
	return c, nil
}

// nextStamp is the lastUpdated of a new version: now, but always after the
// previous version's so history order follows version order even if the
// clock steps back.
func nextStamp(c current) int64 {
	now := storesql.Micros(storesql.Now())
	if c.exists && now <= c.lu {
		now = c.lu + 1
	}
	return now
}

// queueVersion queues the writes of a new version: for a resource that
// exists, the copy of its current row into resource_versions (which holds
// only superseded versions) and the update of that row; for a new one, its
// current row alone. The copy reads the row the update then replaces, in
// the same batch: no round trip of its own. ON CONFLICT: a row that the
// layout before migration 0050 also wrote to resource_versions (a replica
// not yet upgraded) is there already, identical.
func (t *txn) queueVersion(b *pgx.Batch, c current, typ, id string, version, lu int64, deleted int16, body []byte) {
	if c.exists {
		b.Queue(supersedeSQL, t.tenant, typ, id)
		b.Queue(`UPDATE resources SET version = $4, last_updated = $5, deleted = $6, body = $7
			WHERE tenant = $1 AND type = $2 AND id = $3`, t.tenant, typ, id, version, lu, deleted, body)
	} else {
		b.Queue(`INSERT INTO resources (tenant, type, id, version, last_updated, deleted, body)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, t.tenant, typ, id, version, lu, deleted, body)
	}
	// Index rows exist only for a live current version.
	if c.exists && !c.deleted {
		for _, st := range storesql.DeleteIndex(dialect, t.tenant, typ, id) {
			b.Queue(st.SQL, st.Args...)
		}
	}
}

// Put writes a new current version (see fhir.Tx): KindInvalid for a bad
// type, id or body, KindPreconditionFailed on an If-Match mismatch. Its
// writes (superseded row, current row, index rows as INSERT ... unnest) are
// pipelined behind the transaction's next statement or its COMMIT; a
// failure among them fails the transaction there.
func (t *txn) Put(ctx context.Context, w *fhir.Write) (*fhir.Resource, bool, error) {
	if w.Type == "" || strings.ContainsAny(w.Type, "/?") {
		return nil, false, fhir.Errorf(fhir.KindInvalid, "invalid resource type")
	}
	if !fhir.ValidID(w.ID) {
		return nil, false, fhir.Errorf(fhir.KindInvalid, "invalid resource id").At(w.Type + ".id")
	}
	// Blind only once the tenant is known to be registered: until then its
	// check must come back before anything can be committed.
	if w.Fresh && w.IfMatch == 0 && t.c.blind && t.c.exists == nil {
		return t.putBlind(ctx, w)
	}
	c, err := t.lockResource(ctx, w.Type, w.ID)
	if err != nil {
		return nil, false, err
	}
	live := c.exists && !c.deleted
	if w.IfMatch > 0 && (!live || c.version != w.IfMatch) {
		return nil, false, fhir.Errorf(fhir.KindPreconditionFailed, "version %d of %s/%s is not current", w.IfMatch, w.Type, w.ID)
	}
	lu := nextStamp(c)
	r := &fhir.Resource{Type: w.Type, ID: w.ID, VersionID: c.version + 1, LastUpdated: storesql.FromMicros(lu)}
	if r.Body, err = fhir.StampMeta(w.Body, w.ID, r.VersionID, r.LastUpdated); err != nil {
		return nil, false, fhir.Errorf(fhir.KindInvalid, "resource body is not a JSON object").Wrap(err)
	}
	b := &pgx.Batch{}
	t.queueVersion(b, c, w.Type, w.ID, r.VersionID, lu, 0, r.Body)
	if err := queueIndex(b, t.tenant, []indexedResource{{w.Type, w.ID, w.Index}}); err != nil {
		return nil, false, err
	}
	t.c.later(b)
	if err := fhir.RunHooks(ctx, t.c.s.hooks, t, fhir.Change{Tenant: t.tenant, Resource: r, Created: !live, Index: w.Index}); err != nil {
		return nil, false, err
	}
	return r, !live, nil
}

// putBlind writes w as version 1 of a new resource without reading first,
// so that a create costs no round trip of its own: its rows are kept as a
// blindWrite and travel with the transaction's next statement, its COMMIT,
// or a group commit (see queueWrites, runCommits).
func (t *txn) putBlind(ctx context.Context, w *fhir.Write) (*fhir.Resource, bool, error) {
	lu := nextStamp(current{})
	r := &fhir.Resource{Type: w.Type, ID: w.ID, VersionID: 1, LastUpdated: storesql.FromMicros(lu)}
	var err error
	if r.Body, err = fhir.StampMeta(w.Body, w.ID, r.VersionID, r.LastUpdated); err != nil {
		return nil, false, fhir.Errorf(fhir.KindInvalid, "resource body is not a JSON object").Wrap(err)
	}
	if err := checkIndex(w.Index); err != nil {
		return nil, false, err
	}
	t.c.blinds = append(t.c.blinds, blindWrite{typ: w.Type, id: w.ID, lu: lu, body: r.Body, index: w.Index})
	if err := fhir.RunHooks(ctx, t.c.s.hooks, t, fhir.Change{Tenant: t.tenant, Resource: r, Created: true, Index: w.Index}); err != nil {
		return nil, false, err
	}
	return r, true, nil
}

// Delete writes a tombstone and removes index rows (see fhir.Tx). A missing
// or already deleted resource is not an error: (nil, nil), nothing written.
func (t *txn) Delete(ctx context.Context, typ, id string, ifMatch int64) (*fhir.Resource, error) {
	c, err := t.lockResource(ctx, typ, id)
	if err != nil {
		return nil, err
	}
	if !c.exists || c.deleted {
		return nil, nil
	}
	if ifMatch > 0 && c.version != ifMatch {
		return nil, fhir.Errorf(fhir.KindPreconditionFailed, "version %d of %s/%s is not current", ifMatch, typ, id)
	}
	lu := nextStamp(c)
	r := &fhir.Resource{Type: typ, ID: id, VersionID: c.version + 1, LastUpdated: storesql.FromMicros(lu), Deleted: true}
	b := &pgx.Batch{}
	t.queueVersion(b, c, typ, id, r.VersionID, lu, 1, nil)
	t.c.later(b)
	if err := fhir.RunHooks(ctx, t.c.s.hooks, t, fhir.Change{Tenant: t.tenant, Resource: r}); err != nil {
		return nil, err
	}
	return r, nil
}

// indexedResource is one resource's index entries.
type indexedResource struct {
	typ, id string
	entries []fhir.IndexEntry
}

// checkIndex rejects an entry of a type no index table holds.
func checkIndex(entries []fhir.IndexEntry) error {
	for i, e := range entries {
		switch e.Type {
		case fhir.ParamToken, fhir.ParamString, fhir.ParamURI, fhir.ParamDate, fhir.ParamReference, fhir.ParamNumber, fhir.ParamQuantity:
		default:
			return fhir.Errorf(fhir.KindInvalid, "index entry %d of parameter %s has unknown type %q", i, e.Param, e.Type)
		}
	}
	return nil
}

// rowCodes returns the codes column of a typed row (tt.Codes) as a JSON
// array: the code tokens (codes, codesJSON as the reference rows get
// them), then each token of tt.CodeParams in its two forms (ParamCode and
// ParamAnyCode), each form once. nil when there are none.
func rowCodes(tt *storesql.TypedTable, entries []fhir.IndexEntry, codes []string, codesJSON *string) (*string, error) {
	if !tt.Codes || len(tt.CodeParams) == 0 {
		return codesJSON, nil
	}
	row := slices.Clip(codes) // appends must not reach the caller's array
	for _, e := range entries {
		if e.Type != fhir.ParamToken || e.Code == "" || !slices.Contains(tt.CodeParams, e.Param) {
			continue
		}
		for _, c := range []string{storesql.ParamCode(e.Param, e.System, e.Code), storesql.ParamAnyCode(e.Param, e.Code)} {
			if !slices.Contains(row[len(codes):], c) {
				row = append(row, c)
			}
		}
	}
	if len(row) == len(codes) {
		return codesJSON, nil
	}
	j, err := json.Marshal(row)
	if err != nil {
		return nil, fhir.Errorf(fhir.KindInternal, "encoding typed row codes").Wrap(err)
	}
	js := string(j)
	return &js, nil
}

// queueIndex queues one INSERT ... SELECT FROM unnest(arrays) per index table
// that has entries, for any number of resources: a fixed statement text per
// table whatever the number of rows, so it is prepared once per connection.
// The stored forms are those of storesql.InsertIndex (which the SQLite store
// uses): uri/string exact falls back to the normalized value, a date range
// is at least 1µs wide, empty token systems are "".
func queueIndex(b *pgx.Batch, tenant string, rs []indexedResource) error {
	var (
		tokType, tokID, tokParam, tokSys, tokCode, tokText []string
		strType, strID, strParam, strValue, strExact       []string
		dateType, dateID, dateParam                        []string
		dateLo, dateHi                                     []int64
		refType, refID, refParam, refTgtType, refTgtID     []string
		refDates                                           []*int64
		refCodes                                           []*string // per row: a JSON array, or NULL
		numType, numID, numParam, numSys, numCode          []string
		numNum, numLo, numHi                               []float64
	)
	type refKey struct{ param, typ, id string }
	var typed map[string]*typedBatch // by resource type
	for _, r := range rs {
		if err := checkIndex(r.entries); err != nil {
			return err
		}
		// The newest value of the "date" parameter and the "code" tokens,
		// copied onto the reference rows (see storesql.RefDateParam,
		// RefCodeParam and migration 0002).
		var (
			refDate *int64
			codes   []string
		)
		for _, e := range r.entries {
			switch {
			case e.Type == fhir.ParamDate && e.Param == storesql.RefDateParam:
				lo, hi := storesql.Micros(e.Lo), storesql.Micros(e.Hi)
				if hi <= lo {
					hi = lo + 1
				}
				if refDate == nil || hi > *refDate {
					refDate = &hi
				}
			case e.Type == fhir.ParamToken && e.Param == storesql.RefCodeParam:
				codes = append(codes, storesql.RefCode(e.System, e.Code))
			}
		}
		var codesJSON *string
		if codes != nil {
			j, err := json.Marshal(codes)
			if err != nil {
				return fhir.Errorf(fhir.KindInternal, "encoding reference codes").Wrap(err)
			}
			js := string(j)
			codesJSON = &js
		}
		entries := r.entries
		if w := typedWriters[r.typ]; w != nil {
			rowCodesJSON, err := rowCodes(w.tt, r.entries, codes, codesJSON)
			if err != nil {
				return err
			}
			values, rest, err := splitTyped(w, r)
			if err != nil {
				return err
			}
			// No row for a resource without typed values: it would say
			// nothing a missing row does not.
			if len(values) > 0 {
				if typed == nil {
					typed = map[string]*typedBatch{}
				}
				tb := typed[r.typ]
				if tb == nil {
					tb = newTypedBatch(w)
					typed[r.typ] = tb
				}
				tb.add(r.id, values, codes, rowCodesJSON)
			}
			entries = rest
		}
		var refSeen map[refKey]bool
		for _, e := range entries {
			switch e.Type {
			case fhir.ParamToken:
				tokType, tokID = append(tokType, r.typ), append(tokID, r.id)
				tokParam, tokSys, tokCode, tokText = append(tokParam, e.Param), append(tokSys, e.System), append(tokCode, e.Code), append(tokText, e.Text)
			case fhir.ParamString, fhir.ParamURI:
				exact := e.Text
				if exact == "" {
					exact = e.String
				}
				strType, strID = append(strType, r.typ), append(strID, r.id)
				strParam, strValue, strExact = append(strParam, e.Param), append(strValue, e.String), append(strExact, exact)
			case fhir.ParamDate:
				lo, hi := storesql.Micros(e.Lo), storesql.Micros(e.Hi)
				if hi <= lo {
					hi = lo + 1
				}
				dateType, dateID = append(dateType, r.typ), append(dateID, r.id)
				dateParam, dateLo, dateHi = append(dateParam, e.Param), append(dateLo, lo), append(dateHi, hi)
			case fhir.ParamReference:
				// One row per parameter and target: the date-ordered walk
				// of storesql's latest search must meet a resource once.
				k := refKey{e.Param, e.RefType, e.RefID}
				if refSeen[k] {
					continue
				}
				if refSeen == nil {
					refSeen = map[refKey]bool{}
				}
				refSeen[k] = true
				refType, refID = append(refType, r.typ), append(refID, r.id)
				refParam, refTgtType, refTgtID = append(refParam, e.Param), append(refTgtType, e.RefType), append(refTgtID, e.RefID)
				refDates, refCodes = append(refDates, refDate), append(refCodes, codesJSON)
			case fhir.ParamNumber, fhir.ParamQuantity:
				numType, numID = append(numType, r.typ), append(numID, r.id)
				numParam, numNum, numLo, numHi = append(numParam, e.Param), append(numNum, e.Num), append(numLo, e.NumLo), append(numHi, e.NumHi)
				numSys, numCode = append(numSys, e.System), append(numCode, e.Code)
			}
		}
	}
	if len(tokParam) > 0 {
		b.Queue(`INSERT INTO idx_token (tenant, type, id, param, system, code, text)
			SELECT $1, u.* FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) AS u`,
			tenant, tokType, tokID, tokParam, tokSys, tokCode, tokText)
	}
	if len(strParam) > 0 {
		b.Queue(`INSERT INTO idx_string (tenant, type, id, param, value, exact)
			SELECT $1, u.* FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) AS u`,
			tenant, strType, strID, strParam, strValue, strExact)
	}
	if len(dateParam) > 0 {
		b.Queue(`INSERT INTO idx_date (tenant, type, id, param, lo, hi)
			SELECT $1, u.* FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[]) AS u`,
			tenant, dateType, dateID, dateParam, dateLo, dateHi)
	}
	if len(refParam) > 0 {
		// codes travel as one JSON array per row: unnest cannot take an
		// array of arrays of different lengths.
		b.Queue(`INSERT INTO idx_ref (tenant, type, id, param, ref_type, ref_id, date_hi, codes)
			SELECT $1, t, i, p, rt, ri, d, CASE WHEN c IS NULL THEN NULL ELSE ARRAY(SELECT jsonb_array_elements_text(c::jsonb)) END
			FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[]) AS u(t, i, p, rt, ri, d, c)`,
			tenant, refType, refID, refParam, refTgtType, refTgtID, refDates, refCodes)
	}
	for _, typ := range slices.Sorted(maps.Keys(typed)) {
		typed[typ].queue(b, tenant)
	}
	if len(numParam) > 0 {
		b.Queue(`INSERT INTO idx_number (tenant, type, id, param, num, lo, hi, system, code)
			SELECT $1, u.* FROM unnest($2::text[], $3::text[], $4::text[], $5::float8[], $6::float8[], $7::float8[], $8::text[], $9::text[]) AS u`,
			tenant, numType, numID, numParam, numNum, numLo, numHi, numSys, numCode)
	}
	return nil
}
