package main

import (
	"bytes"
	"context"
	"database/sql"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the test tampers with the store's file directly

	"github.com/pulsewire/pulsewire/server/app"
	"github.com/pulsewire/pulsewire/server/audit"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/search"
)

// TestAuditVerify: pulsewire audit verify reports an intact chain with its
// lanes' heads, and after a direct SQL UPDATE of one AuditEvent's body
// reports the broken link and exits non-zero.
func TestAuditVerify(t *testing.T) {
	dir := t.TempDir()
	env := func(k string) string {
		if k == "PULSEWIRE_DATA_DIR" {
			return dir
		}
		return ""
	}
	ctx := context.Background()

	// Record a write and a read the way the server does.
	s, err := app.OpenStore(ctx, app.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	reg := search.NewRegistry()
	a, err := audit.New(audit.Config{Store: s, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	s.(fhir.Hooked).AddWriteHook(a.Hook())
	body := []byte(`{"resourceType":"Patient","active":true}`)
	idx, _ := reg.Extract("Patient", body)
	if err := s.Tx(ctx, "acme", func(tx fhir.Tx) error {
		_, _, err := tx.Put(audit.WithPrincipal(ctx, audit.System("cli-test")), &fhir.Write{Type: "Patient", ID: "p1", Body: body, Index: idx})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := a.RecordDurable(ctx, audit.Event{Tenant: "acme", Interaction: audit.Read, Type: "Patient", ID: "p1", Patient: "p1"}); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := a.Close(cctx); err != nil {
		t.Fatal(err)
	}
	s.Close()

	verify := func() (string, error) {
		var out bytes.Buffer
		err := run(ctx, []string{"audit", "verify", "--tenant", "acme"}, env, &out, io.Discard)
		return out.String(), err
	}
	out, err := verify()
	if err != nil || !strings.Contains(out, "intact: 2 events in 1 lane\n  lane 0 head: sequence 2, hash ") {
		t.Fatalf("verify of an intact chain: %v\n%s", err, out)
	}

	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "pulsewire.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec(`UPDATE resources SET body = replace(body, '"action":"C"', '"action":"R"')
		WHERE tenant = 'acme' AND type = 'AuditEvent' AND id = (SELECT id FROM audit_chain WHERE tenant = 'acme' AND lane = 0 AND seq = 1)`)
	if n, _ := res.RowsAffected(); err != nil || n != 1 {
		t.Fatalf("tampering with the event: %d rows, %v", n, err)
	}
	out, err = verify()
	if err == nil || !strings.Contains(out, "BROKEN at lane 0, sequence 1 (AuditEvent/") || !strings.Contains(out, "does not match the hash event 2 recorded") {
		t.Fatalf("verify after tampering: err %v\n%s", err, out)
	}
	if err := run(ctx, []string{"audit", "verify"}, env, io.Discard, io.Discard); err == nil {
		t.Error("audit verify without --tenant succeeded")
	}
}
