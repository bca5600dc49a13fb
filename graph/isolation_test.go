package graph_test

import (
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The gateway's engine shares one subgraph response between identical
// concurrent fetches. Callers with different tokens must never share one:
// each sees only what its own token permits.
func TestConcurrentCallersDoNotShare(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{"p1", "p2", "p3"} {
		e.put(t, patientJSON(p, "Doe", "A", "female", "1980-01-01"))
	}
	callers := []struct {
		token string
		want  string
	}{
		{e.srv.UserToken(t, tenant, "Practitioner/dr1", "user/*.rs"), `{"patients":{"nodes":[{"id":"p1"},{"id":"p2"},{"id":"p3"}]}}`},
		{e.srv.LaunchToken(t, tenant, "p1", "patient/*.rs"), `{"patients":{"nodes":[{"id":"p1"}]}}`},
		{e.srv.LaunchToken(t, tenant, "p3", "patient/*.rs"), `{"patients":{"nodes":[{"id":"p3"}]}}`},
	}
	const rounds = 40
	var wg sync.WaitGroup
	for range rounds {
		for _, c := range callers {
			wg.Go(func() {
				r := e.gateway(t, c.token, `{ patients { nodes { id } } }`, nil)
				if d := cmp.Diff(c.want, compact(t, r.Data)); d != "" {
					t.Errorf("(-want +got):\n%s", d)
				}
			})
		}
	}
	wg.Wait()
}
