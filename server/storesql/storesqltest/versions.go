package storesqltest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/pulsewire/pulsewire/server/audit"
	"github.com/pulsewire/pulsewire/server/audit/chain"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/storesql"
)

// VersionsTenant is the tenant RunVersions and WriteVersions write to;
// the store must register it.
const VersionsTenant = "versions"

// Raw runs query on the store's database as its owner, behind the store's
// back (no row-level security), and returns each row's first column as
// text. Queries name the tenant as a literal: the two stores' placeholders
// differ.
type Raw func(t *testing.T, query string) []string

// RowsSQL lists a table's rows of VersionsTenant as type/id/version, in
// key order.
func RowsSQL(table string) string {
	return "SELECT type || '/' || id || '/' || version FROM " + table +
		" WHERE tenant = '" + VersionsTenant + "' ORDER BY type, id, version"
}

// RunVersions checks the layout of versions on a fresh store from open:
// resources holds each resource's current version, resource_versions only
// the superseded ones, so a create writes no history row; and every
// version stays readable (vread, instance, type and system history) across
// create, update, delete and recreate.
func RunVersions(t *testing.T, open func(t *testing.T) (fhir.Store, Raw)) {
	t.Helper()
	ctx := context.Background()
	s, raw := open(t)
	if err := s.EnsureTenant(ctx, VersionsTenant); err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T, step string, wantCurrent, wantSuperseded []string) {
		t.Helper()
		if diff := cmp.Diff(wantCurrent, raw(t, RowsSQL("resources")), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: resources (-want +got):\n%s", step, diff)
		}
		if diff := cmp.Diff(wantSuperseded, raw(t, RowsSQL("resource_versions")), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: resource_versions (-want +got):\n%s", step, diff)
		}
	}
	write := func(w *fhir.Write) {
		t.Helper()
		if err := s.Tx(ctx, VersionsTenant, func(tx fhir.Tx) error { _, _, err := tx.Put(ctx, w); return err }); err != nil {
			t.Fatalf("Put %s/%s: %v", w.Type, w.ID, err)
		}
	}
	patient := func(v int) *fhir.Write {
		return &fhir.Write{Type: "Patient", ID: "p1", Body: fmt.Appendf(nil, `{"resourceType":"Patient","gender":"v%d"}`, v)}
	}

	write(patient(1))
	// A server-assigned id: the PostgreSQL store writes it blind.
	write(&fhir.Write{Type: "Observation", ID: "o1", Fresh: true, Body: []byte(`{"resourceType":"Observation"}`)})
	check(t, "after creates", []string{"Observation/o1/1", "Patient/p1/1"}, nil)

	write(patient(2))
	check(t, "after an update", []string{"Observation/o1/1", "Patient/p1/2"}, []string{"Patient/p1/1"})

	if err := s.Tx(ctx, VersionsTenant, func(tx fhir.Tx) error { _, err := tx.Delete(ctx, "Patient", "p1", 0); return err }); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	check(t, "after a delete", []string{"Observation/o1/1", "Patient/p1/3"}, []string{"Patient/p1/1", "Patient/p1/2"})

	write(patient(4))
	check(t, "after a recreate", []string{"Observation/o1/1", "Patient/p1/4"}, []string{"Patient/p1/1", "Patient/p1/2", "Patient/p1/3"})

	got := Snapshot(t, s, VersionsTenant)
	want := []string{"Patient/p1/4", "Patient/p1/3 deleted", "Patient/p1/2", "Observation/o1/1", "Patient/p1/1"}
	if diff := cmp.Diff(want, names(got)); diff != "" {
		t.Errorf("system history (-want +got):\n%s", diff)
	}
	for v := int64(1); v <= 4; v++ {
		r, err := s.VRead(ctx, VersionsTenant, "Patient", "p1", v)
		switch {
		case v == 3:
			if !fhir.IsKind(err, fhir.KindGone) {
				t.Errorf("VRead of the delete: %v, want KindGone", err)
			}
		case err != nil:
			t.Errorf("VRead version %d: %v", v, err)
		case r.VersionID != v || !bytes.Contains(r.Body, fmt.Appendf(nil, `"gender":"v%d"`, v)):
			t.Errorf("VRead version %d: version %d, body %s", v, r.VersionID, r.Body)
		}
	}
	if _, err := s.VRead(ctx, VersionsTenant, "Patient", "p1", 5); !fhir.IsKind(err, fhir.KindNotFound) {
		t.Errorf("VRead of a version not written: %v, want KindNotFound", err)
	}
	// _at: the version current at each instant, whichever table holds it.
	for i, v := range got {
		if v.Type != "Patient" {
			continue
		}
		res, err := s.History(ctx, VersionsTenant, &fhir.HistoryQuery{Type: "Patient", ID: "p1", At: v.LastUpdated, Count: 10})
		if err != nil || len(res.Versions) != 1 || res.Versions[0].VersionID != v.VersionID {
			t.Errorf("history at version %d's instant (%d): %+v, %v; want that version alone", v.VersionID, i, res, err)
		}
	}
}

