package oru

// NewEpic is the Factory of the Epic flowsheet profile: OBX-3 carries the
// tenant's flowsheet row id from Settings.Codes (keyed by vital key or
// LOINC code); units are UCUM; no device rows. Visit matching is data:
// Settings.PatientIdentifiers names the PID-3 identifier (system, assigning
// authority, type code) Epic matches on, Settings.VisitIdentifier the
// PV1-19 one. HL7 over MLLP or HTTPS is the transport's business, not this
// package's.
func NewEpic(s Settings) (Profile, error) {
	p, err := newTableProfile(s, "Epic flowsheet row")
	if err != nil {
		return nil, err
	}
	return p, nil
}
