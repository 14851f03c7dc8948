package registry

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/takedown/takedown/internal/dga"
)

// Generated is one name a dga indicator yields for one UTC day.
type Generated struct {
	Name   string    `json:"name"`
	Day    time.Time `json:"day"` // UTC midnight
	Family string    `json:"family"`
	// From and Until are when the name is seized: its day widened by the
	// generator's margin on both sides, within the order's window.
	From  time.Time `json:"from"`
	Until time.Time `json:"until"`
}

// Skip is a generated name the collateral-damage guard refused.
type Skip struct {
	Name   string    `json:"name"`
	Day    time.Time `json:"day"`
	Reason string    `json:"reason"`
}

// parseDGA is [Parse] for a dga indicator; the margin stays unset until
// [ParseFile] resolves it.
func parseDGA(raw, s string) (Indicator, error) {
	sp, err := dga.Parse(s)
	if err != nil {
		return Indicator{}, fmt.Errorf("%q: %w", raw, err)
	}
	return Indicator{Kind: KindDGA, Value: sp.String()}, nil
}

// DGASpec returns the generator of a dga indicator.
func DGASpec(ind Indicator) (*dga.Spec, error) {
	if ind.Kind != KindDGA {
		return nil, fmt.Errorf("%s %s is not a dga indicator", ind.Kind, ind.Value)
	}
	return dga.Parse(ind.Value)
}

// resolveDGA writes a dga indicator's margin into its value: def when the
// line named none and def > 0, else the family's default.
func resolveDGA(ind *Indicator, def time.Duration) error {
	sp, err := DGASpec(*ind)
	if err != nil {
		return err
	}
	sp.Resolve(def)
	ind.Value = sp.String()
	return nil
}

// generatedGuard is the guard every consumer applies to generated names:
// public suffixes and the shipped never-seize list. Special-use TLDs are
// decided once, at import, on the generator's TLD list.
var generatedGuard = sync.OnceValue(func() *Guard {
	g, err := NewGuard(nil)
	if err != nil {
		panic("registry: the shipped never-seize list does not parse: " + err.Error())
	}
	g.AllowReserved = true
	return g
})

// window is when an indicator of o is in force: the later start and the
// earlier end of the order (ended at its revocation) and the indicator.
func window(o Order, ind Indicator) (from, until time.Time) {
	from, until = o.Effective, o.Expires
	if o.Revoked && !o.RevokedAt.IsZero() && o.RevokedAt.Before(until) {
		until = o.RevokedAt
	}
	if ind.From.After(from) {
		from = ind.From
	}
	if !ind.Until.IsZero() && ind.Until.Before(until) {
		until = ind.Until
	}
	return from.UTC(), until.UTC()
}

func floorDay(t time.Time) time.Time { return t.UTC().Truncate(dga.Day) }

// GeneratedNames returns the names that ind, a dga indicator of o, yields
// for each UTC day from the day of from to the day of to (both included)
// that overlaps the order's window: the names the order seizes ahead of
// time. A name repeated within a day is listed once. Names that g (nil: the
// shipped never-seize list and the public suffixes) refuses, or that were
// refused at import (ind.Skipped), are returned in skipped instead.
func GeneratedNames(o Order, ind Indicator, from, to time.Time, g *Guard) (names []Generated, skipped []Skip, err error) {
	sp, err := DGASpec(ind)
	if err != nil {
		return nil, nil, err
	}
	if g == nil {
		g = generatedGuard()
	}
	refused := map[string]string{}
	for _, s := range ind.Skipped {
		refused[s.Name] = s.Reason
	}
	fam := ind.Family
	if fam == "" {
		fam = sp.Family.Name
	}
	wFrom, wUntil := window(o, ind)
	if !wUntil.After(wFrom) {
		return nil, nil, nil
	}
	first, last := floorDay(wFrom), floorDay(wUntil.Add(-1))
	if d := floorDay(from); d.After(first) {
		first = d
	}
	if d := floorDay(to); d.Before(last) {
		last = d
	}
	for day := first; !day.After(last); day = day.Add(dga.Day) {
		gFrom, gUntil := maxTime(day.Add(-sp.Margin), wFrom), minTime(day.Add(dga.Day+sp.Margin), wUntil)
		seen := make(map[string]bool, sp.Count)
		for _, n := range sp.Domains(day) {
			if seen[n] {
				continue
			}
			seen[n] = true
			reason, bad := refused[n]
			if !bad {
				if err := g.Check(Indicator{Kind: KindHost, Value: n}); err != nil {
					reason, bad = err.Error(), true
				}
			}
			if bad {
				skipped = append(skipped, Skip{Name: n, Day: day, Reason: reason})
				continue
			}
			names = append(names, Generated{Name: n, Day: day, Family: fam, From: gFrom, Until: gUntil})
		}
	}
	return names, skipped, nil
}

// CheckGenerated applies g to every name ind yields over o's window and
// records the refusals in ind.Skipped, so that the registry never serves
// them; it returns how many names the indicator yields and how many were
// skipped. (Guard.Check refuses a generator with a special-use TLD unless
// AllowReserved, when the file is parsed.)
func CheckGenerated(o Order, ind *Indicator, g *Guard) (yields, skipped int, err error) {
	check := *g
	check.AllowReserved = true
	ind.Skipped = nil
	names, skips, err := GeneratedNames(o, *ind, o.Effective, o.Expires, &check)
	if err != nil {
		return 0, 0, err
	}
	ind.Skipped = skips
	return len(names), len(skips), nil
}

