package postgres

import (
	"context"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/storesql"
)

// Grouping. Under load most of the database's work for a GET by id or a
// plain create is not the row itself but what surrounds it: a round trip,
// an implicit or explicit transaction, set_config, and for a write a commit
// with its WAL flush. So reads by id that arrive together are answered by
// one query, and creates that arrive together commit in one transaction
// (group commit), through coalescers (see coalescer): with one request in
// flight nothing waits, with many each group carries several.
//
// A group is one transaction: if any statement in it fails, every member
// fails together and each runs again on its own (see Store.Tx), so one bad
// member never takes the others' writes with it.

const (
	groupWorkers = 4  // groups in flight at once, each on its own connection
	groupMax     = 64 // members per group
	groupTimeout = 30 * time.Second
)

// readReq is one Read waiting in a group.
type readReq struct {
	tenant, typ, id string
	res             *fhir.Resource
	err             error
	done            chan struct{}
}

// readGroupSQL selects the current rows of several type/id pairs.
const readGroupSQL = "SELECT " + storesql.Columns + ` FROM resources
	WHERE tenant = $1 AND (type, id) IN (SELECT * FROM unnest($2::text[], $3::text[]))`

// runReads answers a group of reads: per tenant a set_config and one query,
// all in one pipelined batch (one implicit transaction).
func (s *Store) runReads(reqs []*readReq) {
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	byTenant := map[string][]*readReq{}
	var tenants []string
	for _, r := range reqs {
		if byTenant[r.tenant] == nil {
			tenants = append(tenants, r.tenant)
		}
		byTenant[r.tenant] = append(byTenant[r.tenant], r)
	}
	type key struct{ typ, id string }
	b := &pgx.Batch{}
	for _, tn := range tenants {
		rs := byTenant[tn]
		types, ids := make([]string, len(rs)), make([]string, len(rs))
		for i, r := range rs {
			types[i], ids[i] = r.typ, r.id
		}
		b.Queue(setTenantSQL, tn)
		b.Queue(readGroupSQL, tn, types, ids).Query(func(rows pgx.Rows) error {
			found := make(map[key]*fhir.Resource, len(rs))
			for rows.Next() {
				res, err := storesql.ScanResource(rows)
				if err != nil {
					return err
				}
				found[key{res.Type, res.ID}] = res
			}
			if err := rows.Err(); err != nil {
				return err
			}
			for _, r := range rs {
				r.res = found[key{r.typ, r.id}]
			}
			return nil
		})
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

// queueBlinds queues the statements writing ws for tenant: the resources'
// write locks, the history rows, the current rows (a plain INSERT: a
// resource that exists after all fails the transaction with a unique
// violation, and Tx runs fn again reading first) and the index rows — a
// fixed number of statements whatever len(ws).
func queueBlinds(b *pgx.Batch, tenant string, ws []blindWrite) error {
	if len(ws) == 0 {
		return nil
	}
	keys := make([]string, len(ws))
	types, ids := make([]string, len(ws)), make([]string, len(ws))
	lus := make([]int64, len(ws))
	bodies := make([][]byte, len(ws))
	rs := make([]indexedResource, len(ws))
	for i, w := range ws {
		keys[i] = tenant + "\n" + w.typ + "/" + w.id
		types[i], ids[i], lus[i], bodies[i] = w.typ, w.id, w.lu, w.body
		rs[i] = indexedResource{typ: w.typ, id: w.id, entries: w.index}
	}
	// The same order in every transaction, so two groups never deadlock on
	// each other's locks.
	sort.Strings(keys)
	b.Queue("SELECT pg_advisory_xact_lock(hashtextextended(k, 1)) FROM unnest($1::text[]) WITH ORDINALITY AS u(k, n) ORDER BY n", keys)
	b.Queue(`INSERT INTO resource_versions (tenant, type, id, version, last_updated, deleted, body)
		SELECT $1, t, i, 1, l, 0, d FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bytea[]) AS u(t, i, l, d)`,
		tenant, types, ids, lus, bodies)
	b.Queue(`INSERT INTO resources (tenant, type, id, version, last_updated, deleted, body)
		SELECT $1, t, i, 1, l, 0, d FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bytea[]) AS u(t, i, l, d)`,
		tenant, types, ids, lus, bodies)
	return queueIndex(b, tenant, rs)
}

// commitReq is a transaction that wrote only blind writes (and statements
// queued by write hooks) and never waited for the database, handed to the
// commit coalescer instead of being sent on its own.
type commitReq struct {
	tenant  string
	blinds  []blindWrite
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
	for _, tn := range tenants {
		b.Queue(setTenantSQL, tn)
		var ws []blindWrite
		for _, r := range byTenant[tn] {
			ws = append(ws, r.blinds...)
		}
		if err := queueBlinds(b, tn, ws); err != nil {
			return err
		}
		for _, r := range byTenant[tn] {
			b.QueuedQueries = append(b.QueuedQueries, r.pending...)
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
