package hl7http

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const (
	msg = "MSH|^~\\&|PULSEWIRE|FAC|EPIC|HOSP|20260301101530+0000||ORU^R01^ORU_R01|PW1|P|2.6\rPID|||SECRET-MRN\r"
	ack = "MSH|^~\\&|EPIC|HOSP|PULSEWIRE|FAC|20260301101531+0000||ACK^R01^ACK|A1|P|2.6\rMSA|AA|PW1\r"
)

// trusting returns TLS settings that trust srv's certificate.
func trusting(srv *httptest.Server) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

func TestSend(t *testing.T) {
	type request struct {
		Method, ContentType, Accept, Auth, Body string
	}
	tests := []struct {
		name    string
		handler func(w http.ResponseWriter, r *http.Request)
		opts    Options
		want    string
		wantErr func(error) bool
	}{
		{
			name:    "ack in the body",
			handler: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, ack) },
			want:    ack,
		},
		{
			name:    "server error",
			handler: func(w http.ResponseWriter, r *http.Request) { http.Error(w, "busy", http.StatusServiceUnavailable) },
			wantErr: func(err error) bool {
				var se *StatusError
				return errors.As(err, &se) && se.Status == http.StatusServiceUnavailable
			},
		},
		{
			name:    "no acknowledgment",
			handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) },
			wantErr: func(err error) bool { return strings.Contains(err.Error(), "without an acknowledgment") },
		},
		{
			name: "slow engine",
			handler: func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-time.After(2 * time.Second):
				case <-r.Context().Done():
				}
				io.WriteString(w, ack)
			},
			opts:    Options{AckTimeout: 100 * time.Millisecond},
			wantErr: func(err error) bool { return errors.Is(err, ErrAckTimeout) },
		},
		{
			name:    "response too large",
			handler: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, strings.Repeat("x", 2000)) },
			opts:    Options{MaxResponse: 1000},
			wantErr: func(err error) bool { return strings.Contains(err.Error(), "exceeds 1000 bytes") },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan request, 1)
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				got <- request{r.Method, r.Header.Get("Content-Type"), r.Header.Get("Accept"), r.Header.Get("Authorization"), string(b)}
				tc.handler(w, r)
			}))
			defer srv.Close()
			opts := tc.opts
			opts.TLS = trusting(srv)
			opts.Header = http.Header{"Authorization": {"Bearer t0k"}}
			c, err := New(srv.URL+"/hl7", opts)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			resp, err := c.Send(context.Background(), []byte(msg))
			want := request{http.MethodPost, DefaultContentType, DefaultContentType, "Bearer t0k", msg}
			if d := cmp.Diff(want, <-got); d != "" {
				t.Errorf("request (-want +got):\n%s", d)
			}
			if tc.wantErr != nil {
				if err == nil || !tc.wantErr(err) {
					t.Fatalf("Send error = %v, want the %s error", err, tc.name)
				}
				if strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "t0k") {
					t.Errorf("error %q holds message content or a credential", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			if string(resp) != tc.want {
				t.Errorf("ack = %q, want %q", resp, tc.want)
			}
		})
	}
}

func TestRefusesPlainHTTPAndUntrustedServers(t *testing.T) {
	for _, u := range []string{"http://127.0.0.1:1/hl7", "127.0.0.1:443", "https://"} {
		if _, err := New(u, Options{}); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, ack) }))
	defer srv.Close()
	c, err := New(srv.URL, Options{}) // system roots: the test certificate is not trusted
	if err != nil {
		t.Fatal(err)
	}
	var ve *tls.CertificateVerificationError
	if _, err := c.Send(context.Background(), []byte(msg)); !errors.As(err, &ve) {
		t.Errorf("Send to an untrusted server = %v, want a certificate verification error", err)
	}
}

// TestMutualTLS: a server that requires a client certificate accepts the
// one configured.
func TestMutualTLS(t *testing.T) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	clientKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	clientTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "pulsewire"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	clientDER, err := x509.CreateCertificate(rand.Reader, clientTmpl, ca, &clientKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	clients := x509.NewCertPool()
	clients.AddCert(ca)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) == 0 || r.TLS.PeerCertificates[0].Subject.CommonName != "pulsewire" {
			http.Error(w, "who are you", http.StatusForbidden)
			return
		}
		io.WriteString(w, ack)
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clients}
	srv.StartTLS()
	defer srv.Close()

	with := trusting(srv)
	with.Certificates = []tls.Certificate{{Certificate: [][]byte{clientDER}, PrivateKey: clientKey}}
	c, err := New(srv.URL, Options{TLS: with})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.Send(context.Background(), []byte(msg)); err != nil || string(got) != ack {
		t.Fatalf("Send with a client certificate = %q, %v", got, err)
	}
	without, err := New(srv.URL, Options{TLS: trusting(srv)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := without.Send(context.Background(), []byte(msg)); err == nil {
		t.Error("Send without a client certificate succeeded")
	}
}
