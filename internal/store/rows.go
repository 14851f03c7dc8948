package store

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Rows is a query result as the backends get it: *sql.Rows and pgx.Rows
// both are one. The scanners below decode the rows of the backends' common
// columns, so that the backends cannot come to disagree on them.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// ScanDayIPs calls fn with each row of rows, which select day, ip, family,
// case_id, country, asn, org, first_seen, last_seen, hits, protocols,
// bot_ids of event_day_ip. fn's *DayIP is reused. It returns fn's first
// error as it is; rows.Err is left to the caller.
func ScanDayIPs(rows Rows, fn func(*DayIP) error) error {
	var (
		a                         DayIP
		day, asn, f, l, h, protos int64
		ip                        []byte
		bots                      string
	)
	for rows.Next() {
		if err := rows.Scan(&day, &ip, &a.Family, &a.Case, &a.Country, &asn, &a.Org, &f, &l, &h, &protos, &bots); err != nil {
			return fmt.Errorf("scan aggregates: %w", err)
		}
		addr, ok := netip.AddrFromSlice(ip)
		if !ok {
			return fmt.Errorf("scan aggregates: bad address bytes %x", ip)
		}
		a.Day, a.IP, a.ASN = time.Unix(day, 0).UTC(), addr, uint32(asn)
		a.FirstSeen, a.LastSeen = time.Unix(0, f).UTC(), time.Unix(0, l).UTC()
		a.Hits, a.Protocols, a.BotIDs = uint64(h), Protocols(protos), SplitBotIDs(bots)
		if err := fn(&a); err != nil {
			return err
		}
	}
	return nil
}

// ScanRollups reads rows, which select day, country, asn, family, case_id,
// ips, resolver_ips, hits of event_rollups.
func ScanRollups(rows Rows) ([]Rollup, error) {
	var out []Rollup
	for rows.Next() {
		var r Rollup
		var day, asn, ips, res, hits int64
		if err := rows.Scan(&day, &r.Country, &asn, &r.Family, &r.Case, &ips, &res, &hits); err != nil {
			return nil, fmt.Errorf("read rollups: %w", err)
		}
		r.Day, r.ASN, r.IPs, r.ResolverIPs, r.Hits = time.Unix(day, 0).UTC(), uint32(asn), uint64(ips), uint64(res), uint64(hits)
		out = append(out, r)
	}
	return out, rows.Err()
}

// ScanHealth reads rows, which select name, received, stored, dropped,
// summarised: the totals in the one row whose name is NULL, a listener's
// counters in each other (whose summarised is not kept). Listeners come out sorted by name.
func ScanHealth(rows Rows) (Health, error) {
	var h Health
	totals := false
	for rows.Next() {
		var name *string
		var r, st, d, sum int64
		if err := rows.Scan(&name, &r, &st, &d, &sum); err != nil {
			return Health{}, fmt.Errorf("read health: %w", err)
		}
		if name == nil {
			h.Received, h.Stored, h.Dropped, h.Summarised, totals = uint64(r), uint64(st), uint64(d), uint64(sum), true
			continue
		}
		h.Listeners = append(h.Listeners, ListenerHealth{Name: *name, Received: uint64(r), Stored: uint64(st), Dropped: uint64(d)})
	}
	if err := rows.Err(); err != nil {
		return Health{}, fmt.Errorf("read health: %w", err)
	}
	if !totals {
		return Health{}, errors.New("read health: no totals row")
	}
	slices.SortFunc(h.Listeners, func(x, y ListenerHealth) int { return strings.Compare(x.Name, y.Name) })
	return h, nil
}

// ScanEvidenceRotations reads rows, which select idx, sig of
// evidence_rotations (a shared evidence log's key rotations): each
// signature by its record's leaf index.
func ScanEvidenceRotations(rows Rows) (map[uint64][]byte, error) {
	out := map[uint64][]byte{}
	for rows.Next() {
		var idx int64
		var sig []byte
		if err := rows.Scan(&idx, &sig); err != nil {
			return nil, fmt.Errorf("evidence rotations: %w", err)
		}
		out[uint64(idx)] = sig
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("evidence rotations: %w", err)
	}
	return out, nil
}
