package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestSmartCommands drives clients, users and keys on an embedded store.
func TestSmartCommands(t *testing.T) {
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

	out := runOK("clients", "add", "--tenant", "acme", "--id", "portal", "--type", "confidential-symmetric",
		"--scope", "user/Observation.rs openid", "--redirect-uri", "https://portal.example/cb", "--name", "Portal")
	var created struct {
		ID     string `json:"client_id"`
		Secret string `json:"client_secret"`
		Scope  string `json:"scope"`
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil {
		t.Fatalf("clients add printed %q: %v", out, err)
	}
	if created.ID != "portal" || len(created.Secret) < 40 || created.Scope != "user/Observation.rs openid" {
		t.Errorf("clients add: %+v", created)
	}
	if out := runOK("clients", "list", "--tenant", "acme"); !strings.Contains(out, "portal\tconfidential-symmetric") || strings.Contains(out, created.Secret) {
		t.Errorf("clients list printed %q", out)
	}
	if err := run(ctx, []string{"clients", "add", "--tenant", "acme", "--type", "public", "--scope", "user/*.rs"}, env, io.Discard, io.Discard); err == nil {
		t.Error("a public client without redirect URI was added")
	}
	if err := run(ctx, []string{"clients", "list", "--tenant", "nosuch"}, env, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "not registered") {
		t.Errorf("clients list of an unknown tenant: %v", err)
	}
	runOK("clients", "remove", "portal", "--tenant", "acme")
	if out := runOK("clients", "list", "--tenant", "acme"); !strings.Contains(out, "no clients") {
		t.Errorf("clients list after remove printed %q", out)
	}

	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("a long password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	runOK("users", "add", "--tenant", "acme", "--username", "dr.who", "--fhir-user", "Practitioner/p1", "--password-file", pw)
	if out := runOK("users", "add", "--tenant", "acme", "--username", "nurse"); !strings.Contains(out, "shown once") {
		t.Errorf("users add without a password printed %q, want a generated password", out)
	}
	if d := cmp.Diff("dr.who\tPractitioner/p1\t\nnurse\t\t\n", runOK("users", "list", "--tenant", "acme")); d != "" {
		t.Errorf("users list (-want +got):\n%s", d)
	}
	runOK("users", "remove", "--tenant", "acme", "nurse")

	if out := runOK("keys", "list", "--tenant", "acme"); !strings.Contains(out, "no signing keys") {
		t.Errorf("keys list printed %q", out)
	}
	runOK("keys", "rotate", "--tenant", "acme")
	runOK("keys", "rotate", "--tenant", "acme")
	lines := strings.Split(strings.TrimSpace(runOK("keys", "list", "--tenant", "acme")), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "\tRS256\t") || lines[0] == lines[1] {
		t.Errorf("keys list after two rotations: %q, want two RS256 keys", lines)
	}
}
