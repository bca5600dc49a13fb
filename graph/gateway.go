package graph

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/jensneuse/abstractlogger"
	nodev1 "github.com/wundergraph/cosmo/router/gen/proto/wg/cosmo/node/v1"
	"github.com/wundergraph/graphql-go-tools/execution/engine"
	gql "github.com/wundergraph/graphql-go-tools/execution/graphql"
	"github.com/wundergraph/graphql-go-tools/v2/pkg/engine/resolve"
	"github.com/wundergraph/graphql-go-tools/v2/pkg/graphqlerrors"
	"github.com/wundergraph/graphql-go-tools/v2/pkg/operationreport"
	"github.com/wundergraph/graphql-go-tools/v2/pkg/variablesvalidation"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/pulsewire/pulsewire/server/smart"
)

// Supergraph is the composed supergraph the gateway serves by default
// (supergraph/config.json, from supergraph/graph.yaml by `make generate`).
//
//go:embed supergraph/config.json
var Supergraph []byte

// HeaderTenant carries the tenant to every subgraph (and names it on
// /graphql).
const HeaderTenant = "X-Pulsewire-Tenant"

// Our own subgraph: its name in the supergraph, and the routing URL the
// gateway serves in process instead of over the network.
const (
	subgraphName  = "pulsewire"
	inProcessHost = "pulsewire.internal"
)

// Remote is where a subgraph of the supergraph is served.
type Remote struct {
	// URL replaces the routing URL composed into the supergraph. The
	// literal {tenant} in it is replaced by the request's tenant, e.g.
	// https://graph.example/t/{tenant}/graphql/subgraph.
	URL string
	// Timeout bounds each request to the subgraph; default 5 s.
	Timeout time.Duration
}

// ParseRemotes reads the remote subgraphs of the configuration (main's
// PULSEWIRE_GRAPHQL_REMOTES): a JSON object of subgraph name to
// {"url": "...", "timeout": "2s"}; "" means none.
func ParseRemotes(s string) (map[string]Remote, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var raw map[string]struct {
		URL     string `json:"url"`
		Timeout string `json:"timeout"`
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("reading remote subgraphs (JSON object of name to {url, timeout}): %w", err)
	}
	out := make(map[string]Remote, len(raw))
	for name, r := range raw {
		if _, err := urlKey(r.URL); err != nil {
			return nil, fmt.Errorf("remote subgraph %q: %w", name, err)
		}
		rem := Remote{URL: r.URL}
		if r.Timeout != "" {
			d, err := time.ParseDuration(r.Timeout)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("remote subgraph %q: timeout %q is not a positive duration", name, r.Timeout)
			}
			rem.Timeout = d
		}
		out[name] = rem
	}
	return out, nil
}

// gateway is the embedded federation gateway: graphql-go-tools' execution
// engine on the composed supergraph, and the HTTP around it.
type gateway struct {
	engine   *engine.ExecutionEngine
	limits   *Limits
	log      *slog.Logger
	names    map[string]string // datasource id -> subgraph name
	remotes  map[string]Remote // "host/path" of a subgraph URL -> its settings
	local    func(w http.ResponseWriter, r *http.Request, c *call)
	base     http.RoundTripper
	defaultT time.Duration
	router   *router // routes operations to the engine or the fast path
}

// call is what a gateway request hands to the subgraphs it calls in
// process: its tenant and the caller's grant (authenticated already).
type call struct {
	tenant string
	grant  *smart.Grant
}

type callKey struct{}

func callOf(ctx context.Context) *call {
	c, _ := ctx.Value(callKey{}).(*call)
	return c
}

// bearerPattern is an Authorization header the gateway forwards: a bearer
// token of base64url, JWT and RFC 6750 b64token characters.
var bearerPattern = regexp.MustCompile(`^[Bb]earer [A-Za-z0-9._~+/-]+=*$`)

// forwarded are the headers every subgraph request carries, copied from the
// client's request. They are also part of the engine's key for sharing one
// subgraph response between identical concurrent fetches, so that fetches
// of different callers are never shared.
var forwarded = []string{"Authorization", HeaderTenant}

