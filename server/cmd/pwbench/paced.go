package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"
)

// ingestAckRate is the reading rate at which issue 3 bounds the ack
// latency (p99 <= 250 ms).
const ingestAckRate = 10_000

// pacedIngest offers HTTP ingest batches at a fixed rate — open loop: a
// request is sent when it is due, whether or not earlier ones have been
// answered — and prints p50 and p99 of their latency. The rate is
// ingestAckRate readings/s, or 80 % of the measured throughput when that is
// lower (the line says which). A closed loop at full throughput measures
// queueing, not the latency a sender sees at a given load.
func pacedIngest(ctx context.Context, out io.Writer, d time.Duration, throughput float64, perReq int, mk func(*rand.Rand) (*http.Request, int)) error {
	offered, note := float64(ingestAckRate), "at 10,000/s"
	if throughput*0.8 < offered {
		offered = math.Floor(throughput * 0.8)
		note = fmt.Sprintf("at %.0f/s (80%% of throughput; target is at 10,000/s)", offered)
	}
	every := time.Duration(float64(time.Second) * float64(perReq) / offered)
	client := &http.Client{Timeout: 30 * time.Second}
	rng := rand.New(rand.NewPCG(7, uint64(time.Now().UnixNano())))
	var (
		mu     sync.Mutex
		lats   []time.Duration
		errs   int
		wg     sync.WaitGroup
		ticker = time.NewTicker(every)
	)
	defer ticker.Stop()
	for start := time.Now(); time.Since(start) < d; {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		}
		req, want := mk(rng)
		wg.Go(func() {
			t0 := time.Now()
			resp, err := client.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != want {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs++
				return
			}
			lats = append(lats, time.Since(t0))
		})
	}
	wg.Wait()
	if len(lats) == 0 {
		return fmt.Errorf("paced ingest: no request succeeded (%d errors)", errs)
	}
	slices.Sort(lats)
	fmt.Fprintf(out, "%-18s %8s %8.0f %8s %9s %20s %7d   %s\n", "ingest-ack", "rate", offered,
		fmtDur(lats[len(lats)/2]), fmtDur(lats[len(lats)*99/100]), "", errs, "p99 <= 250 ms "+note+" (latency per batch)")
	return nil
}
