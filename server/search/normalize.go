package search

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// NormalizeString folds s for string search (R4 search.html#string: "case-
// and accent-insensitive"): it lowercases, removes diacritics (combining
// marks are dropped, and precomposed Latin letters, ligatures and fullwidth
// forms are folded by foldTable: é -> e, ß -> ss, ø -> o, ﬁ -> fi), and
// collapses runs of whitespace to one space, trimming both ends.
// Punctuation is kept. Invalid UTF-8 bytes become U+FFFD.
func NormalizeString(s string) string {
	if isPlainASCII(s) {
		return foldASCII(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		switch {
		case unicode.Is(unicode.Mn, r):
			continue
		case unicode.IsSpace(r):
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		if f, ok := foldTable[r]; ok {
			b.WriteString(f)
			continue
		}
		r = unicode.ToLower(r)
		if f, ok := foldTable[r]; ok {
			b.WriteString(f)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isPlainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// foldASCII is NormalizeString for ASCII input: no allocation beyond the
// result and no decomposition.
func foldASCII(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case ' ', '\t', '\n', '\r', '\v', '\f':
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	return b.String()
}