func newGateway(ctx context.Context, config []byte, remotes map[string]Remote, base http.RoundTripper, limits *Limits, log *slog.Logger,
	local func(http.ResponseWriter, *http.Request, *call)) (*gateway, error) {
	var rc nodev1.RouterConfig
	if err := protojson.Unmarshal(config, &rc); err != nil {
		return nil, fmt.Errorf("reading the composed supergraph: %w", err)
	}
	if rc.EngineConfig == nil {
		return nil, errors.New("the composed supergraph has no engine configuration")
	}
	gw := &gateway{limits: limits, log: log, local: local, base: base, names: map[string]string{},
		remotes: map[string]Remote{}, defaultT: 5 * time.Second}
	for _, sg := range rc.Subgraphs {
		gw.names[sg.Id] = sg.Name
	}
	used := map[string]bool{}
	var ours localFields
	for _, ds := range rc.EngineConfig.DatasourceConfigurations {
		if ds.CustomGraphql == nil || ds.CustomGraphql.Fetch == nil {
			return nil, fmt.Errorf("subgraph %q has no fetch configuration", gw.names[ds.Id])
		}
		f := ds.CustomGraphql.Fetch
		name := gw.names[ds.Id]
		rem, ok := remotes[name]
		if ok {
			used[name] = true
			f.Url = &nodev1.ConfigurationVariable{StaticVariableContent: rem.URL}
		} else {
			rem.URL = engine.LoadStringVariable(f.Url)
		}
		key, err := urlKey(rem.URL)
		if err != nil {
			return nil, fmt.Errorf("subgraph %q: %w", name, err)
		}
		gw.remotes[key] = rem
		if name == subgraphName && strings.HasPrefix(key, inProcessHost+"/") {
			ours = newLocalFields(ds)
		}
		if f.Header == nil {
			f.Header = map[string]*nodev1.HTTPHeader{}
		}
		for _, h := range forwarded {
			f.Header[h] = &nodev1.HTTPHeader{Values: []*nodev1.ConfigurationVariable{
				{StaticVariableContent: "{{ .request.headers." + h + " }}"}}}
		}
	}
	for name := range remotes {
		if !used[name] {
			return nil, fmt.Errorf("remote subgraph %q is not in the composed supergraph", name)
		}
	}
	var err error
	if gw.router, err = newRouter(rc.EngineConfig.GraphqlSchema, ours); err != nil {
		// The engine reads the schema its own way: serve, without the
		// fast path.
		log.Warn("graphql gateway: the supergraph's schema does not load for the fast path; every operation is planned",
			"error", err.Error())
		gw.router, _ = newRouter("", nil)
	}
	client := &http.Client{Transport: gw}
	factory := engine.NewFederationEngineConfigFactory(ctx, engine.WithFederationHttpClient(client))
	conf, err := factory.BuildEngineConfiguration(&rc)
	if err != nil {
		return nil, fmt.Errorf("building the gateway's engine configuration: %w", err)
	}
	gw.engine, err = engine.NewExecutionEngine(ctx, abstractlogger.NoopLogger, conf, resolve.ResolverOptions{
		MaxConcurrency:               1024,
		PropagateSubgraphErrors:      true,
		SubgraphErrorPropagationMode: resolve.SubgraphErrorPropagationModePassThrough,
		RewriteSubgraphErrorPaths:    true,
		AllowAllErrorExtensionFields: true,
		OmitSubgraphErrorLocations:   true,
	})
	if err != nil {
		return nil, fmt.Errorf("starting the gateway's engine: %w", err)
	}
	return gw, nil
}

// urlKey identifies a subgraph URL by host and path, as the engine's
// requests carry them ({tenant} unreplaced).
func urlKey(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("subgraph URL %q is not an absolute http(s) URL", raw)
	}
	return u.Host + u.Path, nil
}

