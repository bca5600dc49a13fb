package adtintest

import (
	"strings"
	"time"
)

// Authority is the assigning authority (CX-4) of the suite's identifiers,
// and System what Settings map it to.
const (
	Authority = "GENHOSP"
	System    = "urn:oid:1.2.3.4.5"
)

// Msg is a synthetic ADT message (never a real patient).
type Msg struct {
	Event     string    // trigger event: A01, A03, A04, A08, A11, A13, A40
	ControlID string    // MSH-10
	Sender    string    // MSH-3; "" is ADT_SRC
	Time      time.Time // MSH-7 and EVN-2; zero omits both
	MRN       string    // PID-3 (authority GENHOSP, type MR)
	Family    string    // PID-5.1
	Given     string    // PID-5.2
	Class     string    // PV1-2; "" is I (inpatient)
	Bed       string    // PV1-3 as a PL, e.g. "ICU^0101^1^GENHOSP"
	Visit     string    // PV1-19 (authority GENHOSP, type VN); "" omits it
	Admit     time.Time // PV1-44
	Discharge time.Time // PV1-45
	NoPV1     bool      // leave PV1 out
	Prior     string    // MRG-1 (A40), authority GENHOSP
}

var structures = map[string]string{
	"A01": "ADT_A01", "A04": "ADT_A01", "A08": "ADT_A01", "A13": "ADT_A01",
	"A03": "ADT_A03", "A11": "ADT_A09", "A40": "ADT_A39",
}

func dtm(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format("20060102150405-0700")
}

// Bytes encodes the message, segments ended by CR.
func (m Msg) Bytes() []byte {
	snd := m.Sender
	if snd == "" {
		snd = "ADT_SRC"
	}
	class := m.Class
	if class == "" {
		class = "I"
	}
	segs := []string{
		"MSH|^~\\&|" + snd + "|GENHOSP|PULSEWIRE|PULSEWIRE_FAC|" + dtm(m.Time) + "||ADT^" + m.Event + "^" + structures[m.Event] + "|" + m.ControlID + "|P|2.5.1",
		"EVN|" + m.Event + "|" + dtm(m.Time),
		"PID|1||" + m.MRN + "^^^" + Authority + "^MR||" + m.Family + "^" + m.Given + "||19700101|F",
	}
	if m.Event == "A40" {
		segs = append(segs, "MRG|"+m.Prior+"^^^"+Authority+"^MR")
	} else if !m.NoPV1 {
		pv1 := make([]string, 46)
		pv1[0], pv1[1], pv1[2], pv1[3] = "PV1", "1", class, m.Bed
		if m.Visit != "" {
			pv1[19] = m.Visit + "^^^" + Authority + "^VN"
		}
		pv1[44], pv1[45] = dtm(m.Admit), dtm(m.Discharge)
		segs = append(segs, strings.TrimRight(strings.Join(pv1, "|"), "|"))
	}
	return []byte(strings.Join(segs, "\r") + "\r")
}
