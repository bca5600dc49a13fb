package graph

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// The stable extensions.code values of Pulsewire's GraphQL errors. Clients
// may rely on them; messages may change.
const (
	CodeBadUserInput     = "BAD_USER_INPUT"            // an argument or search parameter is invalid or unsupported
	CodeNotFound         = "NOT_FOUND"                 // no such resource (or tenant)
	CodeGone             = "GONE"                      // the resource is deleted
	CodeMultipleMatches  = "MULTIPLE_MATCHES"          // an identifier that should name one resource names several
	CodeConflict         = "CONFLICT"                  // a version conflict
	CodeUnauthenticated  = "UNAUTHENTICATED"           // no valid access token
	CodeForbidden        = "FORBIDDEN"                 // the token's scopes or launch context do not allow it
	CodeConsentDenied    = "CONSENT_DENIED"            // a patient's Consent (or opt-in policy) withholds it
	CodeTooCostly        = "TOO_COSTLY"                // the store refused a search as too expensive
	CodeTimeout          = "TIMEOUT"                   // the request ran out of time
	CodeUnavailable      = "SERVICE_UNAVAILABLE"       // the database's locks or connections are exhausted for now: retry
	CodeInternal         = "INTERNAL_SERVER_ERROR"     // our fault; extensions.correlationId is logged with the cause
	CodeQueryTooDeep     = "QUERY_TOO_DEEP"            // Limits.MaxDepth
	CodeTooComplex       = "COMPLEXITY_LIMIT_EXCEEDED" // Limits.MaxComplexity (gqlgen's code) or Limits.MaxFields at the gateway
	CodeResultTooLarge   = "RESULT_TOO_LARGE"          // Limits.MaxResources or Limits.MaxResponseBytes
	CodeRequestTooLarge  = "REQUEST_TOO_LARGE"         // Limits.MaxBodyBytes
	CodeIntrospection    = "INTROSPECTION_DISABLED"    // Limits.Introspection is off
	CodeSubgraphUnavail  = "SUBGRAPH_UNAVAILABLE"      // a subgraph did not answer (partial data)
	CodeValidationFailed = "GRAPHQL_VALIDATION_FAILED" // the operation does not fit the schema
	CodeParseFailed      = "GRAPHQL_PARSE_FAILED"      // the request is not a GraphQL request
	CodeMethodNotAllowed = "METHOD_NOT_ALLOWED"        // not POST
	CodeUnsupportedMedia = "UNSUPPORTED_MEDIA_TYPE"    // not application/json
	CodeTenantRequired   = "TENANT_REQUIRED"           // /graphql without X-Pulsewire-Tenant
)

// limitError is a protection limit that was hit.
type limitError struct {
	code string
	msg  string
}

func (e *limitError) Error() string { return e.msg }

func limitf(code, format string, args ...any) error {
	return &limitError{code: code, msg: fmt.Sprintf(format, args...)}
}

// withheld reports resources a list left out: one error per list and
// code, with how many were withheld.
type withheld struct {
	typ    string
	reason string
	code   string
	count  int
}

func (w *withheld) Error() string {
	return fmt.Sprintf("%d %s resource(s) withheld (%s)", w.count, w.typ, w.reason)
}

// withheldErrors groups the denials of one list by code.
func withheldErrors(ds []*Denied) []error {
	var out []*withheld
	for _, d := range ds {
		found := false
		for _, w := range out {
			if w.code == d.Code() && w.typ == d.Type {
				w.count++
				found = true
				break
			}
		}
		if !found {
			out = append(out, &withheld{typ: d.Type, reason: d.Reason, code: d.Code(), count: 1})
		}
	}
	errs := make([]error, len(out))
	for i, w := range out {
		errs[i] = w
	}
	return errs
}

// clientError is what the client is told about an error: a stable code, a
// message without internal text or patient data, and extensions.
type clientError struct {
	code string
	msg  string
	ext  map[string]any
}

