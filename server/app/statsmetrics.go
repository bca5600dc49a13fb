package app

import (
	"reflect"
	"strings"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
)

// statSource is a transport's counters: a struct of int64 fields (the
// adapters' Stats types), read at scrape time.
type statSource struct {
	name  string
	stats func() any
}

// statsCollector exports each integer field of a statSource's Stats as
// pulsewire_ingest_<source>_<field>: counters, except fields named Max…,
// which are gauges (newStatsCollectorAs names them otherwise). Reflection
// keeps the adapters free of Prometheus and the export in step with the
// fields they add.
type statsCollector struct {
	src   statSource
	descs []*prometheus.Desc
	kinds []prometheus.ValueType
	index []int
}

func newStatsCollector(src statSource) *statsCollector {
	return newStatsCollectorAs(src, "pulsewire_ingest_"+src.name+"_", src.name+" ingestion",
		func(f reflect.StructField) bool { return strings.HasPrefix(f.Name, "Max") })
}

// newStatsCollectorAs exports src's integer fields as prefix<field>,
// counters (ending in _total) except where gauge says so; help names the
// module in the metrics' help.
func newStatsCollectorAs(src statSource, prefix, help string, gauge func(reflect.StructField) bool) *statsCollector {
	c := &statsCollector{src: src}
	t := reflect.TypeOf(src.stats())
	for i := range t.NumField() {
		f := t.Field(i)
		if !isInteger(f.Type.Kind()) || !f.IsExported() {
			continue
		}
		name, kind := prefix+snake(f.Name), prometheus.CounterValue
		if gauge(f) {
			kind = prometheus.GaugeValue
		} else {
			name += "_total"
		}
		c.descs = append(c.descs, prometheus.NewDesc(name, help+": "+f.Name+" (see the module's Stats)", nil, nil))
		c.kinds = append(c.kinds, kind)
		c.index = append(c.index, i)
	}
	return c
}

func isInteger(k reflect.Kind) bool {
	switch k {
	case reflect.Int, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	v := reflect.ValueOf(c.src.stats())
	for i, d := range c.descs {
		f, n := v.Field(c.index[i]), 0.0
		if f.CanInt() {
			n = float64(f.Int())
		} else {
			n = float64(f.Uint())
		}
		ch <- prometheus.MustNewConstMetric(d, c.kinds[i], n)
	}
}

// snake turns a Go field name into snake_case: BadTopic -> bad_topic.
func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}
