// Package oru builds HL7 v2 ORU^R01 result messages from FHIR R4
// Observations, per the IHE Patient Care Device (PCD) Technical Framework,
// Device Enterprise Communication profile, transaction PCD-01 "Communicate
// PCD Data" (IHE PCD TF-2 section 3.1 and appendices A and B;
// https://www.ihe.net/resources/technical_frameworks/#pcd), in HL7 v2.6 or,
// for older engines, v2.5.1. A destination Profile (generic PCD-01, Epic,
// Cerner, or one registered later) decides addressing, identifiers, units and
// how OBX-3 is coded.
//
// It is pure translation: no I/O, no clock unless the caller leaves
// Options.Now zero. It imports only the standard library, server/fhir and
// mappings/ packages; server/delivery and the hl7 CLI import it.
//
// # Spec decisions
//
//   - MSH (TF-2 B.1): MSH-2 ^~\&, MSH-3..6 from the profile, MSH-9
//     ORU^R01^ORU_R01, MSH-10 from Options.ControlID, MSH-11 P (profile may
//     say T/D), MSH-12 2.6 or 2.5.1, MSH-15 AL, MSH-16 NE, MSH-18 UNICODE
//     UTF-8 (we only ever write UTF-8), MSH-21
//     IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO (TF-2 B.1: "shall
//     contain in MSH-21 ... 1.3.6.1.4.1.19376.1.6.1.1.1").
//   - No ORC (TF-2: ORC usage X for PCD-01). OBR-2/OBR-3 (EI) are the
//     Observation id with MSH-3 as namespace; OBR-4 is the panel's MDC code
//     for a panel, 69121^MDC_OBS_WAVE_CTS^MDC for a waveform, and otherwise
//     182777000^monitoring of patient^SNOMED-CT (unordered monitoring).
//   - OBX-3 (TF-2 A.1): CWE with the MDC numeric code, the reference id and
//     "MDC" in components 1-3, LOINC as the alternate identifier in
//     components 4-6 ("LN"). Epic and Cerner replace components 1-3 with the
//     tenant's flowsheet row id / event code alias.
//   - OBX-4 (TF-2 A, "<MDS>.<VMD>.<CHAN>.<METRIC>"): one Observation is one
//     MDS (1), one VMD (1) and one channel (1); its metrics are numbered
//     1.1.1.1, 1.1.1.2 ... — blood pressure systolic, diastolic and mean are
//     three NM rows in one channel. Device-related rows carry trailing zeros
//     and OBX-11 X (TF-2 A: MDS 1.0.0.0). We send the MDS row only when the
//     Device has an MDC type coding (device rows are optional in TF-2 A; we
//     do not invent a device type), and no VMD/CHAN rows (a FHIR Device
//     does not tell us the VMD or channel type).
//   - OBX-6: per PCD, MDC unit code^MDC_DIM_...^MDC with the UCUM code as
//     the alternate (components 4-6, "UCUM"); a profile may ask for UCUM
//     first (Units "ucum").
//   - OBX-11 (HL7 table 0085): final F; amended, corrected C; preliminary
//     P; entered-in-error W; other statuses are not results and are
//     rejected (KindUnprocessable).
//   - OBX-14 and OBR-7: effective[x] as DTM with its UTC offset.
//   - OBX-17: AMEAS^auto-measurement^MDC (a device measurement).
//   - OBX-18 (EI, table 0301 "EUI-64"): the Device's EUI-64 as 16
//     upper-case hex digits in EI.1 and EI.3, EI.4 "EUI-64"
//     (value^^value^EUI-64). The brief wrote value^^^^EUI-64, which puts
//     the type in a fifth component EI does not have; we follow the EI
//     data type. Without an EUI-64 identifier OBX-18 is empty (usage RE).
//   - Waveforms (valueSampledData): OBX-2 NA, OBX-5 the samples converted to
//     physical values (origin + factor * x) one per component.
//   - v2.5.1 differs only in MSH-12: every field used exists with the same
//     components in v2.5.1 (CE and CWE share components 1-6).
//
// # Performance
//
// Issue 4 asks for at least 100,000 messages/s per core (BenchmarkBuildORU,
// run with -cpu 1, reports msgs/s). BuildDecoded takes a message's slices
// from a few per-message backing arrays (arena.go) instead of allocating
// each field, repetition and component; codings are read in place, not
// copied. Decode reads the stored JSON with a purpose-built scanner
// (fastjson.go) that handles plain documents and hands anything unusual
// (escapes, duplicate or case-variant member names, unexpected types,
// invalid JSON) to encoding/json, so what a document means and which
// errors it gets are encoding/json's.
package oru
