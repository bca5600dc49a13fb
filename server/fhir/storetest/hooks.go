package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// testWriteHooks: a hook sees every Put and Delete inside the transaction;
// what it writes commits with the resource, and its error rolls the whole
// transaction back.
func testWriteHooks(t *testing.T, s fhir.Store) {
	h, ok := s.(fhir.Hooked)
	if !ok {
		t.Fatalf("%T does not implement fhir.Hooked", s)
	}
	ctx := context.Background()
	ensure(t, s, tenant)
	var seen []fhir.Change
	failOn := ""
	h.AddWriteHook(func(ctx context.Context, tx fhir.Tx, c fhir.Change) error {
		seen = append(seen, c)
		if c.Resource.Type != "Observation" {
			return nil
		}
		if c.Resource.ID == failOn {
			return errors.New("hook refused")
		}
		// The hook's own write: a Basic resource per Observation version.
		if c.Resource.Deleted {
			_, err := tx.Delete(ctx, "Basic", c.Resource.ID, 0)
			return err
		}
		_, _, err := tx.Put(ctx, &fhir.Write{Type: "Basic", ID: c.Resource.ID, Body: body("Basic")})
		return err
	})

	put(t, s, tenant, &fhir.Write{Type: "Observation", ID: "o1", Body: body("Observation")})
	put(t, s, tenant, &fhir.Write{Type: "Observation", ID: "o1", Body: body("Observation")})
	del(t, s, tenant, "Observation", "o1")
	want := []struct {
		typ     string
		version int64
		created bool
		deleted bool
	}{
		{"Observation", 1, true, false}, {"Basic", 1, true, false},
		{"Observation", 2, false, false}, {"Basic", 2, false, false},
		{"Observation", 3, false, true}, {"Basic", 3, false, true},
	}
	if len(seen) != len(want) {
		for _, c := range seen {
			t.Logf("%s/%s v%d created=%v", c.Resource.Type, c.Resource.ID, c.Resource.VersionID, c.Created)
		}
		t.Fatalf("hook saw %d changes, want %d", len(seen), len(want))
	}
	for i, w := range want {
		c := seen[i]
		if c.Tenant != tenant || c.Resource.Type != w.typ || c.Resource.VersionID != w.version || c.Created != w.created || c.Resource.Deleted != w.deleted {
			t.Errorf("change %d = {%s %s/%s v%d created=%v deleted=%v}, want {%s v%d created=%v deleted=%v}", i,
				c.Tenant, c.Resource.Type, c.Resource.ID, c.Resource.VersionID, c.Created, c.Resource.Deleted, w.typ, w.version, w.created, w.deleted)
		}
	}
	if got, err := s.VRead(ctx, tenant, "Basic", "o1", 2); err != nil || got.VersionID != 2 {
		t.Fatalf("hook's write: %v, %v; want version 2 committed", got, err)
	}
	_, err := s.Read(ctx, tenant, "Basic", "o1")
	wantKind(t, err, fhir.KindGone, "Basic/o1 after the hook deleted it")

	// A failing hook rolls back the resource and the hook's earlier writes.
	failOn = "o2"
	err = s.Tx(ctx, tenant, func(tx fhir.Tx) error {
		if _, _, err := tx.Put(ctx, &fhir.Write{Type: "Observation", ID: "o3", Body: body("Observation")}); err != nil {
			return err
		}
		_, _, err := tx.Put(ctx, &fhir.Write{Type: "Observation", ID: "o2", Body: body("Observation"), Fresh: true})
		return err
	})
	if err == nil || err.Error() != "hook refused" {
		t.Fatalf("Tx with a failing hook = %v, want the hook's error", err)
	}
	for _, id := range []string{"o2", "o3"} {
		_, err := s.Read(ctx, tenant, "Observation", id)
		wantKind(t, err, fhir.KindNotFound, "Observation/"+id+" after the hook failed")
		_, err = s.Read(ctx, tenant, "Basic", id)
		wantKind(t, err, fhir.KindNotFound, "Basic/"+id+" after the hook failed")
	}
}

// testReadManyAndLocks: ReadMany finds live resources and tombstones and
// skips missing ids, outside and inside a transaction; Lock takes several
// keys at once.
func testReadManyAndLocks(t *testing.T, s fhir.Store) {
	ctx := context.Background()
	ensure(t, s, tenant)
	put(t, s, tenant, &fhir.Write{Type: "Device", ID: "a", Body: body("Device")})
	put(t, s, tenant, &fhir.Write{Type: "Device", ID: "b", Body: body("Device")})
	put(t, s, tenant, &fhir.Write{Type: "Patient", ID: "a", Body: body("Patient")})
	del(t, s, tenant, "Device", "b")
	summary := func(rs []*fhir.Resource) []string {
		var out []string
		for _, r := range rs {
			out = append(out, fmt.Sprintf("%s/%s v%d deleted=%v body=%v", r.Type, r.ID, r.VersionID, r.Deleted, r.Body != nil))
		}
		return sorted(out)
	}
	want := []string{"Device/a v1 deleted=false body=true", "Device/b v2 deleted=true body=false"}
	m, ok := s.(fhir.ManyReader)
	if !ok {
		t.Fatalf("%T does not implement fhir.ManyReader", s)
	}
	got, err := m.ReadMany(ctx, tenant, "Device", []string{"a", "b", "c"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, summary(got)); diff != "" {
		t.Errorf("ReadMany (-want +got):\n%s", diff)
	}
	err = s.Tx(ctx, tenant, func(tx fhir.Tx) error {
		if err := tx.Lock(ctx, "k2", "k1", "k2", "k3"); err != nil {
			return err
		}
		got, err := fhir.ReadMany(ctx, tx, tenant, "Device", []string{"c", "b", "a"})
		if err != nil {
			return err
		}
		if diff := cmp.Diff(want, summary(got)); diff != "" {
			t.Errorf("ReadMany in a transaction (-want +got):\n%s", diff)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := m.ReadMany(ctx, tenant, "Device", nil); err != nil || len(got) != 0 {
		t.Errorf("ReadMany of no ids = %v, %v", got, err)
	}
}
