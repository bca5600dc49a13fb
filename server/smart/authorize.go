package smart

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"golang.org/x/crypto/bcrypt"

	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/smart/registry"
)

// The authorization endpoint (app-launch.html#obtain-authorization-code)
// and the two HTML steps behind it:
//
//	GET|POST authorize -> login page -> POST login -> approval page -> POST approve -> redirect_uri?code&state
//
// The request in progress is kept in registry.State under a random id that
// changes at each step; the pages carry that id and a CSRF token, which
// must also match an HttpOnly SameSite cookie set on this browser, so a
// request id that leaks cannot be completed from another browser.

const (
	requestTTL  = 10 * time.Minute
	maxFailures = 5
	csrfCookie  = "pw_smart_csrf"
	pickerLimit = 50
)

// authzRequest is an authorization request in progress.
type authzRequest struct {
	ClientID    string   `json:"client_id"`
	ClientName  string   `json:"client_name"`
	RedirectURI string   `json:"redirect_uri"`
	State       string   `json:"state"`
	Scopes      []string `json:"scopes"` // what the client may be granted of what it asked
	Challenge   string   `json:"code_challenge"`
	Nonce       string   `json:"nonce,omitempty"`
	Patient     string   `json:"patient,omitempty"`   // from the EHR launch or the picker
	Encounter   string   `json:"encounter,omitempty"` // from the EHR launch
	NeedPatient bool     `json:"need_patient,omitempty"`
	CSRF        string   `json:"csrf"`
	User        string   `json:"user,omitempty"`
	UserName    string   `json:"user_name,omitempty"`
	FHIRUser    string   `json:"fhir_user,omitempty"`
	AuthTime    int64    `json:"auth_time,omitempty"`
	Failures    int      `json:"failures,omitempty"`
}

// launchContext is an EHR launch context (POST /auth/launch).
type launchContext struct {
	Patient   string `json:"patient,omitempty"`
	Encounter string `json:"encounter,omitempty"`
}

// authorize handles GET and POST (authorize-post) authorization requests.
// Until client_id and redirect_uri are known good, errors are shown as a
// page; after that they are sent to the redirect URI with the state.
func (s *Server) authorize(c *echo.Context) error {
	tenant := c.Param("tenant")
	r := c.Request()
	ctx := r.Context()
	q := r.URL.Query()
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(c.Response(), r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			return s.errorPage(c, http.StatusBadRequest, "The authorization request is not a valid form.")
		}
		q = r.PostForm
	}
	if len(q["client_id"]) != 1 || len(q["redirect_uri"]) != 1 {
		return s.errorPage(c, http.StatusBadRequest, "The authorization request needs exactly one client_id and one redirect_uri.")
	}
	cl, err := s.reg.Client(ctx, tenant, q.Get("client_id"))
	if fhir.IsKind(err, fhir.KindNotFound) {
		return s.errorPage(c, http.StatusBadRequest, "The application is not registered with this server.")
	}
	if err != nil {
		return err
	}
	redirect := q.Get("redirect_uri")
	if !slices.Contains(cl.RedirectURIs, redirect) {
		return s.errorPage(c, http.StatusBadRequest, "The redirect URI is not one the application registered.")
	}
	state := q.Get("state")
	fail := func(e *oidc.Error) error { return redirectError(c, redirect, state, e) }
	for k, v := range q {
		if len(v) > 1 {
			return fail(errInvalidRequest("parameter %s is repeated", safeParam(k)))
		}
	}
	ep := s.endpoints(r, tenant)
	aud := q.Get("aud")
	if aud == "" {
		aud = q.Get("resource") // RFC 8707, which SMART allows as a synonym
	}
	scopes := splitScopes(q.Get("scope"))
	launch := q.Get("launch")
	switch {
	case q.Get("response_type") != "code":
		return fail(&oidc.Error{ErrorType: "unsupported_response_type", Description: "response_type must be code"})
	case state == "":
		return fail(errInvalidRequest("state is required"))
	case q.Get("code_challenge_method") != string(oidc.CodeChallengeMethodS256):
		return fail(errInvalidRequest("PKCE is required with code_challenge_method S256"))
	case !validChallenge(q.Get("code_challenge")):
		return fail(errInvalidRequest("code_challenge is missing or is not a base64url SHA-256"))
	case strings.TrimSuffix(aud, "/") != ep.base:
		return fail(errInvalidRequest("aud must be this FHIR server's base URL"))
	case len(scopes) == 0:
		return fail(errInvalidScope("scope is required"))
	case launch != "" && !slices.Contains(scopes, "launch"):
		return fail(errInvalidScope("an EHR launch asks for the launch scope"))
	case launch == "" && slices.Contains(scopes, "launch"):
		return fail(errInvalidRequest("the launch scope needs the launch parameter of an EHR launch"))
	}
	granted := s.grantable(cl.Scopes, scopes, false)
	if len(granted) == 0 {
		return fail(errInvalidScope("none of the requested scopes may be granted to this application"))
	}
	req := &authzRequest{ClientID: cl.ID, ClientName: clientName(cl), RedirectURI: redirect, State: state,
		Scopes: granted, Challenge: q.Get("code_challenge"), Nonce: q.Get("nonce"), CSRF: randomToken(24)}
	if launch != "" {
		b, ok, err := s.getState(ctx, tenant, "launch", hashKey(launch))
		if err != nil {
			return err
		}
		if !ok {
			return fail(errInvalidRequest("unknown or expired launch"))
		}
		var lc launchContext
		if err := json.Unmarshal(b, &lc); err != nil {
			return fhir.Errorf(fhir.KindInternal, "reading launch context").Wrap(err)
		}
		req.Patient, req.Encounter = lc.Patient, lc.Encounter
	} else {
		req.NeedPatient = slices.Contains(granted, "launch/patient")
		// Standalone launch: no encounter picker (context-standalone-encounter is not claimed).
		req.Scopes = slices.DeleteFunc(req.Scopes, func(s string) bool { return s == "launch/encounter" })
	}
	id, err := s.saveRequest(ctx, tenant, req)
	if err != nil {
		return err
	}
	s.setCSRFCookie(c, ep, req.CSRF)
	return s.render(c, http.StatusOK, "login", loginPage{Tenant: tenant, Client: req.ClientName, Req: id, CSRF: req.CSRF, Action: ep.cookiePath + "/login"})
}

