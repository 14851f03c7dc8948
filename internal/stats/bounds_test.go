package stats_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/stats"
)

// rangedSource is memSource with its stored days known (stats.DayRanger).
type rangedSource struct{ *memSource }

func (r rangedSource) DayRange(context.Context) (time.Time, time.Time, bool, error) {
	if len(r.aggs) == 0 {
		return time.Time{}, time.Time{}, false, nil
	}
	return r.aggs[0].Day, r.aggs[len(r.aggs)-1].Day, true, nil
}

// TestWindowsCostTheirStoredDays: a window naming millions of days builds
// only the days of the stored history, and answers as the history would.
func TestWindowsCostTheirStoredDays(t *testing.T) {
	now := at(10, 12) // ten days after the first stored day
	ranged := rangedSource{newMemSource(handEvents())}
	far := time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		src        stats.Source
		from, to   time.Time
		pieces     uint64
		unique     uint64
		wantTooBig bool
	}{
		{"the whole calendar, history known", ranged, time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), far, 11, 5, false},
		{"today to 9999, history known", ranged, at(10, 0), far, 1, 0, false},
		{"today to 9999, history unknown", newMemSource(handEvents()), at(10, 0), far, 1, 0, false},
		{"the stored days exactly", ranged, at(0, 0), at(3, 0), 3, 5, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := stats.New(stats.Options{Source: tc.src, Now: func() time.Time { return now }})
			r, err := e.Stats(t.Context(), stats.Query{From: tc.from, To: tc.to, By: stats.ByCountry})
			if err != nil {
				t.Fatal(err)
			}
			if r.Work.Pieces != tc.pieces || r.UniqueIPs != tc.unique {
				t.Errorf("%d pieces, %d addresses; want %d and %d", r.Work.Pieces, r.UniqueIPs, tc.pieces, tc.unique)
			}
			if !r.From.Equal(tc.from) || !r.To.Equal(tc.to) {
				t.Errorf("the answer's window %s to %s, want the one asked for", r.From, r.To)
			}
		})
	}
}

func TestWindowLimits(t *testing.T) {
	now := at(10, 12)
	src := rangedSource{newMemSource(handEvents())}
	small := stats.New(stats.Options{Source: src, Now: func() time.Time { return now }, MaxWindowDays: 5})
	for _, q := range []stats.Query{
		{From: at(0, 0), To: at(6, 0)},
		{From: at(0, 0), To: at(1, 0), BaselineFrom: time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), BaselineTo: at(9, 0)},
	} {
		if _, err := small.Stats(t.Context(), q); !errors.Is(err, stats.ErrTooLarge) {
			t.Errorf("%v: %v, want ErrTooLarge", q, err)
		}
	}
	// 5 stored days out of a window of 50 years is within 5 days.
	if _, err := small.Stats(t.Context(), stats.Query{From: at(6, 0), To: time.Date(2060, 1, 1, 0, 0, 0, 0, time.UTC)}); err != nil {
		t.Errorf("a window of 5 stored days: %v", err)
	}
	unlimited := stats.New(stats.Options{Source: src, Now: func() time.Time { return now }, MaxWindowDays: -1})
	if _, err := unlimited.Stats(t.Context(), stats.Query{From: at(0, 0), To: at(11, 0)}); err != nil {
		t.Errorf("no limit: %v", err)
	}

	e := stats.New(stats.Options{Source: src, Now: func() time.Time { return now }})
	// A series ends with the history: 800 weeks from day 0 are 2 steps.
	s, err := e.Series(t.Context(), stats.Query{From: at(0, 0), To: at(7*800, 0)}, stats.Weekly)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Points) != 2 || !s.To.Equal(at(11, 0)) || s.Work.Pieces != 11 {
		t.Errorf("%d points to %s, %d pieces; want 2 to %s, 11", len(s.Points), s.To, s.Work.Pieces, at(11, 0))
	}
	if _, err := e.Series(t.Context(), stats.Query{From: at(-1000, 0), To: at(1, 0)}, stats.Daily); !errors.Is(err, stats.ErrTooLarge) {
		t.Errorf("1,001 daily points: %v, want ErrTooLarge", err)
	}
	if s, err := e.Series(t.Context(), stats.Query{From: at(100, 0), To: at(200, 0)}, stats.Daily); err != nil || len(s.Points) != 0 || s.Work.Pieces != 0 {
		t.Errorf("a series after the history: %v, %+v; want no points", err, s)
	}
}

// TestWorkCountsRows: Work.Rows is the aggregates read to build pieces.
func TestWorkCountsRows(t *testing.T) {
	src := newMemSource(handEvents())
	e := stats.New(stats.Options{Source: src, Now: func() time.Time { return at(10, 0) }})
	r, err := e.Stats(t.Context(), stats.Query{From: at(0, 0), To: at(3, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if r.Work.Rows != uint64(len(src.aggs)) || r.Work.Pieces != 3 {
		t.Errorf("work %+v, want %d rows in 3 pieces", r.Work, len(src.aggs))
	}
}
