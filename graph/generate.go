package graph

// The generated code of the subgraph (internal/exec, internal/model/
// models_gen.go) and the composed supergraphs (supergraph/, testdata/
// supergraph/; needs npx). TestSupergraphsCurrent fails when they are stale.
//go:generate go run github.com/99designs/gqlgen generate --config gqlgen.yml
//go:generate bash generate.sh
