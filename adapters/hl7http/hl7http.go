// Package hl7http sends HL7 v2 messages over HTTPS: each message is the
// body of one POST (ER7, the pipe-and-hat encoding, Content-Type
// x-application/hl7-v2+er7 unless configured otherwise) and the response
// body is the acknowledgment, the way interface engines (Epic Bridges,
// Rhapsody, Mirth/HAPI "HL7 over HTTP") accept a feed where MLLP is not
// wanted (HL7 over HTTP: https://hapifhir.github.io/hapi-hl7v2/hapi-hl7overhttp/specification.html).
//
// A Client refuses plain http:// URLs: messages carry patient data. Errors
// name the URL's host and the status, never the message or the response
// body.
//
// It is an adapter: it imports only the standard library. Only the wiring
// (server/app, server/cmd) imports it.
package hl7http

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// DefaultContentType is the request's Content-Type.
const DefaultContentType = "x-application/hl7-v2+er7"

// DefaultMaxResponse is the largest acknowledgment read (1 MiB).
const DefaultMaxResponse = 1 << 20

// Options configure a Client.
type Options struct {
	TLS         *tls.Config   // nil: system roots, TLS 1.2 or later
	DialTimeout time.Duration // connecting and the TLS handshake; 0: 10 s
	AckTimeout  time.Duration // the whole exchange, ACK read included; 0: 30 s
	MaxResponse int64         // 0: DefaultMaxResponse
	ContentType string        // "": DefaultContentType
	Header      http.Header   // sent with every request (e.g. Authorization)
}

// ErrAckTimeout is returned (wrapped) when no acknowledgment came in time.
var ErrAckTimeout = errors.New("hl7http: no acknowledgment within the timeout")

// StatusError is a response other than 2xx; its body is not kept.
type StatusError struct {
	Host   string
	Status int
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("hl7http: %s answered HTTP %d", e.Host, e.Status)
}

// Client posts messages to one URL, reusing connections. Safe for
// concurrent use.
type Client struct {
	url  string
	host string
	opts Options
	hc   *http.Client
	tr   *http.Transport
}

// New returns a Client for an https:// URL.
func New(rawURL string, opts Options) (*Client, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, errors.New("hl7http: the destination must be an https:// URL")
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 10 * time.Second
	}
	if opts.AckTimeout <= 0 {
		opts.AckTimeout = 30 * time.Second
	}
	if opts.MaxResponse <= 0 {
		opts.MaxResponse = DefaultMaxResponse
	}
	if opts.ContentType == "" {
		opts.ContentType = DefaultContentType
	}
	tc := opts.TLS
	if tc == nil {
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: opts.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tc.Clone(),
		TLSHandshakeTimeout: opts.DialTimeout,
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
	}
	return &Client{url: rawURL, host: u.Host, opts: opts, tr: tr, hc: &http.Client{Transport: tr}}, nil
}

// Send posts msg and returns the response body (the ACK). A 2xx response
// with an empty body is an error: there is no acknowledgment to read.
func (c *Client) Send(ctx context.Context, msg []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.AckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(msg))
	if err != nil {
		return nil, fmt.Errorf("hl7http: building request: %w", err)
	}
	for k, vs := range c.opts.Header {
		req.Header[k] = append([]string(nil), vs...)
	}
	req.Header.Set("Content-Type", c.opts.ContentType)
	req.Header.Set("Accept", c.opts.ContentType)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.explain(ctx, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.opts.MaxResponse+1))
	if err != nil {
		return nil, c.explain(ctx, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, &StatusError{Host: c.host, Status: resp.StatusCode}
	}
	if int64(len(body)) > c.opts.MaxResponse {
		return nil, fmt.Errorf("hl7http: the response of %s exceeds %d bytes", c.host, c.opts.MaxResponse)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, fmt.Errorf("hl7http: %s answered without an acknowledgment", c.host)
	}
	return body, nil
}

// explain turns a transport error into one that names the host only (a
// *url.Error would repeat the whole URL, which may carry a token).
func (c *Client) explain(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("hl7http: post to %s: %w", c.host, ErrAckTimeout)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("hl7http: post to %s: %w", c.host, ctx.Err())
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("hl7http: post to %s: %w", c.host, err)
}

// Close closes idle connections; the Client stays usable.
func (c *Client) Close() error {
	c.tr.CloseIdleConnections()
	return nil
}
