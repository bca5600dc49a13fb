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

// statsCollector exports each int64 field of a statSource's Stats as
// pulsewire_ingest_<source>_<field>: counters, except fields named Max…,
// which are gauges. Reflection keeps the adapters free of Prometheus and
// the export in step with the fields they add.
type statsCollector struct {
	src   statSource
	descs []*prometheus.Desc
	kinds []prometheus.ValueType
	index []int
}

func newStatsCollector(src statSource) *statsCollector {
	c := &statsCollector{src: src}
	t := reflect.TypeOf(src.stats())
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Type.Kind() != reflect.Int64 || !f.IsExported() {
			continue
		}
		name, kind := "pulsewire_ingest_"+src.name+"_"+snake(f.Name), prometheus.CounterValue
		if strings.HasPrefix(f.Name, "Max") {
			kind = prometheus.GaugeValue
		} else {
			name += "_total"
		}
		c.descs = append(c.descs, prometheus.NewDesc(name, src.name+" ingestion: "+f.Name+" (see the adapter's Stats)", nil, nil))
		c.kinds = append(c.kinds, kind)
		c.index = append(c.index, i)
	}
	return c
}

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	v := reflect.ValueOf(c.src.stats())
	for i, d := range c.descs {
		ch <- prometheus.MustNewConstMetric(d, c.kinds[i], float64(v.Field(c.index[i]).Int()))
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
