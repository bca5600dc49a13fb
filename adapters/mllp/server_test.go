package mllp

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// echoACK answers "ACK:" + the message.
func echoACK(_ context.Context, msg []byte) []byte { return append([]byte("ACK:"), msg...) }

// start serves srv on a loopback port (or addr) and returns the address.
func start(t *testing.T, srv *Server, addr string) string {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the port of a restarted server may be in TIME_WAIT briefly
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return ln.Addr().String()
}

func TestRoundTripManyMessages(t *testing.T) {
	addr := start(t, &Server{Handler: echoACK}, "")
	ctx := context.Background()
	c, err := Dial(ctx, addr, Options{AckTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < 200; i++ {
		msg := fmt.Sprintf("MSH|^~\\&|%d\r", i)
		ack, err := c.Send(ctx, []byte(msg))
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if string(ack) != "ACK:"+msg {
			t.Fatalf("message %d: ack %q", i, ack)
		}
	}
}

// TestResponsesInOrder pipelines frames on one raw connection: responses
// come back in the order sent.
func TestResponsesInOrder(t *testing.T) {
	addr := start(t, &Server{Handler: echoACK}, "")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	w, r := NewWriter(conn), NewReader(conn, 0)
	for i := 0; i < 50; i++ {
		if err := w.WriteFrame([]byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := 0; i < 50; i++ {
		f, err := r.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprint("ACK:", i); string(f) != want {
			t.Fatalf("response %d = %q, want %q", i, f, want)
		}
	}
}

func TestClientReconnectsAfterServerRestart(t *testing.T) {
	srv := &Server{Handler: echoACK}
	addr := start(t, srv, "")
	ctx := context.Background()
	c := NewClient(addr, Options{AckTimeout: 5 * time.Second, DialTimeout: time.Second})
	defer c.Close()
	if _, err := c.Send(ctx, []byte("one")); err != nil {
		t.Fatal(err)
	}
	_ = srv.Close()
	if _, err := c.Send(ctx, []byte("while down")); err == nil {
		t.Fatal("Send succeeded with the server down")
	}
	start(t, &Server{Handler: echoACK}, addr)
	ack, err := c.Send(ctx, []byte("two"))
	if err != nil {
		t.Fatalf("Send after restart: %v", err)
	}
	if string(ack) != "ACK:two" {
		t.Errorf("ack = %q", ack)
	}
}

// TestClientRetriesStaleConnection: the server closes an idle connection;
// the next Send reconnects transparently.
func TestClientRetriesStaleConnection(t *testing.T) {
	addr := start(t, &Server{Handler: echoACK, IdleTimeout: 50 * time.Millisecond}, "")
	c := NewClient(addr, Options{AckTimeout: 5 * time.Second})
	defer c.Close()
	ctx := context.Background()
	if _, err := c.Send(ctx, []byte("one")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if ack, err := c.Send(ctx, []byte("two")); err != nil || string(ack) != "ACK:two" {
		t.Fatalf("Send on a stale connection = %q, %v", ack, err)
	}
}

func TestAckTimeoutWhenPeerSilent(t *testing.T) {
	addr := start(t, &Server{Handler: func(context.Context, []byte) []byte { return nil }}, "")
	c := NewClient(addr, Options{AckTimeout: 100 * time.Millisecond})
	defer c.Close()
	t0 := time.Now()
	_, err := c.Send(context.Background(), []byte("hello"))
	if !errors.Is(err, ErrAckTimeout) {
		t.Fatalf("err = %v, want ErrAckTimeout", err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("timeout took %v", d)
	}
	// Context cancellation ends the wait too.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	c2 := NewClient(addr, Options{AckTimeout: time.Minute})
	defer c2.Close()
	if _, err := c2.Send(ctx, []byte("hello")); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestHugeFrameRejected(t *testing.T) {
	srv := &Server{Handler: echoACK, MaxFrame: 1024, Reject: func(error) []byte { return []byte("AR") }}
	addr := start(t, srv, "")
	c := NewClient(addr, Options{AckTimeout: 5 * time.Second})
	defer c.Close()
	ctx := context.Background()
	ack, err := c.Send(ctx, []byte(strings.Repeat("x", 100_000)))
	if err != nil || string(ack) != "AR" {
		t.Fatalf("huge frame: ack %q, err %v; want AR", ack, err)
	}
	// The server resynchronised: the connection still works.
	if ack, err := c.Send(ctx, []byte("small")); err != nil || string(ack) != "ACK:small" {
		t.Fatalf("after huge frame: ack %q, err %v", ack, err)
	}
	// Without Reject the server drops the connection.
	addr2 := start(t, &Server{Handler: echoACK, MaxFrame: 1024}, "")
	c2 := NewClient(addr2, Options{AckTimeout: 5 * time.Second})
	defer c2.Close()
	if _, err := c2.Send(ctx, []byte(strings.Repeat("x", 5000))); err == nil {
		t.Fatal("huge frame accepted")
	}
	// And the client refuses an oversized response.
	c3 := NewClient(addr, Options{AckTimeout: 5 * time.Second, MaxFrame: 4})
	defer c3.Close()
	if _, err := c3.Send(ctx, []byte("longer")); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversized ack: err = %v, want ErrFrameTooLarge", err)
	}
}

func TestGarbageAndSplitWrites(t *testing.T) {
	addr := start(t, &Server{Handler: echoACK}, "")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	raw := "garbage\r\n\x00" + "\x0bMSH|split\r\x1c\r"
	for i := 0; i < len(raw); i++ {
		if _, err := conn.Write([]byte{raw[i]}); err != nil {
			t.Fatal(err)
		}
		if i%4 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	f, err := NewReader(conn, 0).ReadFrame()
	if err != nil || string(f) != "ACK:MSH|split\r" {
		t.Fatalf("got %q, %v", f, err)
	}
}

func TestShutdownWaitsForInFlight(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	srv := &Server{Handler: func(_ context.Context, msg []byte) []byte {
		close(entered)
		<-release
		return []byte("late ACK")
	}}
	addr := start(t, srv, "")
	idle, err := net.Dial("tcp", addr) // an idle connection is closed at once
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	c := NewClient(addr, Options{AckTimeout: 5 * time.Second})
	defer c.Close()
	var wg sync.WaitGroup
	var ack []byte
	var sendErr error
	wg.Add(1)
	go func() { defer wg.Done(); ack, sendErr = c.Send(context.Background(), []byte("m")) }()
	<-entered
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(context.Background()) }()
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v before the in-flight message finished", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	wg.Wait()
	if sendErr != nil || string(ack) != "late ACK" {
		t.Fatalf("in-flight send: %q, %v", ack, sendErr)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("listener still accepting after Shutdown")
	}
	// Shutdown with an expired context force-closes.
	srv2 := &Server{Handler: func(ctx context.Context, _ []byte) []byte { <-ctx.Done(); return nil }}
	addr2 := start(t, srv2, "")
	c2 := NewClient(addr2, Options{AckTimeout: 5 * time.Second})
	defer c2.Close()
	go func() { _, _ = c2.Send(context.Background(), []byte("m")) }()
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := srv2.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want DeadlineExceeded", err)
	}
}

func TestTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Handler: echoACK}
	go func() { _ = srv.Serve(tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}})) }()
	t.Cleanup(func() { _ = srv.Close() })
	c, err := Dial(context.Background(), ln.Addr().String(), Options{TLS: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}, AckTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ack, err := c.Send(context.Background(), []byte("secret")); err != nil || string(ack) != "ACK:secret" {
		t.Fatalf("TLS send: %q, %v", ack, err)
	}
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
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
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
