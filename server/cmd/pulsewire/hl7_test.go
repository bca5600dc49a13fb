package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const fixtures = "../../../fixtures/hl7/"

func noEnv(string) string { return "" }

// TestHL7Validate checks every fixture: the good ones are valid, and each
// bad one reports exactly its problems, by position.
func TestHL7Validate(t *testing.T) {
	good, err := filepath.Glob(fixtures + "*.hl7")
	if err != nil || len(good) < 8 {
		t.Fatalf("fixtures: %v, %v", good, err)
	}
	var out bytes.Buffer
	if err := run(context.Background(), append([]string{"hl7", "validate"}, good...), noEnv, &out, io.Discard); err != nil {
		t.Fatalf("valid fixtures: %v\n%s", err, out.String())
	}
	if n := strings.Count(out.String(), ": valid\n"); n != len(good) {
		t.Errorf("%d of %d fixtures reported valid:\n%s", n, len(good), out.String())
	}

	errLine := regexp.MustCompile(`(?m)^  error   (.*?): .*\[(\d+) `)
	tests := []struct {
		file string
		want []string // position and table 0357 code of each error
	}{
		{"adt_a01_no_patient_id.hl7", []string{"PID-3 (segment 3) 101", "PV1-19 (segment 4) 101"}},
		{"adt_a08_bad_segment.hl7", []string{"segment 3 100"}},
		{"oru_r01_missing_fields.hl7", []string{"MSH-21 (segment 1) 101", "OBX(2)-3 (segment 5) 101",
			"OBX(2)-11 (segment 5) 103", "OBX(2)-6 (segment 5) 101"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), []string{"hl7", "validate", fixtures + "invalid/" + tt.file}, noEnv, &out, io.Discard)
			if err == nil || !strings.Contains(out.String(), ": INVALID") {
				t.Fatalf("an invalid message: err %v, output:\n%s", err, out.String())
			}
			var got []string
			for _, m := range errLine.FindAllStringSubmatch(out.String(), -1) {
				got = append(got, m[1]+" "+m[2])
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s\noutput:\n%s", diff, out.String())
			}
			if strings.Contains(out.String(), "SYNTHETIC") || strings.Contains(out.String(), "MRN0012345") {
				t.Errorf("validate printed patient data:\n%s", out.String())
			}
		})
	}

	// The tenant's identifier systems are what makes an identifier without
	// an assigning authority acceptable.
	dir := t.TempDir()
	noAuth := filepath.Join(dir, "no-authority.hl7")
	msg := "MSH|^~\\&|ADT_SRC|GENHOSP|PW|PWF|20250314080000||ADT^A08^ADT_A01|NA1|P|2.5.1\nEVN|A08|20250314080000\nPID|1||MRN1||X^Y\n"
	if err := os.WriteFile(noAuth, []byte(msg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"hl7", "validate", noAuth}, noEnv, io.Discard, io.Discard); err == nil {
		t.Error("an identifier without assigning authority passed without --default-system")
	}
	if err := run(context.Background(), []string{"hl7", "validate", "--default-system", "urn:oid:1.2.3", noAuth}, noEnv, io.Discard, io.Discard); err != nil {
		t.Errorf("with --default-system: %v", err)
	}
}

// lines collects a command's output and hands each line to a channel.
type lines struct {
	mu  sync.Mutex
	all strings.Builder
	ch  chan string
	w   *io.PipeWriter
}

func newLines() *lines {
	pr, pw := io.Pipe()
	l := &lines{ch: make(chan string, 100), w: pw}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			l.mu.Lock()
			l.all.WriteString(sc.Text() + "\n")
			l.mu.Unlock()
			l.ch <- sc.Text()
		}
		close(l.ch)
	}()
	return l
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all.String()
}

