package rest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"

	"github.com/labstack/echo/v5"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// Response headers carrying the correlation id of a request.
const (
	HeaderRequestID     = "X-Request-Id"
	HeaderCorrelationID = "X-Correlation-Id"
)

const ctxRequestID = "pulsewire.requestID"

// statusOf is the one map from error kind to HTTP status.
var statusOf = map[fhir.Kind]int{
	fhir.KindInternal:           http.StatusInternalServerError,
	fhir.KindInvalid:            http.StatusBadRequest,
	fhir.KindUnprocessable:      http.StatusUnprocessableEntity,
	fhir.KindNotFound:           http.StatusNotFound,
	fhir.KindGone:               http.StatusGone,
	fhir.KindConflict:           http.StatusConflict,
	fhir.KindPreconditionFailed: http.StatusPreconditionFailed,
	fhir.KindForbidden:          http.StatusForbidden,
	fhir.KindTooLarge:           http.StatusRequestEntityTooLarge,
	fhir.KindNotSupported:       http.StatusBadRequest,
	fhir.KindTooCostly:          http.StatusForbidden,
	fhir.KindUnauthorized:       http.StatusUnauthorized,
	fhir.KindUnavailable:        http.StatusServiceUnavailable,
}

// retryAfter is the Retry-After (seconds) of a 503: the exhausted resources
// (locks, connections) free up as the transactions holding them commit.
const retryAfter = "1"

// asFHIRError turns any error into the *fhir.Error the client is told about
// and its HTTP status. It is the single translation of errors for this API:
// the HTTP error handler and batch/transaction entries both use it.
func asFHIRError(err error) (*fhir.Error, int) {
	if errors.Is(err, errAppendOnly) {
		return errAppendOnly, http.StatusMethodNotAllowed
	}
	var fe *fhir.Error
	if errors.As(err, &fe) {
		st, ok := statusOf[fe.Kind]
		if !ok {
			st = http.StatusInternalServerError
		}
		if st == http.StatusInternalServerError {
			return &fhir.Error{Kind: fhir.KindInternal, Err: err}, st
		}
		return fe, st
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return fhir.Errorf(fhir.KindTooLarge, "request body is larger than %d bytes", mbe.Limit), http.StatusRequestEntityTooLarge
	}
	switch st := echo.StatusCode(err); st {
	case http.StatusNotFound:
		return fhir.Errorf(fhir.KindNotFound, "no such FHIR endpoint"), st
	case http.StatusMethodNotAllowed:
		return fhir.Errorf(fhir.KindNotSupported, "method not allowed on this endpoint"), st
	case http.StatusRequestEntityTooLarge:
		return fhir.Errorf(fhir.KindTooLarge, "request body too large"), st
	case http.StatusUnsupportedMediaType:
		return fhir.Errorf(fhir.KindNotSupported, "unsupported content type"), st
	case 0:
	default:
		if st >= 400 && st < 500 {
			return fhir.Errorf(fhir.KindInvalid, "%s", http.StatusText(st)), st
		}
	}
	return &fhir.Error{Kind: fhir.KindInternal, Err: err}, http.StatusInternalServerError
}

// ErrorHandler is echo's HTTPErrorHandler for the FHIR API: every error
// becomes an OperationOutcome with the status of its kind. Internal errors
// are logged (tenant, method, route pattern, status, correlation id and the
// error, never request bodies) and the client sees only "internal error;
// correlation id <id>".
func ErrorHandler(logger *slog.Logger) echo.HTTPErrorHandler {
	if logger == nil {
		logger = slog.Default()
	}
	return func(c *echo.Context, err error) {
		if r, _ := echo.UnwrapResponse(c.Response()); r != nil && r.Committed {
			return
		}
		id := requestIDOf(c)
		fe, status := asFHIRError(err)
		attrs := []any{
			"tenant", c.Param("tenant"),
			"method", c.Request().Method,
			"route", c.Path(),
			"status", status,
			"correlation_id", id,
		}
		if status >= 500 {
			logger.Error("fhir request failed", append(attrs, "error", err.Error())...)
		} else {
			logger.Debug("fhir request rejected", append(attrs, "issue", string(fe.Issue()))...)
		}
		body := outcomeJSON(outcomeFor(fe, id))
		if status == http.StatusServiceUnavailable {
			c.Response().Header().Set("Retry-After", retryAfter)
		}
		var werr error
		if c.Request().Method == http.MethodHead {
			werr = c.NoContent(status)
		} else {
			werr = c.Blob(status, contentType, body)
		}
		if werr != nil {
			logger.Debug("writing error response", "correlation_id", id, "error", werr.Error())
		}
	}
}

