package smart

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"strings"

	"github.com/labstack/echo/v5"
)

//go:embed templates/*.html
var templateFiles embed.FS

// pages are the HTML pages of the authorization flow (html/template: every
// value is escaped). They carry no script and no secret: only the request
// id and CSRF token, which are useless without this browser's cookie.
type pages struct{ t *template.Template }

func loadPages() (*pages, error) {
	t, err := template.ParseFS(templateFiles, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("parsing page templates: %w", err)
	}
	return &pages{t: t}, nil
}

type loginPage struct {
	Tenant, Client, Req, CSRF, Action, Error string
}

type scopeLine struct{ Scope, Text string }

type approvePage struct {
	Tenant, Client, Req, CSRF, Action, User, Error, Query string
	Scopes                                                []scopeLine
	PickPatient                                           bool
	Patients                                              []PatientChoice
}

type errorPageData struct{ Message string }

// securityHeaders are set on every page: no caching, no framing
// (clickjacking of the approval page), no script at all.
func securityHeaders(h http.Header) {
	noStore(h)
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}

// render writes the page name with data.
func (s *Server) render(c *echo.Context, status int, name string, data any) error {
	var buf bytes.Buffer
	if err := s.pages.t.ExecuteTemplate(&buf, name+".html", data); err != nil {
		return fmt.Errorf("rendering page %s: %w", name, err)
	}
	securityHeaders(c.Response().Header())
	return c.HTMLBlob(status, buf.Bytes())
}

// errorPage shows an error the user (not the app) must see: the request
// cannot be sent back to a redirect URI we do not trust.
func (s *Server) errorPage(c *echo.Context, status int, msg string) error {
	return s.render(c, status, "error", errorPageData{Message: msg})
}

// describeScope says in words what a scope asks for, for the approval
// page. It is display only: server/authz decides what a scope permits.
func describeScope(sc string) string {
	switch sc {
	case "openid":
		return "Confirm your identity to the application"
	case "fhirUser", "profile":
		return "Tell the application which user record is yours"
	case "launch":
		return "Use the patient and encounter of the current session"
	case "launch/patient":
		return "Work with one patient"
	case "launch/encounter":
		return "Work with the current encounter"
	case "offline_access":
		return "Keep access after you sign out (until you revoke it)"
	case "online_access":
		return "Keep access while you are signed in"
	}
	ctx, rest, ok := strings.Cut(sc, "/")
	if !ok || !isResourceScope(sc) {
		return "Other access: " + sc
	}
	typ, perms, ok := strings.Cut(rest, ".")
	if !ok {
		return "Access: " + sc
	}
	perms, query, _ := strings.Cut(perms, "?")
	var what string
	switch perms {
	case "read":
		what = "Read and search"
	case "write":
		what = "Create, change and delete"
	case "*":
		what = "Read, search, create, change and delete"
	default:
		var verbs []string
		for _, p := range perms {
			switch p {
			case 'c':
				verbs = append(verbs, "create")
			case 'r':
				verbs = append(verbs, "read")
			case 'u':
				verbs = append(verbs, "change")
			case 'd':
				verbs = append(verbs, "delete")
			case 's':
				verbs = append(verbs, "search")
			}
		}
		if len(verbs) == 0 {
			return "Access: " + sc
		}
		what = joinWords(verbs)
		what = strings.ToUpper(what[:1]) + what[1:]
	}
	records := typ + " records"
	if typ == "*" {
		records = "all records"
	}
	whose := map[string]string{
		"patient": "of the patient in context",
		"user":    "you may access",
		"system":  "of every patient (system access)",
	}[ctx]
	s := what + " " + records + " " + whose
	if query != "" {
		s += " (only those matching " + query + ")"
	}
	return s
}

// joinWords joins ["a", "b", "c"] as "a, b and c".
func joinWords(w []string) string {
	if len(w) == 1 {
		return w[0]
	}
	return strings.Join(w[:len(w)-1], ", ") + " and " + w[len(w)-1]
}
