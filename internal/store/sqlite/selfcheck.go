package sqlite

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/takedown/takedown/internal/store"
)

// maxLookupDays bounds the window of one Lookup: one seek per day.
const maxLookupDays = 400

// Lookup returns the aggregates of one source address for the UTC days in
// [from, to), ordered by day then family: what the public self-check page
// shows a visitor about their own address. It fills Day, IP, Family,
// FirstSeen, LastSeen, Hits and Protocols only (no case, network or bot
// identifiers). IPv4-mapped IPv6 addresses are looked up as IPv4.
//
// event_day_ip has no index on the address (see schema_events.go), so the
// query names every day of the window: SQLite seeks the primary key
// (day, ip) once per day instead of scanning the window.
//
// Aggregates the store still holds in memory (until the next flush: the
// pipeline's, every second in serve) are not seen.
func (s *EventStore) Lookup(ctx context.Context, addr netip.Addr, from, to time.Time) ([]store.DayIP, error) {
	if !addr.IsValid() {
		return nil, errors.New("lookup: invalid address")
	}
	addr = addr.Unmap().WithZone("")
	first, end := store.DayOf(from), store.DayOf(to)
	if store.DayOf(to) != to.Unix() { // a partial last day counts
		end += 86400
	}
	n := int((end - first) / 86400)
	if n <= 0 {
		return nil, nil
	}
	if n > maxLookupDays {
		return nil, fmt.Errorf("lookup: window of %d days is longer than %d", n, maxLookupDays)
	}
	args := make([]any, 0, n+1)
	args = append(args, addr.AsSlice())
	var q strings.Builder
	q.WriteString(`SELECT day, family, first_seen, last_seen, hits, protocols FROM event_day_ip WHERE ip = ? AND day IN (`)
	for i := range n {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteByte('?')
		args = append(args, first+int64(i)*86400)
	}
	q.WriteString(`) ORDER BY day, family`)
	rows, err := s.db.SQL().QueryContext(ctx, q.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("lookup address: %w", err)
	}
	defer rows.Close()
	var out []store.DayIP
	for rows.Next() {
		var a store.DayIP
		var day, f, l, h, protos int64
		if err := rows.Scan(&day, &a.Family, &f, &l, &h, &protos); err != nil {
			return nil, fmt.Errorf("lookup address: %w", err)
		}
		a.Day, a.IP = time.Unix(day, 0).UTC(), addr
		a.FirstSeen, a.LastSeen = time.Unix(0, f).UTC(), time.Unix(0, l).UTC()
		a.Hits, a.Protocols = uint64(h), store.Protocols(protos)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("lookup address: %w", err)
	}
	return out, nil
}
