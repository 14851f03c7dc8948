package registry

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/takedown/takedown/internal/event"
)

// CaseOf tells which seized indicator of ix a Host, SNI or address (in
// text form, with or without a port) belongs to: its family (empty when
// the order names none) and its case. A nil ix seizes nothing.
func (ix *Index) CaseOf(host string) (family, caseID string, ok bool) {
	if ix == nil {
		return "", "", false
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		if e, ok := ix.LookupAddr(addr); ok {
			return e.Family, e.Case, true
		}
		return "", "", false
	}
	if e, ok := ix.LookupName(host); ok {
		return e.Family, e.Case, true
	}
	return "", "", false
}

// FillCase is the pipeline's case stage: for an event whose listener did
// not name its case, it looks the case up by the matched DNS name, the
// SNI, the Host or the destination address, and fills the family too where
// no rule named one. An event that already has a case is left alone.
func (ix *Index) FillCase(e *event.Event) {
	if e.Case != "" {
		return
	}
	var fam, c string
	var ok bool
	switch {
	case e.Matched != "":
		fam, c, ok = ix.CaseOf(e.Matched)
	case e.SSLServerName != "":
		fam, c, ok = ix.CaseOf(e.SSLServerName)
	case e.HTTPHost != "":
		fam, c, ok = ix.CaseOf(e.HTTPHost)
	}
	if !ok && e.DstIP.IsValid() {
		fam, c, ok = ix.CaseOf(e.DstIP.String())
	}
	if !ok {
		return
	}
	e.Case = c
	if (e.Family == "" || e.Family == "unknown") && fam != "" {
		e.Family = fam
	}
}

// HistoricCases returns a case stage for imported events: each event is
// matched ([Index.FillCase]) against the orders in force on its own UTC
// day (an index is built once per day seen). A registry error leaves
// events without a case and is returned by the second function.
func HistoricCases(ctx context.Context, src Source) (fill func(*event.Event), errf func() error) {
	var mu sync.Mutex
	days := map[int64]*Index{}
	var firstErr error
	fill = func(e *event.Event) {
		day := e.Timestamp.UTC().Truncate(24 * time.Hour)
		mu.Lock()
		ix, ok := days[day.Unix()]
		if !ok {
			// The middle of the day: orders effective at some instant of
			// the day are mostly in force then; exact instants are kept for
			// live traffic.
			set, err := src.Active(ctx, day.Add(12*time.Hour), "")
			if err != nil && firstErr == nil {
				firstErr = err
			}
			ix = NewIndex(set)
			days[day.Unix()] = ix
		}
		mu.Unlock()
		ix.FillCase(e)
	}
	return fill, func() error { mu.Lock(); defer mu.Unlock(); return firstErr }
}
