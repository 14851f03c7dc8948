package e2e

import (
	"encoding/csv"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/dga"
	"github.com/takedown/takedown/internal/testtool"
)

// TestExportRegistry (issue 19): the real binary exports, per registry, the
// fixed and generated names of a range with the day each is needed, as CSV
// and as EPP commands that the RFC schemas accept; bad use exits 2 and
// changes nothing; the court status report has the registry table.
func TestExportRegistry(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	const spec = "newgoz?tlds=com,net,co.uk&count=6&margin=12h"
	order := filepath.Join(dir, "order.txt")
	if err := os.WriteFile(order, []byte("evil-c2.com\nc2.evil-parent.org\n198.51.100.7\ndga:"+spec+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, nil, "--data", data, "order", "import", order, "--case", "goz-1", "--court", "W.D. Pa. -- No. 14-685",
		"--effective", "2026-03-01", "--expires", "2026-04-01", "--allow-reserved")

	r := mustRun(t, nil, "--data", data, "export", "registry", "--from", "2026-03-10", "--to", "2026-03-11",
		"--ns", "ns1.sinkhole.example.org", "--ns", "ns2.sinkhole.example.org")
	rows, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
	if err != nil || len(rows) < 2 {
		t.Fatalf("CSV: %v\n%s", err, r.stdout)
	}
	if got := strings.Join(rows[0], ","); got != "registry,name,needed,from,until,source,day,family,case,court,ns" {
		t.Fatalf("header %s", got)
	}
	sp, err := dga.Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"evil-c2.com": "2026-03-10"} // a fixed name: needed from --from
	for _, d := range []string{"2026-03-10", "2026-03-11"} {
		day, _ := time.Parse(time.DateOnly, d)
		for _, n := range sp.Domains(day) {
			if _, dup := want[n]; !dup {
				want[n] = day.Add(-12 * time.Hour).Format(time.DateOnly) // its day less the margin
			}
		}
	}
	got := map[string]string{}
	for _, row := range rows[1:] {
		got[row[1]] = row[2]
		if suffix := row[0]; !strings.HasSuffix(row[1], "."+suffix) || row[8] != "goz-1" || row[9] != "W.D. Pa. -- No. 14-685" ||
			row[10] != "ns1.sinkhole.example.org ns2.sinkhole.example.org" {
			t.Errorf("row %v", row)
		}
		if (row[5] == "dga") != (row[1] != "evil-c2.com") || (row[5] == "dga" && row[7] != "newgoz") {
			t.Errorf("row %v: source or family wrong", row)
		}
	}
	for n, d := range want {
		if got[n] != d {
			t.Errorf("%s needed %q, want %q", n, got[n], d)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d names exported, want %d", len(got), len(want))
	}
	if !strings.Contains(r.stderr, "skipped c2.evil-parent.org: below the registered domain evil-parent.org") ||
		!strings.Contains(r.stderr, "1 addresses and prefixes left out") {
		t.Errorf("stderr does not report what no registry can take:\n%s", r.stderr)
	}
	again := mustRun(t, nil, "--data", data, "export", "registry", "--from", "2026-03-10", "--to", "2026-03-11",
		"--ns", "ns1.sinkhole.example.org", "--ns", "ns2.sinkhole.example.org")
	if again.stdout != r.stdout {
		t.Error("two exports of the same range differ")
	}

	out := filepath.Join(dir, "epp")
	mustRun(t, nil, "--data", data, "export", "registry", "--from", "2026-03-10", "--to", "2026-03-11", "--tld", "uk",
		"--ns", "ns1.sinkhole.example.org", "--format", "epp", "-o", out)
	ents, err := os.ReadDir(out)
	if err != nil || len(ents) != 1 || ents[0].Name() != "co.uk" {
		t.Fatalf("--tld uk wrote %v (%v), want co.uk only", ents, err)
	}
	docs, _ := filepath.Glob(filepath.Join(out, "co.uk", "*.xml"))
	var wantUK int
	for n := range want {
		if strings.HasSuffix(n, ".co.uk") {
			wantUK++
		}
	}
	if len(docs) != wantUK || wantUK == 0 {
		t.Fatalf("%d EPP commands for co.uk, want %d", len(docs), wantUK)
	}
	if xmllint, err := exec.LookPath("xmllint"); err == nil {
		schema, _ := filepath.Abs(filepath.Join("..", "..", "internal", "export", "testdata", "epp", "all.xsd"))
		if b, err := exec.CommandContext(t.Context(), xmllint, append([]string{"--noout", "--schema", schema}, docs...)...).CombinedOutput(); err != nil {
			t.Errorf("xmllint: %v\n%s", err, b)
		}
	} else {
		testtool.Need(t, "xmllint", "libxml2-utils")
	}

	for _, bad := range [][]string{
		{"--format", "epp"},                            // no directory
		{"--format", "epp", "-o", out},                 // not empty
		{"--format", "xml"},                            // unknown form
		{"--ns", "sinkhole"},                           // not a host name
		{"--from", "2026-03-11", "--to", "2026-03-10"}, // backwards
	} {
		args := append([]string{"--data", data, "export", "registry", "--ns", "ns1.sinkhole.example.org"}, bad...)
		if !slices.Contains(bad, "--from") {
			args = append(args, "--from", "2026-03-10", "--to", "2026-03-10")
		}
		if r := run(t, nil, args...); r.code != 2 {
			t.Errorf("export registry %v: exit %d, want 2\n%s", bad, r.code, r.stderr)
		}
	}

	report := filepath.Join(dir, "status.html")
	mustRun(t, nil, "--data", data, "report", "status", "--case", "goz-1", "--at", "2026-03-15", "-o", report)
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"<h2>Domain registries</h2>", "<td>.co.uk</td>", "<td>.com</td>", "<td>.net</td>", "1 domain generators (DGA)"} {
		if !strings.Contains(string(b), w) {
			t.Errorf("the status report lacks %q", w)
		}
	}
}
