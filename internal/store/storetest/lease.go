package storetest

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/store"
)

// RunLeases is the conformance suite of store.Leaser. open returns a new
// store; openAgain, when not nil, a second handle on the same store (a
// second node), which the race runs through.
func RunLeases(t *testing.T, open func(tb testing.TB) (store.Leaser, func(tb testing.TB) store.Leaser)) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t.Run("Lifecycle", func(t *testing.T) {
		l, _ := open(t)
		ctx := t.Context()
		must := func(name, holder string, until, now time.Time, want bool) {
			t.Helper()
			got, err := l.Lease(ctx, name, holder, until, now)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("Lease(%s, %s, until %s, now %s) = %v, want %v", name, holder, until, now, got, want)
			}
		}
		if _, _, ok, err := l.LeaseHolder(ctx, "retention"); err != nil || ok {
			t.Fatalf("LeaseHolder of a lease never taken: %v, %v", ok, err)
		}
		must("retention", "a", t0.Add(time.Hour), t0, true)
		if h, until, ok, err := l.LeaseHolder(ctx, "retention"); err != nil || !ok || h != "a" || !until.Equal(t0.Add(time.Hour)) {
			t.Fatalf("LeaseHolder = %q until %s, %v, %v; want a until %s", h, until, ok, err, t0.Add(time.Hour))
		}
		must("retention", "a", t0.Add(2*time.Hour), t0.Add(time.Minute), true)  // renewed
		must("retention", "b", t0.Add(3*time.Hour), t0.Add(time.Hour), false)   // a's runs to t0+2h
		must("other", "b", t0.Add(time.Hour), t0, true)                         // leases are per name
		must("retention", "b", t0.Add(3*time.Hour), t0.Add(2*time.Hour), true)  // a's expired: b takes over
		must("retention", "a", t0.Add(4*time.Hour), t0.Add(2*time.Hour), false) // and a is out
		if err := l.ReleaseLease(ctx, "retention", "a"); err != nil {           // not a's: nothing
			t.Fatal(err)
		}
		must("retention", "a", t0.Add(4*time.Hour), t0.Add(2*time.Hour), false)
		if err := l.ReleaseLease(ctx, "retention", "b"); err != nil {
			t.Fatal(err)
		}
		if _, _, ok, err := l.LeaseHolder(ctx, "retention"); err != nil || ok {
			t.Fatalf("LeaseHolder of a released lease: %v, %v", ok, err)
		}
		must("retention", "a", t0.Add(4*time.Hour), t0.Add(2*time.Hour), true) // released: free at once
	})
	t.Run("Race", func(t *testing.T) {
		l, again := open(t)
		handles := []store.Leaser{l}
		if again != nil {
			handles = append(handles, again(t))
		}
		var i atomic.Int32 // each try is another holder
		won := raceAll(t, "Lease", handles, 8, func(h store.Leaser) (bool, error) {
			return h.Lease(t.Context(), "race", string(rune('a'+i.Add(1))), t0.Add(time.Hour), t0)
		})
		if won != 1 {
			t.Fatalf("%d holders got one lease", won)
		}
	})
}
