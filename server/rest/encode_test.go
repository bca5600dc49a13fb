package rest

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestBundleEncode checks bundle.encode writes what encoding/json writes
// for the same bundle (whose resources are compact JSON).
func TestBundleEncode(t *testing.T) {
	total := 2
	tests := []struct {
		name string
		b    *bundle
	}{
		{"no entries", &bundle{ResourceType: "Bundle", ID: "b1", Type: "searchset", Total: &total, Link: []bundleLink{{"self", "http://x/a?b=<c>&d"}}}},
		{"entries", &bundle{ResourceType: "Bundle", Type: "searchset", Entry: []*bundleEntry{
			{FullURL: "http://x/Patient/1", Resource: rawJSON(`{"resourceType":"Patient","id":"1","name":[{"text":"<é>"}]}`), Search: &entrySearch{Mode: "match"}},
			{Resource: rawJSON(`{"resourceType":"OperationOutcome"}`), Search: &entrySearch{Mode: "outcome"}},
			{FullURL: "urn:uuid:1", Request: &entryRequest{Method: "PUT", URL: "Patient/1"}},
			{Response: &entryResponse{Status: "201 Created", Outcome: rawJSON(`{"resourceType":"OperationOutcome"}`)}},
			{FullURL: "http://x/P\"a\\b/é<&>\u2028", Resource: rawJSON(`{}`), Search: &entrySearch{Mode: "include"}},
			{Search: &entrySearch{Mode: "match"}, Request: &entryRequest{Method: "GET", URL: "Patient/1"}},
			{Search: &entrySearch{Mode: "match"}},
			{},
		}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want, err := marshal(tc.b)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tc.b.encode()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("encode (-want +got):\n%s", diff)
			}
		})
	}
}