// validChallenge: an S256 code_challenge is the base64url (unpadded)
// SHA-256 of the verifier: 43 characters.
func validChallenge(ch string) bool {
	if len(ch) != 43 {
		return false
	}
	for _, r := range ch {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func clientName(cl *registry.Client) string {
	if cl.Name != "" {
		return cl.Name
	}
	return cl.ID
}

// redirectError sends an authorization error to the client's redirect URI
// (RFC 6749 §4.1.2.1), echoing state.
func redirectError(c *echo.Context, redirect, state string, e *oidc.Error) error {
	v := url.Values{"error": {string(e.ErrorType)}}
	if e.Description != "" {
		v.Set("error_description", e.Description)
	}
	if state != "" {
		v.Set("state", state)
	}
	return redirectTo(c, redirect, v)
}

// redirectTo redirects (303) to u with v added to its query.
func redirectTo(c *echo.Context, u string, v url.Values) error {
	parsed, err := url.Parse(u)
	if err != nil {
		return fhir.Errorf(fhir.KindInternal, "parsing a registered redirect URI").Wrap(err)
	}
	q := parsed.Query()
	for k, vs := range v {
		q[k] = vs
	}
	parsed.RawQuery = q.Encode()
	noStore(c.Response().Header())
	return c.Redirect(http.StatusSeeOther, parsed.String())
}

// saveRequest stores req under a new random id.
func (s *Server) saveRequest(ctx context.Context, tenant string, req *authzRequest) (string, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return "", fhir.Errorf(fhir.KindInternal, "encoding authorization request").Wrap(err)
	}
	id := randomToken(24)
	if _, err := s.putState(ctx, tenant, "authz", id, b, requestTTL); err != nil {
		return "", fhir.Errorf(fhir.KindInternal, "storing authorization request").Wrap(err)
	}
	return id, nil
}

func (s *Server) setCSRFCookie(c *echo.Context, ep endpoints, v string) {
	c.SetCookie(&http.Cookie{Name: csrfCookie, Value: v, Path: ep.cookiePath, HttpOnly: true,
		Secure: ep.secure, SameSite: http.SameSiteLaxMode, MaxAge: int(requestTTL / time.Second)})
}

// pageForm parses the POST of a page and takes (consumes) its request,
// checking the CSRF token of the form and of the cookie. A nil request
// with a nil error means the error page was written.
func (s *Server) pageForm(c *echo.Context) (url.Values, *authzRequest, error) {
	r := c.Request()
	r.Body = http.MaxBytesReader(c.Response(), r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return nil, nil, s.errorPage(c, http.StatusBadRequest, "The form could not be read.")
	}
	form := r.PostForm
	b, ok, err := s.takeState(r.Context(), c.Param("tenant"), "authz", form.Get("req"))
	if err != nil {
		return nil, nil, err
	}
	if !ok || form.Get("req") == "" {
		return nil, nil, s.errorPage(c, http.StatusBadRequest, "This sign-in has expired or was already used. Start again from the application.")
	}
	var req authzRequest
	if err := json.Unmarshal(b, &req); err != nil {
		return nil, nil, fhir.Errorf(fhir.KindInternal, "reading authorization request").Wrap(err)
	}
	cookie, cerr := c.Cookie(csrfCookie)
	if cerr != nil || subtle.ConstantTimeCompare([]byte(cookie.Value), []byte(req.CSRF)) != 1 ||
		subtle.ConstantTimeCompare([]byte(form.Get("csrf")), []byte(req.CSRF)) != 1 {
		return nil, nil, s.errorPage(c, http.StatusForbidden, "The form did not come from this browser's sign-in. Start again from the application.")
	}
	return form, &req, nil
}

// dummyHash is compared against when the user does not exist, so that the
// response time does not tell which usernames exist.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte(randomToken(16)), bcrypt.DefaultCost)
	return h
})