// Version is one version as history returns it.
type Version struct {
	Type, ID    string
	VersionID   int64
	LastUpdated time.Time
	Deleted     bool
	BodySum     [32]byte // SHA-256 of the body
}

func (v Version) String() string {
	s := fmt.Sprintf("%s/%s/%d", v.Type, v.ID, v.VersionID)
	if v.Deleted {
		s += " deleted"
	}
	return s
}

func names(vs []Version) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.String()
	}
	return out
}

func versionOf(r *fhir.Resource) Version {
	return Version{Type: r.Type, ID: r.ID, VersionID: r.VersionID, LastUpdated: r.LastUpdated, Deleted: r.Deleted, BodySum: sha256.Sum256(r.Body)}
}

// Snapshot reads every version of tenant through system history, two at a
// time (paging), newest first, and checks that the pages join without a
// gap or a repeat, that Total counts them, and that each version's type and
// instance history, and its vread, agree with it.
func Snapshot(t *testing.T, s fhir.Store, tenant string) []Version {
	t.Helper()
	ctx := context.Background()
	var all []Version
	total := -1
	for offset := 0; ; offset += 2 {
		res, err := s.History(ctx, tenant, &fhir.HistoryQuery{Count: 2, Offset: offset})
		if err != nil {
			t.Fatalf("system history at offset %d: %v", offset, err)
		}
		if total >= 0 && res.Total != total {
			t.Errorf("system history total changed from %d to %d", total, res.Total)
		}
		total = res.Total
		for _, r := range res.Versions {
			all = append(all, versionOf(r))
		}
		if !res.HasMore {
			break
		}
	}
	if total != len(all) {
		t.Errorf("system history: Total %d, %d versions read", total, len(all))
	}
	seen := map[string]bool{}
	for i, v := range all {
		if seen[v.String()] {
			t.Errorf("system history: %s twice", v)
		}
		seen[v.String()] = true
		if i > 0 && v.LastUpdated.After(all[i-1].LastUpdated) {
			t.Errorf("system history: %s after the older %s", v, all[i-1])
		}
	}
	byType, byID := map[string][]Version{}, map[string][]Version{}
	for _, v := range all {
		byType[v.Type] = append(byType[v.Type], v)
		byID[v.Type+"/"+v.ID] = append(byID[v.Type+"/"+v.ID], v)
	}
	history := func(hq *fhir.HistoryQuery) []Version {
		res, err := s.History(ctx, tenant, hq)
		if err != nil {
			t.Fatalf("history %+v: %v", hq, err)
		}
		var out []Version
		for _, r := range res.Versions {
			out = append(out, versionOf(r))
		}
		return out
	}
	for typ, want := range byType {
		if diff := cmp.Diff(want, history(&fhir.HistoryQuery{Type: typ, Count: 1000})); diff != "" {
			t.Errorf("%s history (-system history's +got):\n%s", typ, diff)
		}
	}
	for _, want := range byID {
		v := want[0]
		if diff := cmp.Diff(want, history(&fhir.HistoryQuery{Type: v.Type, ID: v.ID, Count: 1000})); diff != "" {
			t.Errorf("%s/%s history (-system history's +got):\n%s", v.Type, v.ID, diff)
		}
	}
	for _, v := range all {
		r, err := s.VRead(ctx, tenant, v.Type, v.ID, v.VersionID)
		switch {
		case v.Deleted:
			if !fhir.IsKind(err, fhir.KindGone) {
				t.Errorf("VRead %s: %v, want KindGone", v, err)
			}
		case err != nil:
			t.Errorf("VRead %s: %v", v, err)
		default:
			if diff := cmp.Diff(v, versionOf(r)); diff != "" {
				t.Errorf("VRead %s (-history's +got):\n%s", v, diff)
			}
		}
	}
	return all
}

