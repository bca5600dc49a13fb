package webdriver_test

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pulsewire/pulsewire/server/servertest/webdriver"
)

const formPage = `<!doctype html><html><head><title>Form</title></head><body>
<form method="post" action="/echo">
<input type="text" id="name" name="name">
<select id="color" name="color"><option value="">pick</option><option value="red">Red</option><option value="blue">Blue</option></select>
<button type="submit" name="action" value="send">Send</button>
<button type="submit" name="action" value="cancel">Cancel</button>
</form></body></html>`

// TestSession drives a form in Chromium: typing, choosing an option,
// clicking the second of two submit buttons, then reading the page the
// POST produced, and the errors and values the client decodes.
func TestSession(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /form", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, formPage) })
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "<!doctype html><title>Echo</title><p id=out>%s|%s|%s</p>",
			html.EscapeString(r.FormValue("name")), html.EscapeString(r.FormValue("color")), html.EscapeString(r.FormValue("action")))
	})
	site := httptest.NewServer(mux)
	defer site.Close()

	s := webdriver.Start(t).NewSession(t)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	find := func(css string) *webdriver.Element {
		t.Helper()
		e, err := s.Find(ctx, css)
		must(err)
		return e
	}

	must(s.Navigate(ctx, site.URL+"/form"))
	if title, err := s.Title(ctx); err != nil || title != "Form" {
		t.Fatalf("title = %q, %v; want Form", title, err)
	}
	if _, err := s.Find(ctx, "#absent"); !webdriver.IsNoSuchElement(err) {
		t.Fatalf("Find of a missing element: %v, want no such element", err)
	}
	opts, err := s.FindAll(ctx, "#color option")
	must(err)
	var labels []string
	for _, o := range opts {
		text, err := o.Text(ctx)
		must(err)
		labels = append(labels, text)
	}
	if d := cmp.Diff([]string{"pick", "Red", "Blue"}, labels); d != "" {
		t.Errorf("options (-want +got):\n%s", d)
	}
	if none, err := s.FindAll(ctx, "table"); err != nil || len(none) != 0 {
		t.Errorf("FindAll(table) = %d elements, %v; want none", len(none), err)
	}

	must(find("#name").SendKeys(ctx, "Zoë & co"))
	must(find(`#color option[value="blue"]`).Click(ctx))
	if v, err := find("#color").Property(ctx, "value"); err != nil || string(v) != `"blue"` {
		t.Fatalf("select value = %s, %v; want \"blue\"", v, err)
	}
	src, err := s.PageSource(ctx)
	must(err)
	if !strings.Contains(src, `action="/echo"`) {
		t.Errorf("page source without the form:\n%s", src)
	}

	must(find(`button[value="cancel"]`).ClickAndWait(ctx))
	if u, err := s.CurrentURL(ctx); err != nil || u != site.URL+"/echo" {
		t.Errorf("URL after submit = %s, %v", u, err)
	}
	if out, err := find("#out").Text(ctx); err != nil || out != "Zoë & co|blue|cancel" {
		t.Errorf("posted form = %q, %v; want %q", out, err, "Zoë & co|blue|cancel")
	}
	if text, err := s.Text(ctx); err != nil || text != "Zoë & co|blue|cancel" {
		t.Errorf("page text = %q, %v", text, err)
	}

	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelShort()
	if _, err := s.WaitURL(short, site.URL+"/never"); err == nil {
		t.Error("WaitURL for a URL never reached returned no error")
	}
}
