package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/takedown/takedown/internal/stats"
	"github.com/takedown/takedown/internal/store"
)

// The API's reads of one network's rows and the stored history's bounds,
// as in the SQLite store (sqlite/select.go). The prefix parts seek the
// primary key (day, ip, family); the ASN and country parts use the
// indexes (asn, day) and (country, day).
var (
	_ store.SelectScanner = (*EventStore)(nil)
	_ stats.DayRanger     = (*EventStore)(nil)
)

// DayRange implements stats.DayRanger: two seeks at the ends of the
// primary key.
func (s *EventStore) DayRange(ctx context.Context) (first, last time.Time, ok bool, err error) {
	var lo, hi *int64
	if err := s.pool.QueryRow(ctx, `SELECT (SELECT MIN(day) FROM event_day_ip), (SELECT MAX(day) FROM event_day_ip)`).Scan(&lo, &hi); err != nil {
		return time.Time{}, time.Time{}, false, fmt.Errorf("stored days: %w", err)
	}
	if lo == nil || hi == nil {
		return time.Time{}, time.Time{}, false, nil
	}
	return time.Unix(*lo, 0).UTC(), time.Unix(*hi, 0).UTC(), true, nil
}

// ScanDayIPsSelect implements store.SelectScanner, day by day like the
// SQLite store.
func (s *EventStore) ScanDayIPsSelect(ctx context.Context, from, to time.Time, sel *store.Selection, after *store.Position, fn func(*store.DayIP) error) error {
	if sel != nil && len(sel.Prefixes) == 0 && len(sel.ASNs) == 0 && len(sel.Countries) == 0 {
		return nil
	}
	lo, hi := store.DayOf(from), to.Unix()
	if from.Unix() != lo {
		lo += 86400
	}
	if after != nil && after.Day > lo {
		lo = after.Day
	}
	for day := lo; day < hi; day += 86400 {
		var d *int64
		if err := s.pool.QueryRow(ctx, `SELECT MIN(day) FROM event_day_ip WHERE day >= $1 AND day < $2`, day, hi).Scan(&d); err != nil {
			return fmt.Errorf("scan aggregates: %w", err)
		}
		if d == nil {
			return nil
		}
		day = *d
		var pos *store.Position
		if after != nil && after.Day == day {
			pos = after
		}
		q, args := selectDayQuery(day, sel, pos)
		if err := s.scanQuery(ctx, q, args, fn); err != nil {
			return err
		}
	}
	return nil
}

func (s *EventStore) scanQuery(ctx context.Context, q string, args []any, fn func(*store.DayIP) error) error {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("scan aggregates: %w", err)
	}
	defer rows.Close()
	if err := store.ScanDayIPs(rows, fn); err != nil {
		return err
	}
	if err := rows.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("scan aggregates: %w", err)
	}
	return ctx.Err()
}

// selectDayQuery builds the query of one day's selected rows after pos.
func selectDayQuery(day int64, sel *store.Selection, pos *store.Position) (string, []any) {
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	where := func(cond func() string) string {
		s := `SELECT day, ip, family, case_id, country, asn, org, first_seen, last_seen, hits, protocols, bot_ids FROM event_day_ip WHERE day = ` + arg(day)
		if cond != nil {
			s += ` AND ` + cond()
		}
		if pos != nil {
			ip := pos.IP.Unmap().AsSlice()
			s += ` AND (ip > ` + arg(ip) + ` OR (ip = ` + arg(ip) + ` AND family > ` + arg(pos.Family) + `))`
		}
		return s
	}
	if sel == nil {
		return where(nil) + ` ORDER BY ip, family`, args
	}
	var parts []string
	for _, p := range sel.Prefixes {
		lo, hi := store.PrefixRange(p)
		parts = append(parts, where(func() string {
			return `ip BETWEEN ` + arg(lo) + ` AND ` + arg(hi) + ` AND length(ip) = ` + arg(len(lo))
		}))
	}
	if len(sel.ASNs) > 0 {
		asns := make([]int64, len(sel.ASNs))
		for i, n := range sel.ASNs {
			asns[i] = int64(n)
		}
		parts = append(parts, where(func() string { return `asn = ANY(` + arg(asns) + `)` }))
	}
	if len(sel.Countries) > 0 {
		var cs []string
		for _, c := range sel.Countries {
			cs = append(cs, strings.ToUpper(c), strings.ToLower(c))
		}
		parts = append(parts, where(func() string { return `country = ANY(` + arg(cs) + `)` }))
	}
	return strings.Join(parts, ` UNION `) + ` ORDER BY ip, family`, args
}