// outcomeFor builds the OperationOutcome the client sees for fe.
func outcomeFor(fe *fhir.Error, correlationID string) *operationOutcome {
	if fe.Kind == fhir.KindInternal {
		return &operationOutcome{
			ResourceType: "OperationOutcome",
			Issue: []ooIssue{{
				Severity:    "error",
				Code:        string(fhir.IssueException),
				Diagnostics: "internal error; correlation id " + correlationID,
			}},
		}
	}
	msg := fe.Msg
	if msg == "" {
		msg = string(fe.Issue())
	}
	var details *ooConcept
	if r := denialReason(fe); r != "" {
		details = &ooConcept{Coding: []ooCoding{{System: reasonSystem, Code: string(r)}}}
	}
	return &operationOutcome{
		ResourceType: "OperationOutcome",
		Issue: []ooIssue{{
			Severity:    "error",
			Code:        string(fe.Issue()),
			Details:     details,
			Diagnostics: msg,
			Expression:  fe.Expression,
		}},
	}
}

type operationOutcome struct {
	ResourceType string    `json:"resourceType"`
	Issue        []ooIssue `json:"issue"`
}

type ooIssue struct {
	Severity    string     `json:"severity"`
	Code        string     `json:"code"`
	Details     *ooConcept `json:"details,omitempty"`
	Diagnostics string     `json:"diagnostics,omitempty"`
	Expression  []string   `json:"expression,omitempty"`
}

type ooConcept struct {
	Coding []ooCoding `json:"coding"`
}

type ooCoding struct {
	System string `json:"system"`
	Code   string `json:"code"`
}

func outcomeJSON(oo *operationOutcome) []byte {
	b, err := marshal(oo)
	if err != nil { // cannot happen: plain strings
		return []byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception"}]}`)
	}
	return b
}

func informational(msg string) []byte {
	return outcomeJSON(&operationOutcome{ResourceType: "OperationOutcome", Issue: []ooIssue{{Severity: "information", Code: string(fhir.IssueInformational), Diagnostics: msg}}})
}

// requestID gives every request a correlation id: the client's X-Request-Id
// when it is a short token, else a random one. It is echoed in the
// X-Request-Id and X-Correlation-Id response headers.
func requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		id := c.Request().Header.Get(HeaderRequestID)
		if !validRequestID(id) {
			id = newRequestID()
		}
		c.Set(ctxRequestID, id)
		h := c.Response().Header()
		h.Set(HeaderRequestID, id)
		h.Set(HeaderCorrelationID, id)
		return next(c)
	}
}

func requestIDOf(c *echo.Context) string {
	if id, ok := c.Get(ctxRequestID).(string); ok && id != "" {
		return id
	}
	// The error arose before requestID ran (outside the FHIR group).
	id := newRequestID()
	c.Set(ctxRequestID, id)
	h := c.Response().Header()
	h.Set(HeaderRequestID, id)
	h.Set(HeaderCorrelationID, id)
	return id
}

func validRequestID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// recoverPanic turns a panic in a handler into an internal error, so that it
// goes through ErrorHandler like any other.
func recoverPanic(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				buf := make([]byte, 4<<10)
				buf = buf[:runtime.Stack(buf, false)]
				err = &fhir.Error{Kind: fhir.KindInternal, Err: fmt.Errorf("panic: %v\n%s", r, buf)}
			}
		}()
		return next(c)
	}
}