// WriteVersions writes, into VersionsTenant of s, resources that have
// every kind of history: created only (some with server-assigned ids),
// updated, deleted, recreated, and created and updated in one transaction.
func WriteVersions(t *testing.T, s fhir.Store) {
	t.Helper()
	ctx := context.Background()
	if err := s.EnsureTenant(ctx, VersionsTenant); err != nil {
		t.Fatal(err)
	}
	put := func(tx fhir.Tx, typ, id string, fresh bool) error {
		_, _, err := tx.Put(ctx, &fhir.Write{Type: typ, ID: id, Fresh: fresh, Body: fmt.Appendf(nil, `{"resourceType":%q}`, typ)})
		return err
	}
	steps := []func(tx fhir.Tx) error{
		func(tx fhir.Tx) error { return put(tx, "Patient", "p1", false) },
		func(tx fhir.Tx) error { return put(tx, "Observation", "o1", true) },
		func(tx fhir.Tx) error { return put(tx, "Observation", "o2", true) },
		func(tx fhir.Tx) error { return put(tx, "Patient", "p1", false) },
		func(tx fhir.Tx) error { return put(tx, "Observation", "o2", false) },
		func(tx fhir.Tx) error { _, err := tx.Delete(ctx, "Patient", "p1", 0); return err },
		func(tx fhir.Tx) error { return put(tx, "Device", "d1", false) },
		func(tx fhir.Tx) error { return put(tx, "Patient", "p1", false) },
		func(tx fhir.Tx) error { _, err := tx.Delete(ctx, "Device", "d1", 0); return err },
		func(tx fhir.Tx) error {
			if err := put(tx, "Patient", "p2", false); err != nil {
				return err
			}
			return put(tx, "Patient", "p2", false)
		},
		func(tx fhir.Tx) error { return put(tx, "Observation", "o2", false) },
		func(tx fhir.Tx) error { return put(tx, "Observation", "o3", true) },
	}
	for i, step := range steps {
		if err := s.Tx(ctx, VersionsTenant, step); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
}

// Superseded lists the versions of vs that a newer version of the same
// resource in vs supersedes, as type/id/version in key order: what
// resource_versions holds (see RowsSQL).
func Superseded(vs []Version) []string {
	newest := map[string]int64{}
	for _, v := range vs {
		k := v.Type + "/" + v.ID
		newest[k] = max(newest[k], v.VersionID)
	}
	var out []Version
	for _, v := range vs {
		if v.VersionID < newest[v.Type+"/"+v.ID] {
			out = append(out, v)
		}
	}
	slices.SortFunc(out, func(a, b Version) int {
		if c := strings.Compare(a.Type+"/"+a.ID, b.Type+"/"+b.ID); c != 0 {
			return c
		}
		return int(a.VersionID - b.VersionID)
	})
	names := make([]string, len(out))
	for i, v := range out {
		names[i] = fmt.Sprintf("%s/%s/%d", v.Type, v.ID, v.VersionID)
	}
	return names
}

// MigratedStore is a store CheckMigrated reads: resources and the audit
// chain.
type MigratedStore interface {
	fhir.Store
	chain.Store
}

// CheckMigrated checks s after the migration to one stored copy per
// version (0050) against before, the Snapshot taken in the old layout: the
// same history, resource_versions holding exactly the superseded versions
// (read through raw), and WriteVersions' three AuditEvents still a chain
// that verifies.
func CheckMigrated(t *testing.T, s MigratedStore, raw Raw, before []Version) {
	t.Helper()
	after := Snapshot(t, s, VersionsTenant)
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("history after the migration (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(Superseded(before), raw(t, RowsSQL("resource_versions"))); diff != "" {
		t.Errorf("resource_versions after the migration (-superseded versions +got):\n%s", diff)
	}
	r, err := audit.Verify(context.Background(), s, VersionsTenant)
	if err != nil || r.Break != nil || r.Verified != 3 {
		t.Errorf("audit chain after the migration: %+v, %v; want 3 events verified", r, err)
	}
}

// WriteForMigration writes what the 0050 migration tests migrate:
// WriteVersions' resources and three AuditEvents through s's audit
// appender. It returns their Snapshot and the versions as names, in
// history order (what the old layout's resource_versions must list).
func WriteForMigration(t *testing.T, s MigratedStore) (before []Version, names []string) {
	t.Helper()
	ctx := context.Background()
	WriteVersions(t, s)
	for i := range 3 {
		ev := &chain.Event{ID: fmt.Sprintf("ae%d", i), LastUpdated: storesql.Now(),
			Prefix: []byte(`{"resourceType":"AuditEvent","extension":[{"url":"` + chain.ExtensionURL + `","extension":`), Suffix: []byte(`}]}`)}
		if err := s.Tx(ctx, VersionsTenant, func(tx fhir.Tx) error {
			return tx.(chain.Appender).AppendAudit(ctx, []*chain.Event{ev})
		}); err != nil {
			t.Fatalf("AppendAudit: %v", err)
		}
	}
	before = Snapshot(t, s, VersionsTenant)
	for _, v := range before {
		names = append(names, v.String())
	}
	return before, names
}
