// Package mllp implements the Minimal Lower Layer Protocol, release 2
// (HL7 v2.5.1 Appendix C, "MLLP Release 2"): each message travels as
// 0x0B <message> 0x1C 0x0D over TCP, optionally inside TLS. It gives a frame
// Reader and Writer, a Client that sends one message and waits for its
// response frame, and a Server that answers each frame in order.
//
// Frames are opaque bytes here: the HL7 content (and building ACKs) belongs
// to mappings/hl7v2, which the wiring joins to this package. Errors and logs
// never hold frame content (it is patient data).
//
// It is an adapter: it imports only the standard library and server/fhir.
// Only the wiring (server/app, server/cmd) may import it.
package mllp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// Frame bytes.
const (
	StartBlock = 0x0B
	EndBlock   = 0x1C
	CR         = 0x0D
)

// DefaultMaxFrame is the frame size limit when none is configured (1 MiB).
const DefaultMaxFrame = 1 << 20

// ErrFrameTooLarge is returned (wrapped in a *fhir.Error of KindTooLarge) for
// a frame over the reader's limit. The reader then skips to the next start
// byte, so the next ReadFrame returns the next frame.
var ErrFrameTooLarge = errors.New("mllp: frame exceeds the size limit")

// ReaderStats counts what a Reader tolerated.
type ReaderStats struct {
	Frames         int64 // frames returned
	GarbageBytes   int64 // bytes skipped outside a frame
	TooLarge       int64 // frames rejected for size
	Truncated      int64 // frames abandoned because a new start byte arrived
	MissingCR      int64 // frames whose 0x1C was not followed by 0x0D
	DiscardedBytes int64 // bytes of rejected or abandoned frames
}

// Reader reads MLLP frames from a byte stream. It is not safe for
// concurrent use.
type Reader struct {
	br       *bufio.Reader
	max      int
	expectCR bool // the last frame ended with 0x1C; its 0x0D may follow
	discard  bool // skipping the rest of a rejected frame
	stats    ReaderStats
}

// NewReader returns a Reader of frames of at most maxFrame bytes of content
// (DefaultMaxFrame when maxFrame <= 0).
func NewReader(r io.Reader, maxFrame int) *Reader {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 32<<10)
	}
	return &Reader{br: br, max: maxFrame}
}

// Stats returns the reader's counts so far.
func (r *Reader) Stats() ReaderStats { return r.stats }

// ReadFrame returns the content of the next frame (without the framing
// bytes); the slice is the caller's. Bytes before a start byte are skipped
// and counted. It returns io.EOF when the stream ends between frames,
// io.ErrUnexpectedEOF when it ends inside one, a *fhir.Error wrapping
// ErrFrameTooLarge for a frame over the limit, or the stream's error.
func (r *Reader) ReadFrame() ([]byte, error) {
	// Find the start byte.
	for {
		c, err := r.br.ReadByte()
		if err != nil {
			return nil, err
		}
		if c == StartBlock {
			break
		}
		switch {
		case c == CR && r.expectCR:
		case r.discard:
			r.stats.DiscardedBytes++
		default:
			r.stats.GarbageBytes++
		}
		r.expectCR = false
	}
	if r.expectCR {
		r.stats.MissingCR++
	}
	r.expectCR, r.discard = false, false
	var buf []byte
	for {
		chunk, err := r.br.ReadSlice(EndBlock)
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		ended := err == nil
		if ended {
			chunk = chunk[:len(chunk)-1]
		}
		if i := bytes.LastIndexByte(chunk, StartBlock); i >= 0 {
			// A new frame began before this one ended: the sender gave up on
			// it. Keep the new one.
			r.stats.Truncated++
			r.stats.DiscardedBytes += int64(len(buf) + i)
			buf, chunk = buf[:0], chunk[i+1:]
		}
		if len(buf)+len(chunk) > r.max {
			r.stats.TooLarge++
			r.stats.DiscardedBytes += int64(len(buf) + len(chunk))
			r.discard, r.expectCR = !ended, ended
			return nil, fhir.Errorf(fhir.KindTooLarge, "mllp: frame larger than %d bytes rejected", r.max).Wrap(ErrFrameTooLarge)
		}
		buf = append(buf, chunk...)
		if ended {
			r.expectCR = true
			r.stats.Frames++
			if buf == nil {
				buf = []byte{}
			}
			return buf, nil
		}
	}
}

// Writer writes MLLP frames.
type Writer struct {
	w io.Writer
}

// NewWriter returns a Writer framing onto w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// WriteFrame writes 0x0B msg 0x1C 0x0D in one Write. It refuses a message
// holding a framing byte (0x0B or 0x1C): HL7 content escapes them.
func (w *Writer) WriteFrame(msg []byte) error {
	if bytes.IndexByte(msg, StartBlock) >= 0 || bytes.IndexByte(msg, EndBlock) >= 0 {
		return fhir.Errorf(fhir.KindInvalid, "mllp: message contains a framing byte")
	}
	frame := make([]byte, 0, len(msg)+3)
	frame = append(frame, StartBlock)
	frame = append(frame, msg...)
	frame = append(frame, EndBlock, CR)
	if _, err := w.w.Write(frame); err != nil {
		return fmt.Errorf("writing mllp frame: %w", err)
	}
	return nil
}
