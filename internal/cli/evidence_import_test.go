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

	"github.com/takedown/takedown/internal/evidence"
)

// runTakedown runs `takedown --data DATA ARGS…` with stdin and fails the
// test on a non-zero exit.
func runTakedown(t *testing.T, data string, stdin []byte, args ...string) (string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	if code := Run(t.Context(), append([]string{"--data", data}, args...), bytes.NewReader(stdin), &out, &errb); code != ExitOK {
		t.Fatalf("takedown %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
	}
	return out.String(), errb.String()
}

// TestImportEntersEvidence: `events import` appends the events it newly
// stored and a custody record (each file's SHA-256 and rows, the importing
// user) to the evidence log in the same run, so that `evidence export`
// right after it contains them; importing the same file again stores and
// appends nothing new but records the custody action.
func TestImportEntersEvidence(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	runTakedown(t, data, []byte("aactsxgiv.example\n"), "order", "import", "-", "--case", "rustock-2011", "--court", "W.D. Wash.",
		"--effective", "2011-03-16", "--expires", "2036-03-16", "--allow-reserved")
	hist := filepath.Join(dir, "history.jsonl")
	runTakedown(t, data, nil, "simulate", "--bots", "20", "--days", "2", "--start", "2011-09-04", "--case", "rustock-2011", "--seed", "7", "--history", hist, "--quiet")
	raw, err := os.ReadFile(hist)
	if err != nil {
		t.Fatal(err)
	}
	rows := bytes.Count(raw, []byte("\n"))
	sum := sha256.Sum256(raw)
	t.Setenv("TAKEDOWN_ACTOR", "analyst@test")
	out, serr := runTakedown(t, data, nil, "events", "import", "--format", "jsonl", hist)
	if !strings.Contains(serr, "evidence log: ") {
		t.Fatalf("import said nothing of the evidence log:\n%s%s", out, serr)
	}

	pkg := filepath.Join(dir, "pkg")
	runTakedown(t, data, nil, "evidence", "export", "--case", "rustock-2011", "--from", "2011-09-04", "--to", "2011-09-06", "-o", pkg)
	evs, err := os.ReadFile(filepath.Join(pkg, "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(evs, []byte("\n")); n == 0 || n > rows {
		t.Fatalf("export right after the import holds %d events (file has %d rows)", n, rows)
	}
	runTakedown(t, data, nil, "evidence", "verify", pkg, "--key", filepath.Join(data, "evidence", "key.pub"))

	// Import the same file again: nothing new stored, a second custody record.
	runTakedown(t, data, nil, "events", "import", "--format", "jsonl", "--quiet", hist)
	l, err := evidence.Open(t.Context(), filepath.Join(data, "evidence"), evidence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var imports []evidence.CustodyRecord
	events := 0
	if err := l.Entries(t.Context(), 0, l.Size(), func(_ uint64, _, rec []byte) error {
		var c evidence.CustodyRecord
		if json.Unmarshal(rec, &c) == nil && c.Type == "custody" {
			if c.Action == "import" {
				imports = append(imports, c)
			}
			return nil
		}
		events++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(imports) != 2 {
		t.Fatalf("%d import custody records, want 2", len(imports))
	}
	first := imports[0]
	abs, _ := filepath.Abs(hist)
	if first.Who != "analyst@test" || len(first.Files) != 1 || first.Files[0].Name != abs ||
		first.Files[0].SHA256 != hex.EncodeToString(sum[:]) || first.Files[0].Rows != rows || first.Time.IsZero() {
		t.Fatalf("custody record %+v; want who analyst@test, file %s sha256 %x rows %d", first, abs, sum, rows)
	}
	if first.Events != events || first.End-first.First != uint64(events) || events == 0 {
		t.Fatalf("custody record counts %d events in [%d, %d); the log holds %d", first.Events, first.First, first.End, events)
	}
	if imports[1].Events != 0 || imports[1].Files[0].Rows != rows {
		t.Fatalf("the repeated import's record %+v: want 0 events, %d rows read", imports[1], rows)
	}
}
