package chain

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestLinkParse: a body holding Link(seq, prev) parses back to seq and
// prev; malformed or missing links are errors.
func TestLinkParse(t *testing.T) {
	prev := Sum([]byte("the previous event"))
	for _, seq := range []int64{1, 2, 1 << 31, 1<<62 + 5} {
		body := `{"resourceType":"AuditEvent","extension":[{"url":"other"},{"url":"` + ExtensionURL + `","extension":` + string(Link(seq, prev)) + `}]}`
		if !json.Valid([]byte(body)) {
			t.Fatalf("Link(%d) does not make valid JSON: %s", seq, body)
		}
		gotSeq, gotPrev, err := Parse([]byte(body))
		if err != nil || gotSeq != seq || gotPrev != prev {
			t.Errorf("Parse(Link(%d, prev)) = %d, %v, %v", seq, gotSeq, gotPrev, err)
		}
	}
	for _, tc := range []struct{ name, body, want string }{
		{"no extension", `{"resourceType":"AuditEvent"}`, "no audit chain extension"},
		{"not JSON", `{`, "decoding"},
		{"zero sequence", `{"extension":[{"url":"` + ExtensionURL + `","extension":[{"url":"sequence","valueDecimal":0},{"url":"previous","valueBase64Binary":"` + strings.Repeat("A", 43) + `="}]}]}`, "positive"},
		{"fractional sequence", `{"extension":[{"url":"` + ExtensionURL + `","extension":[{"url":"sequence","valueDecimal":1.5},{"url":"previous","valueBase64Binary":"` + strings.Repeat("A", 43) + `="}]}]}`, "positive"},
		{"short hash", `{"extension":[{"url":"` + ExtensionURL + `","extension":[{"url":"sequence","valueDecimal":1},{"url":"previous","valueBase64Binary":"AAAA"}]}]}`, "32 bytes"},
		{"no previous", `{"extension":[{"url":"` + ExtensionURL + `","extension":[{"url":"sequence","valueDecimal":1}]}]}`, "lacks"},
	} {
		_, _, err := Parse([]byte(tc.body))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Parse error %v, want one saying %q", tc.name, err, tc.want)
		}
	}
	if _, _, err := Parse([]byte(`{}`)); !errors.Is(err, ErrNoLink) {
		t.Errorf("Parse of a body without a link = %v, want ErrNoLink", err)
	}
}
