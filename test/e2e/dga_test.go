package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown/takedown/internal/dga"
	"github.com/takedown/takedown/internal/testtool"
)

// TestDGASeizure (issue 19): an order with a generator seizes each day's
// generated names: serve answers today's, refuses a day's outside the
// window, export --from/--to lists a range of days ahead of time, and a bad
// generator line is refused with file:line, changing nothing.
func TestDGASeizure(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	today := time.Now().UTC().Truncate(24 * time.Hour)
	const spec = "newgoz?tlds=example,test&count=50&margin=6h"
	sp, err := dga.Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	namesOf := func(offset int) []string { return sp.Domains(today.AddDate(0, 0, offset)) }

	bad := filepath.Join(dir, "bad.txt")
	if err := os.WriteFile(bad, []byte("evil-c2.example\ndga:conficker?seed=1\ndga:newgoz?sead=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := run(t, nil, "--data", data, "order", "import", bad, "--case", "goz-1", "--court", "W.D. Pa.", "--allow-reserved",
		"--effective", today.AddDate(0, 0, -1).Format(time.DateOnly), "--expires", today.AddDate(0, 0, 10).Format(time.DateOnly))
	if r.code != 2 || !strings.Contains(r.stderr, bad+`:2: "dga:conficker?seed=1": unknown DGA family "conficker"`) ||
		!strings.Contains(r.stderr, bad+`:3: "dga:newgoz?sead=1": newgoz: unknown parameter "sead"`) {
		t.Fatalf("bad generators: exit %d\n%s", r.code, r.stderr)
	}

	order := filepath.Join(dir, "order.txt")
	if err := os.WriteFile(order, []byte("evil-c2.example\ndga:"+spec+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := mustRun(t, nil, "--data", data, "order", "import", order, "--case", "goz-1", "--court", "W.D. Pa.", "--allow-reserved",
		"--effective", today.AddDate(0, 0, -1).Format(time.DateOnly), "--expires", today.AddDate(0, 0, 10).Format(time.DateOnly))
	if !strings.Contains(out.stdout, "yields 550 names over the order's life") {
		t.Errorf("import output does not count 11 days × 50 names:\n%s", out.stdout)
	}
	if show := mustRun(t, nil, "--data", data, "order", "show", "goz-1").stdout; !strings.Contains(show, "dga:newgoz?count=50&key=01051935&tlds=example,test&margin=6h yields 550 names") {
		t.Errorf("order show does not list the generator and its names:\n%s", show)
	}

	addr := fmt.Sprintf("127.0.0.1:%d", testtool.FreePort(t, "udp"))
	conf := filepath.Join(dir, "takedown.yaml")
	yaml := fmt.Sprintf("data: %s\nweb: {listen: \"\"}\nselfcheck: {listen: \"\"}\nlisteners: []\ndns:\n  listen: [%q]\n", data, addr)
	if err := os.WriteFile(conf, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	startServe(t, addr, "--config", conf)
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	ask := func(name string) int {
		t.Helper()
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), dns.TypeA)
		resp, _, err := c.Exchange(m, addr)
		if err != nil {
			t.Fatalf("query %s: %v", name, err)
		}
		if resp.Rcode == dns.RcodeSuccess && len(resp.Answer) == 0 {
			t.Errorf("%s: NOERROR without an answer", name)
		}
		return resp.Rcode
	}
	for _, n := range []string{namesOf(0)[0], namesOf(0)[49], strings.ToUpper(namesOf(0)[7])} {
		if rc := ask(n); rc != dns.RcodeSuccess {
			t.Errorf("today's %s: %s, want an answer", n, dns.RcodeToString[rc])
		}
	}
	for what, n := range map[string]string{
		"a day ahead, outside the 6h margin":   namesOf(5)[0],
		"a day before the order's window":      namesOf(-3)[0],
		"a day after the order's window":       namesOf(12)[0],
		"a name the generator never generates": "zzzz" + namesOf(0)[0],
	} {
		if rc := ask(n); rc != dns.RcodeRefused {
			t.Errorf("%s (%s): %s, want REFUSED", what, n, dns.RcodeToString[rc])
		}
	}

	rpz := mustRun(t, nil, "--data", data, "export", "rpz", "--sinkhole-a", "192.0.2.1",
		"--from", today.AddDate(0, 0, 3).Format(time.DateOnly), "--to", today.AddDate(0, 0, 4).Format(time.DateOnly)).stdout
	for _, off := range []int{3, 4} {
		for _, n := range namesOf(off) {
			if !strings.Contains(rpz, "\n"+n+" A 192.0.2.1") {
				t.Fatalf("rpz range lacks %s of day +%d", n, off)
			}
		}
	}
	for _, n := range namesOf(6) {
		if strings.Contains(rpz, "\n"+n+" ") {
			t.Fatalf("rpz range holds %s of day +6", n)
		}
	}
	if !strings.Contains(rpz, "\nevil-c2.example A 192.0.2.1") {
		t.Errorf("rpz range lacks the fixed name")
	}
}