// listen starts `pulsewire hl7 listen` on a free port and returns its
// address and a channel with its result.
func listen(t *testing.T, args ...string) (string, *lines, chan error) {
	t.Helper()
	out := newLines()
	done := make(chan error, 1)
	go func() {
		done <- run(context.Background(), append([]string{"hl7", "listen", "--addr", "127.0.0.1:0"}, args...), noEnv, out.w, io.Discard)
		out.w.Close()
	}()
	select {
	case l := <-out.ch:
		addr, ok := strings.CutPrefix(l, "listening on ")
		if !ok {
			t.Fatalf("listen printed %q", l)
		}
		addr, _, _ = strings.Cut(addr, " ")
		return addr, out, done
	case err := <-done:
		t.Fatalf("listen exited: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("listen printed nothing in 10 s")
	}
	return "", nil, nil
}

func wait(t *testing.T, done chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("listen: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("listen did not exit after its --count")
	}
}

// TestHL7SendToListen sends fixtures to an in-process listener: the
// listener prints headers only (patient fields with --show-phi), the
// sender prints the ACKs and fails on AE or AR.
func TestHL7SendToListen(t *testing.T) {
	files := []string{fixtures + "adt_a01_admit.hl7", fixtures + "oru_r01_pcd01.hl7"}
	tests := []struct {
		name    string
		args    []string
		code    string
		wantErr bool
		phi     bool
	}{
		{"accept", []string{"--count", "2"}, "AA", false, false},
		{"accept, showing PHI", []string{"--count", "2", "--show-phi"}, "AA", false, true},
		{"error", []string{"--count", "1", "--ack", "AE"}, "AE", true, false},
		{"reject", []string{"--count", "1", "--ack", "ar"}, "AR", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, lout, done := listen(t, tt.args...)
			var out bytes.Buffer
			err := run(context.Background(), append([]string{"hl7", "send", "--to", addr, "--timeout", "5s"}, files...), noEnv, &out, io.Discard)
			if (err != nil) != tt.wantErr {
				t.Fatalf("send: %v, want error %v\n%s", err, tt.wantErr, out.String())
			}
			wait(t, done)
			sent := out.String()
			if !strings.Contains(sent, "adt_a01_admit.hl7 #1 ADT^A01^ADT_A01 control=FIX0000001 from=ADT_SRC|GENHOSP version=2.5.1 -> "+tt.code) ||
				!strings.Contains(sent, "MSA|"+tt.code+"|FIX0000001") {
				t.Errorf("send output lacks the first message's %s ACK:\n%s", tt.code, sent)
			}
			if tt.wantErr {
				if !strings.Contains(sent, "ERR|||207") || !strings.Contains(sent, "stopped: 1 message(s) not sent") {
					t.Errorf("send output lacks the ERR segment or the stop:\n%s", sent)
				}
			} else if !strings.Contains(sent, "-> AA\n  MSH|^~\\&|DOC_IE") {
				t.Errorf("send output lacks the second ACK:\n%s", sent)
			}
			got := lout.String()
			if !strings.Contains(got, "ADT^A01^ADT_A01 control=FIX0000001 from=ADT_SRC|GENHOSP version=2.5.1 segments=MSH,EVN,PID,PV1 -> "+tt.code) {
				t.Errorf("listen output lacks the header summary:\n%s", got)
			}
			showed := strings.Contains(got, "SYNTHETIC^PATIENT") && strings.Contains(got, "MRN0012345")
			if showed != tt.phi {
				t.Errorf("listen printed patient fields: %v, want %v:\n%s", showed, tt.phi, got)
			}
		})
	}
}

// TestHL7SendTimeout: a peer that never answers makes send fail.
func TestHL7SendTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var held []net.Conn // accepted, never answered
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	var out bytes.Buffer
	t0 := time.Now()
	err = run(context.Background(), []string{"hl7", "send", "--to", ln.Addr().String(), "--timeout", "200ms", fixtures + "adt_a01_admit.hl7"}, noEnv, &out, io.Discard)
	if err == nil || !strings.Contains(out.String(), "-> no ACK: ") || !strings.Contains(out.String(), "no acknowledgment within the timeout") {
		t.Fatalf("send to a silent peer: %v\n%s", err, out.String())
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("timeout took %v", d)
	}
}

