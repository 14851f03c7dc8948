package ingest

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/progress"
	"github.com/takedown/takedown/internal/store/sqlite"
)

// A process killed with SIGKILL in the middle of an import, after several
// batches were written in its transaction, leaves the store as it was:
// the test binary runs the import in a child process (TestKillHelper) that
// stops in Prepare once enough rows went by and says so with a file; the
// parent kills it there.
func TestKilledImportLeavesNothing(t *testing.T) {
	if os.Getenv("TAKEDOWN_KILL_HELPER") != "" {
		t.Skip("in the helper process")
	}
	dir := t.TempDir()
	report, dbPath, mark := filepath.Join(dir, "a.csv"), filepath.Join(dir, sqlite.FileName), filepath.Join(dir, "stopped")
	writeReport(t, report, 0, 12*chunkRows)
	// A first import, committed, that the killed one must not disturb.
	first := filepath.Join(dir, "first.csv")
	writeReport(t, first, 20*chunkRows, 1000)
	db, st := openSQLite(t, dbPath)
	if _, err := Import(t.Context(), st, []string{first}, Options{Format: FormatShadowserver}); err != nil {
		t.Fatal(err)
	}
	before := stateOf(t, st)
	st.Close()
	db.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^TestKillHelper$", "-test.v")
	cmd.Env = append(os.Environ(), "TAKEDOWN_KILL_HELPER=1", "TAKEDOWN_KILL_REPORT="+report, "TAKEDOWN_KILL_DB="+dbPath, "TAKEDOWN_KILL_MARK="+mark)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(mark); err == nil {
			break
		}
		if cmd.ProcessState != nil {
			t.Fatal("helper ended before the mark")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait() //nolint:errcheck // killed, as meant

	_, st = openSQLite(t, dbPath)
	if after := stateOf(t, st); !reflect.DeepEqual(after, before) {
		t.Fatalf("a killed import changed the store: health %+v, want %+v", after.health, before.health)
	}
	res, err := Import(t.Context(), st, []string{report}, Options{Format: FormatShadowserver})
	if err != nil || res.Inserted != 12*chunkRows {
		t.Fatalf("import after the kill: %+v, %v; want all %d rows new", res, err, 12*chunkRows)
	}
}

func openSQLite(t *testing.T, path string) (*sqlite.DB, *sqlite.EventStore) {
	t.Helper()
	db, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.NewEventStore(t.Context(), db, sqlite.EventStoreOptions{MaxPending: 5000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(); db.Close() })
	return db, st
}

// TestKillHelper is the child of TestKilledImportLeavesNothing: it imports
// and, past 8 chunks, once the first batch (and with it an aggregate run)
// is written in the transaction, blocks and leaves the mark.
func TestKillHelper(t *testing.T) {
	if os.Getenv("TAKEDOWN_KILL_HELPER") == "" {
		t.Skip("only run by TestKilledImportLeavesNothing")
	}
	_, st := openSQLite(t, os.Getenv("TAKEDOWN_KILL_DB"))
	var n int
	written := progress.New(progress.Options{Out: io.Discard}) // counts the rows written in the transaction
	prepare := func(*event.Event) bool {
		n++ // one worker: no race
		if n == 8*chunkRows {
			for written.Rows() < writeRows { // the first batch is in the transaction
				time.Sleep(10 * time.Millisecond)
			}
			os.WriteFile(os.Getenv("TAKEDOWN_KILL_MARK"), nil, 0o600)
			select {} // until killed
		}
		return true
	}
	Import(t.Context(), st, []string{os.Getenv("TAKEDOWN_KILL_REPORT")}, Options{Format: FormatShadowserver, Workers: 1, Prepare: prepare, Progress: written}) //nolint:errcheck // never returns
}