// login checks the username and password and shows the approval page.
func (s *Server) login(c *echo.Context) error {
	form, req, err := s.pageForm(c)
	if req == nil {
		return err
	}
	tenant := c.Param("tenant")
	ctx := c.Request().Context()
	ep := s.endpoints(c.Request(), tenant)
	u, err := s.reg.User(ctx, tenant, form.Get("username"))
	if err != nil && !fhir.IsKind(err, fhir.KindNotFound) {
		return err
	}
	hash := dummyHash()
	if u != nil {
		hash = []byte(u.PasswordHash)
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(form.Get("password"))) != nil || u == nil {
		req.Failures++
		if req.Failures >= maxFailures {
			return redirectError(c, req.RedirectURI, req.State, oidc.ErrAccessDenied().WithDescription("too many failed sign-ins"))
		}
		id, err := s.saveRequest(ctx, tenant, req)
		if err != nil {
			return err
		}
		return s.render(c, http.StatusOK, "login", loginPage{Tenant: tenant, Client: req.ClientName, Req: id, CSRF: req.CSRF,
			Action: ep.cookiePath + "/login", Error: "The username or password is not correct."})
	}
	req.User, req.UserName, req.FHIRUser, req.AuthTime = u.Username, u.Name, u.FHIRUser, s.now().Unix()
	if p, ok := strings.CutPrefix(u.FHIRUser, "Patient/"); ok && req.NeedPatient {
		// A patient signing in for a standalone launch is the patient in context.
		req.Patient, req.NeedPatient = p, false
	}
	// A new request id and CSRF token after sign-in (no fixation).
	req.CSRF = randomToken(24)
	s.setCSRFCookie(c, ep, req.CSRF)
	return s.approvalPage(c, req, "", "")
}

// approvalPage stores req under a new id and shows the approval page.
func (s *Server) approvalPage(c *echo.Context, req *authzRequest, query, errMsg string) error {
	tenant := c.Param("tenant")
	ctx := c.Request().Context()
	id, err := s.saveRequest(ctx, tenant, req)
	if err != nil {
		return err
	}
	ep := s.endpoints(c.Request(), tenant)
	p := approvePage{Tenant: tenant, Client: req.ClientName, Req: id, CSRF: req.CSRF, Action: ep.cookiePath + "/approve",
		User: firstNonEmpty(req.UserName, req.User), Error: errMsg, Query: query}
	for _, sc := range req.Scopes {
		p.Scopes = append(p.Scopes, scopeLine{Scope: sc, Text: describeScope(sc)})
	}
	if req.NeedPatient {
		p.PickPatient = true
		if s.patients == nil {
			p.Error = firstNonEmpty(errMsg, "This server cannot select a patient; the application cannot be approved with patient context.")
		} else {
			ps, err := s.patients.ListPatients(ctx, tenant, query, pickerLimit)
			if err != nil {
				return err
			}
			p.Patients = ps
		}
	}
	return s.render(c, http.StatusOK, "approve", p)
}