// codeOfKind is the one map from error kind to GraphQL code.
var codeOfKind = map[fhir.Kind]string{
	fhir.KindInvalid:            CodeBadUserInput,
	fhir.KindUnprocessable:      CodeBadUserInput,
	fhir.KindNotSupported:       CodeBadUserInput,
	fhir.KindNotFound:           CodeNotFound,
	fhir.KindGone:               CodeGone,
	fhir.KindConflict:           CodeConflict,
	fhir.KindPreconditionFailed: CodeConflict,
	fhir.KindForbidden:          CodeForbidden,
	fhir.KindTooLarge:           CodeRequestTooLarge,
	fhir.KindTooCostly:          CodeTooCostly,
	fhir.KindUnauthorized:       CodeUnauthenticated,
	fhir.KindUnavailable:        CodeUnavailable,
}

// classify is the single translation of our errors for GraphQL clients;
// ok false means an internal error (logged, shown only by correlation id).
func classify(err error) (ce clientError, ok bool) {
	var (
		w  *withheld
		d  *Denied
		le *limitError
		fe *fhir.Error
	)
	switch {
	case errors.As(err, &w):
		return clientError{code: w.code, msg: w.Error(), ext: map[string]any{
			"reason": w.reason, "resourceType": w.typ, "withheld": w.count}}, true
	case errors.As(err, &d):
		return clientError{code: d.Code(), msg: d.Error(), ext: map[string]any{
			"reason": d.Reason, "resourceType": d.Type}}, true
	case errors.As(err, &le):
		return clientError{code: le.code, msg: le.msg}, true
	case errors.Is(err, context.DeadlineExceeded):
		return clientError{code: CodeTimeout, msg: "the request took longer than allowed"}, true
	case errors.As(err, &fe):
		code, known := codeOfKind[fe.Kind]
		if !known {
			return clientError{}, false
		}
		if fe.Issue() == fhir.IssueMultipleMatches {
			code = CodeMultipleMatches
		}
		ext := map[string]any{"issue": string(fe.Issue())}
		if len(fe.Expression) > 0 {
			ext["expression"] = fe.Expression
		}
		return clientError{code: code, msg: fe.Msg, ext: ext}, true
	}
	return clientError{}, false
}

// newCorrelationID returns a random id that ties a client's error to the
// log line with its cause.
func newCorrelationID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// errorPresenter is gqlgen's error presenter for the subgraph: every error
// a resolver returns passes through it.
func errorPresenter(log *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		var ge *gqlerror.Error
		if errors.As(err, &ge) && ge.Err == nil {
			// gqlgen's own (parsing, validation, complexity): already
			// client-safe and coded.
			return ge
		}
		out := &gqlerror.Error{Path: graphql.GetPath(ctx), Err: err}
		if ge != nil {
			out.Path, out.Locations = ge.Path, ge.Locations
		}
		ce, ok := classify(err)
		if !ok {
			id := newCorrelationID()
			log.Error("graphql resolver failed", "path", out.Path.String(), "correlation_id", id, "error", err.Error())
			out.Message = "internal error; correlation id " + id
			out.Extensions = map[string]any{"code": CodeInternal, "correlationId": id}
			return out
		}
		out.Message = ce.msg
		out.Extensions = map[string]any{"code": ce.code}
		for k, v := range ce.ext {
			out.Extensions[k] = v
		}
		return out
	}
}

// recoverPanic turns a resolver panic into an internal error, which the
// presenter logs and shows only by correlation id.
func recoverPanic(_ context.Context, v any) error {
	return fhir.Errorf(fhir.KindInternal, "resolver panicked").Wrap(fmt.Errorf("panic: %v", v))
}

// httpStatusOf is the HTTP status of a request refused before execution.
func httpStatusOf(code string) int {
	switch code {
	case CodeUnauthenticated:
		return http.StatusUnauthorized
	case CodeForbidden, CodeConsentDenied:
		return http.StatusForbidden
	case CodeNotFound:
		return http.StatusNotFound
	case CodeRequestTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case CodeUnsupportedMedia:
		return http.StatusUnsupportedMediaType
	case CodeInternal:
		return http.StatusInternalServerError
	case CodeTimeout:
		return http.StatusGatewayTimeout
	}
	return http.StatusBadRequest
}
