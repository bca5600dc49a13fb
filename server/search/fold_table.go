package search

// foldTable folds the letters and digits of Latin-1 Supplement, Latin
// Extended-A and -B, Greek, Cyrillic, Latin Extended Additional, Greek
// Extended, the Latin ligatures and the fullwidth ASCII forms to lowercase
// base letters: their compatibility decomposition (NFKD) without combining
// marks, lowercased, with letters that do not decompose (ß, æ, ø, ł, đ, œ,
// þ ...) spelled in plain Latin. Only entries that differ from
// unicode.ToLower are listed; spacing accents and punctuation forms are not.
//
// The table was derived once from the Unicode character database.
// TestFoldTable checks it against golang.org/x/text/unicode/norm, which
// the package itself may not import (server/deptest: search is
// stdlib-only).
var foldTable = map[rune]string{
	0x00AA: "a",        // feminine ordinal indicator
	0x00B2: "2",        // superscript two
	0x00B3: "3",        // superscript three
	0x00B5: "\u03bc",   // micro sign
	0x00B9: "1",        // superscript one
	0x00BA: "o",        // masculine ordinal indicator
	0x00BC: "1\u20444", // vulgar fraction one quarter
	0x00BD: "1\u20442", // vulgar fraction one half
	0x00BE: "3\u20444", // vulgar fraction three quarters
	0x00C0: "a",        // latin capital letter a with grave
	0x00C1: "a",        // latin capital letter a with acute
	0x00C2: "a",        // latin capital letter a with circumflex
	0x00C3: "a",        // latin capital letter a with tilde
	0x00C4: "a",        // latin capital letter a with diaeresis
	0x00C5: "a",        // latin capital letter a with ring above
	0x00C6: "ae",       // latin capital letter ae
	0x00C7: "c",        // latin capital letter c with cedilla
	0x00C8: "e",        // latin capital letter e with grave
	0x00C9: "e",        // latin capital letter e with acute
	0x00CA: "e",        // latin capital letter e with circumflex
	0x00CB: "e",        // latin capital letter e with diaeresis
	0x00CC: "i",        // latin capital letter i with grave
	0x00CD: "i",        // latin capital letter i with acute
	0x00CE: "i",        // latin capital letter i with circumflex
	0x00CF: "i",        // latin capital letter i with diaeresis
	0x00D0: "d",        // latin capital letter eth
	0x00D1: "n",        // latin capital letter n with tilde
	0x00D2: "o",        // latin capital letter o with grave
	0x00D3: "o",        // latin capital letter o with acute
	0x00D4: "o",        // latin capital letter o with circumflex
	0x00D5: "o",        // latin capital letter o with tilde
	0x00D6: "o",        // latin capital letter o with diaeresis
	0x00D8: "o",        // latin capital letter o with stroke
	0x00D9: "u",        // latin capital letter u with grave
	0x00DA: "u",        // latin capital letter u with acute
	0x00DB: "u",        // latin capital letter u with circumflex
	0x00DC: "u",        // latin capital letter u with diaeresis
	0x00DD: "y",        // latin capital letter y with acute
	0x00DE: "th",       // latin capital letter thorn
	0x00DF: "ss",       // latin small letter sharp s
	0x00E0: "a",        // latin small letter a with grave
	0x00E1: "a",        // latin small letter a with acute
	0x00E2: "a",        // latin small letter a with circumflex
	0x00E3: "a",        // latin small letter a with tilde
	0x00E4: "a",        // latin small letter a with diaeresis
	0x00E5: "a",        // latin small letter a with ring above
	0x00E6: "ae",       // latin small letter ae
	0x00E7: "c",        // latin small letter c with cedilla
	0x00E8: "e",        // latin small letter e with grave
	0x00E9: "e",        // latin small letter e with acute
	0x00EA: "e",        // latin small letter e with circumflex
	0x00EB: "e",        // latin small letter e with diaeresis
	0x00EC: "i",        // latin small letter i with grave
	0x00ED: "i",        // latin small letter i with acute
	0x00EE: "i",        // latin small letter i with circumflex
	0x00EF: "i",        // latin small letter i with diaeresis
	0x00F0: "d",        // latin small letter eth
	0x00F1: "n",        // latin small letter n with tilde
	0x00F2: "o",        // latin small letter o with grave
	0x00F3: "o",        // latin small letter o with acute
	0x00F4: "o",        // latin small letter o with circumflex
	0x00F5: "o",        // latin small letter o with tilde
	0x00F6: "o",        // latin small letter o with diaeresis
	0x00F8: "o",        // latin small letter o with stroke
	0x00F9: "u",        // latin small letter u with grave
	0x00FA: "u",        // latin small letter u with acute
	0x00FB: "u",        // latin small letter u with circumflex
	0x00FC: "u",        // latin small letter u with diaeresis
	0x00FD: "y",        // latin small letter y with acute
	0x00FE: "th",       // latin small letter thorn
	0x00FF: "y",        // latin small letter y with diaeresis
	0x0100: "a",        // latin capital letter a with macron
	0x0101: "a",        // latin small letter a with macron
	0x0102: "a",        // latin capital letter a with breve
	0x0103: "a",        // latin small letter a with breve
	0x0104: "a",        // latin capital letter a with ogonek
	0x0105: "a",        // latin small letter a with ogonek
	0x0106: "c",        // latin capital letter c with acute
	0x0107: "c",        // latin small letter c with acute
	0x0108: "c",        // latin capital letter c with circumflex
	0x0109: "c",        // latin small letter c with circumflex
	0x010A: "c",        // latin capital letter c with dot above
	0x010B: "c",        // latin small letter c with dot above
	0x010C: "c",        // latin capital letter c with caron
	0x010D: "c",        // latin small letter c with caron
	0x010E: "d",        // latin capital letter d with caron
	0x010F: "d",        // latin small letter d with caron
	0x0110: "d",        // latin capital letter d with stroke
	0x0111: "d",        // latin small letter d with stroke
	0x0112: "e",        // latin capital letter e with macron
	0x0113: "e",        // latin small letter e with macron
	0x0114: "e",        // latin capital letter e with breve
	0x0115: "e",        // latin small letter e with breve
	0x0116: "e",        // latin capital letter e with dot above
	0x0117: "e",        // latin small letter e with dot above
	0x0118: "e",        // latin capital letter e with ogonek
	0x0119: "e",        // latin small letter e with ogonek
	0x011A: "e",        // latin capital letter e with caron
	0x011B: "e",        // latin small letter e with caron
	0x011C: "g",        // latin capital letter g with circumflex
	0x011D: "g",        // latin small letter g with circumflex
	0x011E: "g",        // latin capital letter g with breve
	0x011F: "g",        // latin small letter g with breve
	0x0120: "g",        // latin capital letter g with dot above
	0x0121: "g",        // latin small letter g with dot above
	0x0122: "g",        // latin capital letter g with cedilla
	0x0123: "g",        // latin small letter g with cedilla
	0x0124: "h",        // latin capital letter h with circumflex
	0x0125: "h",        // latin small letter h with circumflex
	0x0126: "h",        // latin capital letter h with stroke
	0x0127: "h",        // latin small letter h with stroke
	0x0128: "i",        // latin capital letter i with tilde
	0x0129: "i",        // latin small letter i with tilde
	0x012A: "i",        // latin capital letter i with macron
	0x012B: "i",        // latin small letter i with macron
	0x012C: "i",        // latin capital letter i with breve
	0x012D: "i",        // latin small letter i with breve
	0x012E: "i",        // latin capital letter i with ogonek
	0x012F: "i",        // latin small letter i with ogonek
	0x0130: "i",        // latin capital letter i with dot above
	0x0131: "i",        // latin small letter dotless i
	0x0132: "ij",       // latin capital ligature ij
	0x0133: "ij",       // latin small ligature ij
	0x0134: "j",        // latin capital letter j with circumflex
	0x0135: "j",        // latin small letter j with circumflex
	0x0136: "k",        // latin capital letter k with cedilla
	0x0137: "k",        // latin small letter k with cedilla
	0x0138: "k",        // latin small letter kra
	0x0139: "l",        // latin capital letter l with acute
	0x013A: "l",        // latin small letter l with acute
	0x013B: "l",        // latin capital letter l with cedilla
	0x013C: "l",        // latin small letter l with cedilla
	0x013D: "l",        // latin capital letter l with caron
	0x013E: "l",        // latin small letter l with caron
	0x013F: "l\u00b7",  // latin capital letter l with middle dot
	0x0140: "l\u00b7",  // latin small letter l with middle dot
	0x0141: "l",        // latin capital letter l with stroke
	0x0142: "l",        // latin small letter l with stroke
	0x0143: "n",        // latin capital letter n with acute
	0x0144: "n",        // latin small letter n with acute
	0x0145: "n",        // latin capital letter n with cedilla
	0x0146: "n",        // latin small letter n with cedilla
	0x0147: "n",        // latin capital letter n with caron
	0x0148: "n",        // latin small letter n with caron
	0x0149: "\u02bcn",  // latin small letter n preceded by apostrophe
	0x014A: "n",        // latin capital letter eng
	0x014B: "n",        // latin small letter eng
	0x014C: "o",        // latin capital letter o with macron
	0x014D: "o",        // latin small letter o with macron
	0x014E: "o",        // latin capital letter o with breve
	0x014F: "o",        // latin small letter o with breve
	0x0150: "o",        // latin capital letter o with double acute
	0x0151: "o",        // latin small letter o with double acute
	0x0152: "oe",       // latin capital ligature oe
	0x0153: "oe",       // latin small ligature oe
	0x0154: "r",        // latin capital letter r with acute
	0x0155: "r",        // latin small letter r with acute
	0x0156: "r",        // latin capital letter r with cedilla
	0x0157: "r",        // latin small letter r with cedilla
	0x0158: "r",        // latin capital letter r with caron
	0x0159: "r",        // latin small letter r with caron
	0x015A: "s",        // latin capital letter s with acute
	0x015B: "s",        // latin small letter s with acute
	0x015C: "s",        // latin capital letter s with circumflex
	0x015D: "s",        // latin small letter s with circumflex
	0x015E: "s",        // latin capital letter s with cedilla
	0x015F: "s",        // latin small letter s with cedilla
	0x0160: "s",        // latin capital letter s with caron
	0x0161: "s",        // latin small letter s with caron
	0x0162: "t",        // latin capital letter t with cedilla
	0x0163: "t",        // latin small letter t with cedilla
	0x0164: "t",        // latin capital letter t with caron
	0x0165: "t",        // latin small letter t with caron
	0x0166: "t",        // latin capital letter t with stroke
	0x0167: "t",        // latin small letter t with stroke
	0x0168: "u",        // latin capital letter u with tilde
	0x0169: "u",        // latin small letter u with tilde
	0x016A: "u",        // latin capital letter u with macron
	0x016B: "u",        // latin small letter u with macron
	0x016C: "u",        // latin capital letter u with breve
	0x016D: "u",        // latin small letter u with breve
	0x016E: "u",        // latin capital letter u with ring above
	0x016F: "u",        // latin small letter u with ring above
	0x0170: "u",        // latin capital letter u with double acute
	0x0171: "u",        // latin small letter u with double acute
	0x0172: "u",        // latin capital letter u with ogonek
	0x0173: "u",        // latin small letter u with ogonek
	0x0174: "w",        // latin capital letter w with circumflex
	0x0175: "w",        // latin small letter w with circumflex
	0x0176: "y",        // latin capital letter y with circumflex
	0x0177: "y",        // latin small letter y with circumflex
	0x0178: "y",        // latin capital letter y with diaeresis
	0x0179: "z",        // latin capital letter z with acute
	0x017A: "z",        // latin small letter z with acute
	0x017B: "z",        // latin capital letter z with dot above
	0x017C: "z",        // latin small letter z with dot above
	0x017D: "z",        // latin capital letter z with caron
	0x017E: "z",        // latin small letter z with caron
	0x017F: "s",        // latin small letter long s
	0x0180: "b",        // latin small letter b with stroke
	0x0181: "b",        // latin capital letter b with hook
	0x0187: "c",        // latin capital letter c with hook
	0x0188: "c",        // latin small letter c with hook
	0x0189: "d",        // latin capital letter african d
	0x018A: "d",        // latin capital letter d with hook
	0x018B: "d",        // latin capital letter d with topbar
	0x018C: "d",        // latin small letter d with topbar
	0x0191: "f",        // latin capital letter f with hook
	0x0192: "f",        // latin small letter f with hook
	0x0193: "g",        // latin capital letter g with hook
	0x0197: "i",        // latin capital letter i with stroke
	0x0198: "k",        // latin capital letter k with hook
	0x0199: "k",        // latin small letter k with hook
	0x019A: "l",        // latin small letter l with bar
	0x019C: "m",        // latin capital letter turned m
	0x019D: "n",        // latin capital letter n with left hook
	0x019E: "n",        // latin small letter n with long right leg
	0x019F: "o",        // latin capital letter o with middle tilde
	0x01A0: "o",        // latin capital letter o with horn
	0x01A1: "o",        // latin small letter o with horn
	0x01A4: "p",        // latin capital letter p with hook
	0x01A5: "p",        // latin small letter p with hook
	0x01AC: "t",        // latin capital letter t with hook
	0x01AD: "t",        // latin small letter t with hook
	0x01AE: "t",        // latin capital letter t with retroflex hook
	0x01AF: "u",        // latin capital letter u with horn
	0x01B0: "u",        // latin small letter u with horn
	0x01B2: "v",        // latin capital letter v with hook
	0x01B3: "y",        // latin capital letter y with hook
	0x01B4: "y",        // latin small letter y with hook
	0x01B5: "z",        // latin capital letter z with stroke
	0x01B6: "z",        // latin small letter z with stroke
	0x01C4: "dz",       // latin capital letter dz with caron
	0x01C5: "dz",       // latin capital letter d with small letter z with caron
	0x01C6: "dz",       // latin small letter dz with caron
	0x01C7: "lj",       // latin capital letter lj
	0x01C8: "lj",       // latin capital letter l with small letter j
	0x01C9: "lj",       // latin small letter lj
	0x01CA: "nj",       // latin capital letter nj
	0x01CB: "nj",       // latin capital letter n with small letter j
	0x01CC: "nj",       // latin small letter nj
	0x01CD: "a",        // latin capital letter a with caron
	0x01CE: "a",        // latin small letter a with caron
	0x01CF: "i",        // latin capital letter i with caron
	0x01D0: "i",        // latin small letter i with caron
	0x01D1: "o",        // latin capital letter o with caron
	0x01D2: "o",        // latin small letter o with caron
	0x01D3: "u",        // latin capital letter u with caron
	0x01D4: "u",        // latin small letter u with caron
	0x01D5: "u",        // latin capital letter u with diaeresis and macron
	0x01D6: "u",        // latin small letter u with diaeresis and macron
	0x01D7: "u",        // latin capital letter u with diaeresis and acute
	0x01D8: "u",        // latin small letter u with diaeresis and acute
	0x01D9: "u",        // latin capital letter u with diaeresis and caron
	0x01DA: "u",        // latin small letter u with diaeresis and caron
	0x01DB: "u",        // latin capital letter u with diaeresis and grave
	0x01DC: "u",        // latin small letter u with diaeresis and grave
	0x01DE: "a",        // latin capital letter a with diaeresis and macron
	0x01DF: "a",        // latin small letter a with diaeresis and macron
	0x01E0: "a",        // latin capital letter a with dot above and macron
	0x01E1: "a",        // latin small letter a with dot above and macron
	0x01E2: "ae",       // latin capital letter ae with macron
	0x01E3: "ae",       // latin small letter ae with macron
	0x01E4: "g",        // latin capital letter g with stroke
	0x01E5: "g",        // latin small letter g with stroke
	0x01E6: "g",        // latin capital letter g with caron
	0x01E7: "g",        // latin small letter g with caron
	0x01E8: "k",        // latin capital letter k with caron
	0x01E9: "k",        // latin small letter k with caron
	0x01EA: "o",        // latin capital letter o with ogonek
	0x01EB: "o",        // latin small letter o with ogonek
	0x01EC: "o",        // latin capital letter o with ogonek and macron
	0x01ED: "o",        // latin small letter o with ogonek and macron
	0x01EE: "\u0292",   // latin capital letter ezh with caron
	0x01EF: "\u0292",   // latin small letter ezh with caron
	0x01F0: "j",        // latin small letter j with caron
	0x01F1: "dz",       // latin capital letter dz
	0x01F2: "dz",       // latin capital letter d with small letter z
	0x01F3: "dz",       // latin small letter dz
	0x01F4: "g",        // latin capital letter g with acute
	0x01F5: "g",        // latin small letter g with acute
	0x01F8: "n",        // latin capital letter n with grave
	0x01F9: "n",        // latin small letter n with grave
	0x01FA: "a",        // latin capital letter a with ring above and acute
	0x01FB: "a",        // latin small letter a with ring above and acute
	0x01FC: "ae",       // latin capital letter ae with acute
	0x01FD: "ae",       // latin small letter ae with acute
	0x01FE: "o",        // latin capital letter o with stroke and acute
	0x01FF: "o",        // latin small letter o with stroke and acute
	0x0200: "a",        // latin capital letter a with double grave
	0x0201: "a",        // latin small letter a with double grave
	0x0202: "a",        // latin capital letter a with inverted breve
	0x0203: "a",        // latin small letter a with inverted breve
	0x0204: "e",        // latin capital letter e with double grave
	0x0205: "e",        // latin small letter e with double grave
	0x0206: "e",        // latin capital letter e with inverted breve
	0x0207: "e",        // latin small letter e with inverted breve
	0x0208: "i",        // latin capital letter i with double grave
	0x0209: "i",        // latin small letter i with double grave
	0x020A: "i",        // latin capital letter i with inverted breve
	0x020B: "i",        // latin small letter i with inverted breve
	0x020C: "o",        // latin capital letter o with double grave
	0x020D: "o",        // latin small letter o with double grave
	0x020E: "o",        // latin capital letter o with inverted breve
	0x020F: "o",        // latin small letter o with inverted breve
	0x0210: "r",        // latin capital letter r with double grave
	0x0211: "r",        // latin small letter r with double grave
	0x0212: "r",        // latin capital letter r with inverted breve
	0x0213: "r",        // latin small letter r with inverted breve
	0x0214: "u",        // latin capital letter u with double grave
	0x0215: "u",        // latin small letter u with double grave
	0x0216: "u",        // latin capital letter u with inverted breve
	0x0217: "u",        // latin small letter u with inverted breve
	0x0218: "s",        // latin capital letter s with comma below
	0x0219: "s",        // latin small letter s with comma below
	0x021A: "t",        // latin capital letter t with comma below
	0x021B: "t",        // latin small letter t with comma below
	0x021E: "h",        // latin capital letter h with caron
	0x021F: "h",        // latin small letter h with caron
	0x0220: "n",        // latin capital letter n with long right leg
	0x0221: "d",        // latin small letter d with curl
	0x0224: "z",        // latin capital letter z with hook
	0x0225: "z",        // latin small letter z with hook
	0x0226: "a",        // latin capital letter a with dot above
	0x0227: "a",        // latin small letter a with dot above
	0x0228: "e",        // latin capital letter e with cedilla
	0x0229: "e",        // latin small letter e with cedilla
	0x022A: "o",        // latin capital letter o with diaeresis and macron
	0x022B: "o",        // latin small letter o with diaeresis and macron
	0x022C: "o",        // latin capital letter o with tilde and macron
	0x022D: "o",        // latin small letter o with tilde and macron
	0x022E: "o",        // latin capital letter o with dot above
	0x022F: "o",        // latin small letter o with dot above
	0x0230: "o",        // latin capital letter o with dot above and macron
	0x0231: "o",        // latin small letter o with dot above and macron
	0x0232: "y",        // latin capital letter y with macron
	0x0233: "y",        // latin small letter y with macron
	0x0234: "l",        // latin small letter l with curl
	0x0235: "n",        // latin small letter n with curl
	0x0236: "t",        // latin small letter t with curl
	0x0237: "j",        // latin small letter dotless j
	0x023A: "a",        // latin capital letter a with stroke
	0x023B: "c",        // latin capital letter c with stroke
	0x023C: "c",        // latin small letter c with stroke
	0x023D: "l",        // latin capital letter l with bar
	0x0243: "b",        // latin capital letter b with stroke
	0x0244: "u",        // latin capital letter u bar
	0x0246: "e",        // latin capital letter e with stroke
	0x0247: "e",        // latin small letter e with stroke
	0x0248: "j",        // latin capital letter j with stroke
	0x0249: "j",        // latin small letter j with stroke
	0x024A: "q",        // latin capital letter small q with hook tail
	0x024B: "q",        // latin small letter q with hook tail
	0x024C: "r",        // latin capital letter r with stroke
	0x024D: "r",        // latin small letter r with stroke
	0x024E: "y",        // latin capital letter y with stroke
	0x024F: "y",        // latin small letter y with stroke
	0x0374: "\u02b9",   // greek numeral sign
	0x0386: "\u03b1",   // greek capital letter alpha with tonos
	0x0388: "\u03b5",   // greek capital letter epsilon with tonos
	0x0389: "\u03b7",   // greek capital letter eta with tonos
	0x038A: "\u03b9",   // greek capital letter iota with tonos
	0x038C: "\u03bf",   // greek capital letter omicron with tonos
	0x038E: "\u03c5",   // greek capital letter upsilon with tonos
	0x038F: "\u03c9",   // greek capital letter omega with tonos
	0x0390: "\u03b9",   // greek small letter iota with dialytika and tonos
	0x03AA: "\u03b9",   // greek capital letter iota with dialytika
	0x03AB: "\u03c5",   // greek capital letter upsilon with dialytika
	0x03AC: "\u03b1",   // greek small letter alpha with tonos
	0x03AD: "\u03b5",   // greek small letter epsilon with tonos
	0x03AE: "\u03b7",   // greek small letter eta with tonos
	0x03AF: "\u03b9",   // greek small letter iota with tonos
	0x03B0: "\u03c5",   // greek small letter upsilon with dialytika and tonos
	0x03CA: "\u03b9",   // greek small letter iota with dialytika
	0x03CB: "\u03c5",   // greek small letter upsilon with dialytika
	0x03CC: "\u03bf",   // greek small letter omicron with tonos
	0x03CD: "\u03c5",   // greek small letter upsilon with tonos
	0x03CE: "\u03c9",   // greek small letter omega with tonos
	0x03D0: "\u03b2",   // greek beta symbol
	0x03D1: "\u03b8",   // greek theta symbol
	0x03D2: "\u03c5",   // greek upsilon with hook symbol
	0x03D3: "\u03c5",   // greek upsilon with acute and hook symbol
	0x03D4: "\u03c5",   // greek upsilon with diaeresis and hook symbol
	0x03D5: "\u03c6",   // greek phi symbol
	0x03D6: "\u03c0",   // greek pi symbol
	0x03F0: "\u03ba",   // greek kappa symbol
	0x03F1: "\u03c1",   // greek rho symbol
	0x03F2: "\u03c2",   // greek lunate sigma symbol
	0x03F5: "\u03b5",   // greek lunate epsilon symbol
	0x03F9: "\u03c3",   // greek capital lunate sigma symbol
	0x0400: "\u0435",   // cyrillic capital letter ie with grave
	0x0401: "\u0435",   // cyrillic capital letter io
	0x0403: "\u0433",   // cyrillic capital letter gje
	0x0407: "\u0456",   // cyrillic capital letter yi
	0x040C: "\u043a",   // cyrillic capital letter kje
	0x040D: "\u0438",   // cyrillic capital letter i with grave
	0x040E: "\u0443",   // cyrillic capital letter short u
	0x0419: "\u0438",   // cyrillic capital letter short i
	0x0439: "\u0438",   // cyrillic small letter short i
	0x0450: "\u0435",   // cyrillic small letter ie with grave
	0x0451: "\u0435",   // cyrillic small letter io
	0x0453: "\u0433",   // cyrillic small letter gje
	0x0457: "\u0456",   // cyrillic small letter yi
	0x045C: "\u043a",   // cyrillic small letter kje
	0x045D: "\u0438",   // cyrillic small letter i with grave
	0x045E: "\u0443",   // cyrillic small letter short u
	0x0476: "\u0475",   // cyrillic capital letter izhitsa with double grave accent
	0x0477: "\u0475",   // cyrillic small letter izhitsa with double grave accent
	0x04C1: "\u0436",   // cyrillic capital letter zhe with breve
	0x04C2: "\u0436",   // cyrillic small letter zhe with breve
	0x04D0: "\u0430",   // cyrillic capital letter a with breve
	0x04D1: "\u0430",   // cyrillic small letter a with breve
	0x04D2: "\u0430",   // cyrillic capital letter a with diaeresis
	0x04D3: "\u0430",   // cyrillic small letter a with diaeresis
	0x04D6: "\u0435",   // cyrillic capital letter ie with breve
	0x04D7: "\u0435",   // cyrillic small letter ie with breve
	0x04DA: "\u04d9",   // cyrillic capital letter schwa with diaeresis
	0x04DB: "\u04d9",   // cyrillic small letter schwa with diaeresis
	0x04DC: "\u0436",   // cyrillic capital letter zhe with diaeresis
	0x04DD: "\u0436",   // cyrillic small letter zhe with diaeresis
	0x04DE: "\u0437",   // cyrillic capital letter ze with diaeresis
	0x04DF: "\u0437",   // cyrillic small letter ze with diaeresis
	0x04E2: "\u0438",   // cyrillic capital letter i with macron
	0x04E3: "\u0438",   // cyrillic small letter i with macron
	0x04E4: "\u0438",   // cyrillic capital letter i with diaeresis
	0x04E5: "\u0438",   // cyrillic small letter i with diaeresis
	0x04E6: "\u043e",   // cyrillic capital letter o with diaeresis
	0x04E7: "\u043e",   // cyrillic small letter o with diaeresis
	0x04EA: "\u04e9",   // cyrillic capital letter barred o with diaeresis
	0x04EB: "\u04e9",   // cyrillic small letter barred o with diaeresis
	0x04EC: "\u044d",   // cyrillic capital letter e with diaeresis
	0x04ED: "\u044d",   // cyrillic small letter e with diaeresis
	0x04EE: "\u0443",   // cyrillic capital letter u with macron
	0x04EF: "\u0443",   // cyrillic small letter u with macron
	0x04F0: "\u0443",   // cyrillic capital letter u with diaeresis
	0x04F1: "\u0443",   // cyrillic small letter u with diaeresis
	0x04F2: "\u0443",   // cyrillic capital letter u with double acute
	0x04F3: "\u0443",   // cyrillic small letter u with double acute
	0x04F4: "\u0447",   // cyrillic capital letter che with diaeresis
	0x04F5: "\u0447",   // cyrillic small letter che with diaeresis
	0x04F8: "\u044b",   // cyrillic capital letter yeru with diaeresis
	0x04F9: "\u044b",   // cyrillic small letter yeru with diaeresis
	0x1E00: "a",        // latin capital letter a with ring below
	0x1E01: "a",        // latin small letter a with ring below
	0x1E02: "b",        // latin capital letter b with dot above
	0x1E03: "b",        // latin small letter b with dot above
	0x1E04: "b",        // latin capital letter b with dot below
	0x1E05: "b",        // latin small letter b with dot below
	0x1E06: "b",        // latin capital letter b with line below
	0x1E07: "b",        // latin small letter b with line below
	0x1E08: "c",        // latin capital letter c with cedilla and acute
	0x1E09: "c",        // latin small letter c with cedilla and acute
	0x1E0A: "d",        // latin capital letter d with dot above
	0x1E0B: "d",        // latin small letter d with dot above
	0x1E0C: "d",        // latin capital letter d with dot below
	0x1E0D: "d",        // latin small letter d with dot below
	0x1E0E: "d",        // latin capital letter d with line below
	0x1E0F: "d",        // latin small letter d with line below
	0x1E10: "d",        // latin capital letter d with cedilla
	0x1E11: "d",        // latin small letter d with cedilla
	0x1E12: "d",        // latin capital letter d with circumflex below
	0x1E13: "d",        // latin small letter d with circumflex below
	0x1E14: "e",        // latin capital letter e with macron and grave
	0x1E15: "e",        // latin small letter e with macron and grave
	0x1E16: "e",        // latin capital letter e with macron and acute
	0x1E17: "e",        // latin small letter e with macron and acute
	0x1E18: "e",        // latin capital letter e with circumflex below
	0x1E19: "e",        // latin small letter e with circumflex below
	0x1E1A: "e",        // latin capital letter e with tilde below
	0x1E1B: "e",        // latin small letter e with tilde below
	0x1E1C: "e",        // latin capital letter e with cedilla and breve
	0x1E1D: "e",        // latin small letter e with cedilla and breve
	0x1E1E: "f",        // latin capital letter f with dot above
	0x1E1F: "f",        // latin small letter f with dot above
	0x1E20: "g",        // latin capital letter g with macron
	0x1E21: "g",        // latin small letter g with macron
	0x1E22: "h",        // latin capital letter h with dot above
	0x1E23: "h",        // latin small letter h with dot above
	0x1E24: "h",        // latin capital letter h with dot below
	0x1E25: "h",        // latin small letter h with dot below
	0x1E26: "h",        // latin capital letter h with diaeresis
	0x1E27: "h",        // latin small letter h with diaeresis
	0x1E28: "h",        // latin capital letter h with cedilla
	0x1E29: "h",        // latin small letter h with cedilla
	0x1E2A: "h",        // latin capital letter h with breve below
	0x1E2B: "h",        // latin small letter h with breve below
	0x1E2C: "i",        // latin capital letter i with tilde below
	0x1E2D: "i",        // latin small letter i with tilde below
	0x1E2E: "i",        // latin capital letter i with diaeresis and acute
	0x1E2F: "i",        // latin small letter i with diaeresis and acute
	0x1E30: "k",        // latin capital letter k with acute
	0x1E31: "k",        // latin small letter k with acute
	0x1E32: "k",        // latin capital letter k with dot below
	0x1E33: "k",        // latin small letter k with dot below
	0x1E34: "k",        // latin capital letter k with line below
	0x1E35: "k",        // latin small letter k with line below
	0x1E36: "l",        // latin capital letter l with dot below
	0x1E37: "l",        // latin small letter l with dot below
	0x1E38: "l",        // latin capital letter l with dot below and macron
	0x1E39: "l",        // latin small letter l with dot below and macron
	0x1E3A: "l",        // latin capital letter l with line below
	0x1E3B: "l",        // latin small letter l with line below
	0x1E3C: "l",        // latin capital letter l with circumflex below
	0x1E3D: "l",        // latin small letter l with circumflex below
	0x1E3E: "m",        // latin capital letter m with acute
	0x1E3F: "m",        // latin small letter m with acute
	0x1E40: "m",        // latin capital letter m with dot above
	0x1E41: "m",        // latin small letter m with dot above
	0x1E42: "m",        // latin capital letter m with dot below
	0x1E43: "m",        // latin small letter m with dot below
	0x1E44: "n",        // latin capital letter n with dot above
	0x1E45: "n",        // latin small letter n with dot above
	0x1E46: "n",        // latin capital letter n with dot below
	0x1E47: "n",        // latin small letter n with dot below
	0x1E48: "n",        // latin capital letter n with line below
	0x1E49: "n",        // latin small letter n with line below
	0x1E4A: "n",        // latin capital letter n with circumflex below
	0x1E4B: "n",        // latin small letter n with circumflex below
	0x1E4C: "o",        // latin capital letter o with tilde and acute
	0x1E4D: "o",        // latin small letter o with tilde and acute
	0x1E4E: "o",        // latin capital letter o with tilde and diaeresis
	0x1E4F: "o",        // latin small letter o with tilde and diaeresis
	0x1E50: "o",        // latin capital letter o with macron and grave
	0x1E51: "o",        // latin small letter o with macron and grave
	0x1E52: "o",        // latin capital letter o with macron and acute
	0x1E53: "o",        // latin small letter o with macron and acute
	0x1E54: "p",        // latin capital letter p with acute
	0x1E55: "p",        // latin small letter p with acute
	0x1E56: "p",        // latin capital letter p with dot above
	0x1E57: "p",        // latin small letter p with dot above
	0x1E58: "r",        // latin capital letter r with dot above
	0x1E59: "r",        // latin small letter r with dot above
	0x1E5A: "r",        // latin capital letter r with dot below
	0x1E5B: "r",        // latin small letter r with dot below
	0x1E5C: "r",        // latin capital letter r with dot below and macron
	0x1E5D: "r",        // latin small letter r with dot below and macron
	0x1E5E: "r",        // latin capital letter r with line below
	0x1E5F: "r",        // latin small letter r with line below
	0x1E60: "s",        // latin capital letter s with dot above
	0x1E61: "s",        // latin small letter s with dot above
	0x1E62: "s",        // latin capital letter s with dot below
	0x1E63: "s",        // latin small letter s with dot below
	0x1E64: "s",        // latin capital letter s with acute and dot above
	0x1E65: "s",        // latin small letter s with acute and dot above
	0x1E66: "s",        // latin capital letter s with caron and dot above
	0x1E67: "s",        // latin small letter s with caron and dot above
	0x1E68: "s",        // latin capital letter s with dot below and dot above
	0x1E69: "s",        // latin small letter s with dot below and dot above
	0x1E6A: "t",        // latin capital letter t with dot above
	0x1E6B: "t",        // latin small letter t with dot above
	0x1E6C: "t",        // latin capital letter t with dot below
	0x1E6D: "t",        // latin small letter t with dot below
	0x1E6E: "t",        // latin capital letter t with line below
	0x1E6F: "t",        // latin small letter t with line below
	0x1E70: "t",        // latin capital letter t with circumflex below
	0x1E71: "t",        // latin small letter t with circumflex below
	0x1E72: "u",        // latin capital letter u with diaeresis below
	0x1E73: "u",        // latin small letter u with diaeresis below
	0x1E74: "u",        // latin capital letter u with tilde below
	0x1E75: "u",        // latin small letter u with tilde below
	0x1E76: "u",        // latin capital letter u with circumflex below
	0x1E77: "u",        // latin small letter u with circumflex below
	0x1E78: "u",        // latin capital letter u with tilde and acute
	0x1E79: "u",        // latin small letter u with tilde and acute
	0x1E7A: "u",        // latin capital letter u with macron and diaeresis
	0x1E7B: "u",        // latin small letter u with macron and diaeresis
	0x1E7C: "v",        // latin capital letter v with tilde
	0x1E7D: "v",        // latin small letter v with tilde
	0x1E7E: "v",        // latin capital letter v with dot below
	0x1E7F: "v",        // latin small letter v with dot below
	0x1E80: "w",        // latin capital letter w with grave
	0x1E81: "w",        // latin small letter w with grave
	0x1E82: "w",        // latin capital letter w with acute
	0x1E83: "w",        // latin small letter w with acute
	0x1E84: "w",        // latin capital letter w with diaeresis
	0x1E85: "w",        // latin small letter w with diaeresis
	0x1E86: "w",        // latin capital letter w with dot above
	0x1E87: "w",        // latin small letter w with dot above
	0x1E88: "w",        // latin capital letter w with dot below
	0x1E89: "w",        // latin small letter w with dot below
	0x1E8A: "x",        // latin capital letter x with dot above
	0x1E8B: "x",        // latin small letter x with dot above
	0x1E8C: "x",        // latin capital letter x with diaeresis
	0x1E8D: "x",        // latin small letter x with diaeresis
	0x1E8E: "y",        // latin capital letter y with dot above
	0x1E8F: "y",        // latin small letter y with dot above
	0x1E90: "z",        // latin capital letter z with circumflex
	0x1E91: "z",        // latin small letter z with circumflex
	0x1E92: "z",        // latin capital letter z with dot below
	0x1E93: "z",        // latin small letter z with dot below
	0x1E94: "z",        // latin capital letter z with line below
	0x1E95: "z",        // latin small letter z with line below
	0x1E96: "h",        // latin small letter h with line below
	0x1E97: "t",        // latin small letter t with diaeresis
	0x1E98: "w",        // latin small letter w with ring above
	0x1E99: "y",        // latin small letter y with ring above
	0x1E9A: "a\u02be",  // latin small letter a with right half ring
	0x1E9B: "s",        // latin small letter long s with dot above
	0x1E9E: "ss",       // latin capital letter sharp s
	0x1EA0: "a",        // latin capital letter a with dot below
	0x1EA1: "a",        // latin small letter a with dot below
	0x1EA2: "a",        // latin capital letter a with hook above
	0x1EA3: "a",        // latin small letter a with hook above
	0x1EA4: "a",        // latin capital letter a with circumflex and acute
	0x1EA5: "a",        // latin small letter a with circumflex and acute
	0x1EA6: "a",        // latin capital letter a with circumflex and grave
	0x1EA7: "a",        // latin small letter a with circumflex and grave
	0x1EA8: "a",        // latin capital letter a with circumflex and hook above
	0x1EA9: "a",        // latin small letter a with circumflex and hook above
	0x1EAA: "a",        // latin capital letter a with circumflex and tilde
	0x1EAB: "a",        // latin small letter a with circumflex and tilde
	0x1EAC: "a",        // latin capital letter a with circumflex and dot below
	0x1EAD: "a",        // latin small letter a with circumflex and dot below
	0x1EAE: "a",        // latin capital letter a with breve and acute
	0x1EAF: "a",        // latin small letter a with breve and acute
	0x1EB0: "a",        // latin capital letter a with breve and grave
	0x1EB1: "a",        // latin small letter a with breve and grave
	0x1EB2: "a",        // latin capital letter a with breve and hook above
	0x1EB3: "a",        // latin small letter a with breve and hook above
	0x1EB4: "a",        // latin capital letter a with breve and tilde
	0x1EB5: "a",        // latin small letter a with breve and tilde
	0x1EB6: "a",        // latin capital letter a with breve and dot below
	0x1EB7: "a",        // latin small letter a with breve and dot below
	0x1EB8: "e",        // latin capital letter e with dot below
	0x1EB9: "e",        // latin small letter e with dot below
	0x1EBA: "e",        // latin capital letter e with hook above
	0x1EBB: "e",        // latin small letter e with hook above
	0x1EBC: "e",        // latin capital letter e with tilde
	0x1EBD: "e",        // latin small letter e with tilde
	0x1EBE: "e",        // latin capital letter e with circumflex and acute
	0x1EBF: "e",        // latin small letter e with circumflex and acute
	0x1EC0: "e",        // latin capital letter e with circumflex and grave
	0x1EC1: "e",        // latin small letter e with circumflex and grave
	0x1EC2: "e",        // latin capital letter e with circumflex and hook above
	0x1EC3: "e",        // latin small letter e with circumflex and hook above
	0x1EC4: "e",        // latin capital letter e with circumflex and tilde
	0x1EC5: "e",        // latin small letter e with circumflex and tilde
	0x1EC6: "e",        // latin capital letter e with circumflex and dot below
	0x1EC7: "e",        // latin small letter e with circumflex and dot below
	0x1EC8: "i",        // latin capital letter i with hook above
	0x1EC9: "i",        // latin small letter i with hook above
	0x1ECA: "i",        // latin capital letter i with dot below
	0x1ECB: "i",        // latin small letter i with dot below
	0x1ECC: "o",        // latin capital letter o with dot below
	0x1ECD: "o",        // latin small letter o with dot below
	0x1ECE: "o",        // latin capital letter o with hook above
	0x1ECF: "o",        // latin small letter o with hook above
	0x1ED0: "o",        // latin capital letter o with circumflex and acute
	0x1ED1: "o",        // latin small letter o with circumflex and acute
	0x1ED2: "o",        // latin capital letter o with circumflex and grave
	0x1ED3: "o",        // latin small letter o with circumflex and grave
	0x1ED4: "o",        // latin capital letter o with circumflex and hook above
	0x1ED5: "o",        // latin small letter o with circumflex and hook above
	0x1ED6: "o",        // latin capital letter o with circumflex and tilde
	0x1ED7: "o",        // latin small letter o with circumflex and tilde
	0x1ED8: "o",        // latin capital letter o with circumflex and dot below
	0x1ED9: "o",        // latin small letter o with circumflex and dot below
	0x1EDA: "o",        // latin capital letter o with horn and acute
	0x1EDB: "o",        // latin small letter o with horn and acute
	0x1EDC: "o",        // latin capital letter o with horn and grave
	0x1EDD: "o",        // latin small letter o with horn and grave
	0x1EDE: "o",        // latin capital letter o with horn and hook above
	0x1EDF: "o",        // latin small letter o with horn and hook above
	0x1EE0: "o",        // latin capital letter o with horn and tilde
	0x1EE1: "o",        // latin small letter o with horn and tilde
	0x1EE2: "o",        // latin capital letter o with horn and dot below
	0x1EE3: "o",        // latin small letter o with horn and dot below
	0x1EE4: "u",        // latin capital letter u with dot below
	0x1EE5: "u",        // latin small letter u with dot below
	0x1EE6: "u",        // latin capital letter u with hook above
	0x1EE7: "u",        // latin small letter u with hook above
	0x1EE8: "u",        // latin capital letter u with horn and acute
	0x1EE9: "u",        // latin small letter u with horn and acute
	0x1EEA: "u",        // latin capital letter u with horn and grave
	0x1EEB: "u",        // latin small letter u with horn and grave
	0x1EEC: "u",        // latin capital letter u with horn and hook above
	0x1EED: "u",        // latin small letter u with horn and hook above
	0x1EEE: "u",        // latin capital letter u with horn and tilde
	0x1EEF: "u",        // latin small letter u with horn and tilde
	0x1EF0: "u",        // latin capital letter u with horn and dot below
	0x1EF1: "u",        // latin small letter u with horn and dot below
	0x1EF2: "y",        // latin capital letter y with grave
	0x1EF3: "y",        // latin small letter y with grave
	0x1EF4: "y",        // latin capital letter y with dot below
	0x1EF5: "y",        // latin small letter y with dot below
	0x1EF6: "y",        // latin capital letter y with hook above
	0x1EF7: "y",        // latin small letter y with hook above
	0x1EF8: "y",        // latin capital letter y with tilde
	0x1EF9: "y",        // latin small letter y with tilde
	0x1F00: "\u03b1",   // greek small letter alpha with psili
	0x1F01: "\u03b1",   // greek small letter alpha with dasia
	0x1F02: "\u03b1",   // greek small letter alpha with psili and varia
	0x1F03: "\u03b1",   // greek small letter alpha with dasia and varia
	0x1F04: "\u03b1",   // greek small letter alpha with psili and oxia
	0x1F05: "\u03b1",   // greek small letter alpha with dasia and oxia
	0x1F06: "\u03b1",   // greek small letter alpha with psili and perispomeni
	0x1F07: "\u03b1",   // greek small letter alpha with dasia and perispomeni
	0x1F08: "\u03b1",   // greek capital letter alpha with psili
	0x1F09: "\u03b1",   // greek capital letter alpha with dasia
	0x1F0A: "\u03b1",   // greek capital letter alpha with psili and varia
	0x1F0B: "\u03b1",   // greek capital letter alpha with dasia and varia
	0x1F0C: "\u03b1",   // greek capital letter alpha with psili and oxia
	0x1F0D: "\u03b1",   // greek capital letter alpha with dasia and oxia
	0x1F0E: "\u03b1",   // greek capital letter alpha with psili and perispomeni
	0x1F0F: "\u03b1",   // greek capital letter alpha with dasia and perispomeni
	0x1F10: "\u03b5",   // greek small letter epsilon with psili
	0x1F11: "\u03b5",   // greek small letter epsilon with dasia
	0x1F12: "\u03b5",   // greek small letter epsilon with psili and varia
	0x1F13: "\u03b5",   // greek small letter epsilon with dasia and varia
	0x1F14: "\u03b5",   // greek small letter epsilon with psili and oxia
	0x1F15: "\u03b5",   // greek small letter epsilon with dasia and oxia
	0x1F18: "\u03b5",   // greek capital letter epsilon with psili
	0x1F19: "\u03b5",   // greek capital letter epsilon with dasia
	0x1F1A: "\u03b5",   // greek capital letter epsilon with psili and varia
	0x1F1B: "\u03b5",   // greek capital letter epsilon with dasia and varia
	0x1F1C: "\u03b5",   // greek capital letter epsilon with psili and oxia
	0x1F1D: "\u03b5",   // greek capital letter epsilon with dasia and oxia
	0x1F20: "\u03b7",   // greek small letter eta with psili
	0x1F21: "\u03b7",   // greek small letter eta with dasia
	0x1F22: "\u03b7",   // greek small letter eta with psili and varia
	0x1F23: "\u03b7",   // greek small letter eta with dasia and varia
	0x1F24: "\u03b7",   // greek small letter eta with psili and oxia
	0x1F25: "\u03b7",   // greek small letter eta with dasia and oxia
	0x1F26: "\u03b7",   // greek small letter eta with psili and perispomeni
	0x1F27: "\u03b7",   // greek small letter eta with dasia and perispomeni
	0x1F28: "\u03b7",   // greek capital letter eta with psili
	0x1F29: "\u03b7",   // greek capital letter eta with dasia
	0x1F2A: "\u03b7",   // greek capital letter eta with psili and varia
	0x1F2B: "\u03b7",   // greek capital letter eta with dasia and varia
	0x1F2C: "\u03b7",   // greek capital letter eta with psili and oxia
	0x1F2D: "\u03b7",   // greek capital letter eta with dasia and oxia
	0x1F2E: "\u03b7",   // greek capital letter eta with psili and perispomeni
	0x1F2F: "\u03b7",   // greek capital letter eta with dasia and perispomeni
	0x1F30: "\u03b9",   // greek small letter iota with psili
	0x1F31: "\u03b9",   // greek small letter iota with dasia
	0x1F32: "\u03b9",   // greek small letter iota with psili and varia
	0x1F33: "\u03b9",   // greek small letter iota with dasia and varia
	0x1F34: "\u03b9",   // greek small letter iota with psili and oxia
	0x1F35: "\u03b9",   // greek small letter iota with dasia and oxia
	0x1F36: "\u03b9",   // greek small letter iota with psili and perispomeni
	0x1F37: "\u03b9",   // greek small letter iota with dasia and perispomeni
	0x1F38: "\u03b9",   // greek capital letter iota with psili
	0x1F39: "\u03b9",   // greek capital letter iota with dasia
	0x1F3A: "\u03b9",   // greek capital letter iota with psili and varia
	0x1F3B: "\u03b9",   // greek capital letter iota with dasia and varia
	0x1F3C: "\u03b9",   // greek capital letter iota with psili and oxia
	0x1F3D: "\u03b9",   // greek capital letter iota with dasia and oxia
	0x1F3E: "\u03b9",   // greek capital letter iota with psili and perispomeni
	0x1F3F: "\u03b9",   // greek capital letter iota with dasia and perispomeni
	0x1F40: "\u03bf",   // greek small letter omicron with psili
	0x1F41: "\u03bf",   // greek small letter omicron with dasia
	0x1F42: "\u03bf",   // greek small letter omicron with psili and varia
	0x1F43: "\u03bf",   // greek small letter omicron with dasia and varia
	0x1F44: "\u03bf",   // greek small letter omicron with psili and oxia
	0x1F45: "\u03bf",   // greek small letter omicron with dasia and oxia
	0x1F48: "\u03bf",   // greek capital letter omicron with psili
	0x1F49: "\u03bf",   // greek capital letter omicron with dasia
	0x1F4A: "\u03bf",   // greek capital letter omicron with psili and varia
	0x1F4B: "\u03bf",   // greek capital letter omicron with dasia and varia
	0x1F4C: "\u03bf",   // greek capital letter omicron with psili and oxia
	0x1F4D: "\u03bf",   // greek capital letter omicron with dasia and oxia
	0x1F50: "\u03c5",   // greek small letter upsilon with psili
	0x1F51: "\u03c5",   // greek small letter upsilon with dasia
	0x1F52: "\u03c5",   // greek small letter upsilon with psili and varia
	0x1F53: "\u03c5",   // greek small letter upsilon with dasia and varia
	0x1F54: "\u03c5",   // greek small letter upsilon with psili and oxia
	0x1F55: "\u03c5",   // greek small letter upsilon with dasia and oxia
	0x1F56: "\u03c5",   // greek small letter upsilon with psili and perispomeni
	0x1F57: "\u03c5",   // greek small letter upsilon with dasia and perispomeni
	0x1F59: "\u03c5",   // greek capital letter upsilon with dasia
	0x1F5B: "\u03c5",   // greek capital letter upsilon with dasia and varia
	0x1F5D: "\u03c5",   // greek capital letter upsilon with dasia and oxia
	0x1F5F: "\u03c5",   // greek capital letter upsilon with dasia and perispomeni
	0x1F60: "\u03c9",   // greek small letter omega with psili
	0x1F61: "\u03c9",   // greek small letter omega with dasia
	0x1F62: "\u03c9",   // greek small letter omega with psili and varia
	0x1F63: "\u03c9",   // greek small letter omega with dasia and varia
	0x1F64: "\u03c9",   // greek small letter omega with psili and oxia
	0x1F65: "\u03c9",   // greek small letter omega with dasia and oxia
	0x1F66: "\u03c9",   // greek small letter omega with psili and perispomeni
	0x1F67: "\u03c9",   // greek small letter omega with dasia and perispomeni
	0x1F68: "\u03c9",   // greek capital letter omega with psili
	0x1F69: "\u03c9",   // greek capital letter omega with dasia
	0x1F6A: "\u03c9",   // greek capital letter omega with psili and varia
	0x1F6B: "\u03c9",   // greek capital letter omega with dasia and varia
	0x1F6C: "\u03c9",   // greek capital letter omega with psili and oxia
	0x1F6D: "\u03c9",   // greek capital letter omega with dasia and oxia
	0x1F6E: "\u03c9",   // greek capital letter omega with psili and perispomeni
	0x1F6F: "\u03c9",   // greek capital letter omega with dasia and perispomeni
	0x1F70: "\u03b1",   // greek small letter alpha with varia
	0x1F71: "\u03b1",   // greek small letter alpha with oxia
	0x1F72: "\u03b5",   // greek small letter epsilon with varia
	0x1F73: "\u03b5",   // greek small letter epsilon with oxia
	0x1F74: "\u03b7",   // greek small letter eta with varia
	0x1F75: "\u03b7",   // greek small letter eta with oxia
	0x1F76: "\u03b9",   // greek small letter iota with varia
	0x1F77: "\u03b9",   // greek small letter iota with oxia
	0x1F78: "\u03bf",   // greek small letter omicron with varia
	0x1F79: "\u03bf",   // greek small letter omicron with oxia
	0x1F7A: "\u03c5",   // greek small letter upsilon with varia
	0x1F7B: "\u03c5",   // greek small letter upsilon with oxia
	0x1F7C: "\u03c9",   // greek small letter omega with varia
	0x1F7D: "\u03c9",   // greek small letter omega with oxia
	0x1F80: "\u03b1",   // greek small letter alpha with psili and ypogegrammeni
	0x1F81: "\u03b1",   // greek small letter alpha with dasia and ypogegrammeni
	0x1F82: "\u03b1",   // greek small letter alpha with psili and varia and ypogegrammeni
	0x1F83: "\u03b1",   // greek small letter alpha with dasia and varia and ypogegrammeni
	0x1F84: "\u03b1",   // greek small letter alpha with psili and oxia and ypogegrammeni
	0x1F85: "\u03b1",   // greek small letter alpha with dasia and oxia and ypogegrammeni
	0x1F86: "\u03b1",   // greek small letter alpha with psili and perispomeni and ypogegrammeni
	0x1F87: "\u03b1",   // greek small letter alpha with dasia and perispomeni and ypogegrammeni
	0x1F88: "\u03b1",   // greek capital letter alpha with psili and prosgegrammeni
	0x1F89: "\u03b1",   // greek capital letter alpha with dasia and prosgegrammeni
	0x1F8A: "\u03b1",   // greek capital letter alpha with psili and varia and prosgegrammeni
	0x1F8B: "\u03b1",   // greek capital letter alpha with dasia and varia and prosgegrammeni
	0x1F8C: "\u03b1",   // greek capital letter alpha with psili and oxia and prosgegrammeni
	0x1F8D: "\u03b1",   // greek capital letter alpha with dasia and oxia and prosgegrammeni
	0x1F8E: "\u03b1",   // greek capital letter alpha with psili and perispomeni and prosgegrammeni
	0x1F8F: "\u03b1",   // greek capital letter alpha with dasia and perispomeni and prosgegrammeni
	0x1F90: "\u03b7",   // greek small letter eta with psili and ypogegrammeni
	0x1F91: "\u03b7",   // greek small letter eta with dasia and ypogegrammeni
	0x1F92: "\u03b7",   // greek small letter eta with psili and varia and ypogegrammeni
	0x1F93: "\u03b7",   // greek small letter eta with dasia and varia and ypogegrammeni
	0x1F94: "\u03b7",   // greek small letter eta with psili and oxia and ypogegrammeni
	0x1F95: "\u03b7",   // greek small letter eta with dasia and oxia and ypogegrammeni
	0x1F96: "\u03b7",   // greek small letter eta with psili and perispomeni and ypogegrammeni
	0x1F97: "\u03b7",   // greek small letter eta with dasia and perispomeni and ypogegrammeni
	0x1F98: "\u03b7",   // greek capital letter eta with psili and prosgegrammeni
	0x1F99: "\u03b7",   // greek capital letter eta with dasia and prosgegrammeni
	0x1F9A: "\u03b7",   // greek capital letter eta with psili and varia and prosgegrammeni
	0x1F9B: "\u03b7",   // greek capital letter eta with dasia and varia and prosgegrammeni
	0x1F9C: "\u03b7",   // greek capital letter eta with psili and oxia and prosgegrammeni
	0x1F9D: "\u03b7",   // greek capital letter eta with dasia and oxia and prosgegrammeni
	0x1F9E: "\u03b7",   // greek capital letter eta with psili and perispomeni and prosgegrammeni
	0x1F9F: "\u03b7",   // greek capital letter eta with dasia and perispomeni and prosgegrammeni
	0x1FA0: "\u03c9",   // greek small letter omega with psili and ypogegrammeni
	0x1FA1: "\u03c9",   // greek small letter omega with dasia and ypogegrammeni
	0x1FA2: "\u03c9",   // greek small letter omega with psili and varia and ypogegrammeni
	0x1FA3: "\u03c9",   // greek small letter omega with dasia and varia and ypogegrammeni
	0x1FA4: "\u03c9",   // greek small letter omega with psili and oxia and ypogegrammeni
	0x1FA5: "\u03c9",   // greek small letter omega with dasia and oxia and ypogegrammeni
	0x1FA6: "\u03c9",   // greek small letter omega with psili and perispomeni and ypogegrammeni
	0x1FA7: "\u03c9",   // greek small letter omega with dasia and perispomeni and ypogegrammeni
	0x1FA8: "\u03c9",   // greek capital letter omega with psili and prosgegrammeni
	0x1FA9: "\u03c9",   // greek capital letter omega with dasia and prosgegrammeni
	0x1FAA: "\u03c9",   // greek capital letter omega with psili and varia and prosgegrammeni
	0x1FAB: "\u03c9",   // greek capital letter omega with dasia and varia and prosgegrammeni
	0x1FAC: "\u03c9",   // greek capital letter omega with psili and oxia and prosgegrammeni
	0x1FAD: "\u03c9",   // greek capital letter omega with dasia and oxia and prosgegrammeni
	0x1FAE: "\u03c9",   // greek capital letter omega with psili and perispomeni and prosgegrammeni
	0x1FAF: "\u03c9",   // greek capital letter omega with dasia and perispomeni and prosgegrammeni
	0x1FB0: "\u03b1",   // greek small letter alpha with vrachy
	0x1FB1: "\u03b1",   // greek small letter alpha with macron
	0x1FB2: "\u03b1",   // greek small letter alpha with varia and ypogegrammeni
	0x1FB3: "\u03b1",   // greek small letter alpha with ypogegrammeni
	0x1FB4: "\u03b1",   // greek small letter alpha with oxia and ypogegrammeni
	0x1FB6: "\u03b1",   // greek small letter alpha with perispomeni
	0x1FB7: "\u03b1",   // greek small letter alpha with perispomeni and ypogegrammeni
	0x1FB8: "\u03b1",   // greek capital letter alpha with vrachy
	0x1FB9: "\u03b1",   // greek capital letter alpha with macron
	0x1FBA: "\u03b1",   // greek capital letter alpha with varia
	0x1FBB: "\u03b1",   // greek capital letter alpha with oxia
	0x1FBC: "\u03b1",   // greek capital letter alpha with prosgegrammeni
	0x1FBE: "\u03b9",   // greek prosgegrammeni
	0x1FC2: "\u03b7",   // greek small letter eta with varia and ypogegrammeni
	0x1FC3: "\u03b7",   // greek small letter eta with ypogegrammeni
	0x1FC4: "\u03b7",   // greek small letter eta with oxia and ypogegrammeni
	0x1FC6: "\u03b7",   // greek small letter eta with perispomeni
	0x1FC7: "\u03b7",   // greek small letter eta with perispomeni and ypogegrammeni
	0x1FC8: "\u03b5",   // greek capital letter epsilon with varia
	0x1FC9: "\u03b5",   // greek capital letter epsilon with oxia
	0x1FCA: "\u03b7",   // greek capital letter eta with varia
	0x1FCB: "\u03b7",   // greek capital letter eta with oxia
	0x1FCC: "\u03b7",   // greek capital letter eta with prosgegrammeni
	0x1FD0: "\u03b9",   // greek small letter iota with vrachy
	0x1FD1: "\u03b9",   // greek small letter iota with macron
	0x1FD2: "\u03b9",   // greek small letter iota with dialytika and varia
	0x1FD3: "\u03b9",   // greek small letter iota with dialytika and oxia
	0x1FD6: "\u03b9",   // greek small letter iota with perispomeni
	0x1FD7: "\u03b9",   // greek small letter iota with dialytika and perispomeni
	0x1FD8: "\u03b9",   // greek capital letter iota with vrachy
	0x1FD9: "\u03b9",   // greek capital letter iota with macron
	0x1FDA: "\u03b9",   // greek capital letter iota with varia
	0x1FDB: "\u03b9",   // greek capital letter iota with oxia
	0x1FE0: "\u03c5",   // greek small letter upsilon with vrachy
	0x1FE1: "\u03c5",   // greek small letter upsilon with macron
	0x1FE2: "\u03c5",   // greek small letter upsilon with dialytika and varia
	0x1FE3: "\u03c5",   // greek small letter upsilon with dialytika and oxia
	0x1FE4: "\u03c1",   // greek small letter rho with psili
	0x1FE5: "\u03c1",   // greek small letter rho with dasia
	0x1FE6: "\u03c5",   // greek small letter upsilon with perispomeni
	0x1FE7: "\u03c5",   // greek small letter upsilon with dialytika and perispomeni
	0x1FE8: "\u03c5",   // greek capital letter upsilon with vrachy
	0x1FE9: "\u03c5",   // greek capital letter upsilon with macron
	0x1FEA: "\u03c5",   // greek capital letter upsilon with varia
	0x1FEB: "\u03c5",   // greek capital letter upsilon with oxia
	0x1FEC: "\u03c1",   // greek capital letter rho with dasia
	0x1FF2: "\u03c9",   // greek small letter omega with varia and ypogegrammeni
	0x1FF3: "\u03c9",   // greek small letter omega with ypogegrammeni
	0x1FF4: "\u03c9",   // greek small letter omega with oxia and ypogegrammeni
	0x1FF6: "\u03c9",   // greek small letter omega with perispomeni
	0x1FF7: "\u03c9",   // greek small letter omega with perispomeni and ypogegrammeni
	0x1FF8: "\u03bf",   // greek capital letter omicron with varia
	0x1FF9: "\u03bf",   // greek capital letter omicron with oxia
	0x1FFA: "\u03c9",   // greek capital letter omega with varia
	0x1FFB: "\u03c9",   // greek capital letter omega with oxia
	0x1FFC: "\u03c9",   // greek capital letter omega with prosgegrammeni
	0xFB00: "ff",       // latin small ligature ff
	0xFB01: "fi",       // latin small ligature fi
	0xFB02: "fl",       // latin small ligature fl
	0xFB03: "ffi",      // latin small ligature ffi
	0xFB04: "ffl",      // latin small ligature ffl
	0xFB05: "st",       // latin small ligature long s t
	0xFB06: "st",       // latin small ligature st
	0xFF10: "0",        // fullwidth digit zero
	0xFF11: "1",        // fullwidth digit one
	0xFF12: "2",        // fullwidth digit two
	0xFF13: "3",        // fullwidth digit three
	0xFF14: "4",        // fullwidth digit four
	0xFF15: "5",        // fullwidth digit five
	0xFF16: "6",        // fullwidth digit six
	0xFF17: "7",        // fullwidth digit seven
	0xFF18: "8",        // fullwidth digit eight
	0xFF19: "9",        // fullwidth digit nine
	0xFF21: "a",        // fullwidth latin capital letter a
	0xFF22: "b",        // fullwidth latin capital letter b
	0xFF23: "c",        // fullwidth latin capital letter c
	0xFF24: "d",        // fullwidth latin capital letter d
	0xFF25: "e",        // fullwidth latin capital letter e
	0xFF26: "f",        // fullwidth latin capital letter f
	0xFF27: "g",        // fullwidth latin capital letter g
	0xFF28: "h",        // fullwidth latin capital letter h
	0xFF29: "i",        // fullwidth latin capital letter i
	0xFF2A: "j",        // fullwidth latin capital letter j
	0xFF2B: "k",        // fullwidth latin capital letter k
	0xFF2C: "l",        // fullwidth latin capital letter l
	0xFF2D: "m",        // fullwidth latin capital letter m
	0xFF2E: "n",        // fullwidth latin capital letter n
	0xFF2F: "o",        // fullwidth latin capital letter o
	0xFF30: "p",        // fullwidth latin capital letter p
	0xFF31: "q",        // fullwidth latin capital letter q
	0xFF32: "r",        // fullwidth latin capital letter r
	0xFF33: "s",        // fullwidth latin capital letter s
	0xFF34: "t",        // fullwidth latin capital letter t
	0xFF35: "u",        // fullwidth latin capital letter u
	0xFF36: "v",        // fullwidth latin capital letter v
	0xFF37: "w",        // fullwidth latin capital letter w
	0xFF38: "x",        // fullwidth latin capital letter x
	0xFF39: "y",        // fullwidth latin capital letter y
	0xFF3A: "z",        // fullwidth latin capital letter z
	0xFF41: "a",        // fullwidth latin small letter a
	0xFF42: "b",        // fullwidth latin small letter b
	0xFF43: "c",        // fullwidth latin small letter c
	0xFF44: "d",        // fullwidth latin small letter d
	0xFF45: "e",        // fullwidth latin small letter e
	0xFF46: "f",        // fullwidth latin small letter f
	0xFF47: "g",        // fullwidth latin small letter g
	0xFF48: "h",        // fullwidth latin small letter h
	0xFF49: "i",        // fullwidth latin small letter i
	0xFF4A: "j",        // fullwidth latin small letter j
	0xFF4B: "k",        // fullwidth latin small letter k
	0xFF4C: "l",        // fullwidth latin small letter l
	0xFF4D: "m",        // fullwidth latin small letter m
	0xFF4E: "n",        // fullwidth latin small letter n
	0xFF4F: "o",        // fullwidth latin small letter o
	0xFF50: "p",        // fullwidth latin small letter p
	0xFF51: "q",        // fullwidth latin small letter q
	0xFF52: "r",        // fullwidth latin small letter r
	0xFF53: "s",        // fullwidth latin small letter s
	0xFF54: "t",        // fullwidth latin small letter t
	0xFF55: "u",        // fullwidth latin small letter u
	0xFF56: "v",        // fullwidth latin small letter v
	0xFF57: "w",        // fullwidth latin small letter w
	0xFF58: "x",        // fullwidth latin small letter x
	0xFF59: "y",        // fullwidth latin small letter y
	0xFF5A: "z",        // fullwidth latin small letter z
}
