package stats

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/takedown/takedown/internal/store"
)

// Sets reads the hourly sets the store's writer keeps (hourly.go).
type Sets interface {
	// SetsFrom returns the first UTC day (unix seconds of its midnight)
	// from which every day's aggregates were all written with their sets;
	// older days (written before the store had them) are built from the
	// aggregates as before.
	SetsFrom(ctx context.Context) (int64, error)
	// LoadSets returns the stored blobs of the named parts of day, per
	// part, from one snapshot.
	LoadSets(ctx context.Context, day int64, parts []string) (map[string][][]byte, error)
	// RawFrom returns the first UTC day from which every day's raw events
	// are all stored (purges delete whole days before a cutoff), and false
	// when no raw event is stored.
	RawFrom(ctx context.Context) (int64, bool, error)
}

// SetsCompactor is what a store whose Sets it is may also do: merge the
// blobs of every part of the closed days (before the UTC midnight before)
// that has more than one into one, returning how many parts it merged.
// BuildBlocks runs it first, so that a closed day is read as one blob a
// part, without a union.
type SetsCompactor interface {
	CompactClosedDays(ctx context.Context, before int64) (int, error)
}

// setsDay builds the part [lo, hi) of day d (unix seconds) from the hourly
// sets, with the key sets of dimension by (and of case when withCase).
// Whole hours come from the hour parts (the whole day from the day part);
// the parts of at most two hours that the window cuts come from the raw
// events of those parts. When those are gone (purged), the whole cut
// hours count and the result says how many addresses were undecided.
func (e *Engine) setsDay(ctx context.Context, d, lo, hi int64, by Dim, withCase bool) (*Day, uint64, error) {
	var dims []Dim
	if by != "" && by != ByFamily {
		dims = append(dims, by)
	}
	if withCase && by != ByCase {
		dims = append(dims, ByCase)
	}
	return e.setsDayDims(ctx, d, lo, hi, dims)
}

// setsDayDims is setsDay with the key sets of dims (never ByFamily).
func (e *Engine) setsDayDims(ctx context.Context, d, lo, hi int64, dims []Dim) (*Day, uint64, error) {
	const hour = 3600
	var parts []string
	// Whole hours [hlo, hhi) of the day; the cut edges around them.
	hlo, hhi := (lo-d+hour-1)/hour, (hi-d)/hour
	type edge struct{ from, to int64 }
	var edges []edge
	whole := lo == d && hi == d+daySecs
	if !whole && lo == d {
		// A window from midnight to a moment after the day's last event
		// (today, to now) holds the whole day so far: its day part,
		// without the hours' union or a raw scan of the cut hour.
		var err error
		if whole, err = e.nothingFrom(ctx, d, hi); err != nil {
			return nil, 0, err
		}
	}
	if whole {
		parts = append(parts, partDay)
	} else {
		for h := hlo; h < hhi; h++ {
			parts = append(parts, hourPart(uint(h)))
		}
		if lo < d+hlo*hour {
			edges = append(edges, edge{lo, min(hi, d+hlo*hour)})
		}
		if hhi >= hlo && hi > d+hhi*hour {
			edges = append(edges, edge{max(lo, d+hhi*hour), hi})
		}
		// The cut hours' identifier sets count whole (identifiers are
		// kept per hour), and their address sets stand in for the raw
		// events when those are gone.
		for _, g := range edges {
			parts = append(parts, hourPart(uint((g.from-d)/hour)))
		}
	}
	for _, dim := range dims {
		parts = append(parts, keyPart(dim))
	}
	blobs, err := e.sets.LoadSets(ctx, d, parts)
	if err != nil {
		return nil, 0, fmt.Errorf("sets of %s: %w", time.Unix(d, 0).UTC().Format(time.DateOnly), err)
	}
	edgePart := make(map[string]bool, len(edges))
	for _, g := range edges {
		edgePart[hourPart(uint((g.from-d)/hour))] = true
	}
	// Per name, the sets of the whole hours (or day) and of the cut hours.
	inner, cut := make(map[string][]partSet), make(map[string][]partSet)
	keyed := make(map[Dim]namedSets, len(dims))
	for _, part := range parts {
		for _, b := range blobs[part] {
			m, err := decodeNamed(b)
			if err != nil {
				return nil, 0, fmt.Errorf("sets of %s, part %s: %w", time.Unix(d, 0).UTC().Format(time.DateOnly), part, err)
			}
			if dim, ok := strings.CutPrefix(part, partKeyPrefix); ok {
				k := keyed[Dim(dim)]
				if k == nil {
					k = make(namedSets)
					keyed[Dim(dim)] = k
				}
				for name, s := range m {
					if have, ok := k[name]; ok {
						s = Union(have, s)
					}
					k[name] = s
				}
				continue
			}
			for name, s := range m {
				if edgePart[part] {
					cut[name] = append(cut[name], partSet{Set: s})
				} else {
					inner[name] = append(inner[name], partSet{Set: s})
				}
			}
		}
	}
	var undecided uint64
	// One set per name for the raw events' sources (a union of a set per
	// event would copy the growing union once per event).
	rawSet := func(name string) Set {
		ss := inner[name]
		if len(ss) > 0 && ss[len(ss)-1].raw {
			return ss[len(ss)-1].Set
		}
		s := NewSet()
		inner[name] = append(ss, partSet{Set: s, raw: true})
		return s
	}
	if len(edges) > 0 {
		complete, err := e.rawComplete(ctx, d)
		if err != nil {
			return nil, 0, err
		}
		if complete {
			// The raw events of the cut parts decide, by family and kind.
			for _, g := range edges {
				err := e.raw.ScanEventSources(ctx, time.Unix(g.from, 0), time.Unix(g.to, 0), func(ip netip.Addr, family string, p store.Protocols) error {
					workOf(ctx).addRaw(1)
					var name string
					switch {
					case p&store.Direct != 0:
						name = directName(family)
					case p == store.ProtoDNS:
						name = dnsName
					default:
						return nil
					}
					rawSet(name).Add(ip)
					return nil
				})
				if err != nil {
					return nil, 0, fmt.Errorf("raw events of %s: %w", time.Unix(d, 0).UTC().Format(time.DateOnly), err)
				}
			}
		}
		var undecidedSets []Set
		for name, ss := range cut {
			switch {
			case strings.HasPrefix(name, "b\x00"):
				inner[name] = append(inner[name], ss...)
			case !complete:
				inner[name] = append(inner[name], ss...)
				for _, s := range ss {
					undecidedSets = append(undecidedSets, s.Set)
				}
			}
		}
		undecided = UnionLen(undecidedSets...)
	}
	sets := make(map[string][]Set, len(inner))
	for name, ss := range inner {
		for _, s := range ss {
			sets[name] = append(sets[name], s.Set)
		}
	}
	return buildFromSets(d, sets, keyed, whole), undecided, nil
}

