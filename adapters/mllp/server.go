package mllp

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// Handler answers one received message with the content of the response
// frame (an HL7 ACK). It runs on the connection's goroutine, so responses go
// out in the order messages came in. A nil response sends nothing (the peer
// will time out): handlers should always answer. ctx is cancelled by
// Server.Close.
type Handler func(ctx context.Context, msg []byte) (ack []byte)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("mllp: server closed")

// Server receives MLLP frames, one goroutine per connection. For TLS, pass a
// tls.NewListener. The zero value with a Handler is ready to Serve.
type Server struct {
	Handler      Handler
	MaxFrame     int           // 0: DefaultMaxFrame
	IdleTimeout  time.Duration // a connection with no complete frame for this long is closed; 0: 5 min
	WriteTimeout time.Duration // 0: 30 s
	// Reject returns the response to a frame rejected for size (the wiring
	// builds an HL7 AR ACK). Nil, or a nil response, closes the connection.
	Reject func(err error) []byte
	// Logger gets connection events: addresses and errors, never content.
	Logger *slog.Logger

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*serverConn]struct{}
	closing   bool
	wg        sync.WaitGroup
	ctx       context.Context
	cancel    context.CancelFunc
}

type serverConn struct {
	nc   net.Conn
	idle bool // waiting for a frame; guarded by Server.mu
}

func (s *Server) init() {
	if s.listeners == nil {
		s.listeners = map[net.Listener]struct{}{}
		s.conns = map[*serverConn]struct{}{}
		s.ctx, s.cancel = context.WithCancel(context.Background())
	}
}

func (s *Server) log() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// Serve accepts connections on ln until Shutdown or Close, and returns
// ErrServerClosed then, or the listener's error.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	s.init()
	if s.closing {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		_ = ln.Close()
	}()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isClosing() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		c := &serverConn{nc: nc}
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			_ = nc.Close()
			return ErrServerClosed
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(c)
	}
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// setIdle marks the connection idle or busy; it reports false when the
// server is shutting down and the connection should end.
func (s *Server) setIdle(c *serverConn, idle bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.idle = idle
	return !s.closing
}

func (s *Server) serveConn(c *serverConn) {
	log := s.log().With("remote", c.nc.RemoteAddr().String())
	defer func() {
		_ = c.nc.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.wg.Done()
	}()
	idle := s.IdleTimeout
	if idle <= 0 {
		idle = 5 * time.Minute
	}
	wt := s.WriteTimeout
	if wt <= 0 {
		wt = 30 * time.Second
	}
	r, w := NewReader(c.nc, s.MaxFrame), NewWriter(c.nc)
	for {
		if !s.setIdle(c, true) {
			return
		}
		_ = c.nc.SetReadDeadline(time.Now().Add(idle))
		msg, err := r.ReadFrame()
		s.setIdle(c, false)
		var resp []byte
		switch {
		case err == nil:
			resp = s.handle(log, msg)
		case fhir.IsKind(err, fhir.KindTooLarge):
			log.Warn("mllp: frame rejected", "error", err)
			if s.Reject == nil {
				return
			}
			if resp = s.Reject(err); resp == nil {
				return
			}
		default:
			if st := r.Stats(); st.GarbageBytes > 0 || st.Truncated > 0 || st.MissingCR > 0 {
				log.Info("mllp: connection ended", "frames", st.Frames, "garbage_bytes", st.GarbageBytes, "truncated", st.Truncated, "missing_cr", st.MissingCR)
			}
			return
		}
		if resp == nil {
			continue
		}
		_ = c.nc.SetWriteDeadline(time.Now().Add(wt))
		if err := w.WriteFrame(resp); err != nil {
			log.Warn("mllp: writing response", "error", err)
			return
		}
	}
}

// handle runs the handler, turning a panic into no response and a closed
// connection's worth of log (the panic value may hold content: not logged).
func (s *Server) handle(log *slog.Logger, msg []byte) (resp []byte) {
	defer func() {
		if recover() != nil {
			log.Error("mllp: handler panicked")
			resp = nil
		}
	}()
	return s.Handler(s.ctx, msg)
}

// Shutdown stops accepting, closes idle connections, and waits for the
// others to finish their current message, or until ctx ends (then it closes
// them and returns ctx's error).
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.init()
	s.closing = true
	for ln := range s.listeners {
		_ = ln.Close()
	}
	s.mu.Unlock()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		for c := range s.conns {
			if c.idle {
				_ = c.nc.Close()
			}
		}
		n := len(s.conns)
		s.mu.Unlock()
		if n == 0 {
			s.cancel()
			return nil
		}
		select {
		case <-ctx.Done():
			_ = s.Close()
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Close closes the listeners and every connection at once, cancels the
// handlers' context and waits for the connection goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	s.init()
	s.closing = true
	for ln := range s.listeners {
		_ = ln.Close()
	}
	for c := range s.conns {
		_ = c.nc.Close()
	}
	s.cancel()
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}
