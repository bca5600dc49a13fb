// Package smarttest holds the shared test suites of registry.Store (the
// durable records of server/smart: clients, users, signing keys; Run) and
// registry.State (its short-lived state and revocation feed; RunState),
// run by adapters/sqlite and adapters/postgres, and an in-memory store
// that passes both, for server/smart's own tests.
//
// It imports server/smart/registry, server/fhir and go-cmp only, so the
// adapters' tests can import it.
package smarttest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/smart/registry"
)

// Store is a registry.Store that can also register tenants (the resource
// stores do; Memory does too).
type Store interface {
	registry.Store
	EnsureTenant(ctx context.Context, tenant string) error
}

// Run runs the suite; newStore returns an empty store for each subtest.
func Run(t *testing.T, newStore func(t *testing.T) Store) {
	t.Run("Clients", func(t *testing.T) { testClients(t, setup(t, newStore)) })
	t.Run("ClientIsolation", func(t *testing.T) { testClientIsolation(t, setup(t, newStore)) })
	t.Run("UnknownTenant", func(t *testing.T) { testUnknownTenant(t, newStore(t)) })
	t.Run("Users", func(t *testing.T) { testUsers(t, setup(t, newStore)) })
	t.Run("SigningKeys", func(t *testing.T) { testSigningKeys(t, setup(t, newStore)) })
}

// Tenants every subtest registers.
const (
	tenantA = "acme"
	tenantB = "globex"
)

func setup(t *testing.T, newStore func(t *testing.T) Store) Store {
	t.Helper()
	s := newStore(t)
	for _, tn := range []string{tenantA, tenantB} {
		if err := s.EnsureTenant(context.Background(), tn); err != nil {
			t.Fatalf("EnsureTenant(%s): %v", tn, err)
		}
	}
	return s
}

// at is a time with microsecond precision, as stores keep it.
func at(sec int64) time.Time { return time.Unix(1_700_000_000+sec, 123456000).UTC() }

var cmpOpts = []cmp.Option{cmpopts.EquateEmpty(), cmpopts.EquateApproxTime(0)}

func wantKind(t *testing.T, what string, err error, k fhir.Kind) {
	t.Helper()
	var fe *fhir.Error
	if !errors.As(err, &fe) || fe.Kind != k {
		t.Errorf("%s: error %v, want *fhir.Error of kind %d", what, err, k)
	}
}

