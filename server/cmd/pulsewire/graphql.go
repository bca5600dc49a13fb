package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"

	"github.com/pulsewire/pulsewire/graph"
	"github.com/pulsewire/pulsewire/server/app"
)

// graphqlFlags are the flags of the GraphQL API. They are applied when the
// flags have been parsed (the returned func), since the supergraph is a
// file to read.
func graphqlFlags(fs *flag.FlagSet, cfg *app.Config, getenv func(string) string) (func() error, error) {
	supergraph := fs.String("graphql-supergraph", getenv("PULSEWIRE_GRAPHQL_SUPERGRAPH"),
		"composed supergraph (wgc router compose output) the gateway serves; empty: the embedded one, our subgraph alone (env PULSEWIRE_GRAPHQL_SUPERGRAPH)")
	remotes := fs.String("graphql-remotes", getenv("PULSEWIRE_GRAPHQL_REMOTES"),
		`where the supergraph's other subgraphs are, JSON: {"wards":{"url":"https://wards.example/graphql","timeout":"2s"}}; {tenant} in a URL is the request's tenant (env PULSEWIRE_GRAPHQL_REMOTES)`)
	introspection, err := strconv.ParseBool(env(getenv, "PULSEWIRE_GRAPHQL_INTROSPECTION", "false"))
	if err != nil {
		return nil, fmt.Errorf("PULSEWIRE_GRAPHQL_INTROSPECTION: %w", err)
	}
	fs.BoolVar(&cfg.GraphQL.Limits.Introspection, "graphql-introspection", introspection,
		"answer GraphQL introspection and the subgraph's _service (development, and outside routers); off by default (env PULSEWIRE_GRAPHQL_INTROSPECTION)")
	return func() error {
		if *supergraph != "" {
			b, err := os.ReadFile(*supergraph)
			if err != nil {
				return fmt.Errorf("reading the GraphQL supergraph: %w", err)
			}
			cfg.GraphQL.Supergraph = b
		}
		rs, err := graph.ParseRemotes(*remotes)
		if err != nil {
			return fmt.Errorf("PULSEWIRE_GRAPHQL_REMOTES: %w", err)
		}
		cfg.GraphQL.Remotes = rs
		return nil
	}, nil
}
