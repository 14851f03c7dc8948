package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/takedown/takedown/internal/store/postgres/pgtest"
)

// Every command that reads or changes data does the same on SQLite and on
// PostgreSQL (--db postgres://…): the same script is run against a data
// dir's SQLite store and against a PostgreSQL database, and every output
// is compared, with only the wall-clock times and random token IDs masked.
// Exports must be byte-identical.
func TestCommandsOnBothStores(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	dsn := srv.NewDatabase(t)
	dir := t.TempDir()
	csvFile := filepath.Join(dir, "day.csv")
	var csv strings.Builder
	csv.WriteString(importHeader + "\n")
	for i := range 40 {
		ip, geo, asn := "192.0.2.", "US", "64500"
		if i%3 == 0 {
			ip, geo, asn = "198.51.100.", "DE", "64501"
		}
		proto := "tcp"
		if i%2 == 0 {
			proto = "udp"
		}
		csv.WriteString("2011-03-17 1" + string(rune('0'+i%10)) + ":00:00," + proto + "," + ip + strconv.Itoa(1+i%25) + "," + geo + "," + asn + ",rustock\n")
	}
	if err := os.WriteFile(csvFile, []byte(csv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	// Masks what differs between any two runs: creation times, token IDs
	// and secrets.
	volatile := regexp.MustCompile(`("(created|at|time|id|token|secret|created_at|revoked_at)": ?)"[^"]*"`)
	mask := func(s string) string { return volatile.ReplaceAllString(s, `$1"…"`) }

	type step struct {
		stdin string
		args  []string
		file  string // an output file to compare instead of stdout
	}
	steps := []step{
		{stdin: "c2-one.rustock.example\nc2-two.rustock.example\n203.0.113.7\n", args: []string{"order", "import", "-", "--case", "rustock-2011", "--court", "W.D. Wash.",
			"--effective", "2011-03-16", "--expires", "2036-03-16", "--allow-reserved", "--json"}},
		{stdin: "c2-b.example\n", args: []string{"order", "import", "-", "--case", "second", "--court", "E.D.N.Y.",
			"--effective", "2011-03-16", "--expires", "2012-03-16", "--allow-reserved", "--json"}},
		{args: []string{"order", "extend", "second", "--expires", "2013-03-16"}},
		{args: []string{"order", "revoke", "second"}},
		{args: []string{"order", "list", "--json"}},
		{args: []string{"order", "show", "rustock-2011", "--json"}},
		{args: []string{"export", "rpz", "--at", "2012-01-01", "--sinkhole-a", "192.0.2.1", "-o", "OUT"}, file: "OUT"},
		{args: []string{"export", "suricata", "--at", "2012-01-01", "-o", "OUT"}, file: "OUT"},
		{args: []string{"events", "import", "--format", "shadowserver", "--json", "--quiet", csvFile}},
		{args: []string{"stats", "--from", "2011-03-17", "--to", "2011-03-18", "--by", "country", "--json"}},
		{args: []string{"stats", "--from", "2011-03-17", "--to", "2011-03-18", "--by", "asn", "--json"}},
		{args: []string{"report", "network", "--asn", "64500", "--date", "2011-03-17", "--json"}},
		{args: []string{"report", "network", "--cidr", "198.51.100.0/24", "--date", "2011-03-17"}},
		{args: []string{"subscriber", "add", "isp-1", "--org", "Example ISP", "--contacts", "abuse@isp.example", "--networks", "AS64500"}},
		{args: []string{"subscriber", "list", "--json"}},
		{args: []string{"notify", "status", "--json"}},
		{args: []string{"token", "create", "--role", "analyst", "--note", "cert", "--json"}},
		{args: []string{"token", "list", "--json"}},
	}
	outputs := map[string][]string{}
	for _, engine := range []string{"sqlite", "postgres"} {
		data := filepath.Join(dir, engine)
		for i, s := range steps {
			args := append([]string(nil), s.args...)
			var file string
			for j, a := range args {
				if a == "OUT" {
					file = filepath.Join(dir, engine+"-out-"+strconv.Itoa(i))
					args[j] = file
				}
			}
			if engine == "postgres" {
				args = append([]string{"--db", dsn}, args...)
			}
			out, _ := runTakedown(t, data, []byte(s.stdin), args...)
			if file != "" {
				b, err := os.ReadFile(file)
				if err != nil {
					t.Fatal(err)
				}
				out = string(b)
			}
			outputs[engine] = append(outputs[engine], mask(out))
		}
	}
	for i, s := range steps {
		got, want := outputs["postgres"][i], outputs["sqlite"][i]
		if got != want {
			t.Errorf("takedown %s: PostgreSQL differs from SQLite\npostgres:\n%s\nsqlite:\n%s", strings.Join(s.args, " "), got, want)
		}
	}
	// And the figures are the data's, not two equal empty answers.
	var doc struct {
		UniqueIPs uint64 `json:"unique_ips"`
	}
	if err := json.NewDecoder(bytes.NewReader([]byte(outputs["postgres"][9]))).Decode(&doc); err != nil {
		t.Fatalf("stats --json: %v\n%s", err, outputs["postgres"][9])
	}
	if doc.UniqueIPs != 35 {
		t.Errorf("stats on PostgreSQL counts %d addresses, want %d\n%s", doc.UniqueIPs, 35, outputs["postgres"][9])
	}
	if !strings.Contains(outputs["postgres"][6], "c2-one.rustock.example") {
		t.Errorf("the RPZ export lacks the seized name:\n%s", outputs["postgres"][6])
	}
}

// `notify send` without flags takes the configuration's notify section:
// here its maildir and sender.
func TestNotifySendUsesConfig(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	maildir := filepath.Join(dir, "mail")
	conf := filepath.Join(dir, "takedown.yaml")
	if err := os.WriteFile(conf, []byte("data: "+data+"\nnotify:\n  from: reports@cert.example\n  maildir: "+maildir+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	csv := filepath.Join(dir, "day.csv")
	if err := os.WriteFile(csv, []byte(importHeader+"\n2011-03-17 10:00:00,tcp,192.0.2.1,US,64500,rustock\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := Run(t.Context(), append([]string{"--config", conf}, args...), strings.NewReader(""), &out, &errb); code != ExitOK {
			t.Fatalf("takedown %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
		}
		return out.String()
	}
	run("events", "import", "--format", "shadowserver", "--quiet", csv)
	run("subscriber", "add", "isp-1", "--org", "Example ISP", "--contacts", "abuse@isp.example", "--networks", "AS64500")
	run("notify", "send", "--date", "2011-03-17")
	mails, err := filepath.Glob(filepath.Join(maildir, "new", "*"))
	if err != nil || len(mails) != 1 {
		t.Fatalf("maildir holds %d mails (%v), want 1", len(mails), err)
	}
	b, err := os.ReadFile(mails[0])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "reports@cert.example") || !strings.Contains(string(b), "abuse@isp.example") {
		t.Fatalf("the mail does not come from the configured sender to the subscriber:\n%.600s", b)
	}
}
