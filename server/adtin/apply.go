package adtin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/pulsewire/pulsewire/mappings/adt"
	"github.com/pulsewire/pulsewire/mappings/hl7v2"
	"github.com/pulsewire/pulsewire/server/fhir"
)

// object is a decoded JSON object (numbers kept as json.Number, so a
// decimal added through the REST API survives an ADT update exactly).
type object = map[string]any

// managed lists, per type, the top-level elements mappings/adt writes: an
// update replaces them (their absence included) and keeps the others.
var managed = map[string]map[string]bool{
	"Patient":   members("identifier", "active", "name", "telecom", "gender", "birthDate", "address", "link"),
	"Encounter": members("identifier", "status", "class", "subject", "period", "location"),
	"Location":  members("identifier", "status", "name", "mode", "physicalType"),
}

func members(ks ...string) map[string]bool {
	m := make(map[string]bool, len(ks))
	for _, k := range ks {
		m[k] = true
	}
	return m
}

// applier applies one translated message inside one transaction.
type applier struct {
	s      *Service
	ctx    context.Context
	tenant string
	tx     fhir.Tx
	m      *hl7v2.Message
	res    *adt.Result
	set    Settings

	refs    map[string]string         // conditional reference -> "Type/id"
	found   map[string]*fhir.Resource // conditional reference -> current resource, nil when new
	logical map[string]adt.Identifier // conditional references that match nothing (A40 retired)
	touched map[string]bool           // Device ids whose associations changed

	patient   string // id of the message's Patient (the survivor for A40)
	bed       string // id of the Location of PV1-3 when it names a bed
	encounter *encounterState
}

// encounterState is what bed-following needs of the written Encounter.
type encounterState struct {
	status string
	end    string // period.end
}

func cond(typ string, k adt.Identifier) string { return typ + "?" + k.Query() }

// apply locks, resolves and writes (see the package comment).
func (a *applier) apply() error {
	a.refs, a.found, a.logical, a.touched = map[string]string{}, map[string]*fhir.Resource{}, map[string]adt.Identifier{}, map[string]bool{}
	type target struct {
		typ string
		key adt.Identifier
	}
	var targets []target
	for _, u := range a.res.Upserts {
		targets = append(targets, target{u.Type, u.Key})
	}
	if a.res.Merge != nil {
		for _, r := range a.res.Merge.Retired {
			targets = append(targets, target{"Patient", r})
		}
	}
	// The same keys server/rest locks for a conditional write, in sorted order.
	var locks []string
	for _, t := range targets {
		locks = append(locks, "cond:"+cond(t.typ, t.key))
	}
	sort.Strings(locks)
	for i, k := range locks {
		if i > 0 && k == locks[i-1] {
			continue
		}
		if err := a.tx.Lock(a.ctx, k); err != nil {
			return err
		}
	}
	for _, t := range targets {
		c := cond(t.typ, t.key)
		if _, done := a.found[c]; done {
			continue
		}
		r, err := a.find(t.typ, t.key)
		if err != nil {
			return err
		}
		a.found[c] = r
		switch {
		case r != nil:
			a.refs[c] = r.Ref()
		case a.isUpsert(c):
			a.refs[c] = t.typ + "/" + fhir.NewID()
		default:
			a.logical[c] = t.key
		}
	}
	for _, u := range a.res.Upserts {
		if err := a.upsert(u); err != nil {
			return err
		}
	}
	if a.res.Merge != nil {
		for _, r := range a.res.Merge.Retired {
			if err := a.retire(a.found[cond("Patient", r)]); err != nil {
				return err
			}
		}
	}
	if a.set.FollowBeds {
		return a.followBeds()
	}
	return nil
}

func (a *applier) isUpsert(c string) bool {
	for _, u := range a.res.Upserts {
		if cond(u.Type, u.Key) == c {
			return true
		}
	}
	return false
}

