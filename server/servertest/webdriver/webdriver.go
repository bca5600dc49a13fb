// Package webdriver is a small W3C WebDriver client
// (https://www.w3.org/TR/webdriver2/) for end-to-end tests that drive a
// real browser: it starts ChromeDriver on a free port, opens headless
// Chromium sessions, and navigates, finds elements by CSS selector, types,
// clicks and reads pages, over WebDriver's HTTP+JSON protocol. It holds
// only what Pulsewire's browser tests use; it is ours so that no
// third-party WebDriver library is needed.
//
// Chromium and ChromeDriver come from Debian (`make browser-deps`:
// packages chromium and chromium-driver). Start skips the test when either
// is missing, and fails it when the CI environment variable is set, so CI
// never passes by skipping.
//
// Test code only: imported by _test.go files (server/app's browser test);
// it imports the standard library only.
package webdriver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The browser and the driver: the Debian packages' paths unless the
// environment names others.
const (
	DefaultChromium     = "/usr/bin/chromium"
	DefaultChromeDriver = "/usr/bin/chromedriver"
	ChromiumEnv         = "PULSEWIRE_TEST_CHROMIUM"
	ChromeDriverEnv     = "PULSEWIRE_TEST_CHROMEDRIVER"
)

// chromiumArgs start Chromium headless and quiet. Without the
// background-networking flags Chromium keeps dialing Google's hosts, which
// a closed CI network refuses; as root it needs --no-sandbox.
var chromiumArgs = []string{
	"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
	"--disable-background-networking", "--disable-component-update", "--disable-sync",
	"--disable-dev-shm-usage", "--window-size=1024,768",
}

// elementKey is the JSON key of a web element reference (WebDriver §12.1).
const elementKey = "element-6066-11e4-a52e-4f735466cecf"

// Driver is a running ChromeDriver.
type Driver struct {
	URL     string // http://127.0.0.1:port
	browser string
	cmd     *exec.Cmd
	log     *syncBuffer
	exited  chan struct{}
	client  *http.Client
}

// executable returns the path in env, or def, if it names an executable
// file.
func executable(env, def string) (string, error) {
	p := os.Getenv(env)
	if p == "" {
		p = def
	}
	fi, err := os.Stat(p)
	if err != nil {
		return p, err
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return p, fmt.Errorf("%s is not an executable file", p)
	}
	return p, nil
}

var startedOn = regexp.MustCompile(`started successfully on port (\d+)`)

// Start starts ChromeDriver on a free loopback port and stops it when the
// test ends. When Chromium or ChromeDriver is missing the test is skipped,
// or fails when CI is set.
func Start(t testing.TB) *Driver {
	t.Helper()
	browser, berr := executable(ChromiumEnv, DefaultChromium)
	driver, derr := executable(ChromeDriverEnv, DefaultChromeDriver)
	if err := errors.Join(berr, derr); err != nil {
		msg := fmt.Sprintf("headless Chromium and ChromeDriver are needed (make browser-deps; or set %s and %s): %v",
			ChromiumEnv, ChromeDriverEnv, err)
		if os.Getenv("CI") != "" {
			t.Fatal(msg + " (CI is set)")
		}
		t.Skip(msg)
	}

	// --port=0: ChromeDriver picks a free port and prints it, so no port
	// is chosen here and then raced for.
	cmd := exec.Command(driver, "--port=0")
	log := &syncBuffer{}
	cmd.Stderr = log
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("webdriver: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("webdriver: starting %s: %v", driver, err)
	}
	d := &Driver{browser: browser, cmd: cmd, log: log, exited: make(chan struct{}),
		client: &http.Client{Timeout: 30 * time.Second}}
	port := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			fmt.Fprintln(log, sc.Text())
			if m := startedOn.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case port <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(log, stdout) // the rest, had a line been too long to scan
		_ = cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() { d.stop(t) })

	select {
	case p := <-port:
		d.URL = "http://127.0.0.1:" + p
	case <-d.exited:
		t.Fatalf("webdriver: %s exited at start:\n%s", driver, log)
	case <-time.After(10 * time.Second):
		t.Fatalf("webdriver: %s did not say its port within 10s:\n%s", driver, log)
	}
	var status struct {
		Ready bool `json:"ready"`
	}
	if err := d.do(context.Background(), http.MethodGet, "/status", nil, &status); err != nil || !status.Ready {
		t.Fatalf("webdriver: ChromeDriver at %s not ready (%v):\n%s", d.URL, err, log)
	}
	return d
}

