package main

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Helpers of the process-level tests (crash_test.go,
// delivery_crash_test.go): they build the real binary and run it as a
// child process, configured by its environment, so that it can be killed
// with SIGKILL.

// buildPulsewire builds this package's binary into a temporary directory
// and returns its path.
func buildPulsewire(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pulsewire")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// freeLoopbackAddr returns a loopback host:port that was free when asked.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// pulsewireCLI runs one command of the binary with env and returns what
// it printed on stdout; a failure ends the test with its stderr.
func pulsewireCLI(t *testing.T, bin string, env []string, args ...string) []byte {
	t.Helper()
	var stdout, stderr bytes.Buffer
	c := exec.Command(bin, args...)
	c.Env = env
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		t.Fatalf("pulsewire %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return stdout.Bytes()
}

// crashProc is the pulsewire binary running as a child process.
type crashProc struct {
	t    *testing.T
	bin  string
	env  []string
	logf *os.File
	url  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	runs int
}

// newCrashProc returns `pulsewire serve` with env, listening on addr (as
// env says), not started yet. Every run logs to dir/server.log; the
// cleanup kills the process and shows the log's tail when the test failed.
func newCrashProc(t *testing.T, bin string, env []string, addr, dir string) *crashProc {
	t.Helper()
	lf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	p := &crashProc{t: t, bin: bin, env: env, logf: lf, url: "http://" + addr}
	t.Cleanup(func() {
		p.kill()
		lf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(lf.Name())
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("server log tail:\n%s", b)
		}
	})
	return p
}

// start runs the process and waits until /readyz answers 200.
func (p *crashProc) start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd := exec.Command(p.bin, "serve")
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = p.logf, p.logf
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("starting pulsewire: %v", err)
	}
	p.cmd = cmd
	p.runs++
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("pulsewire (run %d) not ready after 30 s; see %s", p.runs, p.logf.Name())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits for the process to end. Idempotent.
func (p *crashProc) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Kill() // SIGKILL
	_ = p.cmd.Wait()
	p.cmd = nil
}
