package delivery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/pulsewire/pulsewire/mappings/hl7v2"
)

func TestReadACK(t *testing.T) {
	const cid = "PW1A"
	msh := "MSH|^~\\&|ENGINE|HOSP|PULSEWIRE|FAC|20260301101531+0000||ACK^R01^ACK|A1|P|2.6\r"
	tests := []struct {
		name     string
		ack      string
		code     hl7v2.AckCode
		desc     string
		ackError string // substring of the ackError, when one is expected
	}{
		{name: "AA", ack: msh + "MSA|AA|PW1A\r", code: hl7v2.AckAccept},
		{name: "CA, LF ends", ack: strings.ReplaceAll(msh+"MSA|CA|PW1A\r", "\r", "\n"), code: hl7v2.AckCommitAccept},
		{name: "AE with ERR-3", ack: msh + "MSA|AE|PW1A|patient SMITH unknown\rERR||PID^1^3|204^Unknown key identifier^HL70357|E\r",
			code: hl7v2.AckError, desc: "AE (ERR 204 Unknown key identifier)"},
		{name: "AR with two ERR", ack: msh + "MSA|AR|PW1A\rERR|||103^x^HL70357|E\rERR|||200|E\r",
			code: hl7v2.AckReject, desc: "AR (ERR 103 Table value not found; 200 Unsupported message type)"},
		{name: "CE with ERR-1 (v2.3)", ack: strings.Replace(msh, "2.6", "2.3", 1) + "MSA|CE|PW1A\rERR|OBX^1^3^103&Table value not found&HL70357\r",
			code: hl7v2.AckCommitError, desc: "CE (ERR 103 Table value not found)"},
		{name: "AR without ERR", ack: msh + "MSA|AR|PW1A\r", code: hl7v2.AckReject, desc: "AR"},
		{name: "empty MSA-2", ack: msh + "MSA|AR\r", code: hl7v2.AckReject, desc: "AR"},
		{name: "another message", ack: msh + "MSA|AA|PW19\r", ackError: "another message"},
		{name: "no MSA", ack: msh, ackError: "without an MSA"},
		{name: "unknown code", ack: msh + "MSA|OK|PW1A\r", ackError: "unknown MSA-1"},
		{name: "not HL7", ack: "HTTP/1.1 200 OK\r\n", ackError: "unreadable ACK"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, desc, err := readACK([]byte(tc.ack), cid)
			if tc.ackError != "" {
				var ae *ackError
				if !errors.As(err, &ae) || !strings.Contains(err.Error(), tc.ackError) {
					t.Fatalf("readACK error = %v, want an ackError about %q", err, tc.ackError)
				}
				return
			}
			if err != nil || code != tc.code || desc != tc.desc {
				t.Errorf("readACK = %q, %q, %v; want %q, %q", code, desc, err, tc.code, tc.desc)
			}
			if strings.Contains(desc, "SMITH") {
				t.Errorf("description %q quotes the engine's text", desc)
			}
		})
	}
}

type stubSender struct{ err error }

func (s stubSender) Send(context.Context, []byte) ([]byte, error) { return nil, s.err }
func (s stubSender) Close() error                                 { return nil }

func TestTimeouts(t *testing.T) {
	transportTimeout := errors.New("mllp: no acknowledgment within the timeout")
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"transport's timeout", fmt.Errorf("mllp: send to h: %w", transportTimeout), true},
		{"context deadline", fmt.Errorf("post: %w", context.DeadlineExceeded), true},
		{"net timeout", &net.OpError{Op: "read", Err: timeoutErr{}}, true},
		{"refused", errors.New("connection refused"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := WithTimeoutError(stubSender{tc.err}, transportTimeout).Send(context.Background(), nil)
			if got := isTimeout(err); got != tc.want {
				t.Errorf("isTimeout(%v) = %v, want %v", err, got, tc.want)
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("wrapped error %v lost %v", err, tc.err)
			}
		})
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string { return "i/o timeout" }
func (timeoutErr) Timeout() bool { return true }