// stop asks ChromeDriver to shut down (it quits any browser left) and
// kills it when it does not exit.
func (d *Driver) stop(t testing.TB) {
	if d.URL != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		// /shutdown is ChromeDriver's own command, not WebDriver's.
		_ = d.do(ctx, http.MethodGet, "/shutdown", nil, nil)
		cancel()
	}
	select {
	case <-d.exited:
	case <-time.After(5 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
	if t.Failed() {
		t.Logf("chromedriver output:\n%s", d.log)
	}
}

// Session is a browser session (one headless Chromium window).
type Session struct {
	d  *Driver
	id string
}

// NewSession starts headless Chromium with a new empty profile and ends
// it when the test ends; on a failed test it first logs the page the
// browser was on.
func (d *Driver) NewSession(t testing.TB) *Session {
	t.Helper()
	args := append(slices.Clone(chromiumArgs), "--user-data-dir="+t.TempDir())
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName":      "chrome",
		"pageLoadStrategy": "normal",
		"timeouts":         map[string]int{"pageLoad": 15000, "script": 5000, "implicit": 0},
		"goog:chromeOptions": map[string]any{
			"binary": d.browser,
			"args":   args,
		},
	}}}
	var created struct {
		SessionID string `json:"sessionId"`
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.do(ctx, http.MethodPost, "/session", caps, &created); err != nil {
		t.Fatalf("webdriver: starting Chromium: %v\n%s", err, d.log)
	}
	s := &Session{d: d, id: created.SessionID}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if t.Failed() {
			u, _ := s.CurrentURL(ctx)
			text, _ := s.Text(ctx)
			t.Logf("browser was at %s showing:\n%s", u, text)
		}
		if err := s.Delete(ctx); err != nil {
			t.Errorf("webdriver: ending the session: %v", err)
		}
	})
	return s
}

// Navigate loads u and waits for the page to load.
func (s *Session) Navigate(ctx context.Context, u string) error {
	return s.cmd(ctx, http.MethodPost, "/url", map[string]string{"url": u}, nil, "navigating")
}

// CurrentURL is the URL of the page shown.
func (s *Session) CurrentURL(ctx context.Context) (string, error) {
	var u string
	err := s.cmd(ctx, http.MethodGet, "/url", nil, &u, "getting the URL")
	return u, err
}

// Title is the page's title.
func (s *Session) Title(ctx context.Context) (string, error) {
	var title string
	err := s.cmd(ctx, http.MethodGet, "/title", nil, &title, "getting the title")
	return title, err
}

// PageSource is the page's DOM serialized as HTML.
func (s *Session) PageSource(ctx context.Context) (string, error) {
	var src string
	err := s.cmd(ctx, http.MethodGet, "/source", nil, &src, "getting the page source")
	return src, err
}

// Text is the rendered text of the page's body.
func (s *Session) Text(ctx context.Context) (string, error) {
	body, err := s.Find(ctx, "body")
	if err != nil {
		return "", err
	}
	return body.Text(ctx)
}

// WaitURL polls the current URL until it starts with prefix, and returns
// it; it gives up when ctx ends.
func (s *Session) WaitURL(ctx context.Context, prefix string) (string, error) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		u, err := s.CurrentURL(ctx)
		if err == nil && strings.HasPrefix(u, prefix) {
			return u, nil
		}
		select {
		case <-ctx.Done():
			return u, fmt.Errorf("waiting for a URL starting with %s (at %s, last error %v): %w", prefix, u, err, ctx.Err())
		case <-tick.C:
		}
	}
}

// Find returns the first element matching the CSS selector; an *Error
// with Code "no such element" when none does.
func (s *Session) Find(ctx context.Context, css string) (*Element, error) {
	var ref map[string]string
	if err := s.cmd(ctx, http.MethodPost, "/element", locator(css), &ref, "finding "+css); err != nil {
		return nil, err
	}
	return &Element{s: s, id: ref[elementKey], css: css}, nil
}

// FindAll returns the elements matching the CSS selector, in document
// order (none is not an error).
func (s *Session) FindAll(ctx context.Context, css string) ([]*Element, error) {
	var refs []map[string]string
	if err := s.cmd(ctx, http.MethodPost, "/elements", locator(css), &refs, "finding "+css); err != nil {
		return nil, err
	}
	out := make([]*Element, len(refs))
	for i, r := range refs {
		out[i] = &Element{s: s, id: r[elementKey], css: css}
	}
	return out, nil
}