// TestHL7SendListenTLS runs send and listen over TLS with a throwaway
// self-signed certificate.
func TestHL7SendListenTLS(t *testing.T) {
	certFile, keyFile := selfSigned(t)
	addr, _, done := listen(t, "--count", "1", "--tls-cert", certFile, "--tls-key", keyFile)
	var out bytes.Buffer
	err := run(context.Background(), []string{"hl7", "send", "--to", addr, "--tls", "--ca", certFile, "--server-name", "127.0.0.1",
		fixtures + "adt_a01_admit.hl7"}, noEnv, &out, io.Discard)
	if err != nil || !strings.Contains(out.String(), "-> AA") {
		t.Fatalf("send over TLS: %v\n%s", err, out.String())
	}
	wait(t, done)
	// Without the CA the server is not trusted.
	addr, _, done = listen(t, "--count", "1", "--tls-cert", certFile, "--tls-key", keyFile)
	if err := run(context.Background(), []string{"hl7", "send", "--to", addr, "--tls", "--timeout", "2s", fixtures + "adt_a01_admit.hl7"}, noEnv, io.Discard, io.Discard); err == nil {
		t.Error("send trusted an unknown certificate")
	}
	// Let the listener finish: one plain message would fail the handshake,
	// so stop it by sending over TLS properly.
	if err := run(context.Background(), []string{"hl7", "send", "--to", addr, "--tls", "--ca", certFile, "--server-name", "127.0.0.1",
		fixtures + "adt_a01_admit.hl7"}, noEnv, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	wait(t, done)
}

func selfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// freePort returns a loopback address nothing listens on.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestServeADTFromEnvironment starts the real serve command with an ADT
// listener and settings from the environment, sends the ADT fixtures in
// order with `hl7 send`, and reads the result over REST.
func TestServeADTFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	settings := filepath.Join(dir, "adt.json")
	if err := os.WriteFile(settings, []byte(`{"clinic-a": {"authorities": {"GENHOSP": "urn:oid:1.2.3.4.5"}, "timeZone": "UTC"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	adtAddr := freePort(t)
	env := map[string]string{
		"PULSEWIRE_ADDR":         "127.0.0.1:0",
		"PULSEWIRE_DATA_DIR":     dir,
		"PULSEWIRE_TENANTS":      "clinic-a",
		"PULSEWIRE_ADT_LISTEN":   "clinic-a=" + adtAddr,
		"PULSEWIRE_ADT_CONFIG":   settings,
		"PULSEWIRE_INGEST_SWEEP": "0",
		"PULSEWIRE_AUTH":         "off", // the test reads back over REST without a token
	}
	out := newLines()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve"}, func(k string) string { return env[k] }, out.w, io.Discard)
		out.w.Close()
	}()
	var base string
	select {
	case l := <-out.ch:
		_, base, _ = strings.Cut(l, ": ")
	case err := <-done:
		t.Fatalf("serve exited: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("no base URL printed in 30 s")
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	var sent bytes.Buffer
	files := []string{"adt_a01_admit.hl7", "adt_a08_update.hl7", "adt_a04_register.hl7", "adt_a40_merge.hl7"}
	for i := range files {
		files[i] = fixtures + files[i]
	}
	if err := run(ctx, append([]string{"hl7", "send", "--to", adtAddr}, files...), noEnv, &sent, io.Discard); err != nil {
		t.Fatalf("hl7 send to the server: %v\n%s", err, sent.String())
	}
	resp, err := http.Get(base + "/Patient?identifier=" + url.QueryEscape("urn:oid:1.2.3.4.5|MRN0099999"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b struct {
		Entry []struct {
			Resource struct {
				Active bool `json:"active"`
				Link   []struct {
					Type string `json:"type"`
				} `json:"link"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&b); err != nil {
		t.Fatal(err)
	}
	if len(b.Entry) != 1 || b.Entry[0].Resource.Active || len(b.Entry[0].Resource.Link) != 1 || b.Entry[0].Resource.Link[0].Type != "replaced-by" {
		t.Errorf("the merged-away patient: %+v, want one, inactive, replaced-by the survivor", b.Entry)
	}
}
