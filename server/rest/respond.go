package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v5"

	"github.com/pulsewire/pulsewire/server/fhir"
)

const contentType = "application/fhir+json; charset=utf-8"

// marshal encodes v as compact JSON without HTML escaping (resources are
// embedded as json.RawMessage and must come out byte for byte).
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// prefer is the parsed Prefer header (RFC 7240; https://hl7.org/fhir/R4/http.html#ops).
type prefer struct {
	Return string // "minimal", "representation" (default), "OperationOutcome"
	Strict bool   // handling=strict
}

func parsePrefer(h http.Header) prefer {
	p := prefer{Return: "representation"}
	for _, line := range h.Values("Prefer") {
		for _, part := range strings.FieldsFunc(line, func(r rune) bool { return r == ',' || r == ';' }) {
			k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
			v = strings.Trim(strings.TrimSpace(v), `"`)
			switch strings.ToLower(strings.TrimSpace(k)) {
			case "return":
				switch strings.ToLower(v) {
				case "minimal":
					p.Return = "minimal"
				case "operationoutcome":
					p.Return = "OperationOutcome"
				case "representation":
					p.Return = "representation"
				}
			case "handling":
				p.Strict = strings.EqualFold(v, "strict")
			}
		}
	}
	return p
}

// readBody reads the request body up to the configured limit, after
// checking the content type is FHIR JSON (or plain JSON, or absent).
func (a *API) readBody(c *echo.Context) ([]byte, error) {
	r := c.Request()
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/fhir+json" && mt != "application/json" && mt != "application/json+fhir") {
			return nil, echo.ErrUnsupportedMediaType
		}
	}
	if r.ContentLength > a.maxBody {
		return nil, a.tooLarge()
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, a.maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, a.tooLarge()
		}
		return nil, fhir.Errorf(fhir.KindInvalid, "reading request body").Wrap(err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, fhir.Errorf(fhir.KindInvalid, "request body is empty")
	}
	return body, nil
}

func (a *API) tooLarge() error {
	return fhir.Errorf(fhir.KindTooLarge, "request body is larger than %d bytes", a.maxBody)
}

// writeResult sends the outcome of a create or update: status, Location,
// ETag, Last-Modified and the body Prefer: return asks for.
func (a *API) writeResult(c *echo.Context, res *fhir.Resource, status int, created bool) error {
	h := c.Response().Header()
	setVersionHeaders(h, res)
	if created {
		h.Set("Location", a.baseURL(c)+"/"+res.Type+"/"+res.ID+"/_history/"+strconv.FormatInt(res.VersionID, 10))
	}
	switch parsePrefer(c.Request().Header).Return {
	case "minimal":
		return c.NoContent(status)
	case "OperationOutcome":
		msg := "updated"
		if created {
			msg = "created"
		}
		return send(c, status, informational(msg))
	}
	return send(c, status, res.Body)
}

func setVersionHeaders(h http.Header, res *fhir.Resource) {
	// Keys in canonical form (textproto.CanonicalMIMEHeaderKey("ETag") is
	// "Etag"): set directly, saving Set's canonicalization on every read.
	h["Etag"] = []string{res.ETag()}
	h["Last-Modified"] = []string{res.LastUpdated.UTC().Format(http.TimeFormat)}
}

// send writes body, FHIR JSON, with status and its Content-Length. Without
// a length net/http sends a body larger than its 2 KiB buffer (a search
// page, a Bundle) chunked, which takes more writes to the socket.
func send(c *echo.Context, status int, body []byte) error {
	c.Response().Header()["Content-Length"] = []string{strconv.Itoa(len(body))}
	return c.Blob(status, contentType, body)
}

// parseETag reads a version from If-Match: W/"3", "3" or 3. "" gives 0.
func parseETag(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	s = strings.TrimPrefix(s, "W/")
	s = strings.Trim(s, `"`)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 {
		return 0, fhir.Errorf(fhir.KindInvalid, `If-Match must be a version ETag such as W/"1"`)
	}
	return n, nil
}