func locator(css string) map[string]string {
	return map[string]string{"using": "css selector", "value": css}
}

// Delete ends the session and closes the browser.
func (s *Session) Delete(ctx context.Context) error {
	return s.cmd(ctx, http.MethodDelete, "", nil, nil, "ending the session")
}

func (s *Session) cmd(ctx context.Context, method, path string, body, out any, what string) error {
	if err := s.d.do(ctx, method, "/session/"+s.id+path, body, out); err != nil {
		return fmt.Errorf("webdriver: %s: %w", what, err)
	}
	return nil
}

// Element is an element of the page it was found on.
type Element struct {
	s   *Session
	id  string
	css string // the selector it was found by, for errors
}

// SendKeys types text into the element.
func (e *Element) SendKeys(ctx context.Context, text string) error {
	return e.cmd(ctx, http.MethodPost, "/value", map[string]string{"text": text}, nil, "typing into")
}

// Click clicks the element (scrolling it into view); a click that submits
// a form returns once the next page has loaded. Clicking an option of a
// select selects it.
func (e *Element) Click(ctx context.Context) error {
	return e.cmd(ctx, http.MethodPost, "/click", struct{}{}, nil, "clicking")
}

// ClickAndWait clicks the element and waits until the page it was on has
// been replaced by the one the click leads to (a form submitted, a link
// followed): Click alone may return before a form's navigation begins, and
// a page read then would be the old one. It gives up when ctx ends.
func (e *Element) ClickAndWait(ctx context.Context) error {
	old, err := e.s.Find(ctx, "html")
	if err != nil {
		return err
	}
	if err := e.Click(ctx); err != nil {
		return err
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		// The old document's root goes stale once the next page commits;
		// later commands then wait for that page to load.
		_, err := old.Property(ctx, "nodeName")
		switch {
		case hasCode(err, "stale element reference"), detached(err):
			return nil
		case err != nil:
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("webdriver: waiting for the page after clicking %s: %w", e.css, ctx.Err())
		case <-tick.C:
		}
	}
}

// detached reports the error ChromeDriver gives instead of "stale element
// reference" when the page is replaced between its lookup of the element
// and its read of it (an "unknown error" from the DevTools inspector).
func detached(err error) bool {
	return hasCode(err, "unknown error") && strings.Contains(err.Error(), "does not belong to the document")
}

// Text is the element's rendered text.
func (e *Element) Text(ctx context.Context) (string, error) {
	var text string
	err := e.cmd(ctx, http.MethodGet, "/text", nil, &text, "reading the text of")
	return text, err
}

// Property is the element's DOM property name ("value", "checked" ...),
// encoded as JSON ("null" when it has none).
func (e *Element) Property(ctx context.Context, name string) (json.RawMessage, error) {
	var v json.RawMessage
	err := e.cmd(ctx, http.MethodGet, "/property/"+name, nil, &v, "reading property "+name+" of")
	return v, err
}

func (e *Element) cmd(ctx context.Context, method, path string, body, out any, what string) error {
	return e.s.cmd(ctx, method, "/element/"+e.id+path, body, out, what+" "+e.css)
}

// Error is an error the remote end answered (WebDriver §6.6).
type Error struct {
	Status  int    // HTTP status
	Code    string // "no such element", "stale element reference" ...
	Message string
}

func (e *Error) Error() string { return e.Code + " (" + http.StatusText(e.Status) + "): " + e.Message }

// IsNoSuchElement reports whether err is WebDriver's "no such element".
func IsNoSuchElement(err error) bool { return hasCode(err, "no such element") }

func hasCode(err error, code string) bool {
	var we *Error
	return errors.As(err, &we) && we.Code == code
}

// do sends a command and decodes the "value" of the answer into out.
func (d *Driver) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encoding the command: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, d.URL+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	var env struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return fmt.Errorf("answer %d is not WebDriver JSON: %.200q", resp.StatusCode, b)
	}
	if resp.StatusCode >= 400 {
		var e struct {
			Error   string `json:"error"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(env.Value, &e)
		return &Error{Status: resp.StatusCode, Code: e.Error, Message: e.Message}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(env.Value, out); err != nil {
		return fmt.Errorf("decoding the answer's value: %w", err)
	}
	return nil
}

// syncBuffer collects ChromeDriver's output from two goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
