package app

import (
	"context"
	"fmt"

	"github.com/labstack/echo/v5"

	"github.com/pulsewire/pulsewire/graph"
	"github.com/pulsewire/pulsewire/server/audit"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/search"
)

// GraphQLConfig configures the GraphQL API (graph/): the federation gateway
// at /t/{tenant}/graphql (or /graphql with the X-Pulsewire-Tenant header)
// and our subgraph at /t/{tenant}/graphql/subgraph.
type GraphQLConfig struct {
	// Supergraph is a composed supergraph (wgc router compose output) to
	// serve instead of the embedded one, which holds our subgraph only.
	Supergraph []byte
	// Remotes says where the supergraph's other subgraphs are served.
	Remotes map[string]graph.Remote
	// Limits are the query limits; Limits.Introspection turns
	// introspection (and the subgraph's _service) on.
	Limits graph.Limits
}

// setupGraphQL mounts the GraphQL API on e with the same authentication
// and decisions as REST (auth nil: authorization off, everyone sees
// everything, as REST does with --auth off). It adds a runner that closes
// it on shutdown.
func (a *App) setupGraphQL(e *echo.Echo, store fhir.Store, reg *search.Registry, auth *authWiring, aud *audit.Auditor) error {
	gqlAuth, gqlAuthz := graph.Authenticator(graph.Open{}), graph.Authorizer(graph.Open{})
	if auth != nil {
		gqlAuth, gqlAuthz = auth.smart, graph.AuthzAuthorizer{Decider: auth.az}
	}
	gs, ok := store.(graph.Store)
	if !ok {
		return fmt.Errorf("setting up GraphQL: the store (%T) cannot read several resources at once", store)
	}
	gc := a.cfg.GraphQL
	cfg := graph.Config{Store: gs, Registry: reg, Auth: gqlAuth, Authorizer: gqlAuthz,
		Supergraph: gc.Supergraph, Remotes: gc.Remotes, Limits: gc.Limits, Logger: a.log}
	if aud != nil && a.cfg.Audit.Reads {
		// A GraphQL request is a read: one AuditEvent per request.
		cfg.Auditor = aud
	}
	gql, err := graph.New(cfg)
	if err != nil {
		return fmt.Errorf("setting up GraphQL: %w", err)
	}
	gql.Register(e)
	a.runners = append(a.runners, runner{name: "graphql",
		run:   func(ctx context.Context) error { <-ctx.Done(); return nil },
		close: func() { _ = gql.Close() }})
	return nil
}
