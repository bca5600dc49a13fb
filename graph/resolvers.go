package graph

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/pulsewire/pulsewire/graph/internal/exec"
	"github.com/pulsewire/pulsewire/graph/internal/model"
	"github.com/pulsewire/pulsewire/server/fhir"
)

// resolver is the root of the subgraph's resolvers. It holds nothing: the
// request state (tenant, policy, loaders) travels in the context.
type resolver struct{}

var _ exec.ResolverRoot = resolver{}

func (resolver) Query() exec.QueryResolver               { return queryResolver{} }
func (resolver) Patient() exec.PatientResolver           { return patientResolver{} }
func (resolver) Observation() exec.ObservationResolver   { return observationResolver{} }
func (resolver) Device() exec.DeviceResolver             { return deviceResolver{} }
func (resolver) DeviceMetric() exec.DeviceMetricResolver { return deviceMetricResolver{} }
func (resolver) Encounter() exec.EncounterResolver       { return encounterResolver{} }
func (resolver) Consent() exec.ConsentResolver           { return consentResolver{} }
func (resolver) Entity() exec.EntityResolver             { return entityResolver{} }
func (resolver) PatientConnection() exec.PatientConnectionResolver {
	return patientConnectionResolver{}
}
func (resolver) ObservationConnection() exec.ObservationConnectionResolver {
	return observationConnectionResolver{}
}
func (resolver) EncounterConnection() exec.EncounterConnectionResolver {
	return encounterConnectionResolver{}
}

// readAs reads one resource by id (batched) as its model.
func readAs[T model.Resource](ctx context.Context, typ, id string) (T, error) {
	var zero T
	rq, err := requestOf(ctx)
	if err != nil {
		return zero, err
	}
	r, err := rq.read(ctx, typ, id)
	if err != nil {
		return zero, err
	}
	return convertOne[T](r)
}

// follow reads what a reference points to when it is a typ; nil when the
// reference is absent or points to another type.
func follow[T model.Resource](ctx context.Context, reference func() (*model.Reference, error), typ string) (T, error) {
	var zero T
	ref, err := reference()
	if err != nil {
		return zero, err
	}
	t, id, ok := ref.Ref()
	if !ok || t != typ {
		return zero, nil
	}
	return readAs[T](ctx, typ, id)
}

// readMany reads resources by id concurrently, so that they share one
// batch; it reports the withheld ones and leaves out those not found.
func readMany[T model.Resource](ctx context.Context, typ string, ids []string) ([]T, error) {
	rq, err := requestOf(ctx)
	if err != nil {
		return nil, err
	}
	rs := make([]*fhir.Resource, len(ids))
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() { rs[i], errs[i] = rq.read(ctx, typ, id) })
	}
	wg.Wait()
	var (
		found    []*fhir.Resource
		withheld []*Denied
	)
	for i, err := range errs {
		var d *Denied
		switch {
		case err == nil:
			found = append(found, rs[i])
		case errors.As(err, &d):
			withheld = append(withheld, d)
		case fhir.IsKind(err, fhir.KindNotFound):
		default:
			return nil, err
		}
	}
	reportWithheld(ctx, withheld)
	return convert[T](found)
}

// tokens adds an ORed list of FHIR token values as one parameter.
func tokens(params url.Values, name string, vals []string) {
	if len(vals) > 0 {
		params.Add(name, strings.Join(vals, ","))
	}
}

// dateRange adds a clinical-time range as date=ge…&date=le….
func dateRange(params url.Values, name string, r *model.DateRange) {
	if r == nil {
		return
	}
	if r.From != nil && *r.From != "" {
		params.Add(name, "ge"+*r.From)
	}
	if r.To != nil && *r.To != "" {
		params.Add(name, "le"+*r.To)
	}
}

// --- Query ---

type queryResolver struct{}

func (queryResolver) Patient(ctx context.Context, id string) (*model.Patient, error) {
	return readAs[*model.Patient](ctx, "Patient", id)
}

func (queryResolver) Observation(ctx context.Context, id string) (*model.Observation, error) {
	return readAs[*model.Observation](ctx, "Observation", id)
}

func (queryResolver) Device(ctx context.Context, id string) (*model.Device, error) {
	return readAs[*model.Device](ctx, "Device", id)
}

func (queryResolver) DeviceMetric(ctx context.Context, id string) (*model.DeviceMetric, error) {
	return readAs[*model.DeviceMetric](ctx, "DeviceMetric", id)
}

func (queryResolver) Encounter(ctx context.Context, id string) (*model.Encounter, error) {
	return readAs[*model.Encounter](ctx, "Encounter", id)
}

