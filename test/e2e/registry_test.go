package e2e

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func hashFiles(t testing.TB, dir string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = sha256.Sum256(b)
	}
	return out
}

// An import of 1,000 good lines and 3 bad ones exits 2, names all three
// lines, and leaves the registry byte for byte as it was.
func TestImportAllOrNothing(t *testing.T) {
	data := t.TempDir()
	mustRun(t, []byte("first.evil-c2.net\n"), "--data", data, "order", "import", "-",
		"--case", "rustock-1", "--court", "W.D. Wash.", "--effective", "2011-03-16", "--expires", "2013-03-16")
	before := hashFiles(t, data)

	var b strings.Builder
	badLines := map[int]string{250: "not_a valid name", 600: "microsoft.com", 1001: "192.168.1.1"}
	for i := 1; i <= 1003; i++ {
		if s, ok := badLines[i]; ok {
			b.WriteString(s + "\n")
			continue
		}
		fmt.Fprintf(&b, "bot%04d.evil-c2.net\n", i)
	}
	file := filepath.Join(t.TempDir(), "order.txt")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	r := run(t, nil, "--data", data, "order", "import", file, "--case", "rustock-1")
	if r.code != 2 {
		t.Fatalf("exit %d; want 2\n%s", r.code, r.stderr)
	}
	for line := range badLines {
		if want := fmt.Sprintf("%s:%d: ", file, line); !strings.Contains(r.stderr, want) {
			t.Errorf("stderr does not name %s:\n%s", want, r.stderr)
		}
	}
	if n := strings.Count(r.stderr, file+":"); n != 3 {
		t.Errorf("%d problems reported; want 3:\n%s", n, r.stderr)
	}
	after := hashFiles(t, data)
	for name, h := range before {
		if after[name] != h {
			t.Errorf("%s changed after a refused import", name)
		}
	}
	if len(after) != len(before) {
		t.Errorf("files in the data dir changed: %d -> %d", len(before), len(after))
	}
	// The good import then goes through, once.
	delete(badLines, 0)
	good := strings.NewReplacer("not_a valid name\n", "", "microsoft.com\n", "", "192.168.1.1\n", "").Replace(b.String())
	r = mustRun(t, []byte(good), "--data", data, "order", "import", "-", "--case", "rustock-1", "--json")
	var res struct {
		Added int `json:"added"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res.Added != 1000 {
		t.Fatalf("import result %q: %v", r.stdout, err)
	}
}

func TestOrderCommands(t *testing.T) {
	data := t.TempDir()
	csv := "indicator,kind,family\nc2.evil-c2.net,,rustock\nwww.bad-host.org,host,\n93.184.216.0/24,cidr,\n"
	mustRun(t, []byte(csv), "--data", data, "order", "import", "-", "--case", "B107", "--court", "W.D. Wash.",
		"--effective", "2011-03-16T00:00:00Z", "--expires", "2013-03-16", "--family", "Rustock")

	r := mustRun(t, nil, "--data", data, "order", "list", "--json")
	var orders []struct {
		Case       string         `json:"case"`
		Indicators map[string]int `json:"indicators"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &orders); err != nil {
		t.Fatal(err)
	}
	if len(orders) != 1 || orders[0].Case != "B107" || orders[0].Indicators["cidr"] != 1 || orders[0].Indicators["host"] != 1 {
		t.Fatalf("order list: %s", r.stdout)
	}
	r = mustRun(t, nil, "--data", data, "export", "csv", "--at", "2012-01-01")
	if !strings.Contains(r.stdout, "c2.evil-c2.net") || !strings.Contains(r.stdout, "93.184.216.0/24") {
		t.Fatalf("export during the order:\n%s", r.stdout)
	}
	r = mustRun(t, nil, "--data", data, "export", "csv", "--at", "2013-03-16")
	if strings.Contains(r.stdout, "evil-c2.net") {
		t.Fatalf("export at expiry still has the order:\n%s", r.stdout)
	}
	mustRun(t, nil, "--data", data, "order", "extend", "B107", "--expires", "2014-01-01")
	r = mustRun(t, nil, "--data", data, "export", "csv", "--at", "2013-06-01")
	if !strings.Contains(r.stdout, "evil-c2.net") {
		t.Fatalf("export after extend:\n%s", r.stdout)
	}
	mustRun(t, nil, "--data", data, "order", "revoke", "B107")
	r = mustRun(t, nil, "--data", data, "order", "show", "B107")
	for _, want := range []string{"status:     revoked", "create", "import", "extend", "revoke", "e2e"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("order show lacks %q:\n%s", want, r.stdout)
		}
	}
	if r := run(t, nil, "--data", data, "export", "bogus"); r.code != 2 || !strings.Contains(r.stderr, "rpz") {
		t.Errorf("unknown format: exit %d, %s", r.code, r.stderr)
	}
	if r := run(t, nil, "--data", data, "order", "show", "nope"); r.code == 0 {
		t.Errorf("show of a missing order succeeded")
	}
}

func TestConfig(t *testing.T) {
	dir := t.TempDir()
	example := mustRun(t, nil, "config", "example").stdout
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte(example), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := mustRun(t, nil, "serve", "--config", good, "--check-config"); !strings.Contains(r.stdout, "ok") {
		t.Fatalf("check-config: %s", r.stdout)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("dns:\n  ttl: 300\n  colour: blue\n"), 0o644)
	if r := run(t, nil, "serve", "--config", bad, "--check-config"); r.code != 2 || !strings.Contains(r.stderr, "bad.yaml:3: dns.colour: unknown key") {
		t.Fatalf("unknown key: exit %d, %s", r.code, r.stderr)
	}
	invalid := filepath.Join(dir, "invalid.yaml")
	os.WriteFile(invalid, []byte("dns:\n  ttl: 0\nsinkhole:\n  a: [\"::1\"]\nnotify:\n  enabled: true\n  from: r@dcu.example\n  xarf02_max: 0\n"), 0o644)
	r := run(t, nil, "serve", "--config", invalid, "--check-config")
	if r.code != 2 || !strings.Contains(r.stderr, "dns.ttl") || !strings.Contains(r.stderr, "sinkhole.a") || !strings.Contains(r.stderr, "notify.xarf02_max") {
		t.Fatalf("invalid values: exit %d, %s", r.code, r.stderr)
	}
}

// A STIX export imports back into another registry with the same
// indicators, kinds included.
func TestSTIXRoundTrip(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	in := "c2.evil-c2.net\nhost:www.bad-host.org\n93.184.216.34\n2a00:1450:4001::/48\n"
	mustRun(t, []byte(in), "--data", a, "order", "import", "-", "--case", "X", "--court", "c", "--effective", "2011-03-16", "--expires", "2013-03-16")
	bundle := mustRun(t, nil, "--data", a, "export", "stix", "--at", "2012-01-01").stdout
	mustRun(t, []byte(bundle), "--data", b, "order", "import", "-", "--case", "Y", "--court", "c", "--effective", "2011-03-16", "--expires", "2013-03-16")
	values := func(data string) string {
		out := mustRun(t, nil, "--data", data, "export", "csv", "--at", "2012-01-01").stdout
		var rows []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
			f := strings.Split(l, ",")
			rows = append(rows, f[0]+" "+f[1])
		}
		return strings.Join(rows, "\n")
	}
	if va, vb := values(a), values(b); va != vb || !strings.Contains(va, "host www.bad-host.org") {
		t.Fatalf("round trip differs:\n%s\n--\n%s", va, vb)
	}
}
