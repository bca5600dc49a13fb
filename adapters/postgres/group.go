package postgres

import (
	"cmp"
	"context"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/storesql"
)

// Grouping. Under load most of the database's work for a GET by id or a
// plain create is not the row itself but what surrounds it: a round trip,
// an implicit or explicit transaction, set_config, and for a write a commit
// with its WAL flush. So reads by id that arrive together are answered in
// one round trip (one query per type), and creates that arrive together
// commit in one transaction (group commit), through coalescers (see
// coalescer): with one request in flight nothing waits, with many each
// group carries several.
//
// A group is one transaction: if any statement in it fails, every member
// fails together and each runs again on its own (see Store.Tx), so one bad
// member never takes the others' writes with it.

const (
	groupWorkers = 4  // groups of reads in flight at once at most (see readWorkers)
	groupMax     = 64 // members per group
	groupTimeout = 30 * time.Second
)

// commitWorkers is how many commit groups are in flight at once: one. The
// next group gathers every create that arrives while the current one
// commits, which is the whole point of group commit; a second group in
// flight only splits the same creates into smaller transactions that run
// side by side on the same two cores, contending for the same rightmost
// index pages and audit chain lanes. Measured on 2 cores, POST Observation
// at 32 clients, paired runs on copies of one data set (README,
// Performance): four in flight carried ~4 creates per group at 920-1,050
// creates/s and ~1 ms of database CPU per create; two, 1,030-1,340/s; one,
// 1,470-1,690/s at a third of the database CPU per create and a p99 of
// 46-49 ms instead of 78-84. A lone create still never waits: with nothing
// in flight it commits at once, as a group of one.
const commitWorkers = 1

// readReq is one Read waiting in a group.
type readReq struct {
	tenant, typ, id string
	res             *fhir.Resource
	err             error
	done            chan struct{}
}

// readWorkers is how many groups of reads by id run at once: one per core
// the server may use, two at least (so that one slow group, waiting on a
// disk read or a descheduled backend, never holds up every read) and
// groupWorkers at most. A group costs the server and the database about the
// same whether it carries two reads or twenty (a round trip, set_config, an
// implicit transaction), so more groups in flight than cores only make them
// smaller.
// Measured on 2 cores, 32 clients reading by id (README, Performance): four
// in flight carried ~4 reads each; two, ~6, for a fifth to a half more reads
// per second; one, ~13, at a little less CPU per read but fewer reads per
// second than two (the pipeline idles while its one group is on the wire).
func readWorkers() int { return min(max(runtime.GOMAXPROCS(0), 2), groupWorkers) }

// setTenantGenericSQL is setTenantSQL for a read group, which also makes
// the group's transaction plan readManySQL generically. Its only sensible
// plan is the primary key's index scan, but the custom plans' estimates
// (which know the array's length) stay below the generic one's, so
// PostgreSQL planned it anew for every group: 0.08 ms, about as much as a
// group's whole execution.
const setTenantGenericSQL = "SELECT set_config('pulsewire.tenant', $1, true), set_config('plan_cache_mode', 'force_generic_plan', true)"

// runReads answers a group of reads in one pipelined batch (one round trip,
// one implicit transaction): per tenant a set_config, then per type one
// query by primary key for all of its ids (readManySQL, an index scan with
// id = ANY; a join on unnest of (type, id) pairs planned a hash aggregate
// and a nested loop for the same rows).
func (s *Store) runReads(reqs []*readReq) {
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	// Members of one tenant and type side by side; the coalescer's slice is
	// ours to reorder.
	slices.SortFunc(reqs, func(a, b *readReq) int {
		return cmp.Or(strings.Compare(a.tenant, b.tenant), strings.Compare(a.typ, b.typ))
	})
	b := &pgx.Batch{}
	for i := 0; i < len(reqs); {
		j := i + 1
		for j < len(reqs) && reqs[j].tenant == reqs[i].tenant && reqs[j].typ == reqs[i].typ {
			j++
		}
		run := reqs[i:j]
		if i == 0 || reqs[i-1].tenant != run[0].tenant {
			b.Queue(setTenantGenericSQL, run[0].tenant)
		}
		ids := make([]string, len(run))
		for k, r := range run {
			ids[k] = r.id
		}
		b.Queue(readManySQL, run[0].tenant, run[0].typ, ids).Query(func(rows pgx.Rows) error {
			found := make(map[string]*fhir.Resource, len(run))
			for rows.Next() {
				res, err := storesql.ScanResource(rows)
				if err != nil {
					return err
				}
				found[res.ID] = res
			}
			if err := rows.Err(); err != nil {
				return err
			}
			for _, r := range run {
				r.res = found[r.id]
			}
			return nil
		})
		i = j
	}
	err := s.pool.SendBatch(ctx, b).Close()
	for _, r := range reqs {
		if err != nil {
			r.res, r.err = nil, err
		}
		close(r.done)
	}
}

