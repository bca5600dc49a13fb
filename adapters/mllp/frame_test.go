package mllp

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
	"github.com/pulsewire/pulsewire/server/fhir"
)

func frame(s string) string { return "\x0b" + s + "\x1c\r" }

func TestReader(t *testing.T) {
	big := strings.Repeat("x", 20)
	tests := []struct {
		name   string
		in     string
		max    int
		frames []string // "ERR:too-large" for a size rejection
		last   error
		stats  ReaderStats
	}{
		{"two frames", frame("A") + frame("BC"), 0, []string{"A", "BC"}, io.EOF, ReaderStats{Frames: 2}},
		{"empty frame", frame(""), 0, []string{""}, io.EOF, ReaderStats{Frames: 1}},
		{"garbage before start", "junk\r\n" + frame("A") + "zz" + frame("B"), 0, []string{"A", "B"}, io.EOF, ReaderStats{Frames: 2, GarbageBytes: 8}},
		{"too large then resync", frame(big) + frame("ok"), 10, []string{"ERR:too-large", "ok"}, io.EOF, ReaderStats{Frames: 1, TooLarge: 1, DiscardedBytes: 20}},
		{"exactly the limit", frame(big[:10]), 10, []string{big[:10]}, io.EOF, ReaderStats{Frames: 1}},
		{"new start inside a frame", "\x0bpartial" + frame("B"), 0, []string{"B"}, io.EOF, ReaderStats{Frames: 1, Truncated: 1, DiscardedBytes: 7}},
		{"missing CR", "\x0bA\x1c\x0bB\x1c", 0, []string{"A", "B"}, io.EOF, ReaderStats{Frames: 2, MissingCR: 1}},
		{"EOF inside frame", frame("A") + "\x0bhalf", 0, []string{"A"}, io.ErrUnexpectedEOF, ReaderStats{Frames: 1}},
		{"only garbage", "abc", 0, nil, io.EOF, ReaderStats{GarbageBytes: 3}},
	}
	for _, tt := range tests {
		for _, split := range []bool{false, true} {
			name := tt.name
			if split {
				name += " byte by byte"
			}
			t.Run(name, func(t *testing.T) {
				var src io.Reader = strings.NewReader(tt.in)
				if split {
					src = iotest.OneByteReader(src)
				}
				r := NewReader(src, tt.max)
				var got []string
				var err error
				for {
					var f []byte
					f, err = r.ReadFrame()
					if fhir.IsKind(err, fhir.KindTooLarge) && errors.Is(err, ErrFrameTooLarge) {
						got = append(got, "ERR:too-large")
						continue
					}
					if err != nil {
						break
					}
					got = append(got, string(f))
				}
				if diff := cmp.Diff(tt.frames, got); diff != "" {
					t.Errorf("frames (-want +got):\n%s", diff)
				}
				if !errors.Is(err, tt.last) {
					t.Errorf("last error = %v, want %v", err, tt.last)
				}
				if diff := cmp.Diff(tt.stats, r.Stats()); diff != "" {
					t.Errorf("stats (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func TestWriter(t *testing.T) {
	var b bytes.Buffer
	w := NewWriter(&b)
	if err := w.WriteFrame([]byte("MSH|x\r")); err != nil {
		t.Fatal(err)
	}
	if got, want := b.String(), frame("MSH|x\r"); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	for _, bad := range []string{"a\x0bb", "a\x1cb"} {
		if err := w.WriteFrame([]byte(bad)); !fhir.IsKind(err, fhir.KindInvalid) {
			t.Errorf("WriteFrame(%q) err = %v, want KindInvalid", bad, err)
		}
	}
}

// FuzzReader: arbitrary bytes never panic, frames never exceed the limit nor
// hold framing bytes, and reading byte by byte gives the same frames.
func FuzzReader(f *testing.F) {
	f.Add([]byte(frame("MSH|^~\\&|A\r") + "junk" + frame(strings.Repeat("y", 40))))
	f.Add([]byte("\x0b\x0b\x1c\x1c\r\r\x0bA"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const max = 32
		read := func(src io.Reader) []string {
			r := NewReader(src, max)
			var out []string
			for i := 0; i < len(data)+2; i++ {
				f, err := r.ReadFrame()
				if fhir.IsKind(err, fhir.KindTooLarge) {
					out = append(out, "ERR")
					continue
				}
				if err != nil {
					return out
				}
				if len(f) > max || bytes.IndexByte(f, StartBlock) >= 0 || bytes.IndexByte(f, EndBlock) >= 0 {
					t.Fatalf("bad frame %q", f)
				}
				out = append(out, string(f))
			}
			t.Fatal("reader did not stop")
			return nil
		}
		whole := read(bytes.NewReader(data))
		bytewise := read(iotest.OneByteReader(bytes.NewReader(data)))
		if diff := cmp.Diff(whole, bytewise); diff != "" {
			t.Fatalf("split reads differ (-whole +bytewise):\n%s", diff)
		}
	})
}
