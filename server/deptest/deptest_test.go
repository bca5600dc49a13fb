package deptest

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/pulsewire/pulsewire/"

type rule struct {
	pkg    string   // package path prefix (under the module) the rule governs
	forbid []string // import path prefixes (under the module) it must not import
	stdlib bool     // may import only the standard library and the allowed module packages
	allow  []string // module packages allowed when stdlib is set
	// allowExt are pure outside libraries allowed when stdlib is set.
	allowExt []string
	exact    bool // the rule governs pkg itself, not the packages below it
	why      string
}

var rules = []rule{
	{pkg: "server/fhir", exact: true, stdlib: true, why: "the core vocabulary depends on nothing"},
	{pkg: "server/search", stdlib: true, allow: []string{"server/fhir"}, allowExt: []string{"golang.org/x/text/"},
		why: "search parsing and extraction is pure (x/text only normalizes strings)"},
	{pkg: "server/storesql", exact: true, stdlib: true, allow: []string{"server/fhir"}, why: "the SQL compiler is pure; the stores do the I/O"},
	{pkg: "mappings/", stdlib: true, allow: []string{"server/fhir", "mappings/"}, why: "mappings are pure translation, no I/O"},
	{pkg: "server/rest", forbid: []string{"adapters/", "conformance", "server/app"}, why: "handlers see the store contract, not a database"},
	{pkg: "adapters/", forbid: []string{"server/rest", "server/app", "server/search", "server/authz", "conformance"}, why: "an adapter knows one outside system and the core"},
	{pkg: "server/adtin/seen", exact: true, stdlib: true, allow: []string{"server/fhir"}, why: "a table contract the adapters implement"},
	{pkg: "server/adtin", forbid: []string{"adapters/", "server/rest", "server/app"}, why: "the ADT service sees the store contract"},
	{pkg: "server/ingest/tables", exact: true, stdlib: true, allow: []string{"server/fhir"}, why: "a table contract the adapters implement"},
	{pkg: "server/ingest", forbid: []string{"adapters/", "server/rest", "server/app"}, why: "ingestion sees the store contract"},
	{pkg: "server/smart/registry", exact: true, stdlib: true, allow: []string{"server/fhir"}, why: "a table contract the adapters implement"},
	{pkg: "server/smart", forbid: []string{"adapters/", "server/app", "server/rest"}, why: "the authorization server sees its registry contract, not a database"},
	{pkg: "server/kv", exact: true, stdlib: true, why: "the kv contract is pure"},
	{pkg: "server/kv/memkv", stdlib: true, allow: []string{"server/kv"}, why: "in-process kv, stdlib only"},
	{pkg: "server/kv/kvtest", stdlib: true, allow: []string{"server/kv"}, allowExt: []string{"github.com/google/go-cmp/"}, why: "shared contract suite"},
	{pkg: "server/authz", exact: true, stdlib: true, allow: []string{"server/fhir", "server/search", "server/kv"},
		forbid: []string{"server/kv/", "adapters/", "server/rest", "server/app"}, why: "the decision is logic over contracts; no database, Redis or HTTP"},
	{pkg: "server/delivery/outbox", exact: true, stdlib: true, allow: []string{"server/fhir"}, why: "a table contract the adapters implement"},
	{pkg: "server/delivery", forbid: []string{"adapters/", "server/rest", "server/app"}, why: "delivery sees the outbox contract and a Sender, not a database or a socket"},
	{pkg: "server/audit/chain", exact: true, stdlib: true, allow: []string{"server/fhir"}, why: "a table contract the adapters implement"},
	{pkg: "server/audit", forbid: []string{"adapters/", "server/rest", "server/app"}, why: "the auditor sees the store and chain contracts"},
	{pkg: "server/servertest/webdriver", exact: true, stdlib: true, why: "a WebDriver client over HTTP; standard library only, so any test may use it"},
	{pkg: "graph", forbid: []string{"adapters/", "server/app", "server/rest", "server/ingest", "server/delivery", "conformance"},
		why: "the GraphQL API sees the store contract, search, smart's Grant and authz's decision"},
	{pkg: "conformance", forbid: []string{"adapters/", "server/rest", "server/app"}, why: "conformance describes the server, it does not run it"},
}

