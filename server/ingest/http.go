package ingest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// HTTPConfig limits the HTTP ingest endpoint.
type HTTPConfig struct {
	MaxReadings  int   // readings per batch; 0 means 1000
	MaxBodyBytes int64 // request body; 0 means 8 MiB
	// Operator guards the operator routes (associations, release, dead
	// letters): server/app passes a check for the admin token or a system/*
	// access token. nil leaves them open (authorization off).
	Operator echo.MiddlewareFunc
}

// Register adds the ingest routes to e. Errors are returned to echo, whose
// HTTPErrorHandler (rest.ErrorHandler, installed by the FHIR API) renders
// them as OperationOutcome.
//
//	POST /t/{tenant}/ingest/readings                       device key (Bearer); batch in, per-reading results out
//	POST /t/{tenant}/ingest/associations                   assign / reassign / end (Association JSON)
//	POST /t/{tenant}/ingest/devices/{id}/$release          release a device's held readings
//	GET  /t/{tenant}/ingest/dead-letters?_count=&_offset=  list
//	GET  /t/{tenant}/ingest/dead-letters/{id}              inspect (payload as JSON, or payloadBase64)
//	POST /t/{tenant}/ingest/dead-letters/{id}/$replay      replay through the current templates
//
// The readings route takes device keys; the operator routes go through
// cfg.Operator.
func (in *Ingestor) Register(e *echo.Echo, cfg HTTPConfig) {
	if cfg.MaxReadings <= 0 {
		cfg.MaxReadings = 1000
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 8 << 20
	}
	g := e.Group("/t/:tenant/ingest")
	var op []echo.MiddlewareFunc
	if cfg.Operator != nil {
		op = append(op, cfg.Operator)
	}
	g.POST("/readings", func(c *echo.Context) error { return in.postReadings(c, cfg) })
	g.POST("/associations", func(c *echo.Context) error { return in.postAssociation(c, cfg) }, op...)
	g.POST("/devices/:id/$release", in.postRelease, op...)
	g.GET("/dead-letters", in.listDeadLetters, op...)
	g.GET("/dead-letters/:id", in.getDeadLetter, op...)
	g.POST("/dead-letters/:id/$replay", in.replayDeadLetter, op...)
}

// readingResult is one entry of the readings response.
type readingResult struct {
	Index       int    `json:"index"`
	Observation string `json:"observation,omitempty"`
	Result
}

func readBody(c *echo.Context, limit int64) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, limit))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, fhir.Errorf(fhir.KindTooLarge, "request body is larger than %d bytes", limit)
	}
	if err != nil {
		return nil, fhir.Errorf(fhir.KindInvalid, "reading request body").Wrap(err)
	}
	return b, nil
}

func (in *Ingestor) postReadings(c *echo.Context, cfg HTTPConfig) error {
	ctx := c.Request().Context()
	tenant := c.Param("tenant")
	key, ok := strings.CutPrefix(c.Request().Header.Get("Authorization"), "Bearer ")
	if !ok {
		return fhir.Errorf(fhir.KindUnauthorized, "a device credential is required (Authorization: Bearer)")
	}
	src, err := in.Authenticate(ctx, tenant, strings.TrimSpace(key), "http")
	if err != nil {
		return err
	}
	body, err := readBody(c, cfg.MaxBodyBytes)
	if err != nil {
		return err
	}
	var readings []json.RawMessage
	switch t := bytes.TrimLeft(body, " \t\r\n"); {
	case len(t) > 0 && t[0] == '[':
		err = json.Unmarshal(body, &readings)
	case len(t) > 0 && t[0] == '{':
		var batch struct {
			Readings *[]json.RawMessage `json:"readings"`
		}
		err = json.Unmarshal(body, &batch)
		if err == nil && batch.Readings == nil {
			return fhir.Errorf(fhir.KindInvalid, "batch object has no readings array").At("readings")
		}
		if batch.Readings != nil {
			readings = *batch.Readings
		}
	default:
		return fhir.Errorf(fhir.KindInvalid, "body must be a JSON array of readings or {\"readings\": [...]}")
	}
	if err != nil {
		return fhir.Errorf(fhir.KindInvalid, "body is not valid JSON").Wrap(err)
	}
	if len(readings) > cfg.MaxReadings {
		return fhir.Errorf(fhir.KindTooLarge, "batch has more than %d readings", cfg.MaxReadings)
	}
	payloads := make([][]byte, len(readings))
	for i, r := range readings {
		payloads[i] = r
	}
	rs, err := in.IngestBatch(ctx, tenant, src, payloads)
	if err != nil {
		return err
	}
	out := make([]readingResult, len(rs))
	for i, r := range rs {
		out[i] = readingResult{Index: i, Result: r}
		if len(r.Observations) > 0 {
			out[i].Observation = r.Observations[0]
		}
	}
	return c.JSON(http.StatusOK, map[string]any{"results": out})
}

