package rest

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v5"
)

// CORS for the FHIR API (https://fetch.spec.whatwg.org/#http-cors-protocol),
// so that SMART apps running in a browser — public clients, the common kind
// — can call it. Access is by bearer token in the Authorization header,
// never by cookie, so any origin may call and credentials are not allowed:
// a page on another origin can do nothing a token does not allow.
const (
	corsAllowMethods  = "GET, POST, PUT, DELETE, OPTIONS"
	corsAllowHeaders  = "Authorization, Content-Type, Accept, Prefer, If-Match, If-None-Match, If-None-Exist, If-Modified-Since, X-Request-Id"
	corsExposeHeaders = "Location, Content-Location, ETag, Last-Modified, X-Request-Id, WWW-Authenticate"
)

// cors answers preflight requests to the FHIR API before routing (there
// are no OPTIONS routes) and marks every other response of it as readable
// by any origin.
func cors(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		r := c.Request()
		if !isFHIRPath(r.URL.Path) || r.Header.Get("Origin") == "" {
			return next(c)
		}
		h := c.Response().Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Add("Vary", "Origin")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", corsAllowMethods)
			h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
			h.Set("Access-Control-Max-Age", "600")
			return c.NoContent(http.StatusNoContent)
		}
		h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
		return next(c)
	}
}

// isFHIRPath reports whether p is under a tenant's FHIR base, /t/{tenant}/fhir.
func isFHIRPath(p string) bool {
	rest, ok := strings.CutPrefix(p, "/t/")
	if !ok {
		return false
	}
	_, after, ok := strings.Cut(rest, "/")
	return ok && (after == "fhir" || strings.HasPrefix(after, "fhir/"))
}