func (queryResolver) Consent(ctx context.Context, id string) (*model.Consent, error) {
	return readAs[*model.Consent](ctx, "Consent", id)
}

func (queryResolver) PatientByIdentifier(ctx context.Context, identifier string) (*model.Patient, error) {
	rq, err := requestOf(ctx)
	if err != nil {
		return nil, err
	}
	p, err := rq.search(ctx, ActionSearch, "Patient", url.Values{"identifier": {identifier}, "_count": {"2"}}, 2)
	if err != nil {
		return nil, err
	}
	switch len(p.kept) {
	case 0:
		return nil, nil
	case 1:
		return convertOne[*model.Patient](p.kept[0])
	}
	return nil, fhir.Errorf(fhir.KindPreconditionFailed, "the identifier matches several patients").WithCode(fhir.IssueMultipleMatches)
}

// reservedQuery are the search parameters fhirQuery may not set: paging is
// first/after, and the result shape is the GraphQL selection.
var reservedQuery = map[string]bool{
	"_count": true, "_offset": true, "_include": true, "_revinclude": true, "_summary": true,
	"_elements": true, "_total": true, "_format": true, "_pretty": true, "_contained": true, "_containedType": true,
}

func (queryResolver) Patients(ctx context.Context, filter *model.PatientFilter, fhirQuery *string, first *int, after *string) (*model.PatientConnection, error) {
	rq, err := requestOf(ctx)
	if err != nil {
		return nil, err
	}
	params := url.Values{}
	if fhirQuery != nil && *fhirQuery != "" {
		v, err := url.ParseQuery(strings.TrimPrefix(*fhirQuery, "?"))
		if err != nil {
			return nil, fhir.Errorf(fhir.KindInvalid, "fhirQuery is not a URL query string")
		}
		for k, vals := range v {
			name, _, _ := strings.Cut(k, ":")
			if reservedQuery[name] {
				return nil, fhir.Errorf(fhir.KindInvalid, "fhirQuery may not contain %s: use first and after for paging", name)
			}
			params[k] = append(params[k], vals...)
		}
	}
	if f := filter; f != nil {
		for name, v := range map[string]*string{
			"name": f.Name, "family": f.Family, "given": f.Given, "identifier": f.Identifier,
			"birthdate": f.Birthdate, "gender": f.Gender,
		} {
			if v != nil {
				params.Add(name, *v)
			}
		}
		if f.Active != nil {
			params.Add("active", strconv.FormatBool(*f.Active))
		}
		if f.Organization != nil {
			params.Add("organization", "Organization/"+*f.Organization)
		}
	}
	offset, err := rq.paging(params, first, after)
	if err != nil {
		return nil, err
	}
	p, err := rq.search(ctx, ActionSearch, "Patient", params, rq.limits.MaxPageSize)
	if err != nil {
		return nil, err
	}
	nodes, err := convert[*model.Patient](p.kept)
	if err != nil {
		return nil, err
	}
	pi, cursors := pageInfo(p, offset)
	c := &model.PatientConnection{PageInfo: pi, Total: rq.total(p)}
	for i, n := range nodes {
		c.Edges = append(c.Edges, &model.PatientEdge{Cursor: cursors[i], Node: n})
	}
	return c, nil
}

// --- Patient ---

type patientResolver struct{}

var observationSorts = map[model.ObservationSort]string{
	model.ObservationSortDateDesc:        "-date",
	model.ObservationSortDateAsc:         "date",
	model.ObservationSortLastUpdatedDesc: "-_lastUpdated",
}

func (patientResolver) Observations(ctx context.Context, obj *model.Patient, code, category, status []string, date *model.DateRange, sort *model.ObservationSort, first *int, after *string) (*model.ObservationConnection, error) {
	rq, err := requestOf(ctx)
	if err != nil {
		return nil, err
	}
	params := url.Values{"subject": {"Patient/" + obj.ID}}
	tokens(params, "code", code)
	tokens(params, "category", category)
	tokens(params, "status", status)
	dateRange(params, "date", date)
	s := model.ObservationSortDateDesc
	if sort != nil {
		s = *sort
	}
	params.Set("_sort", observationSorts[s])
	offset, err := rq.paging(params, first, after)
	if err != nil {
		return nil, err
	}
	p, err := rq.search(ctx, ActionSearch, "Observation", params, rq.limits.MaxPageSize)
	if err != nil {
		return nil, err
	}
	nodes, err := convert[*model.Observation](p.kept)
	if err != nil {
		return nil, err
	}
	pi, cursors := pageInfo(p, offset)
	c := &model.ObservationConnection{PageInfo: pi, Total: rq.total(p)}
	for i, n := range nodes {
		c.Edges = append(c.Edges, &model.ObservationEdge{Cursor: cursors[i], Node: n})
	}
	return c, nil
}

