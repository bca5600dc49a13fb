package app

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pulsewire/pulsewire/adapters/redis/redistest"
	"github.com/pulsewire/pulsewire/adapters/sqlite"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/kv"
	"github.com/pulsewire/pulsewire/server/kv/memkv"
	"github.com/pulsewire/pulsewire/server/search"
	"github.com/pulsewire/pulsewire/server/smart"
)

// TestKVEphemeral checks smart's Ephemeral contract on the kv stores it
// is wired to: in process, and Redis (skipped without it).
func TestKVEphemeral(t *testing.T) {
	for _, tc := range []struct {
		name string
		kv   func(t *testing.T) kv.Store
	}{
		{"memkv", func(*testing.T) kv.Store { return memkv.New() }},
		{"redis", func(t *testing.T) kv.Store { return redistest.Store(t, "") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			var e smart.Ephemeral = kvEphemeral{tc.kv(t)}
			type step struct {
				Op    string
				Value string
				OK    bool
			}
			var got []step
			setnx := func(k, v string, ttl time.Duration) {
				ok, err := e.SetNX(ctx, k, []byte(v), ttl)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, step{"setnx " + k, v, ok})
			}
			read := func(op, k string) {
				var v []byte
				var ok bool
				var err error
				if op == "take" {
					v, ok, err = e.Take(ctx, k)
				} else {
					v, ok, err = e.Get(ctx, k)
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, step{op + " " + k, string(v), ok})
			}
			setnx("a", "1", time.Minute)
			setnx("a", "2", time.Minute)
			setnx("never", "x", 0)
			read("get", "a")
			read("get", "never")
			read("take", "a")
			read("take", "a")
			setnx("b", "3", time.Minute)
			if err := e.Del(ctx, "b"); err != nil {
				t.Fatal(err)
			}
			if err := e.Del(ctx, "b"); err != nil {
				t.Fatalf("deleting an absent key: %v", err)
			}
			read("get", "b")
			setnx("short", "4", 50*time.Millisecond)
			time.Sleep(120 * time.Millisecond)
			read("get", "short")
			want := []step{
				{"setnx a", "1", true}, {"setnx a", "2", false}, {"setnx never", "x", false},
				{"get a", "1", true}, {"get never", "", false}, {"take a", "1", true}, {"take a", "", false},
				{"setnx b", "3", true}, {"get b", "", false}, {"setnx short", "4", true}, {"get short", "", false},
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

// TestStorePatients checks the standalone-launch patient picker over the
// store: name search, limit, stable order, display names, existence.
func TestStorePatients(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.EnsureTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	reg := search.NewRegistry()
	put := func(id, body string) {
		idx, err := reg.Extract("Patient", []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Tx(ctx, "acme", func(tx fhir.Tx) error {
			_, _, err := tx.Put(ctx, &fhir.Write{Type: "Patient", ID: id, Body: []byte(body), Index: idx})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	put("pa", `{"resourceType":"Patient","id":"pa","name":[{"family":"Testperson","given":["Ada","B."]}]}`)
	put("pb", `{"resourceType":"Patient","id":"pb","name":[{"text":"Bea Sample"}]}`)
	put("pc", `{"resourceType":"Patient","id":"pc"}`)
	p := storePatients{store: st, reg: reg}

	for _, tc := range []struct {
		query string
		limit int
		want  []smart.PatientChoice
	}{
		{"", 10, []smart.PatientChoice{{ID: "pa", Display: "Ada B. Testperson"}, {ID: "pb", Display: "Bea Sample"}, {ID: "pc", Display: "pc"}}},
		{"", 2, []smart.PatientChoice{{ID: "pa", Display: "Ada B. Testperson"}, {ID: "pb", Display: "Bea Sample"}}},
		{"testp", 10, []smart.PatientChoice{{ID: "pa", Display: "Ada B. Testperson"}}},
		{"nobody", 10, []smart.PatientChoice{}},
	} {
		got, err := p.ListPatients(ctx, "acme", tc.query, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("ListPatients(%q, %d) (-want +got):\n%s", tc.query, tc.limit, d)
		}
	}
	for id, want := range map[string]bool{"pa": true, "nope": false} {
		if got, err := p.PatientExists(ctx, "acme", id); err != nil || got != want {
			t.Errorf("PatientExists(%s) = %v, %v; want %v", id, got, err, want)
		}
	}
}
