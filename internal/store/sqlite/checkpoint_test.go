package sqlite

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/store"
)

// TestCheckpointer: the writer leaves checkpoints to the store's own
// goroutine (its connection has wal_autocheckpoint=0), and that goroutine
// copies committed pages from the WAL into the database file while the
// store stays open: the file grows past its size before any write.
func TestCheckpointer(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	db, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := NewEventStore(t.Context(), db, EventStoreOptions{CheckpointEvery: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var auto int
	if err := s.conn.QueryRowContext(t.Context(), `PRAGMA wal_autocheckpoint`).Scan(&auto); err != nil || auto != 0 {
		t.Fatalf("writer's wal_autocheckpoint = %d, %v; want 0", auto, err)
	}
	// Checkpoint what the migrations wrote, so that the file's size is
	// that of the schema before any event.
	if _, err := db.SQL().ExecContext(t.Context(), `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	before := fileSize(t, path)
	day := time.Date(2011, 3, 17, 0, 0, 0, 0, time.UTC)
	evs := make([]event.Event, 2000)
	for i := range evs {
		evs[i] = event.Event{ID: fmt.Sprint("ck-", i), Timestamp: day.Add(time.Duration(i) * time.Second), Protocol: "http",
			SrcIP: netip.AddrFrom4([4]byte{10, 9, byte(i >> 8), byte(i)}), HTTPURL: fmt.Sprint("/u/", i)}
	}
	if _, err := s.WriteBatch(t.Context(), &store.Batch{Events: evs}); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); fileSize(t, path) <= before; {
		if time.Now().After(deadline) {
			t.Fatalf("database file still %d bytes 20 s after the write: the WAL was not checkpointed", before)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
