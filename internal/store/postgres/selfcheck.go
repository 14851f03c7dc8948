package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/takedown/takedown/internal/store"
)

// maxLookupDays bounds the window of one Lookup, as on SQLite: one seek
// per day.
const maxLookupDays = 400

// Lookup returns the aggregates of one source address for the UTC days in
// [from, to), ordered by day then family: what the public self-check page
// shows a visitor about their own address (selfcheck.Store). It fills Day,
// IP, Family, FirstSeen, LastSeen, Hits and Protocols only (no case,
// network or bot identifiers). IPv4-mapped IPv6 addresses are looked up as
// IPv4. The results are the SQLite store's (sqlite.EventStore.Lookup).
//
// event_day_ip has no index on the address, so the query names every day
// of the window (day = ANY of an array): PostgreSQL seeks the primary key
// (day, ip) once per day instead of reading the window's rows.
func (s *EventStore) Lookup(ctx context.Context, addr netip.Addr, from, to time.Time) ([]store.DayIP, error) {
	if !addr.IsValid() {
		return nil, errors.New("lookup: invalid address")
	}
	addr = addr.Unmap().WithZone("")
	first, end := store.DayOf(from), store.DayOf(to)
	if end != to.Unix() { // a partial last day counts
		end += 86400
	}
	n := int((end - first) / 86400)
	if n <= 0 {
		return nil, nil
	}
	if n > maxLookupDays {
		return nil, fmt.Errorf("lookup: window of %d days is longer than %d", n, maxLookupDays)
	}
	days := make([]int64, n)
	for i := range days {
		days[i] = first + int64(i)*86400
	}
	rows, err := s.pool.Query(ctx, `SELECT day, family, first_seen, last_seen, hits, protocols FROM event_day_ip
		WHERE day = ANY($1::bigint[]) AND ip = $2 ORDER BY day, family`, days, addr.AsSlice())
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
