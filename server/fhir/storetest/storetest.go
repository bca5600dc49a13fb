// Package storetest is the conformance suite every fhir.Store implementation
// (adapters/sqlite, adapters/postgres) must pass: the read/vread/update/
// delete/history semantics of https://hl7.org/fhir/R4/http.html, the search
// semantics of https://hl7.org/fhir/R4/search.html over hand-built index
// entries, transactions, locking and tenant isolation.
//
// Only tests import it.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pulsewire/pulsewire/server/fhir"
)

// Run runs the suite. newStore must return a fresh, empty store (no
// tenants) and arrange for it to be closed when the test ends.
func Run(t *testing.T, newStore func(t *testing.T) fhir.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s fhir.Store)
	}{
		{"CreateRead", testCreateRead},
		{"UpdateVersions", testUpdateVersions},
		{"Delete", testDelete},
		{"IfMatch", testIfMatch},
		{"History", testHistory},
		{"SearchToken", testSearchToken},
		{"SearchString", testSearchString},
		{"SearchDate", testSearchDate},
		{"SearchNumber", testSearchNumber},
		{"SearchQuantity", testSearchQuantity},
		{"SearchReference", testSearchReference},
		{"SearchIDAndLastUpdated", testSearchIDLastUpdated},
		{"SearchSort", testSearchSort},
		{"SearchPaging", testSearchPaging},
		{"SearchInclude", testSearchInclude},
		{"SearchMany", testSearchMany},
		{"SearchErrors", testSearchErrors},
		{"LastN", testLastN},
		{"TxAtomic", testTxAtomic},
		{"LockConditionalCreate", testLockConditionalCreate},
		{"TenantIsolation", testTenantIsolation},
		{"WriteHooks", testWriteHooks},
		{"ReadManyAndLocks", testReadManyAndLocks},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

const tenant = "acme"

// --- helpers ---------------------------------------------------------------

func ensure(t *testing.T, s fhir.Store, tenants ...string) {
	t.Helper()
	for _, tn := range tenants {
		if err := s.EnsureTenant(context.Background(), tn); err != nil {
			t.Fatalf("EnsureTenant(%s): %v", tn, err)
		}
	}
}

func body(typ string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"resourceType":%q,"meta":{"source":"storetest"},"text":{"status":"generated"}}`, typ))
}

// put writes one resource in its own transaction.
func put(t *testing.T, s fhir.Store, tn string, w *fhir.Write) *fhir.Resource {
	t.Helper()
	var res *fhir.Resource
	err := s.Tx(context.Background(), tn, func(tx fhir.Tx) error {
		var err error
		res, _, err = tx.Put(context.Background(), w)
		return err
	})
	if err != nil {
		t.Fatalf("Put %s/%s: %v", w.Type, w.ID, err)
	}
	return res
}

func putIdx(t *testing.T, s fhir.Store, typ, id string, idx ...fhir.IndexEntry) *fhir.Resource {
	t.Helper()
	return put(t, s, tenant, &fhir.Write{Type: typ, ID: id, Body: body(typ), Index: idx})
}

func del(t *testing.T, s fhir.Store, tn, typ, id string) *fhir.Resource {
	t.Helper()
	var res *fhir.Resource
	err := s.Tx(context.Background(), tn, func(tx fhir.Tx) error {
		var err error
		res, err = tx.Delete(context.Background(), typ, id, 0)
		return err
	})
	if err != nil {
		t.Fatalf("Delete %s/%s: %v", typ, id, err)
	}
	return res
}

func tok(param, system, code string) fhir.IndexEntry {
	return fhir.IndexEntry{Param: param, Type: fhir.ParamToken, System: system, Code: code}
}

func str(param, normalized, original string) fhir.IndexEntry {
	return fhir.IndexEntry{Param: param, Type: fhir.ParamString, String: normalized, Text: original}
}

func dt(param string, lo, hi time.Time) fhir.IndexEntry {
	return fhir.IndexEntry{Param: param, Type: fhir.ParamDate, Lo: lo, Hi: hi}
}

func ref(param, typ, id string) fhir.IndexEntry {
	return fhir.IndexEntry{Param: param, Type: fhir.ParamReference, RefType: typ, RefID: id}
}

func num(param string, v, lo, hi float64) fhir.IndexEntry {
	return fhir.IndexEntry{Param: param, Type: fhir.ParamNumber, Num: v, NumLo: lo, NumHi: hi}
}

func qty(param string, v float64, system, code string) fhir.IndexEntry {
	return fhir.IndexEntry{Param: param, Type: fhir.ParamQuantity, Num: v, NumLo: v - 0.5, NumHi: v + 0.5, System: system, Code: code}
}

func day(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

func search(t *testing.T, s fhir.Store, tn string, q *fhir.Query) *fhir.SearchResult {
	t.Helper()
	if q.Count == 0 {
		q.Count = 100
	}
	res, err := s.Search(context.Background(), tn, q)
	if err != nil {
		t.Fatalf("Search: %v", err)
	}
	return res
}

func ids(rs []*fhir.Resource) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func refs(rs []*fhir.Resource) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.Ref())
	}
	return out
}

func sorted(xs []string) []string {
	out := append([]string{}, xs...)
	sort.Strings(out)
	return out
}

// searchIDs runs q over typ and returns the matching ids, sorted.
func searchIDs(t *testing.T, s fhir.Store, typ string, params ...fhir.Param) []string {
	t.Helper()
	return sorted(ids(search(t, s, tenant, &fhir.Query{Type: typ, Params: params}).Resources))
}

func wantKind(t *testing.T, err error, k fhir.Kind, what string) {
	t.Helper()
	if err == nil || !fhir.IsKind(err, k) {
		t.Fatalf("%s: got error %v (kind %v), want kind %v", what, err, fhir.ErrorKind(err), k)
	}
}

// checkStamped checks r's body is the written body stamped with r's id,
// version and lastUpdated, byte for byte.
func checkStamped(t *testing.T, r *fhir.Resource, written json.RawMessage) {
	t.Helper()
	want, err := fhir.StampMeta(written, r.ID, r.VersionID, r.LastUpdated)
	if err != nil {
		t.Fatalf("StampMeta: %v", err)
	}
	if diff := cmp.Diff(string(want), string(r.Body)); diff != "" {
		t.Errorf("body of %s version %d (-want +got):\n%s", r.Ref(), r.VersionID, diff)
	}
	if r.LastUpdated.Location() != time.UTC || !r.LastUpdated.Equal(r.LastUpdated.Truncate(time.Microsecond)) {
		t.Errorf("LastUpdated %v is not UTC with microsecond precision", r.LastUpdated)
	}
}

// sameVersion compares the identity and content of two versions.
func sameVersion(t *testing.T, want, got *fhir.Resource) {
	t.Helper()
	type v struct {
		Type, ID string
		Version  int64
		LU       time.Time
		Deleted  bool
		Body     string
	}
	conv := func(r *fhir.Resource) v {
		return v{r.Type, r.ID, r.VersionID, r.LastUpdated.UTC(), r.Deleted, string(r.Body)}
	}
	if diff := cmp.Diff(conv(want), conv(got)); diff != "" {
		t.Errorf("version mismatch (-want +got):\n%s", diff)
	}
}

// --- CRUD ------------------------------------------------------------------

func testCreateRead(t *testing.T, s fhir.Store) {
	ctx := context.Background()
	ensure(t, s, tenant)
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	b := body("Patient")
	var created bool
	var res *fhir.Resource
	err := s.Tx(ctx, tenant, func(tx fhir.Tx) error {
		var err error
		res, created, err = tx.Put(ctx, &fhir.Write{Type: "Patient", ID: "p1", Body: b})
		if err != nil {
			return err
		}
		// A transaction reads its own writes.
		in, err := tx.Read(ctx, tenant, "Patient", "p1")
		if err != nil {
			return fmt.Errorf("read in tx: %w", err)
		}
		sameVersion(t, res, in)
		return nil
	})
	if err != nil {
		t.Fatalf("Tx: %v", err)
	}
	if !created || res.VersionID != 1 || res.Type != "Patient" || res.ID != "p1" || res.Deleted {
		t.Fatalf("Put = %+v created=%v, want new version 1 of Patient/p1", res, created)
	}
	checkStamped(t, res, b)
	got, err := s.Read(ctx, tenant, "Patient", "p1")
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	sameVersion(t, res, got)
	if got.ETag() != `W/"1"` {
		t.Errorf("ETag = %s", got.ETag())
	}
	v1, err := s.VRead(ctx, tenant, "Patient", "p1", 1)
	if err != nil {
		t.Fatalf("VRead: %v", err)
	}
	sameVersion(t, res, v1)

	_, err = s.Read(ctx, tenant, "Patient", "nope")
	wantKind(t, err, fhir.KindNotFound, "Read of a missing resource")
	_, err = s.Read(ctx, tenant, "Observation", "p1")
	wantKind(t, err, fhir.KindNotFound, "Read with another type")
	_, err = s.VRead(ctx, tenant, "Patient", "p1", 2)
	wantKind(t, err, fhir.KindNotFound, "VRead of a missing version")
}

func testUpdateVersions(t *testing.T, s fhir.Store) {
	ctx := context.Background()
	ensure(t, s, tenant)
	var bodies []json.RawMessage
	var versions []*fhir.Resource
	for i := 1; i <= 3; i++ {
		b := json.RawMessage(fmt.Sprintf(`{"resourceType":"Patient","id":"old","gender":"other","birthDate":"2000-01-0%d"}`, i))
		bodies = append(bodies, b)
		var created bool
		var res *fhir.Resource
		err := s.Tx(ctx, tenant, func(tx fhir.Tx) error {
			var err error
			res, created, err = tx.Put(ctx, &fhir.Write{Type: "Patient", ID: "p1", Body: b})
			return err
		})
		if err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
		if res.VersionID != int64(i) || created != (i == 1) {
			t.Fatalf("Put %d: version %d created %v", i, res.VersionID, created)
		}
		checkStamped(t, res, b)
		versions = append(versions, res)
	}
	got, err := s.Read(ctx, tenant, "Patient", "p1")
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	sameVersion(t, versions[2], got)
	for i, want := range versions {
		got, err := s.VRead(ctx, tenant, "Patient", "p1", int64(i+1))
		if err != nil {
			t.Fatalf("VRead %d: %v", i+1, err)
		}
		sameVersion(t, want, got)
		checkStamped(t, got, bodies[i])
	}
	if versions[2].LastUpdated.Before(versions[0].LastUpdated) {
		t.Errorf("version 3 lastUpdated %v before version 1 %v", versions[2].LastUpdated, versions[0].LastUpdated)
	}
}

func testDelete(t *testing.T, s fhir.Store) {
	ctx := context.Background()
	ensure(t, s, tenant)
	putIdx(t, s, "Patient", "p1", tok("gender", "", "male"))
	putIdx(t, s, "Patient", "p1", tok("gender", "", "male"))
	tomb := del(t, s, tenant, "Patient", "p1")
	if tomb == nil || !tomb.Deleted || tomb.VersionID != 3 || tomb.Body != nil {
		t.Fatalf("Delete = %+v, want tombstone version 3 without body", tomb)
	}
	_, err := s.Read(ctx, tenant, "Patient", "p1")
	wantKind(t, err, fhir.KindGone, "Read of a deleted resource")
	_, err = s.VRead(ctx, tenant, "Patient", "p1", 3)
	wantKind(t, err, fhir.KindGone, "VRead of the tombstone")
	if _, err := s.VRead(ctx, tenant, "Patient", "p1", 2); err != nil {
		t.Errorf("VRead of the version before the delete: %v", err)
	}
	if got := searchIDs(t, s, "Patient", fhir.Param{Name: "gender", Type: fhir.ParamToken, Values: []fhir.Value{{Code: "male"}}}); len(got) != 0 {
		t.Errorf("search after delete = %v, want none", got)
	}
	if got := searchIDs(t, s, "Patient"); len(got) != 0 {
		t.Errorf("unfiltered search after delete = %v, want none", got)
	}
	if again := del(t, s, tenant, "Patient", "p1"); again != nil {
		t.Errorf("second Delete = %+v, want nil", again)
	}
	if missing := del(t, s, tenant, "Patient", "never"); missing != nil {
		t.Errorf("Delete of a missing resource = %+v, want nil", missing)
	}
	// Re-create after delete continues the version sequence.
	var created bool
	var res *fhir.Resource
	err = s.Tx(ctx, tenant, func(tx fhir.Tx) error {
		res, created, err = tx.Put(ctx, &fhir.Write{Type: "Patient", ID: "p1", Body: body("Patient"), Index: []fhir.IndexEntry{tok("gender", "", "female")}})
		return err
	})
	if err != nil {
		t.Fatalf("re-create: %v", err)
	}
	if !created || res.VersionID != 4 {
		t.Errorf("re-create: version %d created %v, want 4 true", res.VersionID, created)
	}
	if got := searchIDs(t, s, "Patient", fhir.Param{Name: "gender", Type: fhir.ParamToken, Values: []fhir.Value{{Code: "female"}}}); !cmp.Equal(got, []string{"p1"}) {
		t.Errorf("search after re-create = %v", got)
	}
	if got := searchIDs(t, s, "Patient", fhir.Param{Name: "gender", Type: fhir.ParamToken, Values: []fhir.Value{{Code: "male"}}}); len(got) != 0 {
		t.Errorf("old index entries survived: %v", got)
	}
}

func testIfMatch(t *testing.T, s fhir.Store) {
	ctx := context.Background()
	ensure(t, s, tenant)
	putIdx(t, s, "Patient", "p1")
	putIdx(t, s, "Patient", "p1")
	tx := func(fn func(tx fhir.Tx) error) error { return s.Tx(ctx, tenant, fn) }

	err := tx(func(tx fhir.Tx) error {
		_, _, err := tx.Put(ctx, &fhir.Write{Type: "Patient", ID: "p1", Body: body("Patient"), IfMatch: 1})
		return err
	})
	wantKind(t, err, fhir.KindPreconditionFailed, "Put with a stale If-Match")
	if r, _ := s.Read(ctx, tenant, "Patient", "p1"); r == nil || r.VersionID != 2 {
		t.Fatalf("after a failed If-Match the current version is %+v, want 2", r)
	}
	err = tx(func(tx fhir.Tx) error {
		_, _, err := tx.Put(ctx, &fhir.Write{Type: "Patient", ID: "missing", Body: body("Patient"), IfMatch: 1})
		return err
	})
	wantKind(t, err, fhir.KindPreconditionFailed, "Put with If-Match on a missing resource")
	err = tx(func(tx fhir.Tx) error {
		_, err := tx.Delete(ctx, "Patient", "p1", 1)
		return err
	})
	wantKind(t, err, fhir.KindPreconditionFailed, "Delete with a stale If-Match")
	err = tx(func(tx fhir.Tx) error {
		r, _, err := tx.Put(ctx, &fhir.Write{Type: "Patient", ID: "p1", Body: body("Patient"), IfMatch: 2})
		if err == nil && r.VersionID != 3 {
			return fmt.Errorf("version %d, want 3", r.VersionID)
		}
		return err
	})
	if err != nil {
		t.Fatalf("Put with the current If-Match: %v", err)
	}
	err = tx(func(tx fhir.Tx) error {
		r, err := tx.Delete(ctx, "Patient", "p1", 3)
		if err == nil && (r == nil || r.VersionID != 4) {
			return fmt.Errorf("delete returned %+v, want tombstone version 4", r)
		}
		return err
	})
	if err != nil {
		t.Fatalf("Delete with the current If-Match: %v", err)
	}
	err = tx(func(tx fhir.Tx) error {
		_, _, err := tx.Put(ctx, &fhir.Write{Type: "Patient", ID: "p1", Body: body("Patient"), IfMatch: 4})
		return err
	})
	wantKind(t, err, fhir.KindPreconditionFailed, "Put with If-Match on a deleted resource")
}

// --- history ---------------------------------------------------------------

// tick makes the next write's lastUpdated later than the previous one's.
func tick() { time.Sleep(2 * time.Millisecond) }

func testHistory(t *testing.T, s fhir.Store) {
	ctx := context.Background()
	ensure(t, s, tenant)
	// Writes, oldest first.
	var w []*fhir.Resource
	step := func(r *fhir.Resource) { w = append(w, r); tick() }
	step(putIdx(t, s, "Patient", "p1"))      // 0 Patient/p1 v1
	step(putIdx(t, s, "Observation", "o1"))  // 1 Observation/o1 v1
	step(putIdx(t, s, "Patient", "p1"))      // 2 Patient/p1 v2
	step(putIdx(t, s, "Patient", "p2"))      // 3 Patient/p2 v1
	step(del(t, s, tenant, "Patient", "p1")) // 4 Patient/p1 v3 (tombstone)
	step(putIdx(t, s, "Patient", "p1"))      // 5 Patient/p1 v4
	rev := func(idx ...int) []string {
		var out []string
		for i := len(idx) - 1; i >= 0; i-- {
			r := w[idx[i]]
			out = append(out, fmt.Sprintf("%s/_history/%d deleted=%v", r.Ref(), r.VersionID, r.Deleted))
		}
		return out
	}
	show := func(rs []*fhir.Resource) []string {
		var out []string
		for _, r := range rs {
			out = append(out, fmt.Sprintf("%s/_history/%d deleted=%v", r.Ref(), r.VersionID, r.Deleted))
		}
		return out
	}
	tests := []struct {
		name        string
		q           fhir.HistoryQuery
		want        []string
		total       int
		wantHasMore bool
	}{
		{"instance", fhir.HistoryQuery{Type: "Patient", ID: "p1", Count: 10}, rev(0, 2, 4, 5), 4, false},
		{"type", fhir.HistoryQuery{Type: "Patient", Count: 10}, rev(0, 2, 3, 4, 5), 5, false},
		{"system", fhir.HistoryQuery{Count: 10}, rev(0, 1, 2, 3, 4, 5), 6, false},
		{"since", fhir.HistoryQuery{Since: w[3].LastUpdated, Count: 10}, rev(3, 4, 5), 3, false},
		{"instance since", fhir.HistoryQuery{Type: "Patient", ID: "p1", Since: w[2].LastUpdated, Count: 10}, rev(2, 4, 5), 3, false},
		{"page 1", fhir.HistoryQuery{Count: 4}, rev(2, 3, 4, 5), 6, true},
		{"page 2", fhir.HistoryQuery{Count: 4, Offset: 4}, rev(0, 1), 6, false},
		{"at", fhir.HistoryQuery{Type: "Patient", At: w[3].LastUpdated, Count: 10}, rev(2, 3), 2, false},
		{"missing instance", fhir.HistoryQuery{Type: "Patient", ID: "none", Count: 10}, nil, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.q
			res, err := s.History(ctx, tenant, &q)
			if err != nil {
				t.Fatalf("History: %v", err)
			}
			if diff := cmp.Diff(tc.want, show(res.Versions)); diff != "" {
				t.Errorf("versions (-want +got):\n%s", diff)
			}
			if res.Total != tc.total || res.HasMore != tc.wantHasMore {
				t.Errorf("Total %d HasMore %v, want %d %v", res.Total, res.HasMore, tc.total, tc.wantHasMore)
			}
			for _, v := range res.Versions {
				if v.Deleted != (v.Body == nil) {
					t.Errorf("%s version %d: deleted %v with body %q", v.Ref(), v.VersionID, v.Deleted, v.Body)
				}
			}
		})
	}
}

// --- search ----------------------------------------------------------------

func tokP(name, modifier string, vals ...fhir.Value) fhir.Param {
	return fhir.Param{Name: name, Type: fhir.ParamToken, Modifier: modifier, Values: vals}
}

func missing(name string, typ fhir.ParamType, m bool) fhir.Param {
	return fhir.Param{Name: name, Type: typ, Modifier: "missing", Missing: &m}
}

const loinc = "http://loinc.org"

func testSearchToken(t *testing.T, s fhir.Store) {
	ensure(t, s, tenant)
	putIdx(t, s, "Observation", "hr", tok("code", loinc, "8867-4"), tok("status", "", "final"),
		fhir.IndexEntry{Param: "code", Type: fhir.ParamToken, System: "urn:local", Code: "HR", Text: "heart rate"})
	putIdx(t, s, "Observation", "spo2", tok("code", loinc, "59408-5"), tok("status", "", "amended"))
	putIdx(t, s, "Observation", "nosys", tok("code", "", "8867-4"), tok("status", "", "final"))
	putIdx(t, s, "Observation", "nostatus", tok("code", "urn:other", "X"))
	putIdx(t, s, "Patient", "pat", tok("code", loinc, "8867-4")) // another type: never matches

	tests := []struct {
		name   string
		params []fhir.Param
		want   []string
	}{
		{"code any system", []fhir.Param{tokP("code", "", fhir.Value{Code: "8867-4"})}, []string{"hr", "nosys"}},
		{"system|code", []fhir.Param{tokP("code", "", fhir.Value{System: loinc, HasSystem: true, Code: "8867-4"})}, []string{"hr"}},
		{"|code", []fhir.Param{tokP("code", "", fhir.Value{HasSystem: true, Code: "8867-4"})}, []string{"nosys"}},
		{"system|", []fhir.Param{tokP("code", "", fhir.Value{System: loinc, HasSystem: true})}, []string{"hr", "spo2"}},
		{"or", []fhir.Param{tokP("code", "", fhir.Value{Code: "59408-5"}, fhir.Value{Code: "X"})}, []string{"nostatus", "spo2"}},
		{"and", []fhir.Param{tokP("code", "", fhir.Value{Code: "8867-4"}), tokP("status", "", fhir.Value{Code: "final"})}, []string{"hr", "nosys"}},
		{"and narrows", []fhir.Param{tokP("code", "", fhir.Value{System: loinc, HasSystem: true}), tokP("status", "", fhir.Value{Code: "final"})}, []string{"hr"}},
		{"second coding", []fhir.Param{tokP("code", "", fhir.Value{System: "urn:local", HasSystem: true, Code: "HR"})}, []string{"hr"}},
		{"no match", []fhir.Param{tokP("code", "", fhir.Value{Code: "nothing"})}, []string{}},
		{"not", []fhir.Param{tokP("status", "not", fhir.Value{Code: "final"})}, []string{"nostatus", "spo2"}},
		{"not or", []fhir.Param{tokP("status", "not", fhir.Value{Code: "final"}, fhir.Value{Code: "amended"})}, []string{"nostatus"}},
		{"text prefix", []fhir.Param{{Name: "code", Type: fhir.ParamToken, Modifier: "text", Values: []fhir.Value{{String: "heart"}}}}, []string{"hr"}},
		{"missing true", []fhir.Param{missing("status", fhir.ParamToken, true)}, []string{"nostatus"}},
		{"missing false", []fhir.Param{missing("status", fhir.ParamToken, false)}, []string{"hr", "nosys", "spo2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, searchIDs(t, s, "Observation", tc.params...)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func testSearchString(t *testing.T, s fhir.Store) {
	ensure(t, s, tenant)
	putIdx(t, s, "Patient", "a", str("family", "muller", "Müller"), str("name", "muller", "Müller"), str("name", "anna", "Anna"))
	putIdx(t, s, "Patient", "b", str("family", "mueller", "Mueller"), str("name", "mueller", "Mueller"))
	putIdx(t, s, "Patient", "c", str("family", "smith", "Smith"), str("name", "smith", "Smith"), str("name", "jo_anna", "Jo_Anna"))
	putIdx(t, s, "Patient", "d", str("name", "x%y", "X%Y"))
	putIdx(t, s, "Device", "dev", fhir.IndexEntry{Param: "url", Type: fhir.ParamURI, String: "http://example.org/fhir/a", Text: "http://example.org/fhir/a"})
	putIdx(t, s, "Device", "dev2", fhir.IndexEntry{Param: "url", Type: fhir.ParamURI, String: "http://example.org/fhir/a/b", Text: "http://example.org/fhir/a/b"})

	strP := func(name, mod string, vals ...string) fhir.Param {
		p := fhir.Param{Name: name, Type: fhir.ParamString, Modifier: mod}
		for _, v := range vals {
			p.Values = append(p.Values, fhir.Value{String: v})
		}
		return p
	}
	tests := []struct {
		name  string
		typ   string
		param fhir.Param
		want  []string
	}{
		{"prefix", "Patient", strP("family", "", "mu"), []string{"a", "b"}},
		{"prefix exact length", "Patient", strP("family", "", "muller"), []string{"a"}},
		{"prefix not infix", "Patient", strP("family", "", "ller"), []string{}},
		{"or", "Patient", strP("family", "", "smi", "mue"), []string{"b", "c"}},
		{"any value of the param", "Patient", strP("name", "", "ann"), []string{"a"}},
		{"contains", "Patient", strP("name", "contains", "ann"), []string{"a", "c"}},
		{"contains is not a wildcard", "Patient", strP("name", "contains", "_"), []string{"c"}},
		{"percent is literal", "Patient", strP("name", "", "x%"), []string{"d"}},
		{"exact", "Patient", strP("family", "exact", "Müller"), []string{"a"}},
		{"exact is case-sensitive", "Patient", strP("family", "exact", "müller"), []string{}},
		{"exact is whole", "Patient", strP("family", "exact", "Mü"), []string{}},
		{"missing true", "Patient", missing("family", fhir.ParamString, true), []string{"d"}},
		{"missing false", "Patient", missing("family", fhir.ParamString, false), []string{"a", "b", "c"}},
		{"uri exact", "Device", fhir.Param{Name: "url", Type: fhir.ParamURI, Values: []fhir.Value{{String: "http://example.org/fhir/a"}}}, []string{"dev"}},
		{"uri no prefix match", "Device", fhir.Param{Name: "url", Type: fhir.ParamURI, Values: []fhir.Value{{String: "http://example.org/fhir"}}}, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, searchIDs(t, s, tc.typ, tc.param)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func testSearchDate(t *testing.T, s fhir.Store) {
	ensure(t, s, tenant)
	ts := time.Date(2024, 3, 5, 10, 0, 0, 0, time.UTC)
	putIdx(t, s, "Observation", "day", dt("date", day(2024, 3, 1), day(2024, 3, 2)))          // inside March
	putIdx(t, s, "Observation", "instant", dt("date", ts, ts.Add(time.Second)))               // inside March
	putIdx(t, s, "Observation", "april", dt("date", day(2024, 4, 1), day(2024, 5, 1)))        // after March
	putIdx(t, s, "Observation", "straddle", dt("date", day(2024, 2, 15), day(2024, 3, 15)))   // overlaps the start
	putIdx(t, s, "Observation", "december", dt("date", day(2023, 12, 25), day(2023, 12, 26))) // before March
	putIdx(t, s, "Observation", "open", dt("date", day(2024, 6, 1), fhir.MaxTime))            // open-ended period
	putIdx(t, s, "Observation", "nodate", tok("status", "", "final"))

	march := func(p fhir.Prefix) fhir.Param {
		return fhir.Param{Name: "date", Type: fhir.ParamDate, Values: []fhir.Value{{Prefix: p, Lo: day(2024, 3, 1), Hi: day(2024, 4, 1)}}}
	}
	tests := []struct {
		name  string
		param fhir.Param
		want  []string
	}{
		{"eq", march(fhir.PrefixEq), []string{"day", "instant"}},
		{"empty prefix is eq", march(""), []string{"day", "instant"}},
		{"ne", march(fhir.PrefixNe), []string{"april", "december", "open", "straddle"}},
		{"gt", march(fhir.PrefixGt), []string{"april", "open"}},
		{"lt", march(fhir.PrefixLt), []string{"december", "straddle"}},
		{"ge", march(fhir.PrefixGe), []string{"april", "day", "instant", "open", "straddle"}},
		{"le", march(fhir.PrefixLe), []string{"day", "december", "instant", "straddle"}},
		{"sa", march(fhir.PrefixSa), []string{"april", "open"}},
		{"eb", march(fhir.PrefixEb), []string{"december"}},
		{"ap", march(fhir.PrefixAp), []string{"day", "instant", "straddle"}},
		{"eq instant", fhir.Param{Name: "date", Type: fhir.ParamDate, Values: []fhir.Value{{Prefix: fhir.PrefixEq, Lo: ts, Hi: ts.Add(time.Second)}}}, []string{"instant"}},
		{"or", fhir.Param{Name: "date", Type: fhir.ParamDate, Values: []fhir.Value{
			{Prefix: fhir.PrefixEq, Lo: day(2023, 12, 1), Hi: day(2024, 1, 1)},
			{Prefix: fhir.PrefixGe, Lo: day(2030, 1, 1), Hi: day(2031, 1, 1)},
		}}, []string{"december", "open"}},
		{"missing", missing("date", fhir.ParamDate, true), []string{"nodate"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, searchIDs(t, s, "Observation", tc.param)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	// AND of two date params: a range.
	got := searchIDs(t, s, "Observation",
		fhir.Param{Name: "date", Type: fhir.ParamDate, Values: []fhir.Value{{Prefix: fhir.PrefixGe, Lo: day(2024, 3, 1), Hi: day(2024, 3, 2)}}},
		fhir.Param{Name: "date", Type: fhir.ParamDate, Values: []fhir.Value{{Prefix: fhir.PrefixLt, Lo: day(2024, 4, 1), Hi: day(2024, 4, 2)}}})
	if diff := cmp.Diff([]string{"day", "instant", "straddle"}, got); diff != "" {
		t.Errorf("ge&lt range (-want +got):\n%s", diff)
	}
}

func testSearchNumber(t *testing.T, s fhir.Store) {
	ensure(t, s, tenant)
	putIdx(t, s, "RiskAssessment", "small", num("probability", 1.5, 1.45, 1.55))
	putIdx(t, s, "RiskAssessment", "ten", num("probability", 10, 9.5, 10.5))
	putIdx(t, s, "RiskAssessment", "near", num("probability", 10.4, 10.35, 10.45))
	putIdx(t, s, "RiskAssessment", "hundred", num("probability", 100, 99.5, 100.5))
	putIdx(t, s, "RiskAssessment", "neg", num("probability", -3, -3.5, -2.5))
	putIdx(t, s, "RiskAssessment", "none", tok("status", "", "final"))
	ten := func(p fhir.Prefix) fhir.Param {
		return fhir.Param{Name: "probability", Type: fhir.ParamNumber, Values: []fhir.Value{{Prefix: p, Num: 10, NumLo: 9.5, NumHi: 10.5}}}
	}
	tests := []struct {
		name  string
		param fhir.Param
		want  []string
	}{
		{"eq uses precision", ten(fhir.PrefixEq), []string{"near", "ten"}},
		{"eq precise", fhir.Param{Name: "probability", Type: fhir.ParamNumber, Values: []fhir.Value{{Num: 10.0, NumLo: 9.995, NumHi: 10.005}}}, []string{"ten"}},
		{"ne", ten(fhir.PrefixNe), []string{"hundred", "neg", "small"}},
		{"gt", ten(fhir.PrefixGt), []string{"hundred", "near"}},
		{"lt", ten(fhir.PrefixLt), []string{"neg", "small"}},
		{"ge", ten(fhir.PrefixGe), []string{"hundred", "near", "ten"}},
		{"le", ten(fhir.PrefixLe), []string{"neg", "small", "ten"}},
		{"sa", ten(fhir.PrefixSa), []string{"hundred", "near"}},
		{"eb", ten(fhir.PrefixEb), []string{"neg", "small"}},
		{"ap", fhir.Param{Name: "probability", Type: fhir.ParamNumber, Values: []fhir.Value{{Prefix: fhir.PrefixAp, Num: 95, NumLo: 94.5, NumHi: 95.5}}}, []string{"hundred"}},
		{"missing", missing("probability", fhir.ParamNumber, true), []string{"none"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, searchIDs(t, s, "RiskAssessment", tc.param)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

const ucum = "http://unitsofmeasure.org"

func testSearchQuantity(t *testing.T, s fhir.Store) {
	ensure(t, s, tenant)
	putIdx(t, s, "Observation", "pulse", qty("value-quantity", 72, ucum, "/min"))
	putIdx(t, s, "Observation", "weight", qty("value-quantity", 72, ucum, "kg"))
	putIdx(t, s, "Observation", "local", qty("value-quantity", 72, "urn:local", "kg"))
	putIdx(t, s, "Observation", "temp", qty("value-quantity", 98.6, ucum, "[degF]"))
	q := func(p fhir.Prefix, v float64, system string, hasSystem bool, code string) fhir.Param {
		return fhir.Param{Name: "value-quantity", Type: fhir.ParamQuantity, Values: []fhir.Value{{
			Prefix: p, Num: v, NumLo: v - 0.5, NumHi: v + 0.5, System: system, HasSystem: hasSystem, Code: code}}}
	}
	tests := []struct {
		name  string
		param fhir.Param
		want  []string
	}{
		{"number only", q(fhir.PrefixEq, 72, "", false, ""), []string{"local", "pulse", "weight"}},
		{"system and code", q(fhir.PrefixEq, 72, ucum, true, "/min"), []string{"pulse"}},
		{"code only", q(fhir.PrefixEq, 72, "", true, "kg"), []string{"local", "weight"}},
		{"ucum kg", q(fhir.PrefixEq, 72, ucum, true, "kg"), []string{"weight"}},
		{"gt with unit", q(fhir.PrefixGt, 50, ucum, true, "[degF]"), []string{"temp"}},
		{"lt with unit", q(fhir.PrefixLt, 50, ucum, true, "[degF]"), []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, searchIDs(t, s, "Observation", tc.param)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func testSearchReference(t *testing.T, s fhir.Store) {
	ensure(t, s, tenant)
	putIdx(t, s, "Observation", "o1", ref("subject", "Patient", "p1"))
	putIdx(t, s, "Observation", "o2", ref("subject", "Patient", "p2"))
	putIdx(t, s, "Observation", "o3", ref("subject", "Group", "p1"))
	putIdx(t, s, "Observation", "o4", ref("subject", "", "http://other.example/fhir/Patient/p9"))
	putIdx(t, s, "Observation", "o5", tok("status", "", "final"))
	refP := func(targets []string, vals ...fhir.Value) fhir.Param {
		return fhir.Param{Name: "subject", Type: fhir.ParamReference, Values: vals, Targets: targets}
	}
	tests := []struct {
		name  string
		param fhir.Param
		want  []string
	}{
		{"type and id", refP(nil, fhir.Value{RefType: "Patient", RefID: "p1"}), []string{"o1"}},
		{"id alone", refP(nil, fhir.Value{RefID: "p1"}), []string{"o1", "o3"}},
		{"id with target", refP([]string{"Patient"}, fhir.Value{RefID: "p1"}), []string{"o1"}},
		{"or", refP(nil, fhir.Value{RefType: "Patient", RefID: "p1"}, fhir.Value{RefType: "Patient", RefID: "p2"}), []string{"o1", "o2"}},
		{"absolute url", refP(nil, fhir.Value{RefID: "http://other.example/fhir/Patient/p9"}), []string{"o4"}},
		{"no match", refP(nil, fhir.Value{RefType: "Patient", RefID: "p3"}), []string{}},
		{"missing true", missing("subject", fhir.ParamReference, true), []string{"o5"}},
		{"missing false", missing("subject", fhir.ParamReference, false), []string{"o1", "o2", "o3", "o4"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, searchIDs(t, s, "Observation", tc.param)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func testSearchIDLastUpdated(t *testing.T, s fhir.Store) {
	ensure(t, s, tenant)
	a := putIdx(t, s, "Patient", "a")
	tick()
	b := putIdx(t, s, "Patient", "b")
	tick()
	putIdx(t, s, "Patient", "c")
	if !a.LastUpdated.Before(b.LastUpdated) {
		t.Fatalf("lastUpdated did not advance: %v then %v", a.LastUpdated, b.LastUpdated)
	}
	lu := func(p fhir.Prefix) fhir.Param {
		return fhir.Param{Name: "_lastUpdated", Type: fhir.ParamDate, Values: []fhir.Value{{Prefix: p, Lo: b.LastUpdated, Hi: b.LastUpdated.Add(time.Microsecond)}}}
	}
	wide := func(p fhir.Prefix) fhir.Param { // a range around all three writes
		return fhir.Param{Name: "_lastUpdated", Type: fhir.ParamDate, Values: []fhir.Value{{Prefix: p, Lo: day(2000, 1, 1), Hi: day(9000, 1, 1)}}}
	}
	tests := []struct {
		name  string
		param fhir.Param
		want  []string
	}{
		{"_id", fhir.Param{Name: "_id", Type: fhir.ParamToken, Values: []fhir.Value{{Code: "a"}, {Code: "c"}, {Code: "zz"}}}, []string{"a", "c"}},
		{"eq", lu(fhir.PrefixEq), []string{"b"}},
		{"ne", lu(fhir.PrefixNe), []string{"a", "c"}},
		{"gt", lu(fhir.PrefixGt), []string{"c"}},
		{"ge", lu(fhir.PrefixGe), []string{"b", "c"}},
		{"lt", lu(fhir.PrefixLt), []string{"a"}},
		{"le", lu(fhir.PrefixLe), []string{"a", "b"}},
		{"sa", lu(fhir.PrefixSa), []string{"c"}},
		{"eb", lu(fhir.PrefixEb), []string{"a"}},
		{"wide eq", wide(fhir.PrefixEq), []string{"a", "b", "c"}},
		{"wide ap", wide(fhir.PrefixAp), []string{"a", "b", "c"}},
		{"wide gt", wide(fhir.PrefixGt), []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, searchIDs(t, s, "Patient", tc.param)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func testSearchSort(t *testing.T, s fhir.Store) {
	ensure(t, s, tenant)
	// ids are chosen so that id order differs from value order.
	putIdx(t, s, "Observation", "e", dt("date", day(2024, 1, 1), day(2024, 1, 2)), str("note", "beta", "Beta"), num("n", 3, 2.5, 3.5), tok("code", "s", "k2"))
	tick()
	putIdx(t, s, "Observation", "d", dt("date", day(2024, 3, 1), day(2024, 3, 2)), str("note", "alpha", "Alpha"), num("n", 1, 0.5, 1.5), tok("code", "s", "k3"))
	tick()
	putIdx(t, s, "Observation", "c", dt("date", day(2024, 2, 1), day(2024, 2, 2)), str("note", "gamma", "Gamma"), num("n", 2, 1.5, 2.5), tok("code", "s", "k1"))
	tick()
	putIdx(t, s, "Observation", "b", dt("date", day(2024, 2, 1), day(2024, 2, 2)), str("note", "gamma", "Gamma"), num("n", 2, 1.5, 2.5), tok("code", "s", "k1"))
	tick()
	putIdx(t, s, "Observation", "a") // no values: sorts last either way
	// A period: sorts by its start ascending and its end descending.
	tick()
	putIdx(t, s, "Observation", "f", dt("date", day(2023, 6, 1), day(2024, 6, 1)))

	tests := []struct {
		name string
		sort []fhir.SortKey
		want []string
	}{
		{"date asc", []fhir.SortKey{{Param: "date", Type: fhir.ParamDate}}, []string{"f", "e", "b", "c", "d", "a"}},
		{"date desc", []fhir.SortKey{{Param: "date", Type: fhir.ParamDate, Desc: true}}, []string{"f", "d", "b", "c", "e", "a"}},
		{"string asc", []fhir.SortKey{{Param: "note", Type: fhir.ParamString}}, []string{"d", "e", "b", "c", "a", "f"}},
		{"string desc", []fhir.SortKey{{Param: "note", Type: fhir.ParamString, Desc: true}}, []string{"b", "c", "e", "d", "a", "f"}},
		{"number asc", []fhir.SortKey{{Param: "n", Type: fhir.ParamNumber}}, []string{"d", "b", "c", "e", "a", "f"}},
		{"number desc", []fhir.SortKey{{Param: "n", Type: fhir.ParamNumber, Desc: true}}, []string{"e", "b", "c", "d", "a", "f"}},
		{"token asc", []fhir.SortKey{{Param: "code", Type: fhir.ParamToken}}, []string{"b", "c", "e", "d", "a", "f"}},
		{"_id desc", []fhir.SortKey{{Param: "_id", Type: fhir.ParamToken, Desc: true}}, []string{"f", "e", "d", "c", "b", "a"}},
		{"_id asc", []fhir.SortKey{{Param: "_id", Type: fhir.ParamToken}}, []string{"a", "b", "c", "d", "e", "f"}},
		{"_lastUpdated", []fhir.SortKey{{Param: "_lastUpdated", Type: fhir.ParamDate}}, []string{"e", "d", "c", "b", "a", "f"}},
		{"_lastUpdated desc", []fhir.SortKey{{Param: "_lastUpdated", Type: fhir.ParamDate, Desc: true}}, []string{"f", "a", "b", "c", "d", "e"}},
		{"two keys", []fhir.SortKey{{Param: "note", Type: fhir.ParamString, Desc: true}, {Param: "_lastUpdated", Type: fhir.ParamDate, Desc: true}}, []string{"b", "c", "e", "d", "f", "a"}},
		{"no sort: id", nil, []string{"a", "b", "c", "d", "e", "f"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := search(t, s, tenant, &fhir.Query{Type: "Observation", Sort: tc.sort})
			if diff := cmp.Diff(tc.want, ids(res.Resources)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func testSearchPaging(t *testing.T, s fhir.Store) {
	ensure(t, s, tenant)
	for i := range 7 {
		putIdx(t, s, "Patient", fmt.Sprintf("p%d", i), tok("active", "", "true"))
	}
	putIdx(t, s, "Observation", "other", tok("active", "", "true"))
	active := []fhir.Param{tokP("active", "", fhir.Value{Code: "true"})}
	tests := []struct {
		name        string
		q           fhir.Query
		want        []string
		wantTotal   int
		wantHasMore bool
	}{
		{"first page", fhir.Query{Count: 3}, []string{"p0", "p1", "p2"}, -1, true},
		{"middle page", fhir.Query{Count: 3, Offset: 3}, []string{"p3", "p4", "p5"}, -1, true},
		{"last page", fhir.Query{Count: 3, Offset: 6}, []string{"p6"}, -1, false},
		{"exact fit", fhir.Query{Count: 7}, []string{"p0", "p1", "p2", "p3", "p4", "p5", "p6"}, -1, false},
		{"past the end", fhir.Query{Count: 3, Offset: 10}, []string{}, -1, false},
		{"total", fhir.Query{Count: 2, Total: true}, []string{"p0", "p1"}, 7, true},
		{"total filtered", fhir.Query{Count: 2, Total: true, Params: active}, []string{"p0", "p1"}, 7, true},
		{"desc page", fhir.Query{Count: 2, Offset: 2, Sort: []fhir.SortKey{{Param: "_id", Desc: true}}}, []string{"p4", "p3"}, -1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.q
			q.Type = "Patient"
			res := search(t, s, tenant, &q)
			if diff := cmp.Diff(tc.want, ids(res.Resources)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if res.Total != tc.wantTotal || res.HasMore != tc.wantHasMore {
				t.Errorf("Total %d HasMore %v, want %d %v", res.Total, res.HasMore, tc.wantTotal, tc.wantHasMore)
			}
		})
	}
	t.Run("count only", func(t *testing.T) {
		res := search(t, s, tenant, &fhir.Query{Type: "Patient", Count: 10, CountOnly: true, Total: true})
		if res.Total != 7 || len(res.Resources) != 0 {
			t.Errorf("Total %d with %d resources, want 7 and none", res.Total, len(res.Resources))
		}
	})
}

func testSearchInclude(t *testing.T, s fhir.Store) {
	ensure(t, s, tenant)
	putIdx(t, s, "Patient", "p1")
	putIdx(t, s, "Patient", "p2")
	putIdx(t, s, "Patient", "gone")
	del(t, s, tenant, "Patient", "gone")
	putIdx(t, s, "Device", "d1", ref("patient", "Patient", "p1"))
	putIdx(t, s, "Observation", "o1", ref("subject", "Patient", "p1"), ref("device", "Device", "d1"), tok("code", "", "hr"))
	putIdx(t, s, "Observation", "o2", ref("subject", "Patient", "p1"), tok("code", "", "hr"))
	putIdx(t, s, "Observation", "o3", ref("subject", "Patient", "gone"), tok("code", "", "hr"))
	putIdx(t, s, "Observation", "o4", ref("subject", "Patient", "p2"), tok("code", "", "bp"))
	putIdx(t, s, "Observation", "o5", ref("subject", "Group", "p2"), tok("code", "", "hr"))
	putIdx(t, s, "Group", "p2")

	hr := []fhir.Param{tokP("code", "", fhir.Value{Code: "hr"})}
	tests := []struct {
		name         string
		q            fhir.Query
		wantPage     []string
		wantIncluded []string
	}{
		{"include subject", fhir.Query{Type: "Observation", Params: hr, Include: []fhir.Include{{Source: "Observation", Param: "subject"}}},
			[]string{"Observation/o1", "Observation/o2", "Observation/o3", "Observation/o5"}, []string{"Group/p2", "Patient/p1"}},
		{"include subject:Patient", fhir.Query{Type: "Observation", Params: hr, Include: []fhir.Include{{Source: "Observation", Param: "subject", Target: "Patient"}}},
			[]string{"Observation/o1", "Observation/o2", "Observation/o3", "Observation/o5"}, []string{"Patient/p1"}},
		{"two includes", fhir.Query{Type: "Observation", Params: hr, Include: []fhir.Include{
			{Source: "Observation", Param: "subject", Target: "Patient"}, {Source: "Observation", Param: "device"}}},
			[]string{"Observation/o1", "Observation/o2", "Observation/o3", "Observation/o5"}, []string{"Device/d1", "Patient/p1"}},
		{"include on page only", fhir.Query{Type: "Observation", Params: hr, Count: 1, Include: []fhir.Include{{Source: "Observation", Param: "subject"}}},
			[]string{"Observation/o1"}, []string{"Patient/p1"}},
		{"revinclude", fhir.Query{Type: "Patient", RevInclude: []fhir.Include{{Source: "Observation", Param: "subject"}}},
			[]string{"Patient/p1", "Patient/p2"}, []string{"Observation/o1", "Observation/o2", "Observation/o4"}},
		{"revinclude two", fhir.Query{Type: "Patient", Params: []fhir.Param{{Name: "_id", Type: fhir.ParamToken, Values: []fhir.Value{{Code: "p1"}}}},
			RevInclude: []fhir.Include{{Source: "Observation", Param: "subject"}, {Source: "Device", Param: "patient"}}},
			[]string{"Patient/p1"}, []string{"Device/d1", "Observation/o1", "Observation/o2"}},
		{"include and revinclude", fhir.Query{Type: "Device", Include: []fhir.Include{{Source: "Device", Param: "patient"}},
			RevInclude: []fhir.Include{{Source: "Observation", Param: "device"}}},
			[]string{"Device/d1"}, []string{"Observation/o1", "Patient/p1"}},
		{"no include of page members", fhir.Query{Type: "Patient", Params: []fhir.Param{{Name: "_id", Type: fhir.ParamToken, Values: []fhir.Value{{Code: "p1"}}}},
			Include: []fhir.Include{{Source: "Observation", Param: "subject"}}},
			[]string{"Patient/p1"}, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.q
			res := search(t, s, tenant, &q)
			if diff := cmp.Diff(tc.wantPage, refs(res.Resources)); diff != "" {
				t.Errorf("page (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantIncluded, sorted(refs(res.Included))); diff != "" {
				t.Errorf("included (-want +got):\n%s", diff)
			}
		})
	}
}

// testSearchMany: SearchMany answers each search as Search does — pages,
// HasMore, includes, totals, in order — and fails them all when one cannot
// run.
func testSearchMany(t *testing.T, s fhir.Store) {
	ensure(t, s, tenant)
	putIdx(t, s, "Patient", "p1")
	putIdx(t, s, "Patient", "p2")
	putIdx(t, s, "Device", "d1", ref("patient", "Patient", "p1"))
	putIdx(t, s, "DeviceUseStatement", "u1", ref("subject", "Patient", "p1"), ref("device", "Device", "d1"))
	for i := range 3 {
		putIdx(t, s, "Observation", fmt.Sprintf("o%d", i), ref("subject", "Patient", "p1"), tok("code", "", "hr"),
			dt("date", day(2024, 1, 1+i), day(2024, 1, 2+i)))
	}
	p1 := fhir.Param{Name: "subject", Type: fhir.ParamReference, Values: []fhir.Value{{RefType: "Patient", RefID: "p1"}}}
	patient := fhir.Param{Name: "patient", Type: fhir.ParamReference, Values: []fhir.Value{{RefType: "Patient", RefID: "p1"}}}
	qs := []fhir.Query{
		{Type: "Observation", Params: []fhir.Param{p1}, Sort: []fhir.SortKey{{Param: "date", Type: fhir.ParamDate, Desc: true}}, Count: 2},
		{Type: "DeviceUseStatement", Params: []fhir.Param{p1}, Count: 10, Include: []fhir.Include{{Source: "DeviceUseStatement", Param: "device"}}},
		{Type: "Device", Params: []fhir.Param{patient}, Count: 10},
		{Type: "Device", Params: []fhir.Param{{Name: "patient", Type: fhir.ParamReference, Values: []fhir.Value{{RefType: "Patient", RefID: "p2"}}}}, Count: 10},
		{Type: "Observation", Params: []fhir.Param{p1}, Count: 1, Total: true},
		{Type: "Observation", Params: []fhir.Param{p1}, CountOnly: true},
	}
	type result struct {
		Page, Included []string
		Total          int
		HasMore        bool
	}
	of := func(r *fhir.SearchResult) result {
		return result{refs(r.Resources), sorted(refs(r.Included)), r.Total, r.HasMore}
	}
	var want []result
	many := make([]*fhir.Query, len(qs))
	for i := range qs {
		q := qs[i]
		want = append(want, of(search(t, s, tenant, &q)))
		q = qs[i]
		many[i] = &q
	}
	got, err := fhir.SearchMany(context.Background(), s, tenant, many)
	if err != nil {
		t.Fatalf("SearchMany: %v", err)
	}
	var gotR []result
	for _, r := range got {
		gotR = append(gotR, of(r))
	}
	if diff := cmp.Diff(want, gotR); diff != "" {
		t.Errorf("SearchMany, each against Search (-want +got):\n%s", diff)
	}
	if want[0].Page[0] != "Observation/o2" || !want[0].HasMore || want[1].Included[0] != "Device/d1" {
		t.Errorf("the searches do not select what the test means them to: %+v", want)
	}

	bad := &fhir.Query{Type: "Patient", Count: 10, Params: []fhir.Param{{Name: "x", Type: "composite-ish", Values: []fhir.Value{{Code: "a"}}}}}
	if _, err := fhir.SearchMany(context.Background(), s, tenant, []*fhir.Query{many[0], bad}); !fhir.IsKind(err, fhir.KindInvalid) && !fhir.IsKind(err, fhir.KindNotSupported) {
		t.Errorf("SearchMany with a search the store cannot run: %v, want KindInvalid or KindNotSupported", err)
	}
}

func testSearchErrors(t *testing.T, s fhir.Store) {
	ensure(t, s, tenant)
	putIdx(t, s, "Patient", "p1")
	tests := []struct {
		name string
		q    fhir.Query
	}{
		{"unknown param type", fhir.Query{Params: []fhir.Param{{Name: "x", Type: "composite-ish", Values: []fhir.Value{{Code: "a"}}}}}},
		{"unknown modifier", fhir.Query{Params: []fhir.Param{{Name: "gender", Type: fhir.ParamToken, Modifier: "nonsense", Values: []fhir.Value{{Code: "a"}}}}}},
		{"unknown sort type", fhir.Query{Sort: []fhir.SortKey{{Param: "x", Type: "composite-ish"}}}},
		{"unknown prefix", fhir.Query{Params: []fhir.Param{{Name: "birthdate", Type: fhir.ParamDate, Values: []fhir.Value{{Prefix: "zz", Lo: day(2000, 1, 1), Hi: day(2000, 1, 2)}}}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.q
			q.Type, q.Count = "Patient", 10
			_, err := s.Search(context.Background(), tenant, &q)
			if !fhir.IsKind(err, fhir.KindInvalid) && !fhir.IsKind(err, fhir.KindNotSupported) {
				t.Errorf("got %v, want KindInvalid or KindNotSupported", err)
			}
		})
	}
}

func testLastN(t *testing.T, s fhir.Store) {
	ctx := context.Background()
	ensure(t, s, tenant)
	at := func(d int) fhir.IndexEntry {
		ts := time.Date(2024, 5, d, 8, 0, 0, 0, time.UTC)
		return dt("date", ts, ts.Add(time.Second))
	}
	obs := func(id, patient string, d int, codes ...string) {
		idx := []fhir.IndexEntry{ref("subject", "Patient", patient), at(d)}
		for _, c := range codes {
			idx = append(idx, tok("code", loinc, c))
		}
		putIdx(t, s, "Observation", id, idx...)
	}
	obs("hr1", "p1", 1, "hr")
	obs("hr3", "p1", 3, "hr")
	obs("hr2", "p1", 2, "hr")
	obs("bp1", "p1", 1, "bp")
	obs("bp4", "p1", 4, "bp", "panel") // in two groups
	obs("panel2", "p1", 2, "panel")
	obs("other", "p2", 9, "hr")
	// Equal dates: newest lastUpdated first.
	obs("t-old", "p3", 5, "rr")
	tick()
	obs("t-new", "p3", 5, "rr")

	subject := func(p string) fhir.Param {
		return fhir.Param{Name: "subject", Type: fhir.ParamReference, Values: []fhir.Value{{RefType: "Patient", RefID: p}}}
	}
	tests := []struct {
		name   string
		params []fhir.Param
		max    int
		want   []string
	}{
		{"max 1", []fhir.Param{subject("p1")}, 1, []string{"bp4", "hr3"}},
		{"max 2", []fhir.Param{subject("p1")}, 2, []string{"bp4", "bp1", "hr3", "hr2", "panel2"}},
		{"by code", []fhir.Param{subject("p1"), tokP("code", "", fhir.Value{System: loinc, HasSystem: true, Code: "hr"})}, 2, []string{"hr3", "hr2"}},
		{"ties by lastUpdated", []fhir.Param{subject("p3")}, 1, []string{"t-new"}},
		{"no matches", []fhir.Param{subject("nobody")}, 3, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := s.LastN(ctx, tenant, &fhir.Query{Type: "Observation", Params: tc.params, Count: 100}, tc.max)
			if err != nil {
				t.Fatalf("LastN: %v", err)
			}
			if diff := cmp.Diff(tc.want, ids(rs)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// --- transactions ----------------------------------------------------------

func testTxAtomic(t *testing.T, s fhir.Store) {
	ctx := context.Background()
	ensure(t, s, tenant)
	putIdx(t, s, "Patient", "keep", tok("gender", "", "male"))
	errBoom := errors.New("boom")
	err := s.Tx(ctx, tenant, func(tx fhir.Tx) error {
		for _, id := range []string{"x1", "x2"} {
			if _, _, err := tx.Put(ctx, &fhir.Write{Type: "Patient", ID: id, Body: body("Patient"), Index: []fhir.IndexEntry{tok("gender", "", "male")}}); err != nil {
				return err
			}
		}
		if _, _, err := tx.Put(ctx, &fhir.Write{Type: "Patient", ID: "keep", Body: body("Patient")}); err != nil {
			return err
		}
		if _, err := tx.Delete(ctx, "Patient", "keep", 0); err != nil {
			return err
		}
		return errBoom
	})
	if err != errBoom {
		t.Fatalf("Tx returned %v, want fn's error unchanged", err)
	}
	checkRolledBack := func(t *testing.T) {
		t.Helper()
		for _, id := range []string{"x1", "x2"} {
			_, err := s.Read(ctx, tenant, "Patient", id)
			wantKind(t, err, fhir.KindNotFound, "Read of a rolled-back create")
		}
		r, err := s.Read(ctx, tenant, "Patient", "keep")
		if err != nil || r.VersionID != 1 {
			t.Fatalf("Patient/keep after rollback: %+v, %v; want version 1", r, err)
		}
		if got := searchIDs(t, s, "Patient", tokP("gender", "", fhir.Value{Code: "male"})); !cmp.Equal(got, []string{"keep"}) {
			t.Errorf("search after rollback = %v, want [keep]", got)
		}
		h, err := s.History(ctx, tenant, &fhir.HistoryQuery{Count: 10})
		if err != nil || h.Total != 1 {
			t.Errorf("history after rollback: %d versions, %v; want 1", h.Total, err)
		}
	}
	checkRolledBack(t)

	t.Run("panic", func(t *testing.T) {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("the panic did not propagate")
				}
			}()
			_ = s.Tx(ctx, tenant, func(tx fhir.Tx) error {
				if _, _, err := tx.Put(ctx, &fhir.Write{Type: "Patient", ID: "x1", Body: body("Patient")}); err != nil {
					return err
				}
				panic("boom")
			})
		}()
		checkRolledBack(t)
		// The store still works.
		putIdx(t, s, "Patient", "after")
	})
}

func testLockConditionalCreate(t *testing.T, s fhir.Store) {
	ctx := context.Background()
	ensure(t, s, tenant)
	const attempts = 20
	cond := []fhir.Param{tokP("identifier", "", fhir.Value{System: "urn:mrn", HasSystem: true, Code: "42"})}
	var wg sync.WaitGroup
	errs := make(chan error, attempts)
	for i := range attempts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.Tx(ctx, tenant, func(tx fhir.Tx) error {
				if err := tx.Lock(ctx, "Patient?identifier=urn:mrn|42"); err != nil {
					return err
				}
				res, err := tx.Search(ctx, tenant, &fhir.Query{Type: "Patient", Params: cond, Count: 2})
				if err != nil {
					return err
				}
				if len(res.Resources) > 0 {
					return nil
				}
				_, _, err = tx.Put(ctx, &fhir.Write{Type: "Patient", ID: fmt.Sprintf("c%d", i), Body: body("Patient"),
					Index: []fhir.IndexEntry{tok("identifier", "urn:mrn", "42")}})
				return err
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("conditional create: %v", err)
		}
	}
	res := search(t, s, tenant, &fhir.Query{Type: "Patient", Params: cond, Total: true})
	if res.Total != 1 {
		t.Errorf("%d resources created (%v), want exactly 1", res.Total, ids(res.Resources))
	}
}

// --- tenants ---------------------------------------------------------------

func testTenantIsolation(t *testing.T, s fhir.Store) {
	ctx := context.Background()
	ensure(t, s, "a", "b")
	ensure(t, s, "a") // idempotent
	for _, tc := range []struct {
		tenant string
		want   bool
	}{{"a", true}, {"b", true}, {"zz", false}} {
		got, err := s.TenantExists(ctx, tc.tenant)
		if err != nil || got != tc.want {
			t.Errorf("TenantExists(%s) = %v, %v; want %v", tc.tenant, got, err, tc.want)
		}
	}
	ts := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	idx := []fhir.IndexEntry{tok("code", loinc, "hr"), ref("subject", "Patient", "p1"), dt("date", ts, ts.Add(time.Second))}
	put(t, s, "a", &fhir.Write{Type: "Observation", ID: "o1", Body: body("Observation"), Index: idx})
	put(t, s, "a", &fhir.Write{Type: "Patient", ID: "p1", Body: body("Patient")})

	_, err := s.Read(ctx, "b", "Observation", "o1")
	wantKind(t, err, fhir.KindNotFound, "Read from another tenant")
	_, err = s.VRead(ctx, "b", "Observation", "o1", 1)
	wantKind(t, err, fhir.KindNotFound, "VRead from another tenant")
	q := func() *fhir.Query {
		return &fhir.Query{Type: "Observation", Count: 10, Total: true,
			Params:     []fhir.Param{tokP("code", "", fhir.Value{Code: "hr"})},
			RevInclude: []fhir.Include{{Source: "Observation", Param: "subject"}},
			Include:    []fhir.Include{{Source: "Observation", Param: "subject"}}}
	}
	if res := search(t, s, "b", q()); len(res.Resources) != 0 || res.Total != 0 || len(res.Included) != 0 {
		t.Errorf("search in tenant b found %v / %v (total %d)", refs(res.Resources), refs(res.Included), res.Total)
	}
	if res := search(t, s, "a", q()); len(res.Resources) != 1 || len(res.Included) != 1 {
		t.Errorf("search in tenant a found %v / %v, want the observation and its patient", refs(res.Resources), refs(res.Included))
	}
	if rs, err := s.LastN(ctx, "b", &fhir.Query{Type: "Observation", Count: 10}, 5); err != nil || len(rs) != 0 {
		t.Errorf("LastN in tenant b = %v, %v", refs(rs), err)
	}
	for _, hq := range []fhir.HistoryQuery{{Count: 10}, {Type: "Observation", Count: 10}, {Type: "Observation", ID: "o1", Count: 10}} {
		res, err := s.History(ctx, "b", &hq)
		if err != nil || len(res.Versions) != 0 || res.Total != 0 {
			t.Errorf("History %+v in tenant b: %+v, %v", hq, res, err)
		}
	}
	// Writing the same id in b is independent of a.
	r := put(t, s, "b", &fhir.Write{Type: "Observation", ID: "o1", Body: body("Observation")})
	if r.VersionID != 1 {
		t.Errorf("first write of Observation/o1 in tenant b got version %d, want 1", r.VersionID)
	}
	if got := del(t, s, "b", "Observation", "o1"); got == nil {
		t.Errorf("delete in tenant b wrote nothing")
	}
	if got, err := s.Read(ctx, "a", "Observation", "o1"); err != nil || got.VersionID != 1 {
		t.Errorf("tenant a's Observation/o1 after tenant b's delete: %+v, %v", got, err)
	}

	// Unknown tenants are rejected by every method.
	const unknown = "zz"
	checks := map[string]error{}
	_, checks["Read"] = s.Read(ctx, unknown, "Observation", "o1")
	_, checks["VRead"] = s.VRead(ctx, unknown, "Observation", "o1", 1)
	_, checks["Search"] = s.Search(ctx, unknown, &fhir.Query{Type: "Observation", Count: 10})
	_, checks["LastN"] = s.LastN(ctx, unknown, &fhir.Query{Type: "Observation", Count: 10}, 1)
	_, checks["History"] = s.History(ctx, unknown, &fhir.HistoryQuery{Count: 10})
	checks["Tx"] = s.Tx(ctx, unknown, func(tx fhir.Tx) error {
		_, _, err := tx.Put(ctx, &fhir.Write{Type: "Patient", ID: "p1", Body: body("Patient")})
		return err
	})
	names := make([]string, 0, len(checks))
	for n := range checks {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		err := checks[n]
		if !fhir.IsKind(err, fhir.KindNotFound) {
			t.Errorf("%s on an unknown tenant: %v, want KindNotFound", n, err)
			continue
		}
		if !strings.Contains(err.Error(), "unknown tenant") {
			t.Errorf("%s on an unknown tenant: message %q, want it to say unknown tenant", n, err.Error())
		}
	}
	if ok, _ := s.TenantExists(ctx, unknown); ok {
		t.Errorf("a write to an unknown tenant registered it")
	}
}