// adapterSiblings: adapters never import each other.
func adapterOf(p string) string {
	if !strings.HasPrefix(p, mod+"adapters/") {
		return ""
	}
	rest := strings.TrimPrefix(p, mod+"adapters/")
	name, _, _ := strings.Cut(rest, "/")
	return name
}

func TestImportRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-e", "-f", `{{.ImportPath}} {{join .Imports " "}}`, mod+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	n, violations := check(out, stdlib(t))
	for _, v := range violations {
		t.Error(v)
	}
	if n < 5 {
		t.Fatalf("go list returned %d packages; the rules checked nothing", n)
	}
}

// TestCheckCatches proves the checker reports each kind of violation.
func TestCheckCatches(t *testing.T) {
	std := map[string]bool{"fmt": true}
	list := strings.Join([]string{
		mod + "server/fhir fmt net/http",
		mod + "server/rest fmt " + mod + "adapters/sqlite",
		mod + "adapters/postgres " + mod + "adapters/sqlite",
		mod + "graph " + mod + "server/app",
		mod + "server/cmd/pulsewire " + mod + "server/app",
	}, "\n")
	_, got := check([]byte(list), std)
	// graph -> server/app breaks two rules: graph's own, and "only main
	// and servertest wire the server".
	if len(got) != 5 {
		t.Fatalf("got %d violations, want 5 (fhir->net/http, rest->adapter, adapter->adapter, graph->app twice):\n%s", len(got), strings.Join(got, "\n"))
	}
}

func check(out []byte, std map[string]bool) (n int, violations []string) {
	errorf := func(format string, args ...any) { violations = append(violations, fmt.Sprintf(format, args...)) }
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		pkg, imports := fields[0], fields[1:]
		n++
		for _, r := range rules {
			if r.exact && pkg != mod+r.pkg || !strings.HasPrefix(pkg, mod+r.pkg) {
				continue
			}
			for _, imp := range imports {
				if r.stdlib && !std[imp] && !allowed(imp, r.allow) && !allowedExt(imp, r.allowExt) {
					errorf("%s imports %s: %s", pkg, imp, r.why)
				}
				for _, f := range r.forbid {
					if strings.HasPrefix(imp, mod+f) {
						errorf("%s imports %s: %s", pkg, imp, r.why)
					}
				}
			}
		}
		if a := adapterOf(pkg); a != "" {
			for _, imp := range imports {
				if b := adapterOf(imp); b != "" && b != a {
					errorf("%s imports %s: adapters never import each other", pkg, imp)
				}
			}
		}
		// Only main and the wiring package may know every adapter.
		if !strings.HasPrefix(pkg, mod+"server/cmd/") && !strings.HasPrefix(pkg, mod+"server/servertest") && pkg != mod+"server/app" {
			for _, imp := range imports {
				if imp == mod+"server/app" {
					errorf("%s imports server/app: only main and servertest wire the server", pkg)
				}
			}
		}
	}
	return n, violations
}

func allowed(imp string, allow []string) bool {
	for _, a := range allow {
		if strings.HasPrefix(imp, mod+a) {
			return true
		}
	}
	return false
}

func allowedExt(imp string, allow []string) bool {
	for _, a := range allow {
		if strings.HasPrefix(imp, a) {
			return true
		}
	}
	return false
}

func stdlib(t *testing.T) map[string]bool {
	t.Helper()
	out, err := exec.Command("go", "list", "std").Output()
	if err != nil {
		t.Fatalf("go list std: %v", err)
	}
	m := map[string]bool{}
	for _, p := range strings.Fields(string(out)) {
		m[p] = true
	}
	return m
}
