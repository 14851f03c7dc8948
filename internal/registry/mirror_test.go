package registry_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/registry"
	"github.com/takedown/takedown/internal/store/sqlite"
)

// flaky is a remote registry that can be made unreachable.
type flaky struct {
	*sqlite.DB
	down atomic.Bool
}

var errDown = errors.New("connection refused")

func (f *flaky) Serial(ctx context.Context) (uint32, error) {
	if f.down.Load() {
		return 0, errDown
	}
	return f.DB.Serial(ctx)
}

func (f *flaky) Rows(ctx context.Context) (*registry.Rows, error) {
	if f.down.Load() {
		return nil, errDown
	}
	return f.DB.Rows(ctx)
}

func day(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t
}

func importOrder(t *testing.T, db *sqlite.DB, caseID, value, effective, expires string) {
	t.Helper()
	ind, err := registry.Parse(value, "")
	if err != nil {
		t.Fatal(err)
	}
	o := registry.Order{Case: caseID, Court: "W.D. Wash.", Family: "rustock", Effective: day(effective), Expires: day(expires)}
	if _, err := db.Import(t.Context(), o, []registry.Indicator{ind}, "test", false); err != nil {
		t.Fatal(err)
	}
}

// A mirror answers as its remote does, follows its changes, keeps
// answering from its copy (an expiry included, at its exact instant) while
// the remote is unreachable, and starts from its file when the remote is
// unreachable at start; with neither it refuses to start.
func TestMirror(t *testing.T) {
	ctx := t.Context()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	remote := &flaky{DB: db}
	file := filepath.Join(t.TempDir(), "registry-mirror.json")

	remote.down.Store(true)
	if _, err := registry.NewMirror(ctx, remote, file, nil); err == nil {
		t.Fatal("a mirror with no copy and no remote started")
	}
	remote.down.Store(false)

	importOrder(t, db, "rustock", "c2-one.example", "2011-03-16", "2013-03-16")
	m, err := registry.NewMirror(ctx, remote, file, nil)
	if err != nil {
		t.Fatal(err)
	}
	same := func(at time.Time) {
		t.Helper()
		want, err := db.Active(ctx, at, "")
		if err != nil {
			t.Fatal(err)
		}
		got, err := m.Active(ctx, at, "")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("mirror at %s:\n%+v\nstore:\n%+v", at, got, want)
		}
	}
	for _, at := range []time.Time{day("2011-01-01"), day("2012-01-01"), day("2013-03-16").Add(-time.Nanosecond), day("2013-03-16")} {
		same(at)
	}
	// A change on the remote reaches the mirror at its next Active.
	importOrder(t, db, "rustock-b", "c2-two.example", "2011-03-16", "2011-06-01")
	same(day("2011-04-01"))

	// The remote goes away: the copy answers, the second order's expiry
	// included, at its exact instant.
	remote.down.Store(true)
	for _, tc := range []struct {
		at   time.Time
		want int
	}{{day("2011-06-01").Add(-time.Nanosecond), 2}, {day("2011-06-01"), 1}} {
		set, err := m.Active(ctx, tc.at, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(set.Entries) != tc.want {
			t.Fatalf("remote down, at %s: %d entries, want %d", tc.at, len(set.Entries), tc.want)
		}
	}
	if _, err := m.Serial(ctx); err == nil {
		t.Fatal("Serial hid an unreachable remote")
	}

	// A restart while the remote is down serves the saved copy.
	if fi, err := os.Stat(file); err != nil || fi.Size() == 0 {
		t.Fatalf("no copy saved: %v", err)
	}
	m2, err := registry.NewMirror(ctx, remote, file, nil)
	if err != nil {
		t.Fatalf("restart with the remote down: %v", err)
	}
	set, err := m2.Active(ctx, day("2011-04-01"), "")
	if err != nil || len(set.Entries) != 2 {
		t.Fatalf("restarted mirror: %v entries, %v", set, err)
	}
}
