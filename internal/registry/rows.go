package registry

import (
	"context"
	"fmt"
	"time"

	"github.com/takedown/takedown/internal/netprefix"
)

// Row is one indicator of the registry with its order: what an active set
// is computed from (ComputeActive). Each store reads its rows and computes
// its active sets with ComputeActive, and a sensor's Mirror keeps a copy
// of them, so that a mirror answers exactly as the store it copies.
type Row struct {
	// Order needs ID, Case, Court, Family, Effective, Expires and Revoked.
	Order Order `json:"order"`
	// Indicator needs Kind, Value, Family, From, Until and, for a dga
	// indicator, Skipped.
	Indicator Indicator `json:"indicator"`
}

// Rows is the whole registry at one serial.
type Rows struct {
	Serial uint32 `json:"serial"`
	Rows   []Row  `json:"rows"`
}

// Dumper is a store that hands out its whole registry as Rows.
type Dumper interface {
	Rows(ctx context.Context) (*Rows, error)
}

// ComputeActive returns the entries of rs in force at at, for every case
// or only caseID when it is not empty, and the next instant at which that
// changes.
func ComputeActive(rs *Rows, at time.Time, caseID string) (*ActiveSet, error) {
	at = at.UTC()
	set := &ActiveSet{At: at, Serial: rs.Serial}
	var next time.Time
	consider := func(n time.Time) {
		if n.After(at) && (next.IsZero() || n.Before(next)) {
			next = n
		}
	}
	for i := range rs.Rows {
		o, ind := &rs.Rows[i].Order, &rs.Rows[i].Indicator
		if o.Revoked || (caseID != "" && o.Case != caseID) {
			continue
		}
		if ind.Kind == KindDGA {
			// The names a generator yields in force at at (docs/dga.md).
			es, n, err := InForce(*o, *ind, at)
			if err != nil {
				return nil, fmt.Errorf("stored generator %q of case %s: %w", ind.Value, o.Case, err)
			}
			if !n.IsZero() {
				consider(n)
			}
			set.Entries = append(set.Entries, es...)
			continue
		}
		eff, exp := o.Effective, o.Expires
		if ind.From.After(eff) {
			eff = ind.From
		}
		if !ind.Until.IsZero() && ind.Until.Before(exp) {
			exp = ind.Until
		}
		consider(eff)
		consider(exp)
		if at.Before(eff) || !at.Before(exp) {
			continue
		}
		e := Entry{Kind: ind.Kind, Value: ind.Value, Family: ind.Family, Case: o.Case, Court: o.Court, OrderID: o.ID,
			Effective: eff.UTC(), Expires: exp.UTC()}
		if e.Family == "" {
			e.Family = o.Family
		}
		if e.Kind == KindIP || e.Kind == KindCIDR {
			p, err := netprefix.Parse(e.Value)
			if err != nil {
				return nil, fmt.Errorf("stored indicator %q: %w", e.Value, err)
			}
			e.Prefix = p
		}
		set.Entries = append(set.Entries, e)
	}
	set.NextChange = next
	SortEntries(set.Entries)
	return set, nil
}