// groupRead reads the current row of typ/id through the read coalescer;
// nil when there is none.
func (s *Store) groupRead(tenant, typ, id string) (*fhir.Resource, error) {
	r := &readReq{tenant: tenant, typ: typ, id: id, done: make(chan struct{})}
	if err := s.reads.submit(r, r.done); err != nil {
		return nil, err
	}
	return r.res, r.err
}

// blindWrite is version 1 of a resource made by a create with a server-made
// id (fhir.Write.Fresh), kept as data until the transaction is sent so that
// several can go into one multi-row statement.
type blindWrite struct {
	typ, id string
	lu      int64
	body    []byte
	index   []fhir.IndexEntry
}

// queueWrites queues the statements writing ws and the index rows of
// audits for tenant: the resources' write locks, the current rows (a plain
// INSERT: a resource that exists after all fails the transaction with a
// unique violation, and Tx runs fn again reading first), and the index rows
// of both — a fixed number of statements whatever their number. The audit
// events themselves are sealed just before COMMIT (queueSeal).
func queueWrites(b *pgx.Batch, tenant string, ws []blindWrite, audits []auditWrite) error {
	if len(ws) == 0 && len(audits) == 0 {
		return nil
	}
	rs := make([]indexedResource, 0, len(ws)+len(audits))
	if len(ws) > 0 {
		keys := make([]string, len(ws))
		types, ids := make([]string, len(ws)), make([]string, len(ws))
		lus := make([]int64, len(ws))
		bodies := make([][]byte, len(ws))
		for i, w := range ws {
			keys[i] = tenant + "\n" + w.typ + "/" + w.id
			types[i], ids[i], lus[i], bodies[i] = w.typ, w.id, w.lu, w.body
			rs = append(rs, indexedResource{typ: w.typ, id: w.id, entries: w.index})
		}
		// The same order in every transaction, so two groups never deadlock on
		// each other's locks.
		sort.Strings(keys)
		b.Queue("SELECT pg_advisory_xact_lock(hashtextextended(k, 1)) FROM unnest($1::text[]) WITH ORDINALITY AS u(k, n) ORDER BY n", keys)
		b.Queue(`INSERT INTO resources (tenant, type, id, version, last_updated, deleted, body)
		SELECT $1, t, i, 1, l, 0, d FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bytea[]) AS u(t, i, l, d)`,
			tenant, types, ids, lus, bodies)
	}
	for _, a := range audits {
		rs = append(rs, indexedResource{typ: "AuditEvent", id: a.id, entries: a.index})
	}
	return queueIndex(b, tenant, rs)
}

// commitReq is a transaction that wrote only blind writes (and statements
// queued by write hooks) and never waited for the database, handed to the
// commit coalescer instead of being sent on its own.
type commitReq struct {
	tenant  string
	blinds  []blindWrite
	audits  []auditWrite
	pending []*pgx.QueuedQuery // the hooks' statements, in order
	err     error
	done    chan struct{}
}

// runCommits commits a group of transactions as one.
func (s *Store) runCommits(reqs []*commitReq) {
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	err := s.commitGroup(ctx, reqs)
	for _, r := range reqs {
		r.err = err
		close(r.done)
	}
}

func (s *Store) commitGroup(ctx context.Context, reqs []*commitReq) error {
	byTenant := map[string][]*commitReq{}
	var tenants []string
	for _, r := range reqs {
		if byTenant[r.tenant] == nil {
			tenants = append(tenants, r.tenant)
		}
		byTenant[r.tenant] = append(byTenant[r.tenant], r)
	}
	b := &pgx.Batch{}
	b.Queue("BEGIN ISOLATION LEVEL READ COMMITTED")
	audits := map[string][]auditWrite{}
	for _, tn := range tenants {
		b.Queue(setTenantSQL, tn)
		var ws []blindWrite
		for _, r := range byTenant[tn] {
			ws = append(ws, r.blinds...)
			audits[tn] = append(audits[tn], r.audits...)
		}
		if err := queueWrites(b, tn, ws, audits[tn]); err != nil {
			return err
		}
		for _, r := range byTenant[tn] {
			b.QueuedQueries = append(b.QueuedQueries, r.pending...)
		}
	}
	// The seals last, in tenant order (see queueSeal).
	slices.Sort(tenants)
	for _, tn := range tenants {
		if len(audits[tn]) > 0 {
			if len(tenants) > 1 {
				b.Queue(setTenantSQL, tn)
			}
			queueSeal(b, tn, audits[tn])
		}
	}
	b.Queue("COMMIT")
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return internal("acquiring a connection", err)
	}
	c := &txConn{conn: conn}
	defer c.release(ctx)
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return err
	}
	return nil
}
