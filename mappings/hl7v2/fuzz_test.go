package hl7v2

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// FuzzParse: Parse never panics; whatever it accepts, Encode writes, and the
// output parses strictly (no leniency, no issues) to the same values and
// encodes to the same bytes.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.hl7"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("MSH|^~\\&#|A\rNTE|1||\\X0D0A\\\\.br\\\\P\\a\\Zx\\b\\"))
	f.Add([]byte("MSH*!@%$*A\nPID*1**%F%!~@$\r\n\r"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, _, err := Parse(data)
		if m == nil {
			if err == nil {
				t.Fatal("nil message without an error")
			}
			return
		}
		out, err := Encode(m)
		if err != nil {
			t.Fatalf("Encode of a parsed message: %v", err)
		}
		m2, st, err := Parse(out)
		if err != nil {
			t.Fatalf("re-Parse of encoded output %q: %v", out, err)
		}
		if c := st.Counts(); len(c) != 0 {
			t.Fatalf("encoded output %q needed leniency %v", out, c)
		}
		if diff := cmp.Diff(normalize(m), normalize(m2), cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("values changed through Encode (-parsed +re-parsed):\n%s", diff)
		}
		out2, err := Encode(m2)
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("Encode not stable: %q vs %q (%v)", out, out2, err)
		}
	})
}

// normalize returns a copy of m with trailing empty fields, repetitions,
// components and subcomponents removed: what Encode is allowed to drop.
func normalize(m *Message) *Message {
	out := &Message{Delims: m.Delims}
	for _, s := range m.Segments {
		ns := &Segment{Name: s.Name}
		for _, f := range s.Fields {
			var nf Field
			for _, r := range f {
				var nr Repetition
				for _, c := range r {
					nc := append(Component(nil), c[:trim(len(c), func(i int) bool { return c[i] == "" })]...)
					nr = append(nr, nc)
				}
				nr = nr[:trim(len(nr), func(i int) bool { return len(nr[i]) == 0 })]
				nf = append(nf, nr)
			}
			nf = nf[:trim(len(nf), func(i int) bool { return len(nf[i]) == 0 })]
			ns.Fields = append(ns.Fields, nf)
		}
		ns.Fields = ns.Fields[:trim(len(ns.Fields), func(i int) bool { return len(ns.Fields[i]) == 0 })]
		out.Segments = append(out.Segments, ns)
	}
	return out
}