// find returns the current resource of typ with identifier k, nil when
// there is none, and an AE issue when there are several.
func (a *applier) find(typ string, k adt.Identifier) (*fhir.Resource, error) {
	q := &fhir.Query{Type: typ, Count: 2, Params: []fhir.Param{{Name: "identifier", Type: fhir.ParamToken,
		Values: []fhir.Value{{System: k.System, HasSystem: true, Code: k.Value}}}}}
	res, err := a.tx.Search(a.ctx, a.tenant, q)
	if err != nil {
		return nil, err
	}
	switch len(res.Resources) {
	case 0:
		return nil, nil
	case 1:
		return res.Resources[0], nil
	}
	seg, field := "PID", 3
	switch {
	case typ == "Encounter":
		seg, field = "PV1", 19
	case typ == "Location":
		seg, field = "PV1", 3
	case a.res.Merge != nil && k != a.res.Merge.Survivor:
		seg, field = "MRG", 1
	}
	return nil, &issueError{issueAt(a.m, seg, field, hl7v2.ErrDuplicateKeyIdentifier,
		"more than one "+typ+" has this identifier: the duplicates must be merged first")}
}

// upsert writes one resource of the translation, merged into its current
// version.
func (a *applier) upsert(u adt.Upsert) error {
	c := cond(u.Type, u.Key)
	id := strings.TrimPrefix(a.refs[c], u.Type+"/")
	nb, err := decode(u.Body)
	if err != nil {
		return fhir.Errorf(fhir.KindInternal, "decoding translated %s", u.Type).Wrap(err)
	}
	a.resolve(nb)
	cur := a.found[c]
	body := nb
	if cur != nil {
		old, err := decode(cur.Body)
		if err != nil {
			return fhir.Errorf(fhir.KindInternal, "decoding %s", cur.Ref()).Wrap(err)
		}
		body = merge(u.Type, old, nb)
	}
	switch u.Type {
	case "Patient":
		a.patient = id
		dropSelfLinks(body, "Patient/"+id)
	case "Encounter":
		a.encounter = &encounterState{status: str(body["status"])}
		if p, ok := body["period"].(object); ok {
			a.encounter.end = str(p["end"])
		}
	case "Location":
		if isBed(nb) {
			a.bed = id
		}
	}
	if cur != nil && same(decodeOrNil(cur.Body), body) {
		return nil
	}
	return a.put(u.Type, id, body, cur == nil)
}

// retire marks a Patient replaced by the survivor (A40): inactive, with a
// replaced-by link. A retired identifier that matches no Patient, or the
// survivor itself, needs nothing.
func (a *applier) retire(r *fhir.Resource) error {
	if r == nil || r.ID == a.patient {
		return nil
	}
	old, err := decode(r.Body)
	if err != nil {
		return fhir.Errorf(fhir.KindInternal, "decoding %s", r.Ref()).Wrap(err)
	}
	body := decodeOrNil(r.Body) // a second copy to change
	body["active"] = false
	link := object{"other": object{"reference": "Patient/" + a.patient}, "type": "replaced-by"}
	body["link"] = union(list(body["link"]), []any{link})
	if same(old, body) {
		return nil
	}
	return a.put("Patient", r.ID, body, false)
}

func (a *applier) put(typ, id string, body object, fresh bool) error {
	b, err := encode(body)
	if err != nil {
		return fhir.Errorf(fhir.KindInternal, "encoding %s", typ).Wrap(err)
	}
	idx, err := a.s.cfg.Registry.Extract(typ, b)
	if err != nil {
		return err
	}
	_, _, err = a.tx.Put(a.ctx, &fhir.Write{Type: typ, ID: id, Body: b, Index: idx, Fresh: fresh})
	return err
}

// resolve replaces the conditional references of the translation
// ("Patient?identifier=...") by the resolved "Type/id", or, for one that
// matches nothing, by a logical reference (Reference.identifier).
func (a *applier) resolve(v any) {
	switch x := v.(type) {
	case object:
		if r, ok := x["reference"].(string); ok && strings.Contains(r, "?") {
			if lit, ok := a.refs[r]; ok {
				x["reference"] = lit
			} else if k, ok := a.logical[r]; ok {
				delete(x, "reference")
				x["identifier"] = object{"system": k.System, "value": k.Value}
			}
		}
		for _, e := range x {
			a.resolve(e)
		}
	case []any:
		for _, e := range x {
			a.resolve(e)
		}
	}
}

