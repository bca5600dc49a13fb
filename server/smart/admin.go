package smart

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/smart/registry"
)

// The admin API: the client registry, login users and EHR launch
// contexts. It is protected by one static admin token from the
// configuration (Config.AdminToken), compared in constant time; per-user
// admin roles are future work. Without a token the API is off (403).

// adminOnly lets only the admin token through.
func (s *Server) adminOnly(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		if s.adminTok == "" {
			return fhir.Errorf(fhir.KindForbidden, "the admin API is disabled (no admin token configured)")
		}
		scheme, tok, ok := strings.Cut(c.Request().Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(s.adminTok)) != 1 {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="admin"`)
			return fhir.Errorf(fhir.KindUnauthorized, "the admin token is required (Authorization: Bearer)")
		}
		return next(c)
	}
}

// readJSON decodes a JSON body of at most 256 KiB into v, rejecting
// unknown fields.
func readJSON(c *echo.Context, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(c.Response(), c.Request().Body, 256<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fhir.Errorf(fhir.KindTooLarge, "request body too large")
		}
		if errors.Is(err, io.EOF) {
			return fhir.Errorf(fhir.KindInvalid, "a JSON body is required")
		}
		return fhir.Errorf(fhir.KindInvalid, "the body is not valid JSON for this request").Wrap(err)
	}
	return nil
}

// ClientView is a client as the admin API and CLI show it (never the
// secret hash).
type ClientView struct {
	ID           string              `json:"client_id"`
	Name         string              `json:"client_name,omitempty"`
	Type         registry.ClientType `json:"type"`
	RedirectURIs []string            `json:"redirect_uris,omitempty"`
	Scope        string              `json:"scope"`
	JWKS         json.RawMessage     `json:"jwks,omitempty"`
	JWKSURL      string              `json:"jwks_uri,omitempty"`
	Created      time.Time           `json:"created"`
	// Secret is set once, in the answer that created a symmetric client.
	Secret string `json:"client_secret,omitempty"`
}

// ViewClient returns the public view of c.
func ViewClient(c *registry.Client) ClientView {
	return ClientView{ID: c.ID, Name: c.Name, Type: c.Type, RedirectURIs: c.RedirectURIs, Scope: joinScopes(c.Scopes),
		JWKS: c.JWKS, JWKSURL: c.JWKSURL, Created: c.Created}
}

func (s *Server) addClient(c *echo.Context) error {
	var spec ClientSpec
	if err := readJSON(c, &spec); err != nil {
		return err
	}
	cl, secret, err := NewClient(spec, s.now())
	if err != nil {
		return err
	}
	if err := s.reg.AddClient(c.Request().Context(), c.Param("tenant"), cl); err != nil {
		return err
	}
	v := ViewClient(cl)
	v.Secret = secret
	noStore(c.Response().Header())
	return c.JSON(http.StatusCreated, v)
}

func (s *Server) listClients(c *echo.Context) error {
	cs, err := s.reg.Clients(c.Request().Context(), c.Param("tenant"))
	if err != nil {
		return err
	}
	out := []ClientView{}
	for _, cl := range cs {
		out = append(out, ViewClient(cl))
	}
	return c.JSON(http.StatusOK, map[string]any{"clients": out})
}

func (s *Server) getClient(c *echo.Context) error {
	cl, err := s.reg.Client(c.Request().Context(), c.Param("tenant"), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ViewClient(cl))
}

func (s *Server) deleteClient(c *echo.Context) error {
	if err := s.reg.DeleteClient(c.Request().Context(), c.Param("tenant"), c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// UserSpec is a user to create (admin API body, CLI flags).
type UserSpec struct {
	Username string `json:"username"`
	Password string `json:"password"`
	FHIRUser string `json:"fhirUser"` // "Practitioner/123", "Patient/456", ...
	Name     string `json:"name,omitempty"`
}

// UserView is a user as the admin API and CLI show it.
type UserView struct {
	Username string    `json:"username"`
	FHIRUser string    `json:"fhirUser,omitempty"`
	Name     string    `json:"name,omitempty"`
	Created  time.Time `json:"created"`
}

// fhirUserTypes are the resource types a fhirUser may name
// (scopes-and-launch-context.html: fhirUser).
var fhirUserTypes = map[string]bool{"Patient": true, "Practitioner": true, "PractitionerRole": true, "RelatedPerson": true, "Person": true}

// NewUser validates spec and returns the user to store, its password
// hashed with bcrypt. Errors are *fhir.Error KindInvalid.
func NewUser(spec UserSpec, now time.Time) (*registry.User, error) {
	if !clientIDPattern.MatchString(spec.Username) {
		return nil, fhir.Errorf(fhir.KindInvalid, "username must be 1 to 128 letters, digits or ._~-")
	}
	if len(spec.Password) < 8 || len(spec.Password) > 72 {
		return nil, fhir.Errorf(fhir.KindInvalid, "password must have 8 to 72 bytes")
	}
	if spec.FHIRUser != "" {
		typ, id, ok := strings.Cut(spec.FHIRUser, "/")
		if !ok || !fhirUserTypes[typ] || !fhir.ValidID(id) {
			return nil, fhir.Errorf(fhir.KindInvalid, "fhirUser must be a relative reference to a Patient, Practitioner, PractitionerRole, RelatedPerson or Person")
		}
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(spec.Password), bcrypt.DefaultCost)
	if err != nil {
		return nil, fhir.Errorf(fhir.KindInternal, "hashing password").Wrap(err)
	}
	return &registry.User{Username: spec.Username, PasswordHash: string(hash), FHIRUser: spec.FHIRUser,
		Name: strings.TrimSpace(spec.Name), Created: now.UTC()}, nil
}

func viewUser(u *registry.User) UserView {
	return UserView{Username: u.Username, FHIRUser: u.FHIRUser, Name: u.Name, Created: u.Created}
}

func (s *Server) addUser(c *echo.Context) error {
	var spec UserSpec
	if err := readJSON(c, &spec); err != nil {
		return err
	}
	u, err := NewUser(spec, s.now())
	if err != nil {
		return err
	}
	if err := s.reg.AddUser(c.Request().Context(), c.Param("tenant"), u); err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, viewUser(u))
}

func (s *Server) listUsers(c *echo.Context) error {
	us, err := s.reg.Users(c.Request().Context(), c.Param("tenant"))
	if err != nil {
		return err
	}
	out := []UserView{}
	for _, u := range us {
		out = append(out, viewUser(u))
	}
	return c.JSON(http.StatusOK, map[string]any{"users": out})
}

func (s *Server) deleteUser(c *echo.Context) error {
	if err := s.reg.DeleteUser(c.Request().Context(), c.Param("tenant"), c.Param("username")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