// RoundTrip is the engine's HTTP client: the in-process subgraph is served
// by calling it, remote ones get the tenant in their URL and a timeout.
func (gw *gateway) RoundTrip(req *http.Request) (*http.Response, error) {
	c := callOf(req.Context())
	if c == nil {
		return nil, errors.New("subgraph request outside a gateway request")
	}
	if req.URL.Host == inProcessHost {
		rec := &recorder{header: http.Header{}}
		gw.local(rec, req, c)
		return rec.response(req), nil
	}
	rem, ok := gw.remotes[req.URL.Host+req.URL.Path]
	if !ok {
		return nil, fmt.Errorf("request to an unknown subgraph host %s", req.URL.Host)
	}
	if strings.Contains(req.URL.Path, "{tenant}") {
		u := *req.URL
		u.Path, u.RawPath = strings.ReplaceAll(u.Path, "{tenant}", c.tenant), ""
		req = req.Clone(req.Context())
		req.URL = &u
		req.Host = ""
	}
	timeout := rem.Timeout
	if timeout <= 0 {
		timeout = gw.defaultT
	}
	ctx, cancel := context.WithTimeout(req.Context(), timeout)
	resp, err := gw.base.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// recorder is the response of the in-process subgraph.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(s int) {
	if r.status == 0 {
		r.status = s
	}
}

func (r *recorder) response(req *http.Request) *http.Response {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return &http.Response{
		StatusCode: r.status, Status: http.StatusText(r.status), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: r.header, Body: io.NopCloser(&r.body), ContentLength: int64(r.body.Len()), Request: req,
	}
}

// gqlRequest is a GraphQL-over-HTTP request body.
type gqlRequest struct {
	Query         string          `json:"query"`
	OperationName string          `json:"operationName"`
	Variables     json.RawMessage `json:"variables"`
	Extensions    json.RawMessage `json:"extensions"`
}

// readRequest reads and checks a GraphQL request body against the limits.
func readRequest(w http.ResponseWriter, r *http.Request, l *Limits) (*gqlRequest, *errorResponse) {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return nil, refuse(CodeUnsupportedMedia, "send the GraphQL request as application/json")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, l.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, refuse(CodeRequestTooLarge, "the request body is larger than %d bytes", l.MaxBodyBytes)
		}
		return nil, refuse(CodeParseFailed, "reading the request body failed")
	}
	var req gqlRequest
	if err := json.Unmarshal(body, &req); err != nil || strings.TrimSpace(req.Query) == "" {
		return nil, refuse(CodeParseFailed, "the body must be a JSON object with a query")
	}
	return &req, nil
}