// errStopScan ends a raw scan early.
var errStopScan = errors.New("stop scan")

// nothingFrom reports whether day d has no raw event at or after t (unix
// seconds): then [d, t) holds every contact of the day. It needs every raw
// event of d (not purged). The sets never lead the raw events (an event's
// aggregate is written after the event), so a set cannot hold a contact
// this check missed; an event stored after the check with a time after t
// would be counted as if the window ended a moment later.
func (e *Engine) nothingFrom(ctx context.Context, d, t int64) (bool, error) {
	complete, err := e.rawComplete(ctx, d)
	if err != nil || !complete {
		return false, err
	}
	found := false
	err = e.raw.ScanEventSources(ctx, time.Unix(t, 0), time.Unix(d+daySecs, 0), func(netip.Addr, string, store.Protocols) error {
		found = true
		return errStopScan
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return false, fmt.Errorf("raw events of %s: %w", time.Unix(d, 0).UTC().Format(time.DateOnly), err)
	}
	return !found, nil
}

// partSet is a set read from a part, or built from raw events.
type partSet struct {
	Set
	raw bool
}

// unionRO is Union, except that a single set is returned as is: the sets
// of a day built from its parts are only read.
func unionRO(ss []Set) Set {
	if len(ss) == 1 {
		return ss[0]
	}
	return Union(ss...)
}

// rawComplete reports whether the raw events of day d are all still
// stored (none purged), so that they can decide the cut hours.
func (e *Engine) rawComplete(ctx context.Context, d int64) (bool, error) {
	if e.raw == nil {
		return false, nil
	}
	from, ok, err := e.sets.RawFrom(ctx)
	if err != nil {
		return false, fmt.Errorf("first day with raw events: %w", err)
	}
	return ok && d >= from, nil
}

// buildFromSets makes a Day of the direct, DNS and identifier sets by name
// (to be unioned) and the key sets of some dimensions.
// On a whole day a key set needs no intersection: it holds only sources
// with a direct contact that day (SetDelta.Add).
func buildFromSets(d int64, sets map[string][]Set, keyed map[Dim]namedSets, whole bool) *Day {
	day := newDay(d)
	direct := make(map[string]Set)
	var all []Set
	idFamilies := make(map[string]bool)
	bots := make(map[string][]Set)
	var dns []Set
	for name, ss := range sets {
		switch {
		case name == dnsName:
			dns = ss
		case strings.HasPrefix(name, "d\x00"):
			s := unionRO(ss)
			direct[name[2:]] = s
			all = append(all, s)
		case strings.HasPrefix(name, "b\x00"):
			fam, caseKey, _ := strings.Cut(name[2:], "\x00")
			bots[caseKey] = append(bots[caseKey], ss...)
			idFamilies[fam] = true
		}
	}
	day.All = unionRO(all)
	// Resolvers are the DNS sources without a direct contact that day, as
	// the aggregates' masks say (Resolver), so that a case restriction
	// (restrict) keeps them store-wide.
	r := Union(dns...)
	r.V4.AndNot(day.All.V4)
	r.V6.AndNot(day.All.V6)
	day.Resolvers = r
	var id []Set
	for f, s := range direct {
		if s.Len() == 0 {
			continue
		}
		day.By[ByFamily][f] = s
		if idFamilies[f] {
			id = append(id, s)
		}
	}
	day.IDAddrs = unionRO(id)
	for caseKey, ss := range bots {
		if b := unionBots(ss); !b.IsEmpty() {
			day.BotIDs[caseKey] = b
		}
	}
	for dim, k := range keyed {
		byKey := make(map[string][]Set)
		for name, s := range k {
			fam, key, _ := strings.Cut(name, "\x00")
			h, ok := direct[fam]
			if !ok {
				continue
			}
			if !whole {
				if s = intersect(h, s); s.Len() == 0 {
					continue
				}
			}
			byKey[key] = append(byKey[key], s)
		}
		m := day.By[dim]
		for key, ss := range byKey {
			m[key] = unionRO(ss)
		}
	}
	return day
}
