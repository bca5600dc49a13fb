package smart

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v5"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// maxFormBytes bounds the request bodies of the OAuth endpoints and pages.
const maxFormBytes = 64 << 10

// oauthStatus is the HTTP status of an RFC 6749 §5.2 error.
func oauthStatus(e *oidc.Error) int {
	switch e.ErrorType {
	case oidc.InvalidClient:
		return http.StatusUnauthorized
	case oidc.ServerError:
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}

// noStore sets the headers RFC 6749 §5.1 requires on token responses (and
// that introspection and error responses get too).
func noStore(h http.Header) {
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
}

// oauthError writes e as an RFC 6749 §5.2 JSON error. invalid_client is
// 401 with a WWW-Authenticate challenge; server errors are logged with
// their cause and reach the client as "internal error" only.
func (s *Server) oauthError(c *echo.Context, e *oidc.Error) error {
	status := oauthStatus(e)
	h := c.Response().Header()
	noStore(h)
	attrs := []any{"tenant", c.Param("tenant"), "route", c.Path(), "status", status, "error", string(e.ErrorType)}
	if status >= 500 {
		cause := "unknown"
		if e.Parent != nil {
			cause = e.Parent.Error()
		}
		s.log.Error("oauth request failed", append(attrs, "cause", cause)...)
		e = oidc.ErrServerError().WithDescription("internal error")
	} else {
		s.log.Debug("oauth request rejected", append(attrs, "description", e.Description)...)
	}
	if status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Basic realm="`+c.Param("tenant")+`", error="invalid_client"`)
	}
	return c.JSON(status, e)
}

// Shorthands for the errors the endpoints return. Descriptions are ours and
// never contain token values or patient data.
func errInvalidRequest(format string, args ...any) *oidc.Error {
	return oidc.ErrInvalidRequest().WithDescription(format, args...)
}
func errInvalidClient(format string, args ...any) *oidc.Error {
	return oidc.ErrInvalidClient().WithDescription(format, args...)
}
func errInvalidGrant(format string, args ...any) *oidc.Error {
	return oidc.ErrInvalidGrant().WithDescription(format, args...)
}
func errInvalidScope(format string, args ...any) *oidc.Error {
	return oidc.ErrInvalidScope().WithDescription(format, args...)
}
func errServer(cause error) *oidc.Error { return oidc.ErrServerError().WithParent(cause) }

// postForm parses the application/x-www-form-urlencoded body of an OAuth
// endpoint (query parameters are ignored) and refuses a parameter given
// more than once (RFC 6749 §3.1, §3.2).
func postForm(c *echo.Context) (url.Values, *oidc.Error) {
	r := c.Request()
	ct := r.Header.Get("Content-Type")
	if mt, _, _ := strings.Cut(ct, ";"); !strings.EqualFold(strings.TrimSpace(mt), "application/x-www-form-urlencoded") {
		return nil, errInvalidRequest("the body must be application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(c.Response(), r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return nil, errInvalidRequest("the body is not a valid form")
	}
	for k, v := range r.PostForm {
		if len(v) > 1 {
			return nil, errInvalidRequest("parameter %s is repeated", safeParam(k))
		}
	}
	return r.PostForm, nil
}

// safeParam returns a parameter name fit for an error message.
func safeParam(s string) string {
	if len(s) > 40 {
		return "(invalid)"
	}
	for _, r := range s {
		if !(r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return "(invalid)"
		}
	}
	return s
}

// randomToken returns n random bytes, base64url encoded.
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// hashKey is the SHA-256 of a secret value, hex: what state keys hold
// instead of codes and tokens.
func hashKey(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}