func (patientResolver) LastN(ctx context.Context, obj *model.Patient, max *int, code, category []string) ([]*model.Observation, error) {
	rq, err := requestOf(ctx)
	if err != nil {
		return nil, err
	}
	n := 1
	if max != nil {
		n = *max
	}
	if n < 1 || n > rq.limits.MaxLastN {
		return nil, limitf(CodeBadUserInput, "max must be between 1 and %d", rq.limits.MaxLastN)
	}
	params := url.Values{"subject": {"Patient/" + obj.ID}}
	tokens(params, "code", code)
	tokens(params, "category", category)
	q, err := rq.parse("Observation", params, rq.limits.MaxPageSize)
	if err != nil {
		return nil, err
	}
	if _, err := rq.policy.Search(ctx, ActionOperation, q); err != nil {
		return nil, err
	}
	rs, err := rq.store.LastN(ctx, rq.tenant, q, n)
	if err != nil {
		return nil, err
	}
	kept, withheld, err := rq.policy.Filter(ctx, ActionOperation, rs)
	if err != nil {
		return nil, err
	}
	reportWithheld(ctx, withheld)
	if err := rq.admit(len(kept)); err != nil {
		return nil, err
	}
	return convert[*model.Observation](kept)
}

func (patientResolver) Devices(ctx context.Context, obj *model.Patient) ([]*model.Device, error) {
	rq, err := requestOf(ctx)
	if err != nil {
		return nil, err
	}
	a, err := rq.assocsOfPatient(ctx, obj.ID)
	if err != nil {
		return nil, err
	}
	reportWithheld(ctx, a.withheld)
	seen := map[string]bool{}
	var ids []string
	for _, x := range a.current {
		if !seen[x.device] {
			seen[x.device] = true
			ids = append(ids, x.device)
		}
	}
	for _, d := range a.affixed {
		if !seen[d] {
			seen[d] = true
			ids = append(ids, d)
		}
	}
	return readMany[*model.Device](ctx, "Device", ids)
}

func (patientResolver) Encounters(ctx context.Context, obj *model.Patient, status []string, date *model.DateRange, first *int, after *string) (*model.EncounterConnection, error) {
	rq, err := requestOf(ctx)
	if err != nil {
		return nil, err
	}
	params := url.Values{"subject": {"Patient/" + obj.ID}, "_sort": {"-date"}}
	tokens(params, "status", status)
	dateRange(params, "date", date)
	offset, err := rq.paging(params, first, after)
	if err != nil {
		return nil, err
	}
	p, err := rq.search(ctx, ActionSearch, "Encounter", params, rq.limits.MaxPageSize)
	if err != nil {
		return nil, err
	}
	nodes, err := convert[*model.Encounter](p.kept)
	if err != nil {
		return nil, err
	}
	pi, cursors := pageInfo(p, offset)
	c := &model.EncounterConnection{PageInfo: pi, Total: rq.total(p)}
	for i, n := range nodes {
		c.Edges = append(c.Edges, &model.EncounterEdge{Cursor: cursors[i], Node: n})
	}
	return c, nil
}

func (patientResolver) Consents(ctx context.Context, obj *model.Patient, status []string) ([]*model.Consent, error) {
	rq, err := requestOf(ctx)
	if err != nil {
		return nil, err
	}
	params := url.Values{"patient": {"Patient/" + obj.ID}, "_count": {strconv.Itoa(rq.limits.MaxPageSize)}}
	tokens(params, "status", status)
	p, err := rq.search(ctx, ActionSearch, "Consent", params, rq.limits.MaxPageSize)
	if err != nil {
		return nil, err
	}
	return convert[*model.Consent](p.kept)
}

// --- Observation ---

type observationResolver struct{}

func (observationResolver) Subject(ctx context.Context, obj *model.Observation) (*model.Patient, error) {
	return follow[*model.Patient](ctx, obj.SubjectReference, "Patient")
}

func (observationResolver) Device(ctx context.Context, obj *model.Observation) (*model.Device, error) {
	return follow[*model.Device](ctx, obj.DeviceReference, "Device")
}

func (observationResolver) Encounter(ctx context.Context, obj *model.Observation) (*model.Encounter, error) {
	return follow[*model.Encounter](ctx, obj.EncounterReference, "Encounter")
}

// --- Device ---

type deviceResolver struct{}

