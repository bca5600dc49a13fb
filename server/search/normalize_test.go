package search

import (
	"strings"
	"testing"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

func TestNormalizeString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"Smith", "smith"},
		{"  Mary   Ann\t\nSmith  ", "mary ann smith"},
		{"Émile Zoë Ñúñez", "emile zoe nunez"},
		{"ÀÁÂÃÄÅàáâãäå ÇçÈÉÊË", "aaaaaaaaaaaa cceeee"},
		{"Straße Æsir Øre Łódź Đorđe Œuvre Þór", "strasse aesir ore lodz dorde oeuvre thor"},
		{"Ångström ŠŽČ ĞŞİ", "angstrom szc gsi"},
		{"Nguyễn Thị Hương", "nguyen thi huong"},
		{"decomposed e\u0301", "decomposed e"},
		{"O'Brien-Smith", "o'brien-smith"},
		{"ﬁne ＡＢＣ", "fine abc"},
		{"non\u00a0breaking", "non breaking"},
		{"Ελληνικά", "ελληνικα"},
		{"bad\xffbyte", "bad\ufffdbyte"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := NormalizeString(tt.in); got != tt.want {
				t.Errorf("NormalizeString(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestFoldTable checks foldTable against Unicode compatibility
// decomposition (x/text, which only tests may import): every Latin, Greek
// and Cyrillic letter, ligature and fullwidth letter or digit normalizes
// like its decomposition without combining marks.
func TestFoldTable(t *testing.T) {
	ranges := [][2]rune{{0x00A0, 0x024F}, {0x0370, 0x04FF}, {0x1E00, 0x1FFF}, {0xFB00, 0xFB06}, {0xFF01, 0xFF5E}}
	for _, rg := range ranges {
		for r := rg[0]; r <= rg[1]; r++ {
			base := strings.Map(func(c rune) rune {
				if unicode.Is(unicode.Mn, c) {
					return -1
				}
				return c
			}, norm.NFKD.String(string(r)))
			if !strings.ContainsFunc(base, func(c rune) bool { return unicode.IsLetter(c) || unicode.IsDigit(c) }) {
				continue // spacing accents and punctuation forms are kept as they are
			}
			if got, want := NormalizeString(string(r)), NormalizeString(base); got != want {
				t.Errorf("U+%04X %q: NormalizeString = %q, its decomposition %q gives %q", r, string(r), got, base, want)
			}
		}
	}
	for r, f := range foldTable {
		if f == "" || f != strings.ToLower(f) {
			t.Errorf("foldTable[U+%04X] = %q is empty or not lowercase", r, f)
		}
	}
}

func BenchmarkNormalizeString(b *testing.B) {
	for _, s := range []string{"Blood pressure panel with all children optional", "Émile Zoë Ñúñez-Østergaard"} {
		b.Run(s[:5], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				NormalizeString(s)
			}
		})
	}
}
