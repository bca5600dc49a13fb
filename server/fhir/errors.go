package fhir

import (
	"errors"
	"fmt"
)

// IssueType is an OperationOutcome.issue.code value
// (https://hl7.org/fhir/R4/valueset-issue-type.html).
type IssueType string

// The issue types Pulsewire reports.
const (
	IssueInvalid         IssueType = "invalid"
	IssueStructure       IssueType = "structure"
	IssueRequired        IssueType = "required"
	IssueValue           IssueType = "value"
	IssueInvariant       IssueType = "invariant"
	IssueProcessing      IssueType = "processing"
	IssueNotSupported    IssueType = "not-supported"
	IssueDuplicate       IssueType = "duplicate"
	IssueMultipleMatches IssueType = "multiple-matches"
	IssueNotFound        IssueType = "not-found"
	IssueDeleted         IssueType = "deleted"
	IssueTooLong         IssueType = "too-long"
	IssueConflict        IssueType = "conflict"
	IssueForbidden       IssueType = "forbidden"
	IssueTooCostly       IssueType = "too-costly"
	IssueBusinessRule    IssueType = "business-rule"
	IssueException       IssueType = "exception"
	IssueTimeout         IssueType = "timeout"
	IssueTransient       IssueType = "transient"
	IssueInformational   IssueType = "informational"
)

// Kind classifies an error by what the client did wrong (or that we did).
// server/rest maps each Kind to one HTTP status in one place.
type Kind int

// Error kinds. The comment names the HTTP status server/rest uses.
const (
	KindInternal           Kind = iota // 500: our fault; the client sees only a correlation id
	KindInvalid                        // 400: malformed request, bad syntax, bad search parameter
	KindUnprocessable                  // 422: well-formed but fails validation or business rules
	KindNotFound                       // 404
	KindGone                           // 410: the resource is deleted
	KindConflict                       // 409: version conflict without If-Match, duplicate
	KindPreconditionFailed             // 412: If-Match mismatch, conditional op with several matches
	KindForbidden                      // 403
	KindTooLarge                       // 413: body over the configured limit
	KindNotSupported                   // 400 (or 405 for a method): unknown type, interaction or parameter
	KindTooCostly                      // 403 per FHIR: a search too expensive to run
	KindUnauthorized                   // 401
	KindUnavailable                    // 503 with Retry-After: a resource of the server is exhausted for now (the database's locks or connections); nothing was written, try again
)

// defaultIssue is the OperationOutcome issue type a Kind gets when the error
// does not name one.
var defaultIssue = map[Kind]IssueType{
	KindInternal:           IssueException,
	KindInvalid:            IssueInvalid,
	KindUnprocessable:      IssueProcessing,
	KindNotFound:           IssueNotFound,
	KindGone:               IssueDeleted,
	KindConflict:           IssueConflict,
	KindPreconditionFailed: IssueConflict,
	KindForbidden:          IssueForbidden,
	KindTooLarge:           IssueTooLong,
	KindNotSupported:       IssueNotSupported,
	KindTooCostly:          IssueTooCostly,
	KindUnauthorized:       IssueForbidden,
	KindUnavailable:        IssueTransient,
}

// Error is Pulsewire's one error vocabulary. Msg and Expression are shown to
// the client and must never hold patient data (ids, types and element paths
// only). Err is the internal cause: logged, never shown.
type Error struct {
	Kind       Kind
	Code       IssueType // zero: the Kind's default
	Msg        string
	Expression []string // element paths, e.g. "Observation.status"
	Err        error
}

func (e *Error) Error() string {
	s := e.Msg
	if len(e.Expression) > 0 {
		s = fmt.Sprintf("%s (at %v)", s, e.Expression)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Issue returns the OperationOutcome issue type for the error.
func (e *Error) Issue() IssueType {
	if e.Code != "" {
		return e.Code
	}
	return defaultIssue[e.Kind]
}

// Errorf builds an *Error of kind k with a client-safe message.
func Errorf(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Msg: fmt.Sprintf(format, args...)}
}

// At returns a copy of e pointing at the given element paths.
func (e *Error) At(expr ...string) *Error {
	c := *e
	c.Expression = append(append([]string(nil), e.Expression...), expr...)
	return &c
}

// WithCode returns a copy of e with an explicit issue type.
func (e *Error) WithCode(code IssueType) *Error {
	c := *e
	c.Code = code
	return &c
}

// Wrap returns a copy of e carrying err as its internal cause.
func (e *Error) Wrap(err error) *Error {
	c := *e
	c.Err = err
	return &c
}

// ErrorKind returns the Kind of err: the Kind of the first *Error in its
// chain, or KindInternal when there is none.
func ErrorKind(err error) Kind {
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Kind
	}
	return KindInternal
}

// IsKind reports whether err is an *Error of kind k.
func IsKind(err error, k Kind) bool {
	var fe *Error
	return errors.As(err, &fe) && fe.Kind == k
}
