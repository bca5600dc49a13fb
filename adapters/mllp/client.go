package mllp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// Options configure a Client.
type Options struct {
	TLS         *tls.Config   // nil: plain TCP
	DialTimeout time.Duration // 0: 10 s
	AckTimeout  time.Duration // wait for the response frame; 0: 30 s
	MaxFrame    int           // largest response accepted; 0: DefaultMaxFrame
}

// ErrAckTimeout is returned (wrapped) when no response frame came in time.
var ErrAckTimeout = errors.New("mllp: no acknowledgment within the timeout")

// Client sends messages to one MLLP peer over one reused connection,
// reconnecting after any error. MLLP is one message, one response, so Send
// calls are serialized. Safe for concurrent use.
type Client struct {
	addr string
	opts Options

	mu   sync.Mutex
	conn net.Conn
	r    *Reader
	w    *Writer
}

// NewClient returns a Client that connects on first Send.
func NewClient(addr string, opts Options) *Client {
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 10 * time.Second
	}
	if opts.AckTimeout <= 0 {
		opts.AckTimeout = 30 * time.Second
	}
	return &Client{addr: addr, opts: opts}
}

// Dial returns a Client connected to addr.
func Dial(ctx context.Context, addr string, opts Options) (*Client, error) {
	c := NewClient(addr, opts)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.connect(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Client) connect(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.DialTimeout)
	defer cancel()
	var conn net.Conn
	var err error
	if c.opts.TLS != nil {
		d := tls.Dialer{Config: c.opts.TLS}
		conn, err = d.DialContext(ctx, "tcp", c.addr)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", c.addr)
	}
	if err != nil {
		return fmt.Errorf("mllp: connecting to %s: %w", c.addr, err)
	}
	c.conn, c.r, c.w = conn, NewReader(conn, c.opts.MaxFrame), NewWriter(conn)
	return nil
}

// Send writes msg as one frame and returns the content of the next frame the
// peer sends (its ACK). It waits at most AckTimeout (and honours ctx). On any
// error the connection is closed, so a late ACK can never be taken for the
// next message's, and the next Send reconnects.
//
// When a reused connection turns out to be closed by the peer (EOF or reset
// before any response byte, as after a server restart or idle timeout), Send
// reconnects and sends once more. The peer may therefore see a message twice
// in rare cases: HL7 receivers deduplicate on MSH-10.
func (c *Client) Send(ctx context.Context, msg []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	reused := c.conn != nil
	ack, err := c.send(ctx, msg)
	if err != nil && reused && peerClosed(err) && ctx.Err() == nil {
		ack, err = c.send(ctx, msg)
	}
	return ack, err
}

func (c *Client) send(ctx context.Context, msg []byte) ([]byte, error) {
	if c.conn == nil {
		if err := c.connect(ctx); err != nil {
			return nil, err
		}
	}
	conn := c.conn
	deadline := time.Now().Add(c.opts.AckTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := conn.SetDeadline(deadline); err != nil {
		c.drop()
		return nil, fmt.Errorf("mllp: setting deadline: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := c.w.WriteFrame(msg); err != nil {
		c.drop()
		return nil, c.explain(ctx, err)
	}
	ack, err := c.r.ReadFrame()
	if err != nil {
		c.drop()
		return nil, c.explain(ctx, err)
	}
	return ack, nil
}

func (c *Client) explain(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("mllp: send to %s: %w", c.addr, ctx.Err())
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("mllp: send to %s: %w", c.addr, ErrAckTimeout)
	}
	if fhir.IsKind(err, fhir.KindTooLarge) || fhir.IsKind(err, fhir.KindInvalid) {
		return err
	}
	return fmt.Errorf("mllp: send to %s: %w", c.addr, err)
}

// peerClosed reports whether err says the peer closed the connection.
func peerClosed(err error) bool {
	return errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func (c *Client) drop() {
	if c.conn != nil {
		_ = c.conn.Close()
	}
	c.conn, c.r, c.w = nil, nil, nil
}

// Close closes the connection; a later Send reconnects.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var err error
	if c.conn != nil {
		err = c.conn.Close()
	}
	c.conn, c.r, c.w = nil, nil, nil
	return err
}
