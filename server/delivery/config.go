package delivery

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/pulsewire/pulsewire/mappings/oru"
	"github.com/pulsewire/pulsewire/server/fhir"
)

// Transports a destination can use.
const (
	TransportMLLP  = "mllp"  // MLLP over TCP, optionally TLS (adapters/mllp)
	TransportHTTPS = "https" // HL7 v2 over HTTPS (adapters/hl7http)
)

// Duration is a time.Duration written in JSON as a Go duration string
// ("30s", "5m").
type Duration time.Duration

// UnmarshalJSON reads "30s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes "30s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// TLSConfig is a destination's TLS: for MLLP, its presence turns TLS on;
// for HTTPS (always TLS) it adds roots or a client certificate.
type TLSConfig struct {
	CAFile     string `json:"caFile,omitempty"`     // PEM roots to trust instead of the system's
	CertFile   string `json:"certFile,omitempty"`   // PEM client certificate (mutual TLS), with KeyFile
	KeyFile    string `json:"keyFile,omitempty"`    // PEM private key of CertFile
	ServerName string `json:"serverName,omitempty"` // name to verify, when it differs from the address's host
}

// Load builds the tls.Config (TLS 1.2 or later). Relative paths are taken
// from the destinations file's directory, already applied by Parse.
func (c *TLSConfig) Load() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading TLS roots: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS roots file %s holds no PEM certificate", c.CAFile)
		}
		cfg.RootCAs = pool
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return nil, errors.New("a TLS client certificate needs both certFile and keyFile")
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading TLS client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// RetryPolicy says how failed attempts (AE, CE, timeouts, transport
// errors) are retried: after a random delay between 0 and
// min(Max, Initial * 2^(attempts-1)) ("full jitter").
type RetryPolicy struct {
	Initial Duration `json:"initial,omitempty"` // default 1s
	Max     Duration `json:"max,omitempty"`     // default 5m
	// MaxAttempts dead-letters an entry after this many failed attempts;
	// 0 (the default) retries for ever: delivery is guaranteed, and the
	// queue depth and oldest-age metrics say when a destination is stuck.
	MaxAttempts int `json:"maxAttempts,omitempty"`
}

// BreakerPolicy configures the per-destination circuit breaker: after
// Failures consecutive failed attempts nothing is sent for CoolDown, then
// one entry is sent as a probe; its success closes the breaker, its failure
// opens it again.
type BreakerPolicy struct {
	Failures int      `json:"failures,omitempty"` // default 5
	CoolDown Duration `json:"coolDown,omitempty"` // default 30s
}

// DestinationConfig is one destination of one tenant, as configured.
type DestinationConfig struct {
	Tenant string `json:"tenant"`
	Name   string `json:"name"` // unique within the tenant: letters, digits, '.', '_', '-'

	// Profile is the ORU profile (mappings/oru Settings: kind pcd01, epic,
	// cerner ...), inline or in ProfileFile (relative to the destinations
	// file). Exactly one of them.
	Profile     *oru.Settings `json:"profile,omitempty"`
	ProfileFile string        `json:"profileFile,omitempty"`

	Transport string            `json:"transport,omitempty"` // "mllp" (default) or "https"
	Address   string            `json:"address"`             // host:port for mllp, an https:// URL for https
	TLS       *TLSConfig        `json:"tls,omitempty"`
	Headers   map[string]string `json:"headers,omitempty"` // https only, e.g. Authorization

	DialTimeout Duration `json:"dialTimeout,omitempty"` // default 10s
	AckTimeout  Duration `json:"ackTimeout,omitempty"`  // default 30s

	Retry RetryPolicy `json:"retry"`
	// RetryOnReject retries AR and CR like AE; by default they dead-letter
	// at once (the engine says the message itself is unacceptable).
	RetryOnReject bool          `json:"retryOnReject,omitempty"`
	Breaker       BreakerPolicy `json:"breaker"`

	// Lanes is the number of connections used at once (default 1). Each
	// lane claims, sends and settles on its own; a patient's pending
	// entries are claimed by one lane at a time and sent one after the
	// other, so per-patient order holds with any number of lanes (the order
	// between patients does not). An engine that needs one connection gets
	// Lanes 1.
	Lanes int `json:"lanes,omitempty"`
	// Batch is the most entries a lane claims at once (default 64),
	// PerPatient the most of one patient among them (default 8).
	Batch      int `json:"batch,omitempty"`
	PerPatient int `json:"perPatient,omitempty"`
	// Lease is how long claimed entries stay with this process before
	// another replica may take them (default 2m, at least twice
	// DialTimeout + AckTimeout).
	Lease Duration `json:"lease,omitempty"`

	// ControlIDPrefix starts every MSH-10 (default "PW", at most 4
	// letters or digits); the rest is the outbox entry id in base 36, so a
	// retry carries the same MSH-10 and the receiver can discard a
	// duplicate, and ".<n>" after the n-th replay.
	ControlIDPrefix string `json:"controlIdPrefix,omitempty"`
}