// merge lays the translated body nb over the current version old: managed
// elements come from nb, the others (and meta) from old; links, the
// Encounter's start and its location history are kept (package comment).
func merge(typ string, old, nb object) object {
	out := object{}
	for k, v := range old {
		if k != "id" && !managed[typ][k] {
			out[k] = v
		}
	}
	for k, v := range nb {
		out[k] = v
	}
	switch typ {
	case "Patient":
		links := union(list(old["link"]), list(nb["link"]))
		if len(links) > 0 {
			out["link"] = links
		}
		for _, l := range links {
			if lo, ok := l.(object); ok && lo["type"] == "replaced-by" {
				out["active"] = false
			}
		}
	case "Encounter":
		if op, ok := old["period"].(object); ok && op["start"] != nil {
			np, _ := out["period"].(object)
			if np == nil {
				np = object{}
				out["period"] = np
			}
			if np["start"] == nil {
				np["start"] = op["start"]
			}
		}
		out["location"] = locations(list(old["location"]), list(nb["location"]), str(nb["status"]))
		if len(list(out["location"])) == 0 {
			delete(out, "location")
		}
	}
	return out
}

// locations is an Encounter's location history: the locations of old that
// the message does not name, completed when the message names others or the
// Encounter is over, then the message's.
func locations(old, nb []any, status string) []any {
	named := map[string]bool{}
	for _, l := range nb {
		named[locationRef(l)] = true
	}
	over := status == "finished" || status == "cancelled"
	var out []any
	for _, l := range old {
		lo, ok := l.(object)
		if !ok || named[locationRef(l)] {
			continue
		}
		if len(nb) > 0 || over {
			c := object{}
			for k, v := range lo {
				c[k] = v
			}
			c["status"] = "completed"
			lo = c
		}
		out = append(out, lo)
	}
	return append(out, nb...)
}

func locationRef(l any) string {
	lo, _ := l.(object)
	loc, _ := lo["location"].(object)
	return str(loc["reference"])
}

// dropSelfLinks removes links of a Patient to itself (an A40 whose retired
// identifier is already the survivor's).
func dropSelfLinks(p object, self string) {
	links := list(p["link"])
	if links == nil {
		return
	}
	var keep []any
	for _, l := range links {
		lo, _ := l.(object)
		other, _ := lo["other"].(object)
		if str(other["reference"]) != self {
			keep = append(keep, l)
		}
	}
	if len(keep) == 0 {
		delete(p, "link")
		return
	}
	p["link"] = keep
}

// union is a followed by the elements of b not in a.
func union(a, b []any) []any {
	out := append([]any(nil), a...)
	for _, e := range b {
		dup := false
		for _, x := range out {
			dup = dup || reflect.DeepEqual(x, e)
		}
		if !dup {
			out = append(out, e)
		}
	}
	return out
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// isBed reports whether a translated Location is a bed (PV1-3 named one).
func isBed(loc object) bool {
	pt, _ := loc["physicalType"].(object)
	for _, c := range list(pt["coding"]) {
		if co, ok := c.(object); ok && co["code"] == "bd" {
			return true
		}
	}
	return false
}

// same reports whether two versions say the same, ignoring id and the
// meta members the store sets.
func same(old, nb object) bool {
	strip := func(o object) object {
		c := object{}
		for k, v := range o {
			c[k] = v
		}
		delete(c, "id")
		if m, ok := c["meta"].(object); ok {
			mc := object{}
			for k, v := range m {
				if k != "versionId" && k != "lastUpdated" {
					mc[k] = v
				}
			}
			if len(mc) == 0 {
				delete(c, "meta")
			} else {
				c["meta"] = mc
			}
		}
		return c
	}
	return reflect.DeepEqual(strip(old), strip(nb))
}

func decode(b []byte) (object, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var o object
	if err := dec.Decode(&o); err != nil {
		return nil, err
	}
	if o == nil {
		return nil, fmt.Errorf("not a JSON object")
	}
	return o, nil
}

// decodeOrNil decodes a stored body, which the store wrote and so decodes.
func decodeOrNil(b []byte) object {
	o, _ := decode(b)
	if o == nil {
		o = object{}
	}
	return o
}

func encode(o object) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(o); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}
