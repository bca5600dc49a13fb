package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/jackc/pgx/v5"

	"github.com/pulsewire/pulsewire/adapters/postgres/pgtest"
	"github.com/pulsewire/pulsewire/mappings/device"
	"github.com/pulsewire/pulsewire/server/ingest"
	"github.com/pulsewire/pulsewire/server/ingest/ingesttest"
	"github.com/pulsewire/pulsewire/server/servertest"
)

// TestCrashLosesNothing is issue 3's crash proof: readings stream in over
// HTTP batches, MQTT QoS 1 and NATS JetStream while the server is killed
// with SIGKILL twice and restarted; afterwards every reading the server
// acknowledged over HTTP, and every reading the brokers accepted, is stored
// exactly once. It runs with 5,000 readings unless -short;
// PULSEWIRE_CRASH_READINGS sets another number (the figure is
// 100,000).
//
// The MQTT side runs against a Mosquitto of its own (startMosquitto), with
// max_queued_messages 0: the stock default of 1000 makes Mosquitto drop
// QoS 1 messages it has already acknowledged to the publisher once more than
// 1000 wait for one subscriber session, connected or not ("Outgoing
// messages are being dropped for client ..." in its log). That is a broker
// setting every deployment must make (adapters/mqtt package comment), not
// something a subscriber can recover from.
func TestCrashLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped under -short")
	}
	// 5,000 readings by default (35-40 s here, most of it the NATS AckWait
	// of 30 s before readings pulled by a killed server come back); 10,000
	// took 36 s, 20,000 72-79 s.
	n := 5000
	if v := os.Getenv("PULSEWIRE_CRASH_READINGS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 30 {
			t.Fatalf("PULSEWIRE_CRASH_READINGS=%q: want an integer >= 30", v)
		}
	}
	servertest.RequireTCP(t, "NATS", "127.0.0.1:4222")
	// PULSEWIRE_CRASH_MQTT_BROKER runs the MQTT side against an existing
	// broker instead, e.g. to check a deployment's configuration.
	broker := os.Getenv("PULSEWIRE_CRASH_MQTT_BROKER")
	if broker == "" {
		broker = startMosquitto(t)
	}
	dsn, _ := pgtest.Schema(t)
	hard := time.AfterFunc(8*time.Minute, func() { panic("crash test: hard timeout of 8 minutes exceeded") })
	defer hard.Stop()
	began := time.Now()
	logf := func(format string, args ...any) {
		t.Logf("[%6.1fs] "+format, append([]any{time.Since(began).Seconds()}, args...)...)
	}

	dir := t.TempDir()
	bin := buildPulsewire(t)
	logf("binary built")

	var rb [5]byte
	_, _ = rand.Read(rb[:])
	u := hex.EncodeToString(rb[:])
	prefix, root, stream := "pwc"+u, "pwc"+u, "PWC_"+u
	js := servertest.JetStream(t, stream)
	addr := freeLoopbackAddr(t)
	env := append(os.Environ(),
		"PULSEWIRE_ADDR="+addr, "PULSEWIRE_POSTGRES_DSN="+dsn, "PULSEWIRE_TENANTS=acme",
		"PULSEWIRE_ACCESS_LOG=false", "PULSEWIRE_AUTH=off", "PULSEWIRE_LOG_LEVEL="+cmp.Or(os.Getenv("PULSEWIRE_CRASH_LOG_LEVEL"), "warn"),
		"PULSEWIRE_MQTT_BROKER="+broker, "PULSEWIRE_MQTT_GROUP=g"+u,
		"PULSEWIRE_MQTT_CLIENT_ID=pwc-"+u, "PULSEWIRE_MQTT_TOPIC_PREFIX="+prefix, "PULSEWIRE_MQTT_SESSION_EXPIRY=10m",
		"PULSEWIRE_NATS_URL="+servertest.NATSURL, "PULSEWIRE_NATS_STREAM="+stream,
		"PULSEWIRE_NATS_SUBJECT="+root+".*.devices.*.readings", "PULSEWIRE_NATS_DURABLE=ingest",
		"PULSEWIRE_NATS_CREATE_STREAM=true",
	)
	// The device key comes from the CLI, on the same schema. The tenant
	// must exist first: migrate and register it.
	pulsewireCLI(t, bin, env, "migrate")
	pulsewireCLI(t, bin, env, "tenant", "add", "acme")
	out := pulsewireCLI(t, bin, env, "device-key", "add", "--tenant", "acme")
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	key := strings.TrimSpace(lines[len(lines)-1])

	p := newCrashProc(t, bin, env, addr, dir)
	p.start()
	logf("server up (run 1)")

	// Every device has a patient, so every reading becomes an Observation.
	const devices = 20
	t0 := ingesttest.T0
	for d := range devices {
		body := fmt.Sprintf(`{"deviceIdentifier":{"system":"urn:pulsewire:device-serial","value":"cd-%d"},"patient":"p%d","start":%q}`,
			d, d, t0.Format(time.RFC3339))
		resp, err := http.Post(p.url+"/t/acme/ingest/associations", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("association %d: %d", d, resp.StatusCode)
		}
	}
	dev := func(i int) string { return "cd-" + strconv.Itoa(i%devices) }
	payload := func(i int) []byte { return ingesttest.HR(dev(i), t0.Add(time.Duration(i)*time.Second), 40+i%100) }

	// count is the number of Observations stored, or -1 while the server is down.
	count := func() int {
		resp, err := http.Get(p.url + "/t/acme/fhir/Observation?_summary=count")
		if err != nil {
			return -1
		}
		defer resp.Body.Close()
		var b struct{ Total int }
		if json.NewDecoder(resp.Body).Decode(&b) != nil {
			return -1
		}
		return b.Total
	}
	var acked [3]atomic.Int64 // http, mqtt, nats
	var published atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 3)

	// HTTP: batches of 200; a batch is retried until the server answers 200
	// with stored or duplicate for every reading.
	wg.Go(func() {
		var batch []int
		flush := func() error {
			var sb bytes.Buffer
			sb.WriteString(`{"readings":[`)
			for k, i := range batch {
				if k > 0 {
					sb.WriteByte(',')
				}
				sb.Write(payload(i))
			}
			sb.WriteString(`]}`)
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.url+"/t/acme/ingest/readings", bytes.NewReader(sb.Bytes()))
				req.Header.Set("Authorization", "Bearer "+key)
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				var r struct {
					Results []struct{ Status string } `json:"results"`
				}
				derr := json.NewDecoder(resp.Body).Decode(&r)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || derr != nil {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				for _, x := range r.Results {
					if x.Status != "stored" && x.Status != "duplicate" {
						return fmt.Errorf("http reading status %q", x.Status)
					}
				}
				acked[0].Add(int64(len(batch)))
				published.Add(int64(len(batch)))
				batch = batch[:0]
				return nil
			}
			return ctx.Err()
		}
		for i := 0; i < n; i += 3 {
			if batch = append(batch, i); len(batch) == 200 {
				if err := flush(); err != nil {
					errs <- err
					return
				}
			}
		}
		if len(batch) > 0 {
			if err := flush(); err != nil {
				errs <- err
			}
		}
	})
	// MQTT QoS 1: Publish returns after the broker's PUBACK.
	// It keeps publishing while the server is down: the broker queues for
	// the server's session.
	pub := servertest.MQTTPublisherTo(t, broker, "pubc-"+u)
	wg.Go(func() {
		for i := 1; i < n; i += 3 {
			for {
				pctx, pc := context.WithTimeout(ctx, 5*time.Second)
				_, err := pub.Publish(pctx, &paho.Publish{QoS: 1, Topic: prefix + "/acme/devices/" + dev(i) + "/readings", Payload: payload(i)})
				pc()
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					errs <- fmt.Errorf("mqtt publish: %w", err)
					return
				}
			}
			acked[1].Add(1)
			published.Add(1)
		}
	})
	// NATS JetStream: async publishes, each acked by the server on persistence.
	wg.Go(func() {
		var idx []int
		for i := 2; i < n; i += 3 {
			idx = append(idx, i)
		}
		for len(idx) > 0 {
			chunk := idx[:min(500, len(idx))]
			idx = idx[len(chunk):]
			for len(chunk) > 0 {
				var failed []int
				type fut struct {
					i int
					f <-chan error
				}
				var fs []fut
				for _, i := range chunk {
					f, err := js.PublishAsync(root+".acme.devices."+dev(i)+".readings", payload(i))
					if err != nil {
						failed = append(failed, i)
						continue
					}
					ch := make(chan error, 1)
					go func() {
						select {
						case <-f.Ok():
							ch <- nil
						case err := <-f.Err():
							ch <- err
						}
					}()
					fs = append(fs, fut{i, ch})
				}
				for _, f := range fs {
					if err := <-f.f; err != nil {
						failed = append(failed, f.i)
						continue
					}
					acked[2].Add(1)
					published.Add(1)
				}
				if ctx.Err() != nil {
					errs <- ctx.Err()
					return
				}
				chunk = failed
			}
		}
	})

	// The killer: SIGKILL twice at random points, restart at once. Kill k
	// comes when a random share of the readings is stored (processing, which
	// runs behind the producers, is under way) or when the producers reach a
	// fixed share (so both kills fall while readings still stream in),
	// whichever is first, and at least 1 s after the previous start.
	wg.Go(func() {
		last := time.Now()
		for k, frac := range []float64{0.25, 0.6} {
			jitter, _ := rand.Int(rand.Reader, big.NewInt(int64(n/10)))
			at := int(float64(n)*frac) + int(jitter.Int64())
			pubAt := int64(float64(n) * []float64{0.3, 0.9}[k])
			stored := 0
			for ctx.Err() == nil {
				if stored = count(); time.Since(last) >= time.Second && (stored >= at || published.Load() >= pubAt) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if ctx.Err() != nil {
				return
			}
			logf("SIGKILL #%d at %d readings acknowledged (http %d, mqtt %d, nats %d), %d stored",
				k+1, published.Load(), acked[0].Load(), acked[1].Load(), acked[2].Load(), stored)
			p.kill()
			p.start()
			last = time.Now()
			logf("server up (run %d)", p.runs)
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("producer: %v", err)
	}
	logf("all %d readings acknowledged (http %d, mqtt %d, nats %d); server runs: %d",
		published.Load(), acked[0].Load(), acked[1].Load(), acked[2].Load(), p.runs)
	if p.runs != 3 {
		t.Fatalf("server ran %d times, want 3 (killed twice)", p.runs)
	}

	// The deterministic Observation id of every reading.
	builtin, err := device.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	sources := [3]string{"http", "mqtt", "nats"} // reading i comes over sources[i%3]
	want := make(map[string]int, n)              // Observation id -> index of its source
	for i := range n {
		res, err := builtin.Evaluate(payload(i))
		if err != nil || res.Err() != nil || len(res.Measurements) != 1 {
			t.Fatalf("mapping reading %d: %v %v", i, err, res.Err())
		}
		want[ingest.ObservationID("acme", &res.Measurements[0], time.Time{})] = i % 3
	}
	if len(want) != n {
		t.Fatalf("%d distinct ids for %d readings", len(want), n)
	}

	// Wait until everything is processed, then check exactly once.
	// Progress is logged every 5 s. Nothing new for 75 s (over twice the NATS
	// AckWait, after which readings delivered to a killed server come back)
	// counts as a stall: the check below then says which sources are short.
	last, lastLog, progressed := -1, time.Time{}, time.Now()
	for c := count(); c < n; c = count() {
		if c != last {
			last, progressed = c, time.Now()
		}
		if time.Since(lastLog) >= 5*time.Second {
			logf("Observations stored: %d of %d", c, n)
			lastLog = time.Now()
		}
		if ctx.Err() != nil || time.Since(progressed) > 75*time.Second {
			t.Errorf("only %d of %d Observations: no progress for %v or past the deadline", c, n, time.Since(progressed).Round(time.Second))
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	logf("processing ended: %d Observations", count())
	time.Sleep(time.Second) // redeliveries still in flight would show as extra
	// Exactly once, straight from the database: one row per deterministic
	// id, each at version 1 (never rewritten), and no two Observations with
	// the same natural key (device, code, effective time).
	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "SELECT set_config('pulsewire.tenant', 'acme', false)"); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, `SELECT id, version FROM resources WHERE tenant = 'acme' AND type = 'Observation' AND deleted = 0`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	extra := 0
	for rows.Next() {
		var id string
		var version int64
		if err := rows.Scan(&id, &version); err != nil {
			t.Fatal(err)
		}
		got[id]++
		if _, ok := want[id]; !ok {
			extra++
		}
		if version != 1 {
			t.Errorf("Observation/%s is at version %d: written more than once", id, version)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var total, keys int
	err = conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT (b->'device'->>'reference', b->'code'->'coding'->0->>'code', b->>'effectiveDateTime'))
		FROM (SELECT convert_from(body, 'UTF8')::jsonb AS b FROM resources WHERE tenant = 'acme' AND type = 'Observation' AND deleted = 0) o`).Scan(&total, &keys)
	if err != nil {
		t.Fatal(err)
	}
	if total != keys {
		t.Errorf("%d Observations but %d distinct natural keys: duplicates", total, keys)
	}
	missing := 0
	var bySource [3]int
	for id, src := range want {
		if got[id] != 1 {
			missing++
			bySource[src]++
		}
	}
	if missing > 0 || extra > 0 || len(got) != n {
		t.Errorf("readings: %d, Observations: %d, not stored exactly once: %d (%s %d, %s %d, %s %d), unexpected: %d",
			n, len(got), missing, sources[0], bySource[0], sources[1], bySource[1], sources[2], bySource[2], extra)
		return
	}
	logf("verified: %d readings, each stored exactly once", n)
}

// startMosquitto runs a Mosquitto of the test's own on a free port and
// returns its URL. Its configuration differs from the stock one in what
// matters here: max_queued_messages 0 (no limit; see TestCrashLosesNothing)
// and no persistence (the broker is not restarted).
func startMosquitto(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("mosquitto binary not found (CI is set): %v", err)
		}
		t.Skipf("mosquitto binary not found: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	ln.Close()
	dir := t.TempDir()
	conf := filepath.Join(dir, "mosquitto.conf")
	body := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n", addr.Port)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "mosquitto.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting mosquitto: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
		if b, _ := os.ReadFile(logf.Name()); t.Failed() && len(b) > 0 {
			t.Logf("mosquitto log (a loss at the broker shows as \"Outgoing messages are being dropped\"):\n%s", b)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr.String(), time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto not listening on %s after 10 s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "tcp://" + addr.String()
}
