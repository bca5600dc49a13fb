package app_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pulsewire/pulsewire/adapters/mllp"
	"github.com/pulsewire/pulsewire/mappings/adt"
	"github.com/pulsewire/pulsewire/mappings/fhirobs"
	"github.com/pulsewire/pulsewire/server/adtin"
	"github.com/pulsewire/pulsewire/server/adtin/adtintest"
	"github.com/pulsewire/pulsewire/server/app"
	"github.com/pulsewire/pulsewire/server/ingest"
	"github.com/pulsewire/pulsewire/server/ingest/ingesttest"
	"github.com/pulsewire/pulsewire/server/servertest"
)

// withADT serves inbound ADT for acme on a free loopback port.
func withADT(followBeds bool) servertest.Option {
	return func(c *app.Config) {
		c.ADT = app.ADTConfig{
			Listeners: []app.ADTListener{{Tenant: "acme", Addr: "127.0.0.1:0"}},
			Tenants: map[string]adtin.Settings{"acme": {
				ADT:        adt.Config{Authorities: map[string]string{adtintest.Authority: adtintest.System}},
				FollowBeds: followBeds,
			}},
			MaxFrame: 64 << 10,
		}
	}
}

func mllpClient(t *testing.T, addr string) *mllp.Client {
	t.Helper()
	if addr == "" {
		t.Fatal("no ADT listener for the tenant")
	}
	c, err := mllp.Dial(context.Background(), addr, mllp.Options{AckTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func sendMLLP(t *testing.T, c *mllp.Client, msg []byte) ([]byte, adtintest.Ack) {
	t.Helper()
	ack, err := c.Send(context.Background(), msg)
	if err != nil {
		t.Fatalf("sending over MLLP: %v", err)
	}
	return ack, adtintest.ParseAck(t, ack)
}

// search returns the resources a FHIR search finds.
func search(t *testing.T, url string) []map[string]any {
	t.Helper()
	code, body := get(t, url)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, code, body)
	}
	var b struct {
		Entry []struct {
			Resource map[string]any `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, e := range b.Entry {
		out = append(out, e.Resource)
	}
	return out
}

func identifierQuery(system, value string) string {
	return "identifier=" + url.QueryEscape(system+"|"+value)
}

// TestADTOverMLLP sends ADT messages through a real MLLP connection to the
// server's listener: every AA is sent after the commit, so the resources
// are readable over REST the moment the ACK arrives (no waiting); a resend
// on another connection is answered the same ACK and applies nothing;
// what cannot be applied is answered AR with ERR.
func TestADTOverMLLP(t *testing.T) {
	for _, b := range servertest.Backends {
		t.Run(b.Name, func(t *testing.T) {
			s := servertest.Start(t, b.Option(t), withADT(false))
			base := s.FHIRBase("acme")
			c := mllpClient(t, s.App.ADTAddr("acme"))
			var first []byte
			for i := range 10 {
				mrn, visit := fmt.Sprintf("MRN%07d", i), fmt.Sprintf("VN%05d", i)
				msg := adtintest.Msg{Event: "A01", ControlID: fmt.Sprintf("E2E%03d", i), Time: adtintest.T0, MRN: mrn,
					Family: "SYNTHETIC", Bed: adtintest.Bed1, Visit: visit}.Bytes()
				raw, ack := sendMLLP(t, c, msg)
				if ack.Code != "AA" || ack.ControlID != fmt.Sprintf("E2E%03d", i) {
					t.Fatalf("message %d: ACK %+v", i, ack)
				}
				if i == 0 {
					first = raw
				}
				pats := search(t, base+"/Patient?"+identifierQuery(adtintest.System, mrn))
				if len(pats) != 1 {
					t.Fatalf("message %d acknowledged but %d patients readable", i, len(pats))
				}
				encs := search(t, base+"/Encounter?"+identifierQuery(adtintest.System, visit))
				if len(encs) != 1 {
					t.Fatalf("message %d acknowledged but %d encounters readable", i, len(encs))
				}
				subject := encs[0]["subject"].(map[string]any)["reference"]
				if want := "Patient/" + pats[0]["id"].(string); subject != want {
					t.Errorf("Encounter.subject = %v, want %s", subject, want)
				}
			}

			// The first message again, on a second connection.
			c2 := mllpClient(t, s.App.ADTAddr("acme"))
			again, _ := sendMLLP(t, c2, adtintest.Msg{Event: "A01", ControlID: "E2E000", Time: adtintest.T0, MRN: "MRN0000000",
				Family: "SYNTHETIC", Bed: adtintest.Bed1, Visit: "VN00000"}.Bytes())
			if !bytes.Equal(again, first) {
				t.Errorf("resend answered %q, want the first ACK %q", again, first)
			}
			if n := total(t, base+"/Patient/_history?_summary=count"); n != 10 {
				t.Errorf("%d Patient versions after the resend, want 10", n)
			}

			_, ack := sendMLLP(t, c, []byte("MSH|^~\\&|LAB|GENHOSP|PW|PWF|20250314080000||ORU^R01^ORU_R01|E2E-ORU|P|2.6\rPID|1||X^^^GENHOSP\r"))
			if diff := cmp.Diff(adtintest.Ack{Code: "AR", ControlID: "E2E-ORU", Errors: []string{"MSH-9 200"}}, ack); diff != "" {
				t.Errorf("ORU answer (-want +got):\n%s", diff)
			}
			// A frame over the size limit is rejected and the connection
			// goes on.
			_, ack = sendMLLP(t, c, []byte("MSH|^~\\&|ADT_SRC|GENHOSP|PW|PWF|20250314080000||ADT^A08^ADT_A01|BIG|P|2.5.1\rNTE|"+strings.Repeat("x", 100<<10)+"\r"))
			if ack.Code != "AR" || !cmp.Equal(ack.Errors, []string{"104"}) {
				t.Errorf("oversized frame answered %+v, want AR with ERR 104", ack)
			}
			if _, ack = sendMLLP(t, c, adtintest.Msg{Event: "A08", ControlID: "E2E-LAST", Time: adtintest.T0, MRN: "MRN0000001", Family: "RENAMED", NoPV1: true}.Bytes()); ack.Code != "AA" {
				t.Errorf("after the rejected frame: %+v", ack)
			}
			st := s.App.ADTStats()
			if st.Accepted != 11 || st.Duplicates != 1 || st.Rejects != 2 {
				t.Errorf("stats %+v, want 11 accepted, 1 duplicate, 2 rejects", st)
			}
			code, body := get(t, s.URL+"/metrics")
			if code != http.StatusOK || !strings.Contains(string(body), "pulsewire_ingest_adt_accepted_total 11") {
				t.Errorf("/metrics lacks the ADT counters (%d)", code)
			}
		})
	}
}

// TestADTBedFollowingReleasesHeldReadings: a monitor in a bed sends a
// reading before anyone is in the bed (held); the admission of a patient
// to that bed, with bed-following on, associates the monitor and releases
// the reading to the patient before the ACK is sent.
func TestADTBedFollowingReleasesHeldReadings(t *testing.T) {
	s := servertest.Start(t, withADT(true))
	base := s.FHIRBase("acme")
	ctx := context.Background()
	r, err := s.App.Ingestor().Ingest(ctx, "acme", ingest.Source{Kind: "test"}, ingesttest.HR("bed-mon-1", adtintest.T0.Add(5*time.Minute), 77))
	if err != nil || r.Status != ingest.StatusHeld {
		t.Fatalf("reading before admission: %+v, %v; want held", r, err)
	}
	// The operator places the monitor in the bed.
	loc := map[string]any{"resourceType": "Location", "id": "bed-0101-1", "status": "active", "mode": "instance",
		"identifier": []map[string]string{{"system": adt.SystemPointOfCare, "value": adtintest.Bed1}}}
	put(t, base+"/Location/bed-0101-1", loc)
	dev := fhirobs.DeviceResourceID(fhirobs.SystemSerial, "bed-mon-1")
	code, body := get(t, base+"/Device/"+dev)
	if code != http.StatusOK {
		t.Fatalf("GET Device: %d %s", code, body)
	}
	var device map[string]any
	if err := json.Unmarshal(body, &device); err != nil {
		t.Fatal(err)
	}
	device["location"] = map[string]string{"reference": "Location/bed-0101-1"}
	delete(device, "meta")
	put(t, base+"/Device/"+dev, device)

	c := mllpClient(t, s.App.ADTAddr("acme"))
	if _, ack := sendMLLP(t, c, adtintest.Msg{Event: "A01", ControlID: "BED1", Time: adtintest.T0, MRN: "MRN0000042",
		Family: "SYNTHETIC", Bed: adtintest.Bed1, Visit: "VN00042"}.Bytes()); ack.Code != "AA" {
		t.Fatalf("A01: %+v", ack)
	}
	pats := search(t, base+"/Patient?"+identifierQuery(adtintest.System, "MRN0000042"))
	if len(pats) != 1 {
		t.Fatalf("%d patients", len(pats))
	}
	obs := search(t, base+"/Observation?subject=Patient/"+pats[0]["id"].(string))
	if len(obs) != 1 {
		t.Fatalf("%d Observations of the admitted patient right after the ACK, want the released reading", len(obs))
	}
	dus := search(t, base+"/DeviceUseStatement?device=Device/"+dev)
	if len(dus) != 1 || dus[0]["status"] != "active" {
		t.Errorf("associations of the monitor: %v", dus)
	}
}

func put(t *testing.T, url string, body any) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPut, url, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(resp.Body)
		t.Fatalf("PUT %s: %d %s", url, resp.StatusCode, msg)
	}
}

// TestADTMutualTLS: with a certificate, key and client CA the listener
// speaks MLLP over TLS and serves only engines presenting a certificate the
// CA signed.
func TestADTMutualTLS(t *testing.T) {
	certFile, keyFile, cert, pool := throwawayCert(t)
	s := servertest.Start(t, withADT(false), func(c *app.Config) {
		c.ADT.TLSCertFile, c.ADT.TLSKeyFile, c.ADT.TLSClientCAFile = certFile, keyFile, certFile
	})
	addr := s.App.ADTAddr("acme")
	msg := adtintest.Msg{Event: "A08", ControlID: "TLS1", Time: adtintest.T0, MRN: "MRN0000007", Family: "SYNTHETIC", NoPV1: true}.Bytes()
	ctx := context.Background()
	withCert := mllp.NewClient(addr, mllp.Options{AckTimeout: 10 * time.Second,
		TLS: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{cert}}})
	defer withCert.Close()
	ack, err := withCert.Send(ctx, msg)
	if err != nil || adtintest.ParseAck(t, ack).Code != "AA" {
		t.Fatalf("with a client certificate: %q, %v", ack, err)
	}
	without := mllp.NewClient(addr, mllp.Options{AckTimeout: 2 * time.Second, TLS: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}})
	defer without.Close()
	if ack, err := without.Send(ctx, msg); err == nil {
		t.Errorf("without a client certificate the listener answered %q", ack)
	}
	plain := mllp.NewClient(addr, mllp.Options{AckTimeout: 2 * time.Second})
	defer plain.Close()
	if ack, err := plain.Send(ctx, msg); err == nil {
		t.Errorf("plain TCP to the TLS listener answered %q", ack)
	}
}

// throwawayCert makes a self-signed certificate good for server and client
// authentication on 127.0.0.1, written as PEM files.
func throwawayCert(t *testing.T) (certFile, keyFile string, cert tls.Certificate, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pulsewire test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
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
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return certFile, keyFile, cert, pool
}
