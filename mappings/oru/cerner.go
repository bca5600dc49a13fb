package oru

// NewCerner is the Factory of the Cerner (Oracle Health) Millennium
// profile: OBX-3 carries the tenant's event code alias from Settings.Codes
// (keyed by vital key or LOINC code, OBX-3.3 the alias's contributor
// source from Settings.CodeSystem); units are UCUM; no device rows.
func NewCerner(s Settings) (Profile, error) {
	p, err := newTableProfile(s, "Cerner event code alias")
	if err != nil {
		return nil, err
	}
	return p, nil
}
