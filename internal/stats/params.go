package stats

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// ParseTime parses RFC 3339 or a bare date (UTC midnight), as the command
// line does.
func ParseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time or a date (2011-09-13)", s)
}

// ParseParams reads a query from URL parameters named like the command's
// flags: from, to (default: the 24 hours before now), by, top, case,
// baseline_from and baseline_to (baseline-from and baseline-to also
// work). Every problem is reported, joined.
func ParseParams(v url.Values, now time.Time) (Query, error) {
	var q Query
	var errs []error
	get := func(names ...string) string {
		for _, n := range names {
			if s := v.Get(n); s != "" {
				return s
			}
		}
		return ""
	}
	tm := func(name string, s string, def time.Time) time.Time {
		if s == "" {
			return def
		}
		t, err := ParseTime(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
		return t
	}
	q.To = tm("to", get("to"), now.UTC())
	q.From = tm("from", get("from"), q.To.Add(-24*time.Hour))
	q.BaselineFrom = tm("baseline_from", get("baseline_from", "baseline-from"), time.Time{})
	q.BaselineTo = tm("baseline_to", get("baseline_to", "baseline-to"), time.Time{})
	var err error
	if q.By, err = ParseDim(get("by")); err != nil {
		errs = append(errs, fmt.Errorf("by: %w", err))
	}
	if s := get("top"); s != "" {
		if q.Top, err = strconv.Atoi(s); err != nil {
			errs = append(errs, fmt.Errorf("top: %q is not a number", s))
		}
	}
	q.Case = get("case")
	if len(errs) == 0 {
		if err := q.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return q, errors.Join(errs...)
}