// execute runs one operation of an authenticated caller on the engine.
// ctx carries the request's deadline; hdr the headers forwarded to every
// subgraph.
func (gw *gateway) execute(ctx context.Context, w http.ResponseWriter, req *gqlRequest, tenant string, g *smart.Grant, hdr http.Header) {
	ctx = context.WithValue(ctx, callKey{}, &call{tenant: tenant, grant: g})
	op := &gql.Request{Query: req.Query, OperationName: req.OperationName, Variables: req.Variables}
	var buf bytes.Buffer
	rw := gql.NewEngineResultWriterFromBuffer(&buf)
	if err := gw.engine.Execute(ctx, op, &rw, engine.WithAdditionalHttpHeaders(hdr)); err != nil {
		gw.executeError(err).write(w)
		return
	}
	out := gw.annotate(buf.Bytes())
	if len(out) > gw.limits.MaxResponseBytes {
		refuse(CodeResultTooLarge, "the response is larger than %d bytes; select less", gw.limits.MaxResponseBytes).write(w)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// executeError turns an error of the engine (the operation does not
// validate, cannot be planned, ...) into the errors the client sees.
func (gw *gateway) executeError(err error) *errorResponse {
	if errors.Is(err, context.DeadlineExceeded) {
		return refuse(CodeTimeout, "the request took longer than %v", gw.limits.Timeout)
	}
	var (
		report operationreport.Report
		reqErr graphqlerrors.RequestErrors
		varErr *variablesvalidation.InvalidVariableError
	)
	resp := &errorResponse{status: http.StatusOK}
	switch {
	case errors.As(err, &varErr):
		// The client's own variables: its message may quote their values,
		// which is why it is answered and never logged.
		resp.Errors = append(resp.Errors, responseError{Message: varErr.Message, Extensions: map[string]any{"code": CodeValidationFailed}})
		return resp
	case errors.As(err, &report) && len(report.ExternalErrors) > 0:
		for _, e := range report.ExternalErrors {
			resp.Errors = append(resp.Errors, responseError{Message: e.Message, Extensions: map[string]any{"code": CodeValidationFailed}})
		}
		return resp
	case errors.As(err, &reqErr) && len(reqErr) > 0:
		for _, e := range reqErr {
			resp.Errors = append(resp.Errors, responseError{Message: e.Message, Extensions: map[string]any{"code": CodeValidationFailed}})
		}
		return resp
	}
	id := newCorrelationID()
	gw.log.Error("graphql gateway request failed", "correlation_id", id, "error", err.Error())
	r := refuse(CodeInternal, "internal error; correlation id %s", id)
	r.Errors[0].Extensions["correlationId"] = id
	return r
}

const fetchFailed = "Failed to fetch from Subgraph"

// annotate gives the engine's errors for a subgraph that did not answer a
// stable code and the subgraph's name, and drops the transport detail
// (addresses) from their message.
func (gw *gateway) annotate(out []byte) []byte {
	if !bytes.Contains(out, []byte(fetchFailed)) {
		return out
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(out, &top) != nil {
		return out
	}
	var errs []map[string]any
	if json.Unmarshal(top["errors"], &errs) != nil {
		return out
	}
	for _, e := range errs {
		msg, _ := e["message"].(string)
		if !strings.HasPrefix(msg, fetchFailed) {
			continue
		}
		name := ""
		if _, rest, ok := strings.Cut(msg, "'"); ok {
			name, _, _ = strings.Cut(rest, "'")
		}
		if _, rest, ok := strings.Cut(msg, " at Path '"); ok && e["path"] == nil {
			p, _, _ := strings.Cut(rest, "'")
			var path []any
			for _, seg := range strings.Split(p, ".") {
				if seg != "" && seg != "@" {
					path = append(path, seg)
				}
			}
			if len(path) > 0 {
				e["path"] = path
			}
		}
		if n, ok := gw.names[name]; ok {
			name = n
		}
		ext, _ := e["extensions"].(map[string]any)
		if ext == nil {
			ext = map[string]any{}
		}
		if _, has := ext["code"]; !has {
			ext["code"] = CodeSubgraphUnavail
		}
		if name != "" {
			ext["serviceName"] = name
			e["message"] = fmt.Sprintf("subgraph %q did not answer", name)
		} else {
			e["message"] = "a subgraph did not answer"
		}
		e["extensions"] = ext
	}
	b, err := json.Marshal(errs)
	if err != nil {
		return out
	}
	// errors first, then data and extensions, as the engine writes them.
	var buf bytes.Buffer
	buf.WriteString(`{"errors":`)
	buf.Write(b)
	for _, k := range []string{"data", "extensions"} {
		if v, ok := top[k]; ok {
			fmt.Fprintf(&buf, `,%q:`, k)
			buf.Write(v)
		}
	}
	buf.WriteByte('}')
	return buf.Bytes()
}

// errorResponse is a response with errors only, for requests refused
// before (or failed during) execution.
type errorResponse struct {
	status int
	header http.Header     // extra response headers (WWW-Authenticate, Allow)
	Errors []responseError `json:"errors"`
}

// code is the first error's extensions.code ("" when it has none).
func (r *errorResponse) code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	c, _ := r.Errors[0].Extensions["code"].(string)
	return c
}

type responseError struct {
	Message    string         `json:"message"`
	Extensions map[string]any `json:"extensions,omitempty"`
}

func refuse(code, format string, args ...any) *errorResponse {
	return &errorResponse{status: httpStatusOf(code), Errors: []responseError{{
		Message: fmt.Sprintf(format, args...), Extensions: map[string]any{"code": code}}}}
}

func (e *errorResponse) write(w http.ResponseWriter) {
	b, _ := json.Marshal(e) // strings and maps of strings and ints
	for k, v := range e.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	_, _ = w.Write(b)
}
