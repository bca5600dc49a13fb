package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/pulsewire/pulsewire/server/app"
	"github.com/pulsewire/pulsewire/server/audit"
	"github.com/pulsewire/pulsewire/server/audit/chain"
)

// auditCommand runs the audit commands on the store directly:
//
//	audit verify --tenant T   walk every lane of T's audit chain; exit status 1 at the first broken link
func auditCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "verify" {
		return fmt.Errorf("usage: pulsewire audit verify --tenant T")
	}
	var cfg app.Config
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	storeFlags(fs, &cfg, getenv)
	tenant := fs.String("tenant", "", "tenant whose audit chain to verify")
	if err := fs.Parse(flagsFirst(args[1:])); err != nil {
		return err
	}
	if *tenant == "" || fs.NArg() > 0 {
		return fmt.Errorf("usage: pulsewire audit verify --tenant T")
	}
	s, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	cs, ok := s.(chain.Store)
	if !ok {
		return fmt.Errorf("the store keeps no audit chain")
	}
	r, err := audit.Verify(ctx, cs, *tenant)
	if err != nil {
		return err
	}
	if r.Break != nil {
		fmt.Fprintf(stdout, "tenant %s: audit chain BROKEN at %s\n", r.Tenant, r.Break)
		fmt.Fprintf(stdout, "  %d events verified before it; the heads account for %d\n", r.Verified, r.Heads.Events())
		return fmt.Errorf("the audit chain of tenant %s is broken at lane %d, sequence %d", r.Tenant, r.Break.Lane, r.Break.Seq)
	}
	// The heads are what an operator keeps elsewhere (anchoring): a later
	// run whose lanes no longer lead through them shows a rewritten tail.
	// Empty lanes have nothing to anchor.
	var used []chain.Head
	for _, h := range r.Heads.Lanes {
		if h.Seq > 0 {
			used = append(used, h)
		}
	}
	lanes := "lanes"
	if len(used) == 1 {
		lanes = "lane"
	}
	fmt.Fprintf(stdout, "tenant %s: audit chain intact: %d events in %d %s\n", r.Tenant, r.Verified, len(used), lanes)
	for _, h := range used {
		fmt.Fprintf(stdout, "  lane %d head: sequence %d, hash %s\n", h.Lane, h.Seq, h.Hash)
	}
	return nil
}
