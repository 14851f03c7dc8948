package app

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/registry"
)

// indicatorIn tells which seized indicator of ix a Host, SNI or address
// (in text form, with or without a port) belongs to.
func indicatorIn(ix *registry.Index, host string) (family, caseID string, ok bool) {
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

// classifyWith is the pipeline's classification stage: it fills the case
// (and the family, where no rule named one) from the registry for events
// whose listener did not: by the matched DNS name, the SNI, the Host, or
// the destination address.
func classifyWith(ix *registry.Index, e *event.Event) {
	if e.Case != "" {
		return
	}
	var fam, c string
	var ok bool
	switch {
	case e.Matched != "":
		fam, c, ok = indicatorIn(ix, e.Matched)
	case e.SSLServerName != "":
		fam, c, ok = indicatorIn(ix, e.SSLServerName)
	case e.HTTPHost != "":
		fam, c, ok = indicatorIn(ix, e.HTTPHost)
	}
	if !ok && e.DstIP.IsValid() {
		fam, c, ok = indicatorIn(ix, e.DstIP.String())
	}
	if !ok {
		return
	}
	e.Case = c
	if (e.Family == "" || e.Family == "unknown") && fam != "" {
		e.Family = fam
	}
}

// HistoricClassifier returns a classification stage for imported events:
// each event is matched against the orders in force on its own UTC day
// (indexes are built once per day seen). A registry error leaves events
// unclassified and is returned by the second function.
func HistoricClassifier(ctx context.Context, src registry.Source) (classify func(*event.Event), errf func() error) {
	var mu sync.Mutex
	days := map[int64]*registry.Index{}
	var firstErr error
	classify = func(e *event.Event) {
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
			ix = registry.NewIndex(set)
			days[day.Unix()] = ix
		}
		mu.Unlock()
		classifyWith(ix, e)
	}
	return classify, func() error { mu.Lock(); defer mu.Unlock(); return firstErr }
}