// InForce returns the names of ind, a dga indicator of o, in force at at
// (each with its order's case and window), and the next instant after at at
// which one starts or ends (zero if none). A name generated for several days
// in force at once is one entry, in force over the union of their windows.
func InForce(o Order, ind Indicator, at time.Time) ([]Entry, time.Time, error) {
	sp, err := DGASpec(ind)
	if err != nil {
		return nil, time.Time{}, err
	}
	at = at.UTC()
	wFrom, wUntil := window(o, ind)
	var next time.Time
	consider := func(t time.Time) {
		if t.After(at) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if o.Revoked || !wUntil.After(wFrom) {
		return nil, time.Time{}, nil
	}
	consider(wFrom)
	consider(wUntil)
	m := sp.Margin
	// Days whose widened window contains at: day−m ≤ at < day+1d+m.
	lo, hi := floorDay(at.Add(-m-dga.Day)), floorDay(at.Add(m))
	var out []Entry
	index := map[string]int{}
	for day := lo; !day.After(hi.Add(dga.Day)); day = day.Add(dga.Day) {
		if !day.Add(dga.Day).After(wFrom) || !day.Before(wUntil) {
			continue // the day is outside the order's window
		}
		gFrom, gUntil := maxTime(day.Add(-m), wFrom), minTime(day.Add(dga.Day+m), wUntil)
		consider(gFrom)
		if at.Before(gFrom) || !at.Before(gUntil) {
			continue
		}
		consider(gUntil)
		names, _, err := GeneratedNames(o, ind, day, day, nil)
		if err != nil {
			return nil, time.Time{}, err
		}
		for _, n := range names {
			if i, dup := index[n.Name]; dup {
				e := &out[i]
				e.Effective, e.Expires = minTime(e.Effective, n.From), maxTime(e.Expires, n.Until)
				continue
			}
			index[n.Name] = len(out)
			out = append(out, Entry{Kind: KindHost, Value: n.Name, Family: n.Family, Case: o.Case, Court: o.Court,
				OrderID: o.ID, Effective: n.From, Expires: n.Until})
		}
	}
	return out, next, nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// ActiveRange returns what the orders of st (every case, or only caseID)
// seize on the UTC days from the day of from to the day of to, both
// included: the fixed indicators in force at some instant of those days and
// every name a generator yields for one of them, with the day's margin as
// its window (registries and resolvers load it ahead of time). At is the
// first day; the set is deterministic for a registry serial.
func ActiveRange(ctx context.Context, st Store, from, to time.Time, caseID string) (*ActiveSet, error) {
	first, last := floorDay(from), floorDay(to)
	if last.Before(first) {
		return nil, fmt.Errorf("the range ends (%s) before it starts (%s)", last.Format(time.DateOnly), first.Format(time.DateOnly))
	}
	end := last.Add(dga.Day)
	serial, err := st.Serial(ctx)
	if err != nil {
		return nil, err
	}
	orders, err := st.Orders(ctx)
	if err != nil {
		return nil, err
	}
	set := &ActiveSet{At: first, Serial: serial}
	index := map[string]int{} // case and name of a generated entry
	for _, os := range orders {
		if caseID != "" && os.Case != caseID {
			continue
		}
		sum, inds, _, err := st.Order(ctx, strconv.FormatInt(os.ID, 10))
		if err != nil {
			return nil, err
		}
		o := sum.Order
		for _, ind := range inds {
			wFrom, wUntil := window(o, ind)
			if !wFrom.Before(end) || !wUntil.After(first) || !wUntil.After(wFrom) {
				continue
			}
			fam := ind.Family
			if fam == "" {
				fam = o.Family
			}
			if ind.Kind != KindDGA {
				e := Entry{Kind: ind.Kind, Value: ind.Value, Family: fam, Case: o.Case, Court: o.Court, OrderID: o.ID, Effective: wFrom, Expires: wUntil}
				if ind.Kind == KindIP || ind.Kind == KindCIDR {
					p, err := Parse(ind.Value, ind.Kind)
					if err != nil {
						return nil, fmt.Errorf("stored indicator %q: %w", ind.Value, err)
					}
					e.Prefix = p.Prefix
				}
				set.Entries = append(set.Entries, e)
				continue
			}
			names, _, err := GeneratedNames(o, ind, first, last, nil)
			if err != nil {
				return nil, fmt.Errorf("stored generator %q of case %s: %w", ind.Value, o.Case, err)
			}
			for _, n := range names {
				key := o.Case + " " + n.Name
				if i, dup := index[key]; dup {
					e := &set.Entries[i]
					e.Effective, e.Expires = minTime(e.Effective, n.From), maxTime(e.Expires, n.Until)
					e.Day = minTime(e.Day, n.Day)
					continue
				}
				index[key] = len(set.Entries)
				set.Entries = append(set.Entries, Entry{Kind: KindHost, Value: n.Name, Family: n.Family, Case: o.Case, Court: o.Court,
					OrderID: o.ID, Effective: n.From, Expires: n.Until, Day: n.Day})
			}
		}
	}
	SortEntries(set.Entries)
	return set, nil
}