// approve handles the approval page: deny, search the patient list, or
// approve the checked scopes (and the chosen patient) and redirect with a
// code.
func (s *Server) approve(c *echo.Context) error {
	form, req, err := s.pageForm(c)
	if req == nil {
		return err
	}
	if req.User == "" {
		return s.errorPage(c, http.StatusBadRequest, "Sign in first.")
	}
	tenant := c.Param("tenant")
	ctx := c.Request().Context()
	switch form.Get("action") {
	case "deny":
		return redirectError(c, req.RedirectURI, req.State, oidc.ErrAccessDenied().WithDescription("the user denied access"))
	case "search":
		return s.approvalPage(c, req, strings.TrimSpace(form.Get("q")), "")
	case "approve":
	default:
		return s.errorPage(c, http.StatusBadRequest, "Unknown action.")
	}
	approved := slices.DeleteFunc(slices.Clone(req.Scopes), func(sc string) bool { return !slices.Contains(form["scope"], sc) })
	if len(approved) == 0 {
		return redirectError(c, req.RedirectURI, req.State, oidc.ErrAccessDenied().WithDescription("no scope was approved"))
	}
	patient := req.Patient
	if req.NeedPatient && slices.Contains(approved, "launch/patient") {
		patient = form.Get("patient")
		ok := false
		if s.patients != nil && fhir.ValidID(patient) {
			if ok, err = s.patients.PatientExists(ctx, tenant, patient); err != nil {
				return err
			}
		}
		if !ok {
			return s.approvalPage(c, req, "", "Select a patient.")
		}
	}
	// Launch context goes only to an app that asked for it.
	if !slices.Contains(approved, "launch") && !slices.Contains(approved, "launch/patient") {
		patient = ""
	}
	encounter := req.Encounter
	if !slices.Contains(approved, "launch") && !slices.Contains(approved, "launch/encounter") {
		encounter = ""
	}
	rec := grantRecord{ClientID: req.ClientID, RedirectURI: req.RedirectURI, Challenge: req.Challenge, Scopes: approved,
		Subject: req.User, FHIRUser: req.FHIRUser, Patient: patient, Encounter: encounter, Nonce: req.Nonce, AuthTime: req.AuthTime}
	b, err := json.Marshal(rec)
	if err != nil {
		return fhir.Errorf(fhir.KindInternal, "encoding authorization code").Wrap(err)
	}
	code := randomToken(32)
	if _, err := s.putState(ctx, tenant, "code", hashKey(code), b, s.ttl.code); err != nil {
		return fhir.Errorf(fhir.KindInternal, "storing authorization code").Wrap(err)
	}
	return redirectTo(c, req.RedirectURI, url.Values{"code": {code}, "state": {req.State}})
}

// createLaunch (admin) stores an EHR launch context and returns its opaque
// launch id: POST /t/{tenant}/auth/launch {"patient": "...", "encounter": "..."}.
func (s *Server) createLaunch(c *echo.Context) error {
	var lc launchContext
	if err := readJSON(c, &lc); err != nil {
		return err
	}
	if (lc.Patient != "" && !fhir.ValidID(lc.Patient)) || (lc.Encounter != "" && !fhir.ValidID(lc.Encounter)) {
		return fhir.Errorf(fhir.KindInvalid, "patient and encounter must be resource ids")
	}
	if lc.Patient == "" && lc.Encounter == "" {
		return fhir.Errorf(fhir.KindInvalid, "a launch context needs a patient or an encounter")
	}
	b, err := json.Marshal(lc)
	if err != nil {
		return fhir.Errorf(fhir.KindInternal, "encoding launch context").Wrap(err)
	}
	launch := randomToken(24)
	if _, err := s.putState(c.Request().Context(), c.Param("tenant"), "launch", hashKey(launch), b, s.ttl.launch); err != nil {
		return fhir.Errorf(fhir.KindInternal, "storing launch context").Wrap(err)
	}
	noStore(c.Response().Header())
	return c.JSON(http.StatusCreated, map[string]any{"launch": launch, "expires_in": int(s.ttl.launch / time.Second)})
}
