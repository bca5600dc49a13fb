package main

import (
	"flag"
	"io"
	"testing"
	"time"

	"github.com/pulsewire/pulsewire/server/app"
)

// TestNATSFlowFlags: the JetStream ack wait and in-flight cap come from
// the environment, and flags override it.
func TestNATSFlowFlags(t *testing.T) {
	env := map[string]string{"PULSEWIRE_NATS_ACK_WAIT": "45s", "PULSEWIRE_NATS_MAX_ACK_PENDING": "250"}
	parse := func(args ...string) app.Config {
		t.Helper()
		var cfg app.Config
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		if err := ingestFlags(fs, &cfg, func(k string) string { return env[k] }); err != nil {
			t.Fatal(err)
		}
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	if c := parse(); c.NATS.AckWait != 45*time.Second || c.NATS.MaxAckPending != 250 {
		t.Errorf("from env: AckWait %v, MaxAckPending %d; want 45s, 250", c.NATS.AckWait, c.NATS.MaxAckPending)
	}
	if c := parse("--nats-ack-wait", "2m", "--nats-max-ack-pending", "64"); c.NATS.AckWait != 2*time.Minute || c.NATS.MaxAckPending != 64 {
		t.Errorf("from flags: AckWait %v, MaxAckPending %d; want 2m, 64", c.NATS.AckWait, c.NATS.MaxAckPending)
	}
	env["PULSEWIRE_NATS_MAX_ACK_PENDING"] = "many"
	var cfg app.Config
	if err := ingestFlags(flag.NewFlagSet("serve", flag.ContinueOnError), &cfg, func(k string) string { return env[k] }); err == nil {
		t.Error("a non-numeric PULSEWIRE_NATS_MAX_ACK_PENDING was accepted")
	}
}
