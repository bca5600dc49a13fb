package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pulsewire/pulsewire/adapters/postgres/pgtest"
)

func TestVersionAndUnknownCommand(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, func(string) string { return "" }, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "pulsewire ") {
		t.Errorf("version printed %q", out.String())
	}
	if err := run(context.Background(), []string{"frobnicate"}, func(string) string { return "" }, io.Discard, io.Discard); err == nil {
		t.Error("unknown command: no error")
	}
}

// TestServeFromEnvironment starts the real command with configuration from
// the environment only, waits for the printed base URL, reads /metadata, and
// shuts it down gracefully by cancelling its context.
func TestServeFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{
		"PULSEWIRE_ADDR":     "127.0.0.1:0",
		"PULSEWIRE_DATA_DIR": dir,
		"PULSEWIRE_TENANTS":  "clinic-a",
	}
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve"}, func(k string) string { return env[k] }, pw, io.Discard)
		pw.Close()
	}()
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var base string
	select {
	case l := <-lines:
		_, base, _ = strings.Cut(l, ": ")
	case err := <-done:
		t.Fatalf("serve exited: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("no base URL printed in 30 s")
	}
	if !strings.HasSuffix(base, "/t/clinic-a/fhir") {
		t.Fatalf("printed base URL %q", base)
	}
	resp, err := http.Get(base + "/metadata")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/metadata: %d", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("graceful shutdown returned %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop within 20 s of cancellation")
	}
}

// TestMigrateAndTenantAddOnPostgres runs the operator commands against a
// fresh PostgreSQL schema: migrate twice (idempotent), then register a tenant.
func TestMigrateAndTenantAddOnPostgres(t *testing.T) {
	dsn, schema := pgtest.Schema(t)
	env := func(k string) string {
		if k == "PULSEWIRE_POSTGRES_DSN" {
			return dsn
		}
		return ""
	}
	ctx := context.Background()
	for i := range 2 {
		var out bytes.Buffer
		if err := run(ctx, []string{"migrate"}, env, &out, io.Discard); err != nil {
			t.Fatalf("migrate #%d: %v", i+1, err)
		}
		if !strings.Contains(out.String(), "migrations applied") {
			t.Errorf("migrate printed %q", out.String())
		}
	}
	if err := run(ctx, []string{"tenant", "add", "clinic-b"}, env, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := run(ctx, []string{"tenant", "add", "Not_Valid"}, env, io.Discard, io.Discard); err == nil {
		t.Error("invalid tenant name accepted")
	}
	var n int
	if err := pgtest.AdminConn(t).QueryRow(ctx, "SELECT count(*) FROM "+schema+".tenants WHERE id = 'clinic-b'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("tenant rows: %d, want 1", n)
	}
}

func TestMappingTest(t *testing.T) {
	noEnv := func(string) string { return "" }
	var out bytes.Buffer
	err := run(context.Background(), []string{"mapping", "test", "--payload", "../../../mappings/mappingcli/testdata/gateway-multi.payload.json"}, noEnv, &out, io.Discard)
	if err != nil {
		t.Fatalf("a payload that maps: %v\n%s", err, out.String())
	}
	for _, want := range []string{`"resourceType": "Observation"`, "matched   template heartrate", "matched   template bloodpressure"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	err = run(context.Background(), []string{"mapping", "test", "--payload", "../../../mappings/mappingcli/testdata/bad-time.payload.json"}, noEnv, &out, io.Discard)
	if err == nil || !strings.Contains(out.String(), "not an RFC 3339 time") {
		t.Errorf("a payload with a bad time: err %v, output:\n%s", err, out.String())
	}
}

// TestIngestCommands runs the ingestion operator commands on an embedded
// store, with the ID given before or after the flags.
func TestIngestCommands(t *testing.T) {
	dir := t.TempDir()
	env := func(k string) string {
		if k == "PULSEWIRE_DATA_DIR" {
			return dir
		}
		return ""
	}
	ctx := context.Background()
	runOK := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := run(ctx, args, env, &out, io.Discard); err != nil {
			t.Fatalf("pulsewire %v: %v", args, err)
		}
		return out.String()
	}
	runOK("tenant", "add", "acme")
	if out := runOK("device-key", "add", "--tenant", "acme", "--device", "SN-7"); !strings.Contains(out, "pwk_") {
		t.Errorf("device-key add printed %q, want a pwk_ key", out)
	}
	if out := runOK("dead-letters", "list", "--tenant", "acme"); !strings.Contains(out, "no dead letters") {
		t.Errorf("dead-letters list printed %q", out)
	}
	for _, args := range [][]string{
		{"dead-letters", "show", "nosuch", "--tenant", "acme"},
		{"dead-letters", "show", "--tenant", "acme", "nosuch"},
	} {
		err := run(ctx, args, env, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "not found") {
			t.Errorf("pulsewire %v: %v, want a not-found error", args, err)
		}
	}
	if out := runOK("ingest", "release", "--tenant", "acme"); !strings.Contains(out, "released 0") {
		t.Errorf("ingest release printed %q", out)
	}
}