func sampleClients() []*registry.Client {
	return []*registry.Client{
		{ID: "web-app", Name: "Web app", Type: registry.Public,
			RedirectURIs: []string{"https://app.example/cb", "https://app.example/cb2"},
			Scopes:       []string{"launch", "openid", "fhirUser", "patient/Observation.rs"}, Created: at(1)},
		{ID: "backend", Name: "Backend", Type: registry.ConfidentialAsymmetric,
			Scopes: []string{"system/Observation.rs"}, JWKSURL: "https://backend.example/jwks.json", Created: at(2)},
		{ID: "another", Type: registry.ConfidentialAsymmetric, Scopes: []string{"system/*.rs"},
			JWKS: []byte(`{"keys":[{"kty":"EC","kid":"k1","crv":"P-384","x":"AA","y":"AA"}]}`), Created: at(3)},
		{ID: "confidential", Name: "Server app", Type: registry.ConfidentialSymmetric,
			RedirectURIs: []string{"https://srv.example/cb"}, Scopes: []string{"user/*.rs"},
			SecretHash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", Created: at(4)},
	}
}

func testClients(t *testing.T, s Store) {
	ctx := context.Background()
	cs := sampleClients()
	for _, c := range cs {
		if err := s.AddClient(ctx, tenantA, c); err != nil {
			t.Fatalf("AddClient(%s): %v", c.ID, err)
		}
	}
	for _, want := range cs {
		got, err := s.Client(ctx, tenantA, want.ID)
		if err != nil {
			t.Fatalf("Client(%s): %v", want.ID, err)
		}
		if d := cmp.Diff(want, got, cmpOpts...); d != "" {
			t.Errorf("Client(%s) (-want +got):\n%s", want.ID, d)
		}
	}
	list, err := s.Clients(ctx, tenantA)
	if err != nil {
		t.Fatalf("Clients: %v", err)
	}
	var ids []string
	for _, c := range list {
		ids = append(ids, c.ID)
	}
	if d := cmp.Diff([]string{"another", "backend", "confidential", "web-app"}, ids); d != "" {
		t.Errorf("Clients order (-want +got):\n%s", d)
	}
	if d := cmp.Diff(cs[1], list[1], cmpOpts...); d != "" {
		t.Errorf("Clients()[1] (-want +got):\n%s", d)
	}

	dup := *cs[0]
	dup.Name = "other"
	wantKind(t, "AddClient duplicate", s.AddClient(ctx, tenantA, &dup), fhir.KindConflict)
	if got, _ := s.Client(ctx, tenantA, cs[0].ID); got == nil || got.Name != cs[0].Name {
		t.Errorf("a rejected duplicate changed the stored client: %+v", got)
	}

	if err := s.DeleteClient(ctx, tenantA, "backend"); err != nil {
		t.Fatalf("DeleteClient: %v", err)
	}
	_, err = s.Client(ctx, tenantA, "backend")
	wantKind(t, "Client after delete", err, fhir.KindNotFound)
	wantKind(t, "DeleteClient twice", s.DeleteClient(ctx, tenantA, "backend"), fhir.KindNotFound)
	_, err = s.Client(ctx, tenantA, "never")
	wantKind(t, "Client(never)", err, fhir.KindNotFound)
	list, err = s.Clients(ctx, tenantA)
	if err != nil || len(list) != 3 {
		t.Errorf("Clients after delete: %d clients, %v; want 3", len(list), err)
	}
}

func testClientIsolation(t *testing.T, s Store) {
	ctx := context.Background()
	a := sampleClients()[0]
	if err := s.AddClient(ctx, tenantA, a); err != nil {
		t.Fatalf("AddClient: %v", err)
	}
	_, err := s.Client(ctx, tenantB, a.ID)
	wantKind(t, "other tenant's client", err, fhir.KindNotFound)
	if list, err := s.Clients(ctx, tenantB); err != nil || len(list) != 0 {
		t.Errorf("Clients(%s) = %d, %v; want none", tenantB, len(list), err)
	}
	wantKind(t, "DeleteClient of the other tenant", s.DeleteClient(ctx, tenantB, a.ID), fhir.KindNotFound)

	// The same id in another tenant is another client.
	b := *a
	b.Name = "B's app"
	if err := s.AddClient(ctx, tenantB, &b); err != nil {
		t.Fatalf("AddClient same id in %s: %v", tenantB, err)
	}
	for tn, want := range map[string]string{tenantA: a.Name, tenantB: b.Name} {
		got, err := s.Client(ctx, tn, a.ID)
		if err != nil || got.Name != want {
			t.Errorf("Client(%s, %s) = %+v, %v; want name %q", tn, a.ID, got, err, want)
		}
	}
}

func testUnknownTenant(t *testing.T, s Store) {
	ctx := context.Background()
	wantKind(t, "AddClient", s.AddClient(ctx, "nosuch", sampleClients()[0]), fhir.KindNotFound)
	wantKind(t, "AddUser", s.AddUser(ctx, "nosuch", &registry.User{Username: "u", PasswordHash: "x", Created: at(0)}), fhir.KindNotFound)
	wantKind(t, "AddSigningKey", s.AddSigningKey(ctx, "nosuch", &registry.SigningKey{ID: "k", Algorithm: "RS256", Private: []byte{1}, Created: at(0)}), fhir.KindNotFound)
	_, err := s.Client(ctx, "nosuch", "web-app")
	wantKind(t, "Client", err, fhir.KindNotFound)
}

func testUsers(t *testing.T, s Store) {
	ctx := context.Background()
	users := []*registry.User{
		{Username: "dr.who", PasswordHash: "$2a$10$abcdefghijklmnopqrstuu", FHIRUser: "Practitioner/p1", Name: "Dr Who", Created: at(1)},
		{Username: "alice", PasswordHash: "$2a$10$zyxwvutsrqponmlkjihgfe", FHIRUser: "Patient/pat-1", Created: at(2)},
	}
	for _, u := range users {
		if err := s.AddUser(ctx, tenantA, u); err != nil {
			t.Fatalf("AddUser(%s): %v", u.Username, err)
		}
	}
	got, err := s.User(ctx, tenantA, "dr.who")
	if err != nil {
		t.Fatalf("User: %v", err)
	}
	if d := cmp.Diff(users[0], got, cmpOpts...); d != "" {
		t.Errorf("User (-want +got):\n%s", d)
	}
	list, err := s.Users(ctx, tenantA)
	if err != nil {
		t.Fatalf("Users: %v", err)
	}
	if d := cmp.Diff([]*registry.User{users[1], users[0]}, list, cmpOpts...); d != "" {
		t.Errorf("Users (-want +got):\n%s", d)
	}
	wantKind(t, "AddUser duplicate", s.AddUser(ctx, tenantA, users[0]), fhir.KindConflict)
	_, err = s.User(ctx, tenantB, "dr.who")
	wantKind(t, "User of the other tenant", err, fhir.KindNotFound)
	if err := s.DeleteUser(ctx, tenantA, "alice"); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	_, err = s.User(ctx, tenantA, "alice")
	wantKind(t, "User after delete", err, fhir.KindNotFound)
	wantKind(t, "DeleteUser twice", s.DeleteUser(ctx, tenantA, "alice"), fhir.KindNotFound)
}

func testSigningKeys(t *testing.T, s Store) {
	ctx := context.Background()
	if ks, err := s.SigningKeys(ctx, tenantA); err != nil || len(ks) != 0 {
		t.Fatalf("SigningKeys of a new tenant = %d, %v; want none", len(ks), err)
	}
	keys := []*registry.SigningKey{
		{ID: "k-old", Algorithm: "RS256", Private: []byte{1, 2, 3}, Created: at(10)},
		{ID: "k-new", Algorithm: "RS256", Private: []byte{4, 5, 6}, Created: at(30)},
		{ID: "k-mid-a", Algorithm: "RS256", Private: []byte{7}, Created: at(20)},
		{ID: "k-mid-b", Algorithm: "RS256", Private: []byte{8}, Created: at(20)},
	}
	for _, k := range keys {
		if err := s.AddSigningKey(ctx, tenantA, k); err != nil {
			t.Fatalf("AddSigningKey(%s): %v", k.ID, err)
		}
	}
	got, err := s.SigningKeys(ctx, tenantA)
	if err != nil {
		t.Fatalf("SigningKeys: %v", err)
	}
	want := []*registry.SigningKey{keys[1], keys[3], keys[2], keys[0]}
	if d := cmp.Diff(want, got, cmpOpts...); d != "" {
		t.Errorf("SigningKeys (-want +got):\n%s", d)
	}
	wantKind(t, "AddSigningKey duplicate", s.AddSigningKey(ctx, tenantA, keys[0]), fhir.KindConflict)
	if ks, err := s.SigningKeys(ctx, tenantB); err != nil || len(ks) != 0 {
		t.Errorf("SigningKeys(%s) = %d, %v; want none (isolation)", tenantB, len(ks), err)
	}
	// The same kid in another tenant is another key.
	if err := s.AddSigningKey(ctx, tenantB, keys[0]); err != nil {
		t.Errorf("AddSigningKey same kid in %s: %v", tenantB, err)
	}
}
