package app

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/store/sqlite"
)

// Two nodes on one store build the closed days' figures one after the
// other, never at once: the second waits for the first's lease, and then
// runs Warm too (finding the work done, in the real Engine).
func TestWarmStatsOneNodeAtATime(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.db")
	open := func() *sqlite.DB {
		db, err := sqlite.Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	old := warmRetry
	warmRetry = 20 * time.Millisecond
	t.Cleanup(func() { warmRetry = old })

	var mu sync.Mutex
	running, most := 0, 0
	var order []string
	release := make(chan struct{})
	done := make(chan string, 2)
	warm := func(name string) func(context.Context, time.Time, time.Time) error {
		return func(ctx context.Context, _, _ time.Time) error {
			mu.Lock()
			running++
			most = max(most, running)
			order = append(order, name)
			first := len(order) == 1
			mu.Unlock()
			if first {
				<-release // the first node builds until the test lets it finish
			}
			mu.Lock()
			running--
			mu.Unlock()
			done <- name
			return nil
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for _, name := range []string{"a", "b"} {
		db := open() // one after the other: the first makes the schema
		wg.Add(1)
		go func() {
			defer wg.Done()
			warmStats(slog.New(slog.DiscardHandler), warm(name), db, name)(ctx)
		}()
	}
	time.Sleep(300 * time.Millisecond) // the second node retries its lease meanwhile
	mu.Lock()
	n := len(order)
	mu.Unlock()
	if n != 1 {
		t.Fatalf("%d nodes building at once before the first finished", n)
	}
	close(release)
	for range 2 {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the second node never built after the first released its lease")
		}
	}
	cancel()
	wg.Wait()
	if most != 1 || len(order) != 2 {
		t.Fatalf("at most %d nodes built at once; builds %v", most, order)
	}
}
