package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/pulsewire/pulsewire/mappings/device"
	"github.com/pulsewire/pulsewire/server/app"
	"github.com/pulsewire/pulsewire/server/ingest"
	"github.com/pulsewire/pulsewire/server/ingest/tables"
	"github.com/pulsewire/pulsewire/server/search"
)

// ingestCommand runs the ingestion commands on the store directly:
//
//	device-key add --tenant T [--device ID ...]
//	dead-letters list|show ID|replay ID --tenant T [--templates DIR]
//	ingest release --tenant T
func ingestCommand(ctx context.Context, cmd string, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: pulsewire %s SUBCOMMAND --tenant T", cmd)
	}
	sub, args := args[0], args[1:]
	var cfg app.Config
	fs := flag.NewFlagSet(cmd+" "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	storeFlags(fs, &cfg, getenv)
	tenant := fs.String("tenant", "", "tenant")
	var devices multiFlag
	fs.Var(&devices, "device", "device identifier value the key may send for (repeatable; none: any device of the tenant)")
	tplDir := fs.String("templates", "", "directory of device templates merged over the built-ins (for replay)")
	if err := fs.Parse(flagsFirst(args)); err != nil {
		return err
	}
	if *tenant == "" {
		return fmt.Errorf("--tenant is required")
	}
	s, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	ts, ok := s.(tables.Store)
	if !ok {
		return fmt.Errorf("the store keeps no ingestion tables")
	}
	builtin, err := device.Builtin()
	if err != nil {
		return err
	}
	set := device.NewSet(builtin)
	if *tplDir != "" {
		if _, err := set.Reload(os.DirFS(*tplDir)); err != nil {
			return err
		}
	}
	in := ingest.New(ingest.Config{Store: ts, Registry: search.NewRegistry(), Templates: set})
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	arg := func() (string, error) {
		if fs.NArg() != 1 {
			return "", fmt.Errorf("usage: pulsewire %s %s --tenant T ID", cmd, sub)
		}
		return fs.Arg(0), nil
	}
	switch cmd + " " + sub {
	case "device-key add":
		key, id, err := in.AddDeviceKey(ctx, *tenant, devices)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "key id %s (shown once; only its hash is stored):\n%s\n", id, key)
		return nil
	case "dead-letters list":
		dls, err := in.DeadLetters(ctx, *tenant, 0, 1000)
		if err != nil {
			return err
		}
		if len(dls) == 0 {
			fmt.Fprintln(stdout, "no dead letters")
		}
		for _, d := range dls {
			replayed := ""
			if !d.ReplayedAt.IsZero() {
				replayed = " replayed " + d.ReplayedAt.Format("2006-01-02T15:04:05Z")
			}
			fmt.Fprintf(stdout, "%s\t%s\t%s\t%s%s\n", d.ID, d.Received.Format("2006-01-02T15:04:05Z"), d.Source, d.Reason, replayed)
		}
		return nil
	case "dead-letters show":
		id, err := arg()
		if err != nil {
			return err
		}
		d, err := in.DeadLetter(ctx, *tenant, id)
		if err != nil {
			return err
		}
		return enc.Encode(map[string]any{"id": d.ID, "source": d.Source, "reason": d.Reason, "received": d.Received,
			"replayedAt": d.ReplayedAt, "payload": string(d.Payload)})
	case "dead-letters replay":
		id, err := arg()
		if err != nil {
			return err
		}
		r, err := in.Replay(ctx, *tenant, id)
		if err != nil {
			return err
		}
		return enc.Encode(r)
	case "ingest release":
		n, err := in.Sweep(ctx, *tenant)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "released %d held readings\n", n)
		return nil
	}
	return fmt.Errorf("unknown command %q", cmd+" "+sub)
}

// flagsFirst moves flags before positional arguments, so that both
// "dead-letters show ID --tenant T" and "dead-letters show --tenant T ID"
// work (package flag stops at the first positional argument). Every flag of
// these commands takes a value, so a flag without "=" takes the next argument.
func flagsFirst(args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			pos = append(pos, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			flags = append(flags, a)
			if !strings.Contains(a, "=") && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
		default:
			pos = append(pos, a)
		}
	}
	return append(flags, pos...)
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
