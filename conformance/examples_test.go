package conformance_test

import (
	"encoding/json"
	"testing"

	"github.com/pulsewire/pulsewire/conformance/examples"
	"github.com/pulsewire/pulsewire/conformance/validate"
)

// TestOfficialExamplesRoundTrip validates every official R4 example of the
// types we serve and checks the canonical JSON says what the example says.
// Known failures are in examples.Skip, each with its reason.
func TestOfficialExamplesRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("the examples corpus is not part of -short runs")
	}
	dir := examples.RequireDir(t)
	exs, err := examples.Load(dir, examples.Types)
	if err != nil {
		t.Fatal(err)
	}
	if len(exs) < 100 {
		t.Fatalf("found %d examples of our types in %s, want at least 100: incomplete download?", len(exs), dir)
	}
	v, err := validate.New()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, ex := range exs {
		t.Run(ex.Name, func(t *testing.T) {
			if reason, ok := examples.Skip[ex.Name]; ok {
				seen[ex.Name] = true
				t.Skip(reason)
			}
			typ, id, canonical, err := v.Validate(ex.Body)
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			var want struct{ ID string }
			if err := json.Unmarshal(ex.Body, &want); err != nil {
				t.Fatal(err)
			}
			if typ != ex.Type || id != want.ID {
				t.Errorf("type, id = %q, %q; want %q, %q", typ, id, ex.Type, want.ID)
			}
			if d := examples.SemanticDiff(ex.Body, canonical); d != "" {
				t.Errorf("canonical JSON differs from the example (-example +canonical):\n%s", d)
			}
		})
	}
	// A skip entry for a file that is not in the corpus is stale.
	for name := range examples.Skip {
		if !seen[name] {
			t.Errorf("examples.Skip names %s, which is not an example of our types", name)
		}
	}
}
