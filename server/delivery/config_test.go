package delivery

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/pulsewire/pulsewire/mappings/oru"
)

const pcd01Profile = `{"kind": "pcd01", "sendingApplication": {"namespace": "PULSEWIRE"}}`

func TestParse(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "epic.json"), []byte(`{"kind": "epic", "sendingApplication": {"namespace": "PW"},
		"codes": {"heart-rate": {"code": "8"}}, "codeSystem": "FLO"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	file := `{"destinations": [
		{"tenant": "acme", "name": "generic", "profile": ` + pcd01Profile + `, "address": "10.0.0.5:6661"},
		{"tenant": "acme", "name": "epic-https", "profileFile": "epic.json", "transport": "https",
		 "address": "https://epic.example.org/hl7", "headers": {"Authorization": "Bearer x"},
		 "tls": {"caFile": "ca.pem", "serverName": "epic"}, "ackTimeout": "10s", "dialTimeout": "2s",
		 "retry": {"initial": "500ms", "max": "1m", "maxAttempts": 20}, "retryOnReject": true,
		 "breaker": {"failures": 3, "coolDown": "1m"}, "lanes": 4, "batch": 100, "perPatient": 2,
		 "lease": "5m", "controlIdPrefix": "EPC1"}
	]}`
	ds, err := Parse([]byte(file), dir, oru.DefaultRegistry())
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	var got []DestinationConfig
	for _, d := range ds {
		if d.Profile == nil {
			t.Errorf("%s has no profile", d.Key())
		}
		got = append(got, d.DestinationConfig)
	}
	want := []DestinationConfig{
		{Tenant: "acme", Name: "generic", Transport: TransportMLLP, Address: "10.0.0.5:6661",
			DialTimeout: Duration(10 * time.Second), AckTimeout: Duration(30 * time.Second),
			Retry:   RetryPolicy{Initial: Duration(time.Second), Max: Duration(5 * time.Minute)},
			Breaker: BreakerPolicy{Failures: 5, CoolDown: Duration(30 * time.Second)},
			Lanes:   1, Batch: 64, PerPatient: 8, Lease: Duration(2 * time.Minute), ControlIDPrefix: "PW"},
		{Tenant: "acme", Name: "epic-https", ProfileFile: filepath.Join(dir, "epic.json"), Transport: TransportHTTPS,
			Address: "https://epic.example.org/hl7", Headers: map[string]string{"Authorization": "Bearer x"},
			TLS:         &TLSConfig{CAFile: filepath.Join(dir, "ca.pem"), ServerName: "epic"},
			DialTimeout: Duration(2 * time.Second), AckTimeout: Duration(10 * time.Second),
			Retry:         RetryPolicy{Initial: Duration(500 * time.Millisecond), Max: Duration(time.Minute), MaxAttempts: 20},
			RetryOnReject: true, Breaker: BreakerPolicy{Failures: 3, CoolDown: Duration(time.Minute)},
			Lanes: 4, Batch: 100, PerPatient: 2, Lease: Duration(5 * time.Minute), ControlIDPrefix: "EPC1"},
	}
	if d := cmp.Diff(want, got, cmpopts.IgnoreFields(DestinationConfig{}, "Profile")); d != "" {
		t.Errorf("destinations (-want +got):\n%s", d)
	}
	if k := ds[1].Profile.Settings().Kind; k != "epic" {
		t.Errorf("profile from file has kind %q, want epic", k)
	}
}

func TestParseErrors(t *testing.T) {
	dest := func(extra string) string {
		return `{"destinations": [{"tenant": "acme", "name": "d", "profile": ` + pcd01Profile + `, "address": "h:1"` + extra + `}]}`
	}
	tests := []struct {
		name, file, want string
	}{
		{"unknown member", dest(`, "adress": "x"`), "unknown field"},
		{"bad tenant", strings.Replace(dest(""), `"acme"`, `"ACME!"`, 1), "tenant"},
		{"bad name", strings.Replace(dest(""), `"name": "d"`, `"name": "a b"`, 1), "name"},
		{"profile twice", dest(`, "profileFile": "x.json"`), "not both"},
		{"no profile", `{"destinations": [{"tenant": "acme", "name": "d", "address": "h:1"}]}`, "needs a profile"},
		{"unknown profile", strings.Replace(dest(""), `"pcd01"`, `"meditech"`, 1), "unknown profile kind"},
		{"bad transport", dest(`, "transport": "ftp"`), "transport"},
		{"no address", strings.Replace(dest(""), `, "address": "h:1"`, ``, 1), "address"},
		{"https without URL", dest(`, "transport": "https"`), "https:// URL"},
		{"plain http", strings.Replace(dest(`, "transport": "https"`), `"h:1"`, `"http://h/hl7"`, 1), "https:// URL"},
		{"headers on mllp", dest(`, "headers": {"A": "b"}`), "headers"},
		{"short lease", dest(`, "lease": "30s"`), "lease"},
		{"bad duration", dest(`, "ackTimeout": "soon"`), "duration"},
		{"retry max below initial", dest(`, "retry": {"initial": "1m", "max": "1s"}`), "retry"},
		{"bad prefix", dest(`, "controlIdPrefix": "pulse"`), "controlIdPrefix"},
		{"twice", `{"destinations": [{"tenant": "acme", "name": "d", "profile": ` + pcd01Profile + `, "address": "h:1"},
			{"tenant": "acme", "name": "d", "profile": ` + pcd01Profile + `, "address": "h:2"}]}`, "configured twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.file), t.TempDir(), oru.DefaultRegistry())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse = %v, want an error about %q", err, tc.want)
			}
		})
	}
}

func TestTLSLoad(t *testing.T) {
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "engine CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ca := write("ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	keyFile := write("key.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	junk := write("junk.pem", []byte("not a certificate"))

	cfg, err := (&TLSConfig{CAFile: ca, CertFile: ca, KeyFile: keyFile, ServerName: "engine"}).Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.RootCAs == nil || len(cfg.Certificates) != 1 || cfg.ServerName != "engine" || cfg.MinVersion == 0 {
		t.Errorf("tls.Config = %+v, want roots, one client certificate, the server name and a minimum version", cfg)
	}
	for _, bad := range []TLSConfig{{CAFile: junk}, {CAFile: filepath.Join(dir, "missing.pem")}, {CertFile: ca}, {CertFile: ca, KeyFile: junk}} {
		if _, err := bad.Load(); err == nil {
			t.Errorf("Load(%+v) succeeded", bad)
		}
	}
}
