package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/stats"
	"github.com/takedown/takedown/internal/store"
)

// The API's reads of one network's rows (store.SelectScanner) and the
// stored history's bounds (stats.DayRanger), for the event store and the
// stats store alike.
var (
	_ store.SelectScanner = (*EventStore)(nil)
	_ stats.DayRanger     = (*EventStore)(nil)
	_ store.SelectScanner = (*StatsStore)(nil)
	_ stats.DayRanger     = (*StatsStore)(nil)
)

// ScanDayIPsSelect implements store.SelectScanner.
func (s *EventStore) ScanDayIPsSelect(ctx context.Context, from, to time.Time, sel *store.Selection, after *store.Position, fn func(*store.DayIP) error) error {
	return scanSelect(ctx, s.db, from, to, sel, after, fn)
}

// ScanDayIPsSelect implements store.SelectScanner.
func (s *StatsStore) ScanDayIPsSelect(ctx context.Context, from, to time.Time, sel *store.Selection, after *store.Position, fn func(*store.DayIP) error) error {
	return scanSelect(ctx, s.db, from, to, sel, after, fn)
}

// DayRange implements stats.DayRanger.
func (s *EventStore) DayRange(ctx context.Context) (first, last time.Time, ok bool, err error) {
	return dayRange(ctx, s.db)
}

// DayRange implements stats.DayRanger.
func (s *StatsStore) DayRange(ctx context.Context) (first, last time.Time, ok bool, err error) {
	return dayRange(ctx, s.db)
}

// dayRange reads the first and last day of event_day_ip: two seeks at the
// ends of its primary key.
func dayRange(ctx context.Context, db *DB) (first, last time.Time, ok bool, err error) {
	var lo, hi sql.NullInt64
	// Two subqueries: MIN and MAX side by side would scan the table.
	if err := db.SQL().QueryRowContext(ctx, `SELECT (SELECT MIN(day) FROM event_day_ip), (SELECT MAX(day) FROM event_day_ip)`).Scan(&lo, &hi); err != nil {
		return time.Time{}, time.Time{}, false, fmt.Errorf("stored days: %w", err)
	}
	if !lo.Valid {
		return time.Time{}, time.Time{}, false, nil
	}
	return time.Unix(lo.Int64, 0).UTC(), time.Unix(hi.Int64, 0).UTC(), true, nil
}

// dayIPColumns are the columns scanDayIPRows reads: store.ScanDayIPs's,
// then org_ref and detail.
const dayIPColumns = `day, ip, family, case_id, country, asn, org, first_seen, last_seen, hits, protocols, bot_ids, org_ref, detail`

// scanDayIPRows is store.ScanDayIPs over rows that select dayIPColumns:
// an organisation stored as a ref (org_ref) is read from the string
// table, and the key's detail is set.
func scanDayIPRows(ctx context.Context, db *DB, rows *sql.Rows, fn func(*store.DayIP) error) error {
	var lerr error
	r := &dayIPRows{Rows: rows, lookup: db.strings().Lookup(ctx, &lerr)}
	err := store.ScanDayIPs(r, func(a *store.DayIP) error {
		a.Detail = r.detail
		return fn(a)
	})
	if err != nil {
		return errors.Join(err, lerr)
	}
	return nil
}

// dayIPRows hands store.ScanDayIPs the columns it scans, the organisation
// resolved from org_ref; detail is the row's.
type dayIPRows struct {
	*sql.Rows
	lookup      event.Lookup
	ref, detail int64
	all         []any
}

func (r *dayIPRows) Scan(dest ...any) error {
	const org = 6 // org's place in dest, after day, ip, family, case_id, country, asn
	r.all = append(append(r.all[:0], dest...), &r.ref, &r.detail)
	if err := r.Rows.Scan(r.all...); err != nil {
		return err
	}
	if r.ref != 0 {
		s, ok := r.lookup(uint64(r.ref))
		if !ok {
			return fmt.Errorf("organisation: no string %d in event_strings", r.ref)
		}
		*dest[org].(*string) = s
	}
	return nil
}

// maxUnionPrefixes is the most prefixes queried as separate key ranges;
// more (SQLite allows 500 terms in a compound query) are tested on every
// row of the day instead.
const maxUnionPrefixes = 200

