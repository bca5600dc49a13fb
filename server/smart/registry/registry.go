// Package registry declares the durable records of the SMART authorization
// server (server/smart): the registered clients
// (https://hl7.org/fhir/smart-app-launch/app-launch.html#register-app-with-ehr),
// the users who sign in on its login page, and each tenant's token signing
// keys, together with the Store through which server/smart reads and writes
// them.
//
// It also declares State, the authorization server's short-lived state
// (authorization codes, refresh tokens, jti replay set, revocations and
// their change feed, launch contexts), kept in the same database.
//
// It is pure (standard library and server/fhir only) so that the adapters
// can implement it without importing server/smart, whose JOSE, HTTP and
// template dependencies they must not see — the same cut as
// server/ingest/tables. adapters/sqlite and adapters/postgres implement
// Store (migration 0030) and State (migration 0031), and both pass
// server/smart/smarttest (Run and RunState).
package registry

import (
	"context"
	"time"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// ClientType is how a client authenticates at the token endpoint
// (https://hl7.org/fhir/smart-app-launch/conformance.html#client-types).
type ClientType string

// The SMART client types.
const (
	// Public clients cannot keep a secret; they send only client_id.
	Public ClientType = "public"
	// ConfidentialSymmetric clients authenticate with a client secret
	// (client_secret_basic).
	ConfidentialSymmetric ClientType = "confidential-symmetric"
	// ConfidentialAsymmetric clients authenticate with a JWT signed by
	// their private key (private_key_jwt, RS384 or ES384).
	ConfidentialAsymmetric ClientType = "confidential-asymmetric"
)

// Valid reports whether t is one of the defined client types.
func (t ClientType) Valid() bool {
	switch t {
	case Public, ConfidentialSymmetric, ConfidentialAsymmetric:
		return true
	}
	return false
}

// Client is a registered SMART client of one tenant.
type Client struct {
	ID   string
	Name string // shown on the approval page
	Type ClientType
	// RedirectURIs are matched exactly (no prefix or pattern matching).
	RedirectURIs []string
	// Scopes are the scopes the client may be granted; a request for
	// others is narrowed to these.
	Scopes []string
	// SecretHash is the hex SHA-256 of the client secret
	// (ConfidentialSymmetric only). Secrets are 256-bit random values the
	// server generates, so a fast hash is enough; user passwords use bcrypt.
	SecretHash string
	// JWKS is the client's public JWK Set as registered (JSON), or nil;
	// JWKSURL is where the set is fetched from, or "". An asymmetric
	// client has exactly one of them.
	JWKS    []byte
	JWKSURL string
	Created time.Time
}

// User is a person who signs in on the login page.
type User struct {
	Username     string
	PasswordHash string // bcrypt
	// FHIRUser is the user's FHIR resource as a relative reference,
	// e.g. "Practitioner/123" or "Patient/456" (the fhirUser claim).
	FHIRUser string
	Name     string // display name, may be ""
	Created  time.Time
}

// SigningKey is one of a tenant's token signing keys. The newest key signs;
// older keys stay published in the JWKS for a while after a rotation so
// that tokens they signed still verify.
type SigningKey struct {
	ID        string // the JWS kid
	Algorithm string // JWS alg, e.g. "RS256"
	Private   []byte // PKCS #8 DER of the private key
	Created   time.Time
}

// Store keeps the registry records, scoped to one tenant per call. An
// implementation must make another tenant's rows unreachable (PostgreSQL
// row-level security, as for the resource tables). Times are stored with
// microsecond precision.
//
// Errors are *fhir.Error values: KindNotFound for a missing record or an
// unregistered tenant, KindConflict for a duplicate id, KindInternal
// (wrapping the driver error) otherwise.
type Store interface {
	// AddClient registers c. KindConflict when c.ID is taken.
	AddClient(ctx context.Context, tenant string, c *Client) error
	// Client returns one client. KindNotFound when there is none.
	Client(ctx context.Context, tenant, id string) (*Client, error)
	// Clients lists the tenant's clients ordered by id.
	Clients(ctx context.Context, tenant string) ([]*Client, error)
	// DeleteClient removes a client. KindNotFound when there is none.
	DeleteClient(ctx context.Context, tenant, id string) error

	// AddUser registers u. KindConflict when u.Username is taken.
	AddUser(ctx context.Context, tenant string, u *User) error
	// User returns one user. KindNotFound when there is none.
	User(ctx context.Context, tenant, username string) (*User, error)
	// Users lists the tenant's users ordered by username.
	Users(ctx context.Context, tenant string) ([]*User, error)
	// DeleteUser removes a user. KindNotFound when there is none.
	DeleteUser(ctx context.Context, tenant, username string) error

	// AddSigningKey stores k. KindConflict when k.ID is taken.
	AddSigningKey(ctx context.Context, tenant string, k *SigningKey) error
	// SigningKeys lists the tenant's signing keys, newest first (by
	// Created, then by ID descending).
	SigningKeys(ctx context.Context, tenant string) ([]*SigningKey, error)
}

// NotFound is the error a Store returns for a missing record.
func NotFound(what string) *fhir.Error {
	return fhir.Errorf(fhir.KindNotFound, "%s not found", what)
}

// Conflict is the error a Store returns for a duplicate id.
func Conflict(what string) *fhir.Error {
	return fhir.Errorf(fhir.KindConflict, "%s already exists", what)
}
