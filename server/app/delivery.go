package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pulsewire/pulsewire/adapters/hl7http"
	"github.com/pulsewire/pulsewire/adapters/mllp"
	"github.com/pulsewire/pulsewire/mappings/oru"
	"github.com/pulsewire/pulsewire/server/delivery"
	"github.com/pulsewire/pulsewire/server/delivery/outbox"
	"github.com/pulsewire/pulsewire/server/fhir"
)

// DeliveryConfig turns on guaranteed delivery of ORU^R01 results
// (server/delivery) when destinations are configured: the write hook
// enqueues every result Observation for its tenant's destinations in the
// transaction that stores it, and a worker delivers the queue.
type DeliveryConfig struct {
	// DestinationsFile is a JSON destinations file (see delivery.File);
	// Destinations are added to what it holds (tests build them directly).
	DestinationsFile string
	Destinations     []*delivery.Destination
	// NoWorker installs the hook but runs no worker in this process
	// (replicas that only write; any replica's worker delivers the queue).
	NoWorker bool
	// Poll, StatsEvery and Retention tune the worker (see delivery.Config;
	// zero: its defaults).
	Poll, StatsEvery, Retention time.Duration
}

// setupDelivery installs the outbox hook on the store and adds the worker
// as a runner, its stats to reg. Called before the store serves any write.
func (a *App) setupDelivery(ctx context.Context, reg *prometheus.Registry) error {
	cfg := a.cfg.Delivery
	dests := append([]*delivery.Destination(nil), cfg.Destinations...)
	if cfg.DestinationsFile != "" {
		fromFile, err := delivery.LoadFile(cfg.DestinationsFile, oru.DefaultRegistry())
		if err != nil {
			return err
		}
		dests = append(dests, fromFile...)
	}
	if len(dests) == 0 {
		return nil
	}
	st, ok := a.store.(outbox.Store)
	hooked, hok := a.store.(fhir.Hooked)
	if !ok || !hok {
		return errors.New("destinations are configured, but the store keeps no outbox")
	}
	for _, d := range dests {
		exists, err := st.TenantExists(ctx, d.Tenant)
		if err != nil {
			return fmt.Errorf("destination %s: %w", d.Key(), err)
		}
		if !exists {
			return fmt.Errorf("destination %s: tenant %q is not registered", d.Key(), d.Tenant)
		}
	}
	hooked.AddWriteHook(delivery.Hook(delivery.HookConfig{Destinations: dests}))
	if cfg.NoWorker {
		return nil
	}
	w, err := delivery.NewWorker(delivery.Config{Store: st, Destinations: dests, Dial: dialDestination, Logger: a.log,
		Poll: cfg.Poll, StatsEvery: cfg.StatsEvery, Retention: cfg.Retention})
	if err != nil {
		return err
	}
	if err := reg.Register(newDeliveryCollector(w.Stats)); err != nil {
		return fmt.Errorf("registering delivery metrics: %w", err)
	}
	a.runners = append(a.runners, runner{name: "delivery", run: w.Run})
	return nil
}

// dialDestination is delivery.Config.Dial: an MLLP client (adapters/mllp)
// or an HL7-over-HTTPS client (adapters/hl7http) for d, reporting their ACK
// timeouts as delivery.ErrAckTimeout.
func dialDestination(d *delivery.Destination) (delivery.Sender, error) {
	var tc *tls.Config
	if d.TLS != nil {
		var err error
		if tc, err = d.TLS.Load(); err != nil {
			return nil, fmt.Errorf("destination %s: %w", d.Key(), err)
		}
	}
	dial, ack := time.Duration(d.DialTimeout), time.Duration(d.AckTimeout)
	if d.Transport == delivery.TransportHTTPS {
		h := http.Header{}
		for k, v := range d.Headers {
			h.Set(k, v)
		}
		c, err := hl7http.New(d.Address, hl7http.Options{TLS: tc, DialTimeout: dial, AckTimeout: ack, Header: h})
		if err != nil {
			return nil, fmt.Errorf("destination %s: %w", d.Key(), err)
		}
		return delivery.WithTimeoutError(c, hl7http.ErrAckTimeout), nil
	}
	c := mllp.NewClient(d.Address, mllp.Options{TLS: tc, DialTimeout: dial, AckTimeout: ack})
	return delivery.WithTimeoutError(c, mllp.ErrAckTimeout), nil
}

// deliveryCollector exports delivery.Stats by reflection, as
// statsCollector does the transports': every int64 or float64 field is
// pulsewire_delivery_<field> (counters end in _total; fields tagged
// metric:"gauge" are gauges), AckLatency the histogram
// pulsewire_delivery_ack_latency_seconds, all labelled with tenant and
// destination (configuration names, never patient data).
type deliveryCollector struct {
	stats   func() []delivery.Stats
	descs   []*prometheus.Desc
	kinds   []prometheus.ValueType
	index   []int
	latency *prometheus.Desc
}

func newDeliveryCollector(stats func() []delivery.Stats) *deliveryCollector {
	c := &deliveryCollector{stats: stats}
	labels := []string{"tenant", "destination"}
	t := reflect.TypeFor[delivery.Stats]()
	for i := range t.NumField() {
		f := t.Field(i)
		if k := f.Type.Kind(); k != reflect.Int64 && k != reflect.Float64 {
			continue
		}
		name, kind := "pulsewire_delivery_"+snake(f.Name), prometheus.CounterValue
		if f.Tag.Get("metric") == "gauge" {
			kind = prometheus.GaugeValue
		} else {
			name += "_total"
		}
		c.descs = append(c.descs, prometheus.NewDesc(name, "outbound HL7 delivery: "+f.Name+" (see delivery.Stats)", labels, nil))
		c.kinds = append(c.kinds, kind)
		c.index = append(c.index, i)
	}
	c.latency = prometheus.NewDesc("pulsewire_delivery_ack_latency_seconds", "outbound HL7 delivery: time from sending a message to reading its ACK", labels, nil)
	return c
}

func (c *deliveryCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
	ch <- c.latency
}

func (c *deliveryCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.stats() {
		v := reflect.ValueOf(s)
		for i, d := range c.descs {
			f := v.Field(c.index[i])
			n := 0.0
			if f.Kind() == reflect.Int64 {
				n = float64(f.Int())
			} else {
				n = f.Float()
			}
			ch <- prometheus.MustNewConstMetric(d, c.kinds[i], n, s.Tenant, s.Destination)
		}
		h := s.AckLatency
		ch <- prometheus.MustNewConstHistogram(c.latency, h.Count, h.Sum, h.Cumulative(), s.Tenant, s.Destination)
	}
}
