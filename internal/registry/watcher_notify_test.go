package registry

import (
	"context"
	"testing"
	"time"
)

// notifySource is a clockSource that is also a Notifier: the test sends
// on changes, and ctxs records the context each Changes call was given.
type notifySource struct {
	*clockSource
	changes chan struct{}
	ctxs    chan context.Context
}

func (n *notifySource) Changes(ctx context.Context) <-chan struct{} {
	n.ctxs <- ctx
	return n.changes
}

// A notification makes the watcher read the serial at once, without
// waiting for its (hour-long) poll, and publish when it changed; one with
// the serial unchanged publishes nothing. Changes is asked once, with a
// context that ends with Run.
func TestWatcherWakesOnNotification(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	src := &notifySource{clockSource: &clockSource{serial: 1}, changes: make(chan struct{}, 1), ctxs: make(chan context.Context, 2)}
	clk := newFakeClock(t0)
	var runCtx context.Context
	// Registered before startWatcher's cleanup, so it runs after it, once
	// Run has returned.
	t.Cleanup(func() {
		if runCtx != nil && runCtx.Err() == nil {
			t.Error("the context given to Changes did not end with Run")
		}
	})
	w := startWatcher(t, src, clk, time.Hour)
	updates, stop := w.Subscribe()
	defer stop()
	if d := clk.nextWait(t); d != time.Hour {
		t.Fatalf("the watcher waits %v; want the poll interval", d)
	}
	select {
	case runCtx = <-src.ctxs:
	default:
		t.Fatal("Run did not ask the Notifier source for its changes")
	}

	src.set(Entry{Kind: KindHost, Value: "new.example", Case: "c", Effective: t0.Add(-time.Hour), Expires: t0.Add(time.Hour)})
	src.changes <- struct{}{}
	select {
	case <-updates:
	case <-time.After(5 * time.Second):
		t.Fatal("nothing published after a notification (the clock never fired)")
	}
	if !seized(w, "new.example") || w.Load().Set.Serial != 2 {
		t.Fatalf("snapshot after the notification: serial %d", w.Load().Set.Serial)
	}
	if d := clk.nextWait(t); d != time.Hour {
		t.Fatalf("after the notification the watcher waits %v; want the poll interval", d)
	}

	// Unchanged serial: the watcher reads it and waits again, publishing
	// nothing.
	src.changes <- struct{}{}
	clk.nextWait(t)
	select {
	case <-updates:
		t.Fatal("published after a notification with the serial unchanged")
	default:
	}
	src.mu.Lock()
	reads := len(src.reads)
	src.mu.Unlock()
	if reads != 2 {
		t.Errorf("the registry was read %d times; want 2 (at start and after the change)", reads)
	}
	if len(src.ctxs) != 0 {
		t.Error("Changes was asked more than once")
	}
	if runCtx.Err() != nil {
		t.Error("the context given to Changes ended while Run was running")
	}
}

// A notifier whose channel closes (its context ended, or it gave up) does
// not stop the watcher: it polls on, and does not spin on the closed
// channel.
func TestWatcherNotifierClosed(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	src := &notifySource{clockSource: &clockSource{serial: 1}, changes: make(chan struct{}), ctxs: make(chan context.Context, 1)}
	clk := newFakeClock(t0)
	w := startWatcher(t, src, clk, time.Second)
	updates, stop := w.Subscribe()
	defer stop()
	clk.nextWait(t)
	close(src.changes)
	clk.nextWait(t) // it saw the close and waits again
	select {
	case d := <-clk.waits:
		t.Fatalf("the watcher waits again (%v) with nothing fired: it spins on the closed channel", d)
	case <-time.After(200 * time.Millisecond):
	}
	src.set(Entry{Kind: KindHost, Value: "polled.example", Case: "c", Effective: t0.Add(-time.Hour), Expires: t0.Add(time.Hour)})
	clk.fire <- t0
	select {
	case <-updates:
	case <-time.After(5 * time.Second):
		t.Fatal("the poll stopped after the notifier closed")
	}
	if !seized(w, "polled.example") {
		t.Fatal("the polled change is not in the snapshot")
	}
}
