package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/pulsewire/pulsewire/mappings/oru"
	"github.com/pulsewire/pulsewire/server/app"
	"github.com/pulsewire/pulsewire/server/delivery"
	"github.com/pulsewire/pulsewire/server/delivery/outbox"
)

// deliveryFlags are serve's flags for outbound ORU^R01 delivery.
func deliveryFlags(fs *flag.FlagSet, cfg *app.Config, getenv func(string) string) error {
	d := &cfg.Delivery
	fs.StringVar(&d.DestinationsFile, "destinations", getenv("PULSEWIRE_DESTINATIONS"),
		"JSON file of every tenant's HL7 result destinations (profile, MLLP or HTTPS address, TLS, retries); empty: delivery off (env PULSEWIRE_DESTINATIONS)")
	fs.BoolVar(&d.NoWorker, "no-delivery-worker", env(getenv, "PULSEWIRE_NO_DELIVERY_WORKER", "false") == "true",
		"enqueue results but run no delivery worker in this replica (env PULSEWIRE_NO_DELIVERY_WORKER)")
	poll, err := durationEnv(getenv, "PULSEWIRE_DELIVERY_POLL", 250*time.Millisecond)
	if err != nil {
		return err
	}
	fs.DurationVar(&d.Poll, "delivery-poll", poll, "how often an idle destination looks for due results (env PULSEWIRE_DELIVERY_POLL)")
	keep, err := durationEnv(getenv, "PULSEWIRE_DELIVERY_RETENTION", 7*24*time.Hour)
	if err != nil {
		return err
	}
	fs.DurationVar(&d.Retention, "delivery-retention", keep, "how long delivered outbox entries are kept (env PULSEWIRE_DELIVERY_RETENTION)")
	return nil
}

const outboxUsage = `usage: pulsewire outbox SUBCOMMAND --tenant T [flags]

  list    [--state dead|pending|done] [--destination D] [--limit N] [--offset N]
  show    ID [--message --destinations FILE]   one entry; --message prints the HL7 message it makes (patient data)
  replay  ID... | --all --destination D          dead letters back to the end of their queue
  pause   --destination D                         stop sending to a destination (every replica)
  resume  --destination D
  stats                                           queue depth, in flight, dead letters, oldest, paused
`

// outboxCommand runs the operator's outbox commands on the store directly.
func outboxCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, outboxUsage)
		return errors.New("outbox needs a subcommand")
	}
	sub, args := args[0], args[1:]
	var cfg app.Config
	fs := flag.NewFlagSet("outbox "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	storeFlags(fs, &cfg, getenv)
	tenant := fs.String("tenant", "", "tenant (required)")
	dest := fs.String("destination", "", "destination name")
	state := fs.String("state", string(outbox.Dead), "list: entries in this state")
	limit := fs.Int("limit", 100, "list: at most this many")
	offset := fs.Int("offset", 0, "list: skip this many")
	all := fs.Bool("all", false, "replay: every dead letter of --destination")
	message := fs.Bool("message", false, "show: also print the HL7 message the entry makes now; it holds patient data")
	dests := fs.String("destinations", getenv("PULSEWIRE_DESTINATIONS"), "show --message: the destinations file (env PULSEWIRE_DESTINATIONS)")
	if err := fs.Parse(flagsBeforeArgs(fs, args)); err != nil {
		return err
	}
	if *tenant == "" {
		return errors.New("--tenant is required")
	}
	s, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	st, ok := s.(outbox.Store)
	if !ok {
		return errors.New("the store keeps no outbox")
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	ids := func() ([]int64, error) {
		var out []int64
		for _, a := range fs.Args() {
			id, err := strconv.ParseInt(a, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("outbox entry id %q is not a number", a)
			}
			out = append(out, id)
		}
		return out, nil
	}
	needDest := func() error {
		if *dest == "" {
			return fmt.Errorf("outbox %s needs --destination", sub)
		}
		return nil
	}
	switch sub {
	case "list":
		es, err := st.Entries(ctx, *tenant, outbox.Filter{Destination: *dest, State: outbox.State(*state), Offset: *offset, Limit: *limit})
		if err != nil {
			return err
		}
		return enc.Encode(es)
	case "show":
		list, err := ids()
		if err != nil || len(list) != 1 {
			return errors.New("usage: pulsewire outbox show --tenant T ID")
		}
		e, err := st.Entry(ctx, *tenant, list[0])
		if err != nil {
			return err
		}
		if err := enc.Encode(e); err != nil {
			return err
		}
		if !*message {
			return nil
		}
		if *dests == "" {
			return errors.New("show --message needs --destinations")
		}
		ds, err := delivery.LoadFile(*dests, oru.DefaultRegistry())
		if err != nil {
			return err
		}
		for _, d := range ds {
			if d.Tenant == e.Tenant && d.Name == e.Destination {
				msg, err := delivery.Message(ctx, st, d, e)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(stdout, "%s\n", msg)
				return err
			}
		}
		return fmt.Errorf("destination %s/%s is not in %s", e.Tenant, e.Destination, *dests)
	case "replay":
		list, err := ids()
		if err != nil {
			return err
		}
		if *all {
			if err := needDest(); err != nil {
				return err
			}
			// Replaying moves entries out of the dead letters, so always
			// read the first page again.
			for {
				es, err := st.Entries(ctx, *tenant, outbox.Filter{Destination: *dest, State: outbox.Dead, Limit: 500})
				if err != nil {
					return err
				}
				if len(es) == 0 {
					break
				}
				for _, e := range es {
					list = append(list, e.ID)
					if err := st.Replay(ctx, *tenant, e.ID, time.Now()); err != nil {
						return err
					}
				}
			}
		} else {
			if len(list) == 0 {
				return errors.New("usage: pulsewire outbox replay --tenant T ID... (or --all --destination D)")
			}
			for _, id := range list {
				if err := st.Replay(ctx, *tenant, id, time.Now()); err != nil {
					return err
				}
			}
		}
		fmt.Fprintf(stdout, "%d dead letters queued again\n", len(list))
		return nil
	case "pause", "resume":
		if err := needDest(); err != nil {
			return err
		}
		if err := st.SetPaused(ctx, *tenant, *dest, sub == "pause", time.Now()); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "destination %s/%s %sd\n", *tenant, *dest, sub)
		return nil
	case "stats":
		ss, err := st.Stats(ctx, *tenant, time.Now())
		if err != nil {
			return err
		}
		return enc.Encode(ss)
	}
	fmt.Fprint(stderr, outboxUsage)
	return fmt.Errorf("unknown outbox subcommand %q", sub)
}

// flagsBeforeArgs moves flags before positional arguments (package flag
// stops at the first positional one), so that "show ID --tenant T" works;
// unlike flagsFirst it knows fs's boolean flags take no value.
func flagsBeforeArgs(fs *flag.FlagSet, args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			pos = append(pos, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			flags = append(flags, a)
			if f := fs.Lookup(strings.TrimLeft(a, "-")); f != nil {
				if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
					continue
				}
			}
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