func (deviceResolver) CurrentPatient(ctx context.Context, obj *model.Device) (*model.Patient, error) {
	rq, err := requestOf(ctx)
	if err != nil {
		return nil, err
	}
	a, err := rq.assocsOfDevice(ctx, obj.ID)
	if err != nil {
		return nil, err
	}
	if len(a.withheld) > 0 {
		// A statement the caller may not see could be the current one:
		// say nothing rather than something possibly wrong.
		return nil, a.withheld[0]
	}
	if len(a.current) > 0 {
		return readAs[*model.Patient](ctx, "Patient", a.current[0].patient)
	}
	return follow[*model.Patient](ctx, obj.PatientReference, "Patient")
}

func (deviceResolver) Readings(ctx context.Context, obj *model.Device, code, category []string, date *model.DateRange, first *int) ([]*model.Observation, error) {
	rq, err := requestOf(ctx)
	if err != nil {
		return nil, err
	}
	n, err := rq.pageSize(first, 10)
	if err != nil {
		return nil, err
	}
	params := url.Values{"device": {"Device/" + obj.ID}, "_sort": {"-date"}, "_count": {strconv.Itoa(n)}}
	tokens(params, "code", code)
	tokens(params, "category", category)
	dateRange(params, "date", date)
	p, err := rq.search(ctx, ActionSearch, "Observation", params, rq.limits.MaxPageSize)
	if err != nil {
		return nil, err
	}
	return convert[*model.Observation](p.kept)
}

func (deviceResolver) Metrics(ctx context.Context, obj *model.Device) ([]*model.DeviceMetric, error) {
	rq, err := requestOf(ctx)
	if err != nil {
		return nil, err
	}
	params := url.Values{"source": {"Device/" + obj.ID}, "_count": {strconv.Itoa(rq.limits.MaxPageSize)}}
	p, err := rq.search(ctx, ActionSearch, "DeviceMetric", params, rq.limits.MaxPageSize)
	if err != nil {
		return nil, err
	}
	return convert[*model.DeviceMetric](p.kept)
}

// --- DeviceMetric, Encounter, Consent ---

type deviceMetricResolver struct{}

func (deviceMetricResolver) Source(ctx context.Context, obj *model.DeviceMetric) (*model.Device, error) {
	return follow[*model.Device](ctx, obj.SourceReference, "Device")
}

func (deviceMetricResolver) Parent(ctx context.Context, obj *model.DeviceMetric) (*model.Device, error) {
	return follow[*model.Device](ctx, obj.ParentReference, "Device")
}

type encounterResolver struct{}

func (encounterResolver) Subject(ctx context.Context, obj *model.Encounter) (*model.Patient, error) {
	return follow[*model.Patient](ctx, obj.SubjectReference, "Patient")
}

type consentResolver struct{}

func (consentResolver) Patient(ctx context.Context, obj *model.Consent) (*model.Patient, error) {
	return follow[*model.Patient](ctx, obj.PatientReference, "Patient")
}

// --- connections ---

type patientConnectionResolver struct{}

func (patientConnectionResolver) TotalCount(ctx context.Context, obj *model.PatientConnection) (*int, error) {
	return obj.Total(ctx)
}

type observationConnectionResolver struct{}

func (observationConnectionResolver) TotalCount(ctx context.Context, obj *model.ObservationConnection) (*int, error) {
	return obj.Total(ctx)
}

type encounterConnectionResolver struct{}

func (encounterConnectionResolver) TotalCount(ctx context.Context, obj *model.EncounterConnection) (*int, error) {
	return obj.Total(ctx)
}

// --- federation: _entities ---

// entityResolver resolves the entities other subgraphs refer to. gqlgen
// resolves the representations of one _entities call concurrently, so the
// reads of one type share a batch.
type entityResolver struct{}

func (entityResolver) FindPatientByID(ctx context.Context, id string) (*model.Patient, error) {
	return readAs[*model.Patient](ctx, "Patient", id)
}

func (entityResolver) FindObservationByID(ctx context.Context, id string) (*model.Observation, error) {
	return readAs[*model.Observation](ctx, "Observation", id)
}

func (entityResolver) FindDeviceByID(ctx context.Context, id string) (*model.Device, error) {
	return readAs[*model.Device](ctx, "Device", id)
}

func (entityResolver) FindDeviceMetricByID(ctx context.Context, id string) (*model.DeviceMetric, error) {
	return readAs[*model.DeviceMetric](ctx, "DeviceMetric", id)
}

func (entityResolver) FindEncounterByID(ctx context.Context, id string) (*model.Encounter, error) {
	return readAs[*model.Encounter](ctx, "Encounter", id)
}

func (entityResolver) FindConsentByID(ctx context.Context, id string) (*model.Consent, error) {
	return readAs[*model.Consent](ctx, "Consent", id)
}
