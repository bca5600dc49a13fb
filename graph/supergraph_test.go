package graph_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pulsewire/pulsewire/graph"
)

// The composed supergraphs are generated (`make generate`, generate.sh:
// wgc router compose, which needs npx and the npm registry, so CI does not
// recompose). generate.sh records in inputs.sha256 the hash of what it
// composed from and of what it wrote; this test recomputes both, so it
// fails when a schema or graph.yaml changed since, or when config.json was
// edited by hand.

// inputsHash is generate.sh's inputs_hash: graph.yaml, the directory's
// *.graphqls, then schema/*.graphqls, each as "name\n" + content.
func inputsHash(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	add := func(name, path string) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(h, "%s\n", name)
		h.Write(b)
	}
	add("graph.yaml", filepath.Join(dir, "graph.yaml"))
	local, _ := filepath.Glob(filepath.Join(dir, "*.graphqls"))
	for _, f := range local {
		add(filepath.Base(f), f)
	}
	schema, _ := filepath.Glob("schema/*.graphqls")
	if len(schema) == 0 {
		t.Fatal("no schema files")
	}
	for _, f := range schema {
		add("schema/"+filepath.Base(f), f)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestSupergraphsCurrent(t *testing.T) {
	for _, dir := range []string{"supergraph", "testdata/supergraph"} {
		t.Run(dir, func(t *testing.T) {
			rec, err := os.ReadFile(filepath.Join(dir, "inputs.sha256"))
			if err != nil {
				t.Fatalf("%v: run make generate", err)
			}
			var inputs, config string
			if _, err := fmt.Sscanf(string(rec), "inputs %s\nconfig %s\n", &inputs, &config); err != nil {
				t.Fatalf("inputs.sha256: %v", err)
			}
			if got := inputsHash(t, dir); got != inputs {
				t.Errorf("graph/%s/config.json is stale: the schema or graph.yaml changed since it was composed; run make generate", dir)
			}
			cfg, err := os.ReadFile(filepath.Join(dir, "config.json"))
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(cfg)
			if got := hex.EncodeToString(sum[:]); got != config {
				t.Errorf("graph/%s/config.json is not what generate.sh wrote (edited by hand?); run make generate", dir)
			}
			if dir == "supergraph" && !bytes.Equal(cfg, graph.Supergraph) {
				t.Error("the embedded supergraph is not supergraph/config.json")
			}
			if !strings.Contains(string(cfg), `"pulsewire"`) {
				t.Error("the supergraph has no pulsewire subgraph")
			}
		})
	}
}
