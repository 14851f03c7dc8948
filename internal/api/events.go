package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"math"
	"mime"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/takedown/takedown/internal/netprefix"
	"github.com/takedown/takedown/internal/netscope"
	"github.com/takedown/takedown/internal/notify"
	"github.com/takedown/takedown/internal/store"
)

// EventRow is one infected address seen on one UTC day for one family: the
// store's (day, IP, family) aggregate. Sources seen only through DNS
// (resolvers) are not infected hosts and are not listed.
type EventRow struct {
	Day       string    `json:"day"` // YYYY-MM-DD, UTC
	IP        string    `json:"src_ip"`
	ASN       uint32    `json:"src_asn,omitempty"`
	Org       string    `json:"src_org,omitempty"`
	Country   string    `json:"src_geo,omitempty"`
	Family    string    `json:"family,omitempty"`
	Case      string    `json:"case,omitempty"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Hits      uint64    `json:"hits"`
	Protocols []string  `json:"protocols"`
}

var eventCSVHeader = []string{"day", "src_ip", "src_asn", "src_org", "src_geo", "family", "case", "first_seen", "last_seen", "hits", "protocols"}

// eventFilter is what a caller asked for, always narrowed by its scope.
// The scope (or, for callers who see everything, the narrowest filter)
// also goes into the store's query as a store.Selection, so that a
// network's request reads its own rows only; keep checks every row again.
type eventFilter struct {
	scope    *netscope.Networks // nil: everything (admin, analyst)
	prefix   netip.Prefix       // invalid: any
	asn      uint32
	country  string
	family   string
	hasAfter bool
	after    cursor
}

// fileName names a CSV download as the report files are named, in the
// form IntelMQ's file-name pattern takes (notify.ReportFileName):
// YYYY-MM-DD-takedown_events-<network>.csv, the network being the
// narrowest filter, else the caller's scope, else "all".
func (f *eventFilter) fileName(day time.Time) string {
	var n netscope.Networks
	switch {
	case f.prefix.IsValid():
		n.Prefixes = []netip.Prefix{f.prefix}
	case f.asn != 0:
		n.ASNs = []uint32{f.asn}
	case f.country != "":
		n.Countries = []string{f.country}
	case f.scope != nil:
		n = *f.scope
	}
	label := "all"
	if !n.Empty() {
		label = notify.NetworksLabel(n)
	}
	return notify.ReportFileName(day, "takedown_events", label, "csv")
}

// cursor is a place in the store's (day, address, family) order: the
// next page starts just after it, whether or not its row still exists.
type cursor struct {
	day    int64
	ip     netip.Addr
	family string
}

func (c cursor) position() store.Position {
	return store.Position{Day: c.day, IP: c.ip.Unmap(), Family: c.family}
}

func cursorAt(p store.Position) cursor { return cursor{p.Day, p.IP.Unmap(), p.Family} }

func (c cursor) encode() string {
	b, _ := c.ip.MarshalText()
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.day, 10) + "|" + string(b) + "|" + c.family))
}

func decodeCursor(s string) (cursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return cursor{}, errBadParameter.withf("cursor is malformed")
	}
	parts := strings.SplitN(string(raw), "|", 3)
	if len(parts) != 3 {
		return cursor{}, errBadParameter.withf("cursor is malformed")
	}
	day, err1 := strconv.ParseInt(parts[0], 10, 64)
	ip, err2 := netip.ParseAddr(parts[1])
	if err1 != nil || err2 != nil {
		return cursor{}, errBadParameter.withf("cursor is malformed")
	}
	return cursor{day, ip, parts[2]}, nil
}

// keep reports whether a row passes the caller's scope and filters. The
// scope is checked on every row, whatever the filters say: a filter only
// narrows.
func (f *eventFilter) keep(a *store.DayIP) bool {
	// Resolvers and unverified sources are not infected hosts.
	if a.Protocols&store.Direct == 0 {
		return false
	}
	if f.scope != nil && !f.scope.Covers(a.IP, a.ASN, a.Country) {
		return false
	}
	ip := a.IP.Unmap()
	if f.prefix.IsValid() && !f.prefix.Contains(ip) {
		return false
	}
	if f.asn != 0 && a.ASN != f.asn {
		return false
	}
	if f.country != "" && !strings.EqualFold(a.Country, f.country) {
		return false
	}
	if f.family != "" && a.Family != f.family {
		return false
	}
	return true
}

// selection is what the store's query selects: the scope's networks, or
// for callers who see everything the narrowest filter; nil for all rows.
func (f *eventFilter) selection() *store.Selection {
	switch {
	case f.scope != nil:
		return &store.Selection{Prefixes: f.scope.Prefixes, ASNs: f.scope.ASNs, Countries: f.scope.Countries}
	case f.prefix.IsValid():
		return &store.Selection{Prefixes: []netip.Prefix{f.prefix}}
	case f.asn != 0:
		return &store.Selection{ASNs: []uint32{f.asn}}
	case f.country != "":
		return &store.Selection{Countries: []string{f.country}}
	}
	return nil
}

// scan reads the rows of [from, to) after f's cursor that f's selection
// selects, through the store's query when it has one (store.SelectScanner)
// and else by skipping in a full scan.
func (a *API) scan(ctx context.Context, from, to time.Time, f *eventFilter, fn func(*store.DayIP) error) error {
	var after *store.Position
	if f.hasAfter {
		p := f.after.position()
		after = &p
	}
	sel := f.selection()
	if ss, ok := a.opt.Events.(store.SelectScanner); ok {
		return ss.ScanDayIPsSelect(ctx, from, to, sel, after, fn)
	}
	if after != nil && after.Day > from.Unix() {
		from = time.Unix(after.Day, 0)
	}
	return a.opt.Events.ScanDayIPs(ctx, from, to, func(d *store.DayIP) error {
		if after != nil && store.PositionOf(d).Compare(*after) <= 0 {
			return nil
		}
		if !sel.Selects(d) {
			return nil
		}
		return fn(d)
	})
}

func (a *API) eventFilter(r *http.Request, p *Principal) (*eventFilter, error) {
	q := r.URL.Query()
	f := &eventFilter{family: q.Get("family")}
	if !p.SeesAll() {
		if p == nil || p.Role != netscope.RoleNetwork {
			return nil, errForbidden.withf("IP-level data needs an analyst, admin or network token")
		}
		nets := p.Networks
		f.scope = &nets
	}
	if s := q.Get("cidr"); s != "" {
		pf, err := netprefix.Parse(s)
		if err != nil {
			return nil, errBadParameter.withf("cidr=%q is not a prefix or address", s)
		}
		f.prefix = pf
	}
	if s := q.Get("asn"); s != "" {
		v, err := strconv.ParseUint(strings.TrimPrefix(strings.ToUpper(s), "AS"), 10, 32)
		if err != nil || v == 0 {
			return nil, errBadParameter.withf("asn=%q is not an AS number", s)
		}
		f.asn = uint32(v)
	}
	if s := q.Get("country"); s != "" {
		if len(s) != 2 {
			return nil, errBadParameter.withf("country=%q is not a two-letter code", s)
		}
		f.country = strings.ToUpper(s)
	}
	if s := q.Get("cursor"); s != "" {
		c, err := decodeCursor(s)
		if err != nil {
			return nil, err
		}
		f.hasAfter, f.after = true, c
	}
	return f, nil
}

// errPageFull stops a scan once a page is complete.
var errPageFull = errors.New("page full")

// events lists infected addresses per day, scoped to the caller. Rows come
// in the store's order (day, address, family); cursor continues after the
// place the previous page ended. A page ends when it holds limit rows or
// when the request has read Options.MaxScanRows rows from the store,
// whichever comes first: a page may hold fewer than limit rows and still
// have a next_cursor.
func (a *API) events(w http.ResponseWriter, r *http.Request, p *Principal) error {
	q := r.URL.Query()
	from, to, err := a.window(q)
	if err != nil {
		return err
	}
	// Rows are per UTC day: every day the window touches is listed.
	from = time.Unix(store.DayOf(from), 0).UTC()
	if from, to, err = a.eventsWindow(r.Context(), from, to); err != nil {
		return err
	}
	limit, err := intParam(q, "limit", 1000, 1, math.MaxInt)
	if err != nil {
		return err
	}
	if limit > MaxLimit {
		return errTooLarge.withf("limit=%d: a page holds at most %d rows; follow next_cursor for more", limit, MaxLimit)
	}
	format := q.Get("format")
	if format == "" {
		format = "json"
	}
	if format != "json" && format != "jsonl" && format != "csv" {
		return errBadParameter.withf("format=%q: want json, jsonl or csv", format)
	}
	f, err := a.eventFilter(r, p)
	if err != nil {
		return err
	}
	rows := make([]EventRow, 0, min(limit, 256))
	var (
		last    store.Position // the place the page ends: the last row read and passed on
		scanned int
		more    bool
	)
	err = a.scan(r.Context(), from, to, f, func(d *store.DayIP) error {
		if len(rows) == limit {
			more = true
			return errPageFull
		}
		scanned++
		last = store.PositionOf(d)
		if f.keep(d) {
			rows = append(rows, EventRow{
				Day: d.Day.UTC().Format("2006-01-02"), IP: d.IP.Unmap().String(), ASN: d.ASN, Org: d.Org,
				Country: d.Country, Family: d.Family, Case: d.Case, FirstSeen: d.FirstSeen.UTC(), LastSeen: d.LastSeen.UTC(),
				Hits: d.Hits, Protocols: d.Protocols.Names(),
			})
		}
		if scanned >= a.opt.MaxScanRows {
			more = true
			return errPageFull
		}
		return nil
	})
	a.work.rows.WithLabelValues("events").Add(float64(scanned))
	if err != nil && !errors.Is(err, errPageFull) {
		return errInternal.wrap(err)
	}
	next := ""
	if more {
		next = cursorAt(last).encode()
		w.Header().Set("X-Next-Cursor", next)
	}
	// Every read of IP-level data is logged (issue 7), before it is
	// answered: a read that cannot be logged is refused.
	if err := a.access(r, p, len(rows)); err != nil {
		return errInternal.wrap(err)
	}
	switch format {
	case "jsonl":
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		for i := range rows {
			if err := enc.Encode(&rows[i]); err != nil {
				return err
			}
		}
		return nil
	case "csv":
		var buf bytes.Buffer
		cw := csv.NewWriter(&buf)
		_ = cw.Write(eventCSVHeader)
		for _, e := range rows {
			_ = cw.Write([]string{e.Day, e.IP, strconv.FormatUint(uint64(e.ASN), 10), e.Org, e.Country, e.Family, e.Case,
				e.FirstSeen.Format(time.RFC3339), e.LastSeen.Format(time.RFC3339), strconv.FormatUint(e.Hits, 10), strings.Join(e.Protocols, " ")})
		}
		cw.Flush()
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": f.fileName(from)}))
		_, err := w.Write(buf.Bytes())
		return err
	}
	return writeJSON(w, map[string]any{"from": from, "to": to, "rows": rows, "next_cursor": next})
}
