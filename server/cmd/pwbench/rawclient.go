package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// rawConn is the load generator's HTTP/1.1 client: one keep-alive
// connection, one request at a time, written and read on the calling
// goroutine. net/http's client spends about as much CPU per request as the
// server does on a GET (its transport runs two goroutines per connection
// and hands each request and response between them, and parses every
// header into a map), and on this 2-core machine the generator's CPU is
// taken from the server under test. This one costs a few microseconds, as
// wrk does, with which the ceilings in ../shared/NOTES.md were measured.
// It speaks only what our server answers: Content-Length or chunked
// bodies, keep-alive unless the server closes.
type rawConn struct {
	addr     string
	deadline time.Time
	c        net.Conn
	r        *bufio.Reader
	buf      []byte
}

func newRawConn(addr string, deadline time.Time) *rawConn {
	return &rawConn{addr: addr, deadline: deadline}
}

func (rc *rawConn) close() {
	if rc.c != nil {
		rc.c.Close()
		rc.c = nil
	}
}

// do sends req and reads the response, discarding its body, and returns
// the status. Any error leaves the connection closed (the next do dials
// again).
func (rc *rawConn) do(req *http.Request) (int, error) {
	status, keep, err := rc.roundTrip(req)
	if err != nil || !keep {
		rc.close()
	}
	return status, err
}

func (rc *rawConn) roundTrip(req *http.Request) (status int, keep bool, err error) {
	if rc.c == nil {
		if rc.c, err = net.Dial("tcp", rc.addr); err != nil {
			return 0, false, err
		}
		if err = rc.c.SetDeadline(rc.deadline); err != nil {
			return 0, false, err
		}
		rc.r = bufio.NewReaderSize(rc.c, 64<<10)
	}
	var body []byte
	if req.Body != nil {
		if body, err = io.ReadAll(req.Body); err != nil {
			return 0, false, err
		}
	}
	b := append(rc.buf[:0], req.Method...)
	b = append(b, ' ')
	b = append(b, req.URL.RequestURI()...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, req.URL.Host...)
	b = append(b, "\r\n"...)
	for k, vs := range req.Header {
		for _, v := range vs {
			b = append(append(append(append(b, k...), ": "...), v...), "\r\n"...)
		}
	}
	if body != nil {
		b = append(append(append(b, "Content-Length: "...), strconv.Itoa(len(body))...), "\r\n"...)
	}
	b = append(append(b, "\r\n"...), body...)
	rc.buf = b
	if _, err = rc.c.Write(b); err != nil {
		return 0, false, err
	}
	return rc.readResponse()
}

var errBadResponse = errors.New("malformed HTTP response")

func (rc *rawConn) readResponse() (status int, keep bool, err error) {
	line, err := rc.r.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, false, errBadResponse
	}
	if status, err = strconv.Atoi(string(line[9:12])); err != nil {
		return 0, false, errBadResponse
	}
	length, chunked, keep := int64(-1), false, true
	for {
		h, err := rc.r.ReadSlice('\n')
		if err != nil {
			return 0, false, err
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return 0, false, errBadResponse
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.ParseInt(string(value), 10, 64); err != nil {
				return 0, false, errBadResponse
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			keep = !bytes.EqualFold(value, []byte("close"))
		}
	}
	switch {
	case status < 200 || status == http.StatusNoContent || status == http.StatusNotModified:
		// No body (RFC 9112 §6.3); the generator sends no HEAD.
	case chunked:
		err = rc.discardChunks()
	case length >= 0:
		_, err = rc.r.Discard(int(length))
	default:
		return 0, false, fmt.Errorf("status %d response without a length", status)
	}
	return status, keep, err
}

// discardChunks reads a chunked body (RFC 9112 §7.1) and its trailer.
func (rc *rawConn) discardChunks() error {
	for {
		line, err := rc.r.ReadSlice('\n')
		if err != nil {
			return err
		}
		size, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(";"))
		n, err := strconv.ParseInt(string(size), 16, 64)
		if err != nil {
			return errBadResponse
		}
		if n == 0 {
			for {
				t, err := rc.r.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(bytes.TrimRight(t, "\r\n")) == 0 {
					return nil
				}
			}
		}
		if _, err := rc.r.Discard(int(n) + 2); err != nil {
			return err
		}
	}
}