// scanSelect walks the days of [from, to) that hold aggregates (one seek
// each for the next such day) and, in each, reads only the rows sel
// selects: a key range per prefix (the primary key starts with day, ip),
// and the (asn, day) and (country, day) indexes of apiMigrations for ASNs
// and countries; the parts are merged by a UNION ordered like ScanDayIPs.
// after skips to just beyond a position, whether or not its row still
// exists.
func scanSelect(ctx context.Context, db *DB, from, to time.Time, sel *store.Selection, after *store.Position, fn func(*store.DayIP) error) error {
	if sel != nil && len(sel.Prefixes) == 0 && len(sel.ASNs) == 0 && len(sel.Countries) == 0 {
		return nil
	}
	lo, hi := store.DayOf(from), to.Unix()
	if from.Unix() != lo {
		lo += 86400 // days are whole: a window starting inside a day starts at the next
	}
	if after != nil && after.Day > lo {
		lo = after.Day
	}
	next, err := db.stmt(ctx, `SELECT MIN(day) FROM event_day_ip WHERE day >= ? AND day < ?`)
	if err != nil {
		return fmt.Errorf("scan aggregates: %w", err)
	}
	for day := lo; day < hi; day += 86400 {
		var d sql.NullInt64
		if err := next.QueryRowContext(ctx, day, hi).Scan(&d); err != nil {
			return fmt.Errorf("scan aggregates: %w", err)
		}
		if !d.Valid {
			return nil
		}
		day = d.Int64
		var pos *store.Position
		if after != nil && after.Day == day {
			pos = after
		}
		q, args := selectDayQuery(day, sel, pos)
		if err := scanQuery(ctx, db, q, args, smallSelection(sel), fn); err != nil {
			return err
		}
	}
	return nil
}

// smallSelection reports whether sel's query is one of the few shapes
// (at most preparedSelection prefixes, ASNs and countries in all, with or
// without a position) worth keeping prepared: a network owner's usual
// query, polled by its tools and the dashboard. Parsing it again took
// about as long as running it. Larger selections, which a request can
// make of many shapes, are prepared each time, so the statements kept
// stay few.
func smallSelection(sel *store.Selection) bool {
	return sel == nil || len(sel.Prefixes)+len(sel.ASNs)+len(sel.Countries) <= preparedSelection
}

const preparedSelection = 4

// scanQuery runs q, through a statement kept prepared (DB.stmt) when
// keep is true.
func scanQuery(ctx context.Context, db *DB, q string, args []any, keep bool, fn func(*store.DayIP) error) error {
	var (
		rows *sql.Rows
		err  error
	)
	if keep {
		var st *sql.Stmt
		if st, err = db.stmt(ctx, q); err == nil {
			rows, err = st.QueryContext(ctx, args...)
		}
	} else {
		rows, err = db.SQL().QueryContext(ctx, q, args...)
	}
	if err != nil {
		return fmt.Errorf("scan aggregates: %w", err)
	}
	defer rows.Close()
	if err := scanDayIPRows(ctx, db, rows, fn); err != nil {
		return err
	}
	if err := rows.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("scan aggregates: %w", err)
	}
	return nil
}

// selectDayQuery builds the query of one day's selected rows after pos.
func selectDayQuery(day int64, sel *store.Selection, pos *store.Position) (string, []any) {
	var args []any
	// index names the index a part must use: without statistics SQLite
	// would rather read the whole day through the primary key.
	where := func(index, cond string, condArgs ...any) string {
		args = append(args, day)
		args = append(args, condArgs...)
		s := `SELECT ` + dayIPColumns + ` FROM event_day_ip` + index + ` WHERE day = ?`
		if cond != "" {
			s += ` AND ` + cond
		}
		if pos != nil {
			ip := pos.IP.Unmap().AsSlice()
			s += ` AND (ip > ? OR (ip = ? AND family > ?))`
			args = append(args, ip, ip, pos.Family)
		}
		return s
	}
	if sel == nil {
		return where("", "") + ` ORDER BY ip, family`, args
	}
	var parts []string
	rangeOf := func(i int) (string, []any) {
		lo, hi := store.PrefixRange(sel.Prefixes[i])
		return `(ip BETWEEN ? AND ? AND length(ip) = ?)`, []any{lo, hi, len(lo)}
	}
	if len(sel.Prefixes) <= maxUnionPrefixes {
		for i := range sel.Prefixes {
			c, a := rangeOf(i)
			parts = append(parts, where("", c, a...))
		}
	} else {
		var ors []string
		var a []any
		for i := range sel.Prefixes {
			c, ca := rangeOf(i)
			ors = append(ors, c)
			a = append(a, ca...)
		}
		parts = append(parts, where("", "("+strings.Join(ors, " OR ")+")", a...))
	}
	if len(sel.ASNs) > 0 {
		a := make([]any, len(sel.ASNs))
		for i, n := range sel.ASNs {
			a[i] = int64(n)
		}
		parts = append(parts, where(` INDEXED BY event_day_ip_asn`, `asn IN (`+placeholders(len(a))+`)`, a...))
	}
	if len(sel.Countries) > 0 {
		// Imports keep the case of src_geo they were given: both cases
		// go through the index.
		a := make([]any, 0, 2*len(sel.Countries))
		for _, c := range sel.Countries {
			a = append(a, strings.ToUpper(c), strings.ToLower(c))
		}
		parts = append(parts, where(` INDEXED BY event_day_ip_country`, `country IN (`+placeholders(len(a))+`)`, a...))
	}
	return strings.Join(parts, ` UNION `) + ` ORDER BY ip, family`, args
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}
