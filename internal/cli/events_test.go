package cli

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/takedown/takedown/internal/store/postgres"
	"github.com/takedown/takedown/internal/store/postgres/pgtest"
)

const importHeader = "timestamp,protocol,src_ip,src_geo,src_asn,infection"

// `events import` of two files with bad rows exits 2, names every bad row
// as file:line, stores nothing (a later `--json` import of the good file
// stores every row), and reports each file's SHA-256 and rows.
func TestEventsImportCLI(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	good := filepath.Join(dir, "good.csv")
	bad := filepath.Join(dir, "bad.csv")
	goodCSV := importHeader + "\n2011-03-17 10:00:00,tcp,192.0.2.1,US,64500,rustock\n2011-03-17 11:00:00,udp,192.0.2.2,DE,64501,rustock\n"
	if err := os.WriteFile(good, []byte(goodCSV), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte(importHeader+"\n2011-03-17 10:00:00,tcp,192.0.2.9,US,64500,rustock\n2011-03-17,tcp,192.0.2.3,US,64500,rustock\n2011-03-17 10:00:00,icmp,192.0.2.4,US,64500,rustock\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := Run(t.Context(), []string{"--data", data, "events", "import", "--format", "shadowserver", good, bad}, strings.NewReader(""), &out, &errb)
	if code != ExitUsage {
		t.Fatalf("exit %d, want %d\n%s", code, ExitUsage, errb.String())
	}
	for _, want := range []string{bad + `:3: bad timestamp "2011-03-17"`, bad + `:4: unsupported protocol "icmp"`, "nothing was imported"} {
		if !strings.Contains(errb.String(), want) {
			t.Fatalf("stderr lacks %q:\n%s", want, errb.String())
		}
	}

	stdout, _ := runTakedown(t, data, nil, "events", "import", "--format", "shadowserver", "--json", "--quiet", good)
	var res struct {
		Read, Stored int
		Files        []struct {
			Name, SHA256 string
			Rows         int
		}
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	sum := sha256.Sum256([]byte(goodCSV))
	if res.Read != 2 || res.Stored != 2 || len(res.Files) != 1 || res.Files[0].Name != good || res.Files[0].Rows != 2 || res.Files[0].SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("import after the failed one: %+v (the failed one must have stored nothing)", res)
	}
}

// With --db postgres://… the import goes to PostgreSQL (the registry stays
// the data dir's), all or nothing and idempotent as on SQLite.
func TestEventsImportPostgres(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	dsn := srv.NewDatabase(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	good := filepath.Join(dir, "good.csv")
	if err := os.WriteFile(good, []byte(importHeader+"\n2011-03-17 10:00:00,tcp,192.0.2.1,US,64500,rustock\n2011-03-17 11:00:00,udp,192.0.2.2,DE,64501,rustock\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{`"stored": 2`, `"stored": 0`} {
		out, _ := runTakedown(t, data, nil, "--db", dsn, "events", "import", "--format", "shadowserver", "--json", "--quiet", good)
		if !strings.Contains(out, want) {
			t.Fatalf("import %d: %s, want %s", i+1, out, want)
		}
	}
	pg, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	if h, err := pg.Events().Health(t.Context()); err != nil || h.Stored != 2 || h.Received != 4 {
		t.Fatalf("PostgreSQL health %+v, %v; want 2 stored, 4 received", h, err)
	}
}
