package redistest

import (
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
)

// Proxy forwards TCP to the test Redis and can be killed and restarted on
// the same address: Redis "dying" for every client that reaches it through
// the proxy, without touching the shared server.
type Proxy struct {
	t      testing.TB
	target string
	url    string

	mu    sync.Mutex
	addr  string
	ln    net.Listener
	conns []net.Conn
}

// StartProxy starts a Proxy to URL() (call Require first); it is killed
// when the test ends.
func StartProxy(t testing.TB) *Proxy {
	t.Helper()
	u, err := url.Parse(URL())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{t: t, target: u.Host, addr: ln.Addr().String(), ln: ln}
	via := *u
	via.Host = p.addr
	p.url = via.String()
	go p.serve(ln)
	t.Cleanup(p.Kill)
	return p
}

// URL is the Redis URL that goes through the proxy.
func (p *Proxy) URL() string { return p.url }

func (p *Proxy) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(u, c); u.Close() }()
		go func() { _, _ = io.Copy(c, u); c.Close() }()
	}
}

// Kill closes the listener and drops every connection: clients see Redis
// gone (connection refused) until Restart.
func (p *Proxy) Kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// Restart listens on the same address again.
func (p *Proxy) Restart() {
	p.t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("restarting the Redis proxy on %s: %v", p.addr, err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go p.serve(ln)
}