func (in *Ingestor) postAssociation(c *echo.Context, cfg HTTPConfig) error {
	body, err := readBody(c, cfg.MaxBodyBytes)
	if err != nil {
		return err
	}
	var a Association
	if err := json.Unmarshal(body, &a); err != nil {
		return fhir.Errorf(fhir.KindInvalid, "body is not a valid association (device, patient, start, end as RFC 3339)").Wrap(err)
	}
	res, err := in.Associate(c.Request().Context(), c.Param("tenant"), a)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, res)
}

func (in *Ingestor) postRelease(c *echo.Context) error {
	id := c.Param("id")
	if !fhir.ValidID(id) {
		return fhir.Errorf(fhir.KindInvalid, "invalid device id")
	}
	n, err := in.Release(c.Request().Context(), c.Param("tenant"), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]int{"released": n})
}

// deadLetterJSON is a dead letter as the operator API shows it.
type deadLetterJSON struct {
	ID            string          `json:"id"`
	Source        string          `json:"source"`
	Reason        string          `json:"reason"`
	Received      string          `json:"received"`
	ReplayedAt    string          `json:"replayedAt,omitempty"`
	Payload       json.RawMessage `json:"payload,omitempty"`
	PayloadBase64 string          `json:"payloadBase64,omitempty"`
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func intParam(c *echo.Context, name string, def, maxV int) (int, error) {
	s := c.QueryParam(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fhir.Errorf(fhir.KindInvalid, "parameter %s must be a non-negative integer", name)
	}
	return min(n, maxV), nil
}

func (in *Ingestor) listDeadLetters(c *echo.Context) error {
	count, err := intParam(c, "_count", 50, 500)
	if err != nil {
		return err
	}
	offset, err := intParam(c, "_offset", 0, 1<<30)
	if err != nil {
		return err
	}
	dls, err := in.DeadLetters(c.Request().Context(), c.Param("tenant"), offset, count+1)
	if err != nil {
		return err
	}
	resp := struct {
		DeadLetters []deadLetterJSON `json:"deadLetters"`
		Next        *int             `json:"next,omitempty"` // _offset of the next page
	}{DeadLetters: []deadLetterJSON{}}
	if len(dls) > count {
		dls = dls[:count]
		next := offset + count
		resp.Next = &next
	}
	for _, d := range dls {
		resp.DeadLetters = append(resp.DeadLetters, deadLetterJSON{ID: d.ID, Source: d.Source, Reason: d.Reason,
			Received: fmtTime(d.Received), ReplayedAt: fmtTime(d.ReplayedAt)})
	}
	return c.JSON(http.StatusOK, resp)
}

func (in *Ingestor) getDeadLetter(c *echo.Context) error {
	d, err := in.DeadLetter(c.Request().Context(), c.Param("tenant"), c.Param("id"))
	if err != nil {
		return err
	}
	out := deadLetterJSON{ID: d.ID, Source: d.Source, Reason: d.Reason, Received: fmtTime(d.Received), ReplayedAt: fmtTime(d.ReplayedAt)}
	if json.Valid(d.Payload) {
		out.Payload = d.Payload
	} else {
		out.PayloadBase64 = base64.StdEncoding.EncodeToString(d.Payload)
	}
	return c.JSON(http.StatusOK, out)
}

func (in *Ingestor) replayDeadLetter(c *echo.Context) error {
	r, err := in.Replay(c.Request().Context(), c.Param("tenant"), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, r)
}
