package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The NATS ingest workload (issue 3): devices publish one reading per
// message to JetStream; the server's durable pull consumer commits them
// (in shared transactions) and acknowledges each after its commit. Two
// phases on a server of its own:
//
//   - throughput: publishers keep a backlog of unacknowledged readings in
//     the stream, so the server is never idle; readings/s is what it
//     acknowledged per second (its pulsewire_ingest_nats_handled counter);
//   - latency: readings published at a fixed rate (10,000/s, or 80 % of the
//     measured throughput when that is lower — the line says which); p50 and
//     p99 of the time from the stream storing a reading to its commit, from
//     the server's pulsewire_ingest_ack_latency_seconds histogram (so each is
//     the upper bound of its bucket, buckets 1.5x apart).
const (
	natsURL     = "nats://127.0.0.1:4222"
	natsBacklog = 20_000 // readings published and not yet acknowledged, in the throughput phase
	natsRate    = 10_000 // readings/s offered in the latency phase
)

func natsIngest(ctx context.Context, out io.Writer, bin, dsn string, c config) error {
	stream := fmt.Sprintf("PWBENCH_%d", time.Now().UnixNano())
	subject := "pwbench." + strconv.FormatInt(time.Now().UnixNano(), 36) + ".*.devices.*.readings"
	nc, err := nats.Connect(natsURL)
	if err != nil {
		return fmt.Errorf("connecting to NATS at %s (is it running? see .ci/services): %w", natsURL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	defer func() { _ = js.DeleteStream(context.WithoutCancel(ctx), stream) }()

	srv, err := startServer(ctx, bin, dsn, c.profile != "", false, false,
		"--nats-url", natsURL, "--nats-stream", stream, "--nats-subject", subject,
		"--nats-durable", "pwbench", "--nats-create-stream=true")
	if err != nil {
		return err
	}
	defer srv.stop()
	prefix := strings.TrimSuffix(subject, ".*.devices.*.readings") + ".bench.devices."

	clock := newReadingClock(c.patients + 1)
	publish := func(rng *rand.Rand) (jetstream.PubAckFuture, error) {
		p := rng.IntN(c.patients) + 1
		dev := "bench-nats-" + strconv.Itoa(p)
		payload := fmt.Appendf(nil, `{"deviceId":%q,"time":%q,"patientId":%q,"heartRate":%d}`,
			dev, clock.next(p).Format(time.RFC3339Nano), ingestPatID(p), 60+rng.IntN(40))
		return js.PublishAsync(prefix+dev+".readings", payload)
	}
	handled := func() (float64, error) {
		m, err := scrape(srv.url)
		if err != nil {
			return 0, err
		}
		return m["pulsewire_ingest_nats_handled_total"], nil
	}

	// Throughput.
	prof := make(chan error, 1)
	if c.profile != "" {
		go func() { prof <- srv.profile(ctx, filepath.Join(c.profile, "ingest-nats.pprof"), c.duration) }()
	}
	rng := rand.New(rand.NewPCG(1, 2))
	h0, err := handled()
	if err != nil {
		return err
	}
	cpu0, db0, t0 := srv.cpu(), postgresCPU(), time.Now()
	var published float64
	for time.Since(t0) < c.duration {
		h, err := handled()
		if err != nil {
			return err
		}
		for range int(math.Max(0, natsBacklog-(published-(h-h0)))) {
			if _, err := publish(rng); err != nil {
				return fmt.Errorf("publishing: %w", err)
			}
			published++
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(10 * time.Second):
			return errors.New("JetStream did not confirm the published readings in 10 s")
		case <-ctx.Done():
			return ctx.Err()
		}
		time.Sleep(50 * time.Millisecond)
	}
	h1, err := handled()
	if err != nil {
		return err
	}
	elapsed := time.Since(t0)
	cpu, db := srv.cpu()-cpu0, postgresCPU()-db0
	if c.profile != "" {
		if err := <-prof; err != nil {
			return fmt.Errorf("profiling ingest-nats: %w", err)
		}
	}
	n := h1 - h0
	if n <= 0 {
		return errors.New("the server acknowledged no NATS reading")
	}
	rate := n / elapsed.Seconds()
	fmt.Fprintf(out, "%-18s %8s %8.0f %8s %9s %9s %10s %7s   %s\n", "ingest-nats", "stream", rate, "", "",
		fmtCPU(time.Duration(float64(cpu)/n)), fmtCPU(time.Duration(float64(db)/n)), "-", ">= 30,000 readings/s (readings/s; CPU per reading)")

	// Drain the backlog, then latency at a fixed rate.
	for deadline := time.Now().Add(2 * time.Minute); ; {
		h, err := handled()
		if err != nil {
			return err
		}
		if h-h0 >= published || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	offered, note := float64(natsRate), "at 10,000/s"
	if rate*0.8 < offered {
		offered, note = math.Floor(rate*0.8), fmt.Sprintf("at %.0f/s (80%% of throughput; target is at 10,000/s)", rate*0.8)
	}
	before, err := scrapeHistogram(srv.url, "pulsewire_ingest_ack_latency_seconds", `source="nats"`)
	if err != nil {
		return err
	}
	tick := 10 * time.Millisecond
	perTick := offered * tick.Seconds()
	var due float64
	lat0 := time.Now()
	for t := time.NewTicker(tick); time.Since(lat0) < c.duration; <-t.C {
		for due += perTick; due >= 1; due-- {
			if _, err := publish(rng); err != nil {
				return fmt.Errorf("publishing: %w", err)
			}
		}
	}
	time.Sleep(2 * time.Second) // the last readings commit
	after, err := scrapeHistogram(srv.url, "pulsewire_ingest_ack_latency_seconds", `source="nats"`)
	if err != nil {
		return err
	}
	p50, p99 := quantile(before, after, 0.50), quantile(before, after, 0.99)
	fmt.Fprintf(out, "%-18s %8s %8.0f %8s %9s %29s   %s\n", "ingest-nats-ack", "rate", offered,
		"<="+fmtDur(p50), "<="+fmtDur(p99), "", "p99 <= 250 ms "+note)
	return nil
}

// scrape reads the server's /metrics into name{labels} -> value.
func scrape(base string) (map[string]float64, error) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	return m, sc.Err()
}

// bucket is a cumulative histogram bucket: count of observations <= le.
type bucket struct {
	le    float64
	count float64
}

// scrapeHistogram returns the buckets of histogram name whose labels
// include label, in order.
func scrapeHistogram(base, name, label string) ([]bucket, error) {
	m, err := scrape(base)
	if err != nil {
		return nil, err
	}
	var bs []bucket
	for k, v := range m {
		if !strings.HasPrefix(k, name+"_bucket{") || !strings.Contains(k, label) {
			continue
		}
		_, le, ok := strings.Cut(k, `le="`)
		if !ok {
			continue
		}
		le, _, _ = strings.Cut(le, `"`)
		f, err := strconv.ParseFloat(le, 64)
		if err != nil {
			continue
		}
		bs = append(bs, bucket{f, v})
	}
	if len(bs) == 0 {
		return nil, fmt.Errorf("the server exports no %s{%s}", name, label)
	}
	slices.SortFunc(bs, func(a, b bucket) int { return cmp.Compare(a.le, b.le) })
	return bs, nil
}

// quantile is the upper bound of the bucket holding quantile q of the
// observations made between two scrapes of one histogram.
func quantile(before, after []bucket, q float64) time.Duration {
	prev := map[float64]float64{}
	for _, b := range before {
		prev[b.le] = b.count
	}
	total := after[len(after)-1].count - prev[after[len(after)-1].le]
	if total <= 0 {
		return 0
	}
	for _, b := range after {
		if b.count-prev[b.le] >= q*total {
			if math.IsInf(b.le, 1) {
				return time.Duration(math.MaxInt64)
			}
			return time.Duration(b.le * float64(time.Second))
		}
	}
	return 0
}
