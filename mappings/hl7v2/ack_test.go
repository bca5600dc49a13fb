package hl7v2

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestNewACK(t *testing.T) {
	now := time.Date(2025, 3, 14, 10, 15, 30, 0, time.UTC)
	id := func() string { return "ACK0001" }
	recv := func(t *testing.T, version string) *Message {
		t.Helper()
		m, _, err := Parse([]byte("MSH|^~\\&|ADT_SRC^1.2.3^ISO|GENHOSP|PULSEWIRE|PWFAC|20250314080000||ADT^A01^ADT_A01|CTL42|T|" + version + "\rPID|1||X\r"))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	tests := []struct {
		name     string
		received *Message
		opts     AckOptions
		want     string
	}{
		{
			name:     "AA",
			received: recv(t, "2.5.1"),
			opts:     AckOptions{Code: AckAccept},
			want:     "MSH|^~\\&|PULSEWIRE|PWFAC|ADT_SRC^1.2.3^ISO|GENHOSP|20250314101530+0000||ACK^A01^ACK|ACK0001|T|2.5.1\rMSA|AA|CTL42\r",
		},
		{
			name:     "AE with located errors",
			received: recv(t, "2.6"),
			opts: AckOptions{Code: AckError, Issues: []Issue{
				{Segment: "PID", Occurrence: 1, Field: 3, Code: ErrRequiredFieldMissing},
				{Segment: "PV1", Occurrence: 1, Field: 3, Code: ErrTableValueNotFound},
			}},
			want: "MSH|^~\\&|PULSEWIRE|PWFAC|ADT_SRC^1.2.3^ISO|GENHOSP|20250314101530+0000||ACK^A01^ACK|ACK0001|T|2.6\rMSA|AE|CTL42\r" +
				"ERR||PID^1^3|101^Required field missing^HL70357|E\rERR||PV1^1^3|103^Table value not found^HL70357|E\r",
		},
		{
			name:     "AR without issues gets 207",
			received: recv(t, "2.6"),
			opts:     AckOptions{Code: AckReject},
			want: "MSH|^~\\&|PULSEWIRE|PWFAC|ADT_SRC^1.2.3^ISO|GENHOSP|20250314101530+0000||ACK^A01^ACK|ACK0001|T|2.6\rMSA|AR|CTL42\r" +
				"ERR|||207^Application internal error^HL70357|E\r",
		},
		{
			name:     "AR unsupported type, v2.3 uses ERR-1",
			received: recv(t, "2.3"),
			opts:     AckOptions{Code: AckReject, Issues: []Issue{{Segment: "MSH", Occurrence: 1, Field: 9, Code: ErrUnsupportedMessageType}, {Code: ErrApplicationInternal}}},
			want: "MSH|^~\\&|PULSEWIRE|PWFAC|ADT_SRC^1.2.3^ISO|GENHOSP|20250314101530+0000||ACK^A01^ACK|ACK0001|T|2.3\rMSA|AR|CTL42\r" +
				"ERR|MSH^1^9^200&Unsupported message type&HL70357\rERR|^^^207&Application internal error&HL70357\r",
		},
		{
			name:     "unparseable message",
			received: nil,
			opts:     AckOptions{Code: AckReject, Issues: []Issue{{Index: 1, Occurrence: 1, Code: ErrSegmentSequence}}},
			want:     "MSH|^~\\&|||||20250314101530+0000||ACK^^ACK|ACK0001|P|2.6\rMSA|AR\rERR||^1|100^Segment sequence error^HL70357|E\r",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Now, tt.opts.ControlID = now, id
			ack, err := NewACK(tt.received, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Encode(ack)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, string(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			back, _, err := Parse(got)
			if err != nil {
				t.Fatal(err)
			}
			if back.Value("MSA", 1, 1, 1, 1) != string(tt.opts.Code) || back.MessageType().Code != "ACK" || back.ControlID() != "ACK0001" {
				t.Errorf("re-parsed ACK has MSA-1 %q, MSH-9 %v, MSH-10 %q", back.Value("MSA", 1, 1, 1, 1), back.MessageType(), back.ControlID())
			}
		})
	}
}

func TestNewACKErrors(t *testing.T) {
	if _, err := NewACK(nil, AckOptions{Code: "XX", ControlID: func() string { return "1" }}); err == nil {
		t.Error("unknown code accepted")
	}
	if _, err := NewACK(nil, AckOptions{Code: AckAccept}); err == nil {
		t.Error("missing ControlID accepted")
	}
	if !AckAccept.Accepted() || !AckCommitAccept.Accepted() || AckError.Accepted() {
		t.Error("Accepted() wrong")
	}
}
