package registry

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// clockSource is a registry of fixed entries (each with its own window)
// whose serial the test bumps; it records the instants it was read at.
type clockSource struct {
	mu      sync.Mutex
	failing bool // Serial fails: the registry is unreachable
	serial  uint32
	entries []Entry
	reads   []time.Time
}

func (c *clockSource) Active(_ context.Context, at time.Time, _ string) (*ActiveSet, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reads = append(c.reads, at)
	set := &ActiveSet{At: at, Serial: c.serial}
	for _, e := range c.entries {
		for _, t := range []time.Time{e.Effective, e.Expires} {
			if t.After(at) && (set.NextChange.IsZero() || t.Before(set.NextChange)) {
				set.NextChange = t
			}
		}
		if !at.Before(e.Effective) && at.Before(e.Expires) {
			set.Entries = append(set.Entries, e)
		}
	}
	return set, nil
}

func (c *clockSource) Serial(context.Context) (uint32, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failing {
		return 0, errors.New("registry unreachable")
	}
	return c.serial, nil
}

func (c *clockSource) set(entries ...Entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries = entries
	c.serial++
}

// fakeClock is a clock whose timers fire when the test says: each wait
// the watcher asks for is sent on waits, and fire ends it.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits chan time.Duration
	fire  chan time.Time
}

func newFakeClock(now time.Time) *fakeClock {
	return &fakeClock{now: now, waits: make(chan time.Duration), fire: make(chan time.Time)}
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) set(t time.Time) {
	f.mu.Lock()
	f.now = t
	f.mu.Unlock()
}

func (f *fakeClock) After(d time.Duration) <-chan time.Time {
	f.waits <- d
	return f.fire
}

// nextWait is the wait the watcher asks for next.
func (f *fakeClock) nextWait(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-f.waits:
		return d
	case <-time.After(5 * time.Second):
		t.Fatal("the watcher never waited")
		return 0
	}
}

func startWatcher(t *testing.T, src Source, clk *fakeClock, poll time.Duration) *Watcher {
	t.Helper()
	w, err := NewWatcher(t.Context(), WatcherOptions{Source: src, Poll: poll, Now: clk.Now, After: clk.After})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		// Run may be handing its next wait over.
		for {
			select {
			case <-done:
				return
			case <-clk.waits:
			}
		}
	})
	return w
}

func seized(w *Watcher, name string) bool {
	_, ok := w.Load().Index.LookupName(name)
	return ok
}

// An expiry takes effect at its instant: the watcher waits exactly until
// it (not a poll interval), reads the registry at that instant without the
// serial changing, and publishes; a wake-up a nanosecond early changes
// nothing.
func TestWatcherExpiryAtInstant(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	expires := t0.Add(10 * time.Second)
	src := &clockSource{serial: 1, entries: []Entry{
		{Kind: KindDomain, Value: "expiring.example", Case: "a", Effective: t0.Add(-time.Hour), Expires: expires},
		{Kind: KindDomain, Value: "staying.example", Case: "b", Effective: t0.Add(-time.Hour), Expires: t0.Add(time.Hour)},
	}}
	clk := newFakeClock(t0)
	w := startWatcher(t, src, clk, time.Hour)
	updates, stop := w.Subscribe()
	defer stop()
	if !seized(w, "expiring.example") {
		t.Fatal("not seized before its expiry")
	}
	if d := clk.nextWait(t); d != 10*time.Second {
		t.Fatalf("the watcher waits %v; want exactly until the expiry (10s)", d)
	}

	clk.set(expires.Add(-time.Nanosecond))
	clk.fire <- clk.Now()
	clk.nextWait(t) // it polled the serial (unchanged) and waits again
	if !seized(w, "expiring.example") {
		t.Fatal("expired a nanosecond before its instant")
	}
	select {
	case <-updates:
		t.Fatal("a snapshot was published before the expiry")
	default:
	}

	clk.set(expires)
	clk.fire <- clk.Now()
	select {
	case <-updates:
	case <-time.After(5 * time.Second):
		t.Fatal("nothing published at the expiry")
	}
	if seized(w, "expiring.example") || !seized(w, "staying.example") {
		t.Fatalf("after the expiry: expiring %v, staying %v", seized(w, "expiring.example"), seized(w, "staying.example"))
	}
	if got := w.Load().At; !got.Equal(expires) {
		t.Errorf("the snapshot was read at %v; want the expiry's instant %v", got, expires)
	}
	if d := clk.nextWait(t); d != time.Hour-10*time.Second {
		t.Errorf("after the expiry the watcher waits %v; want the next change, 59m50s", d)
	}
}

// A serial change is picked up at the next poll and reaches every
// subscriber; an unchanged serial publishes nothing.
func TestWatcherSerialPoll(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	src := &clockSource{serial: 1}
	clk := newFakeClock(t0)
	w := startWatcher(t, src, clk, time.Second)
	a, stopA := w.Subscribe()
	defer stopA()
	b, stopB := w.Subscribe()
	defer stopB()
	if d := clk.nextWait(t); d != time.Second {
		t.Fatalf("the watcher waits %v; want the poll interval", d)
	}
	clk.fire <- t0
	clk.nextWait(t)
	select {
	case <-a:
		t.Fatal("published with the serial unchanged")
	default:
	}
	src.set(Entry{Kind: KindHost, Value: "new.example", Case: "c", Effective: t0.Add(-time.Hour), Expires: t0.Add(time.Hour)})
	clk.fire <- t0
	for i, ch := range []<-chan struct{}{a, b} {
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatalf("subscriber %d was not notified", i)
		}
	}
	if !seized(w, "new.example") || w.Load().Set.Serial != 2 {
		t.Fatalf("snapshot after the change: serial %d", w.Load().Set.Serial)
	}
}

// Publish keeps the newest read: a reload's snapshot read before the
// watcher's last one does not take it back.
func TestWatcherPublishKeepsNewest(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	src := &clockSource{serial: 1}
	clk := newFakeClock(t0)
	w, err := NewWatcher(t.Context(), WatcherOptions{Source: src, Now: clk.Now, After: clk.After})
	if err != nil {
		t.Fatal(err)
	}
	old, err := w.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	clk.set(t0.Add(time.Second))
	if err := w.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	newer := w.Load()
	if w.Publish(old) || w.Load() != newer {
		t.Fatal("an older snapshot replaced a newer one")
	}
	clk.set(t0.Add(2 * time.Second))
	next, _ := w.Read(t.Context())
	if !w.Publish(next) || w.Load() != next {
		t.Fatal("a newer snapshot was not published")
	}
}

// A registry that cannot be read keeps the snapshot in force, and every
// failed poll is counted (takedown_registry_read_failures_total).
func TestWatcherCountsReadFailures(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	src := &clockSource{serial: 1, entries: []Entry{{Kind: KindHost, Value: "kept.example", Case: "c", Effective: t0.Add(-time.Hour), Expires: t0.Add(time.Hour)}}}
	clk := newFakeClock(t0)
	w := startWatcher(t, src, clk, time.Second)
	clk.nextWait(t)
	src.mu.Lock()
	src.failing = true
	src.mu.Unlock()
	for range 3 {
		clk.fire <- t0
		clk.nextWait(t)
	}
	if n := w.ReadFailures(); n != 3 {
		t.Errorf("%d read failures counted; want 3", n)
	}
	if !seized(w, "kept.example") {
		t.Error("the snapshot in force was dropped when the registry could not be read")
	}
}