// Destination is a validated destination with its defaults applied and
// its profile built.
type Destination struct {
	DestinationConfig
	Profile oru.Profile
}

// Key is "tenant/name", for logs and errors.
func (d *Destination) Key() string { return d.Tenant + "/" + d.Name }

// File is the destinations file: every tenant's destinations.
type File struct {
	Destinations []DestinationConfig `json:"destinations"`
}

var (
	namePattern   = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	prefixPattern = regexp.MustCompile(`^[A-Z0-9]{1,4}$`)
)

// LoadFile reads a destinations file (see File) and builds its
// destinations with the profiles of reg.
func LoadFile(path string, reg *oru.Registry) ([]*Destination, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading destinations file: %w", err)
	}
	return Parse(b, filepath.Dir(path), reg)
}

// Parse decodes a destinations file, rejecting unknown members; relative
// file names in it are taken from dir.
func Parse(b []byte, dir string, reg *oru.Registry) ([]*Destination, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var f File
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("decoding destinations file: %w", err)
	}
	rel := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	seen := map[string]bool{}
	out := make([]*Destination, 0, len(f.Destinations))
	for i, c := range f.Destinations {
		c.ProfileFile = rel(c.ProfileFile)
		if c.TLS != nil {
			t := *c.TLS
			t.CAFile, t.CertFile, t.KeyFile = rel(t.CAFile), rel(t.CertFile), rel(t.KeyFile)
			c.TLS = &t
		}
		d, err := NewDestination(c, reg)
		if err != nil {
			return nil, fmt.Errorf("destination %d (%s/%s): %w", i+1, c.Tenant, c.Name, err)
		}
		if seen[d.Key()] {
			return nil, fmt.Errorf("destination %s is configured twice", d.Key())
		}
		seen[d.Key()] = true
		out = append(out, d)
	}
	return out, nil
}

// NewDestination validates c, applies the defaults and builds its profile
// with reg. Errors name the setting, never a secret.
func NewDestination(c DestinationConfig, reg *oru.Registry) (*Destination, error) {
	if !fhir.ValidTenant(c.Tenant) {
		return nil, errors.New("tenant: not a valid tenant name")
	}
	if !namePattern.MatchString(c.Name) {
		return nil, errors.New("name: use 1-64 letters, digits, '.', '_' or '-'")
	}
	var settings oru.Settings
	switch {
	case c.Profile != nil && c.ProfileFile != "":
		return nil, errors.New("profile: give profile or profileFile, not both")
	case c.Profile != nil:
		settings = *c.Profile
	case c.ProfileFile != "":
		b, err := os.ReadFile(c.ProfileFile)
		if err != nil {
			return nil, fmt.Errorf("profileFile: %w", err)
		}
		s, err := oru.LoadSettings(b)
		if err != nil {
			return nil, fmt.Errorf("profileFile: %w", err)
		}
		settings = *s
	default:
		return nil, errors.New("profile: a destination needs a profile or profileFile")
	}
	p, err := reg.New(settings)
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	switch c.Transport {
	case "":
		c.Transport = TransportMLLP
	case TransportMLLP, TransportHTTPS:
	default:
		return nil, fmt.Errorf("transport: %q is not mllp or https", c.Transport)
	}
	if c.Address == "" {
		return nil, errors.New("address: required")
	}
	if c.Transport == TransportHTTPS {
		u, err := url.Parse(c.Address)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, errors.New("address: an https destination needs an https:// URL")
		}
	} else if len(c.Headers) > 0 {
		return nil, errors.New("headers: only https destinations send headers")
	}
	def := func(d *Duration, v time.Duration) {
		if *d <= 0 {
			*d = Duration(v)
		}
	}
	defInt := func(n *int, v int) {
		if *n <= 0 {
			*n = v
		}
	}
	def(&c.DialTimeout, 10*time.Second)
	def(&c.AckTimeout, 30*time.Second)
	def(&c.Retry.Initial, time.Second)
	def(&c.Retry.Max, 5*time.Minute)
	def(&c.Breaker.CoolDown, 30*time.Second)
	def(&c.Lease, 2*time.Minute)
	defInt(&c.Breaker.Failures, 5)
	defInt(&c.Lanes, 1)
	defInt(&c.Batch, 64)
	defInt(&c.PerPatient, 8)
	if c.Retry.Max < c.Retry.Initial {
		return nil, errors.New("retry: max is below initial")
	}
	if c.Retry.MaxAttempts < 0 {
		return nil, errors.New("retry: maxAttempts is negative")
	}
	if time.Duration(c.Lease) < 2*(time.Duration(c.DialTimeout)+time.Duration(c.AckTimeout)) {
		return nil, errors.New("lease: must be at least twice dialTimeout + ackTimeout")
	}
	if c.ControlIDPrefix == "" {
		c.ControlIDPrefix = "PW"
	}
	if !prefixPattern.MatchString(c.ControlIDPrefix) {
		return nil, errors.New("controlIdPrefix: 1-4 upper-case letters or digits")
	}
	return &Destination{DestinationConfig: c, Profile: p}, nil
}
