package cli

import (
	"context"
	"strconv"
	"time"

	"github.com/takedown/takedown/internal/registry"
	"github.com/takedown/takedown/internal/simulate"
)

// registryDGA is the simulator's DGA family taken from the registry: the
// first generator (orders oldest first, indicators in the order's order)
// of the orders of caseID (every case if empty) in force at now, calling
// on each day the names that generator seizes for it
// (registry.GeneratedNames, the guard's refusals left out), and the names
// every generator has in force at now, which the simulator's other hosts
// must not call as fixed names. Nil without a generator.
func registryDGA(ctx context.Context, st registry.Store, now time.Time, caseID string) (*simulate.DGA, map[string]bool, error) {
	orders, err := st.Orders(ctx)
	if err != nil {
		return nil, nil, err
	}
	var d *simulate.DGA
	generated := map[string]bool{}
	for _, os := range orders {
		if (caseID != "" && os.Case != caseID) || !os.ActiveAt(now) {
			continue
		}
		sum, inds, _, err := st.Order(ctx, strconv.FormatInt(os.ID, 10))
		if err != nil {
			return nil, nil, err
		}
		o := sum.Order
		for _, ind := range inds {
			if ind.Kind != registry.KindDGA {
				continue
			}
			es, _, err := registry.InForce(o, ind, now)
			if err != nil {
				return nil, nil, err
			}
			for _, e := range es {
				generated[e.Value] = true
			}
			if d != nil {
				continue
			}
			sp, err := registry.DGASpec(ind)
			if err != nil {
				return nil, nil, err
			}
			fam := ind.Family
			if fam == "" {
				fam = sp.Family.Name
			}
			d = &simulate.DGA{Family: fam, Names: func(day time.Time) []string {
				ns, _, err := registry.GeneratedNames(o, ind, day, day, nil)
				if err != nil {
					return nil
				}
				out := make([]string, len(ns))
				for i, n := range ns {
					out[i] = n.Name
				}
				return out
			}}
		}
	}
	return d, generated, nil
}

// withoutGenerated returns names less the generated ones, unless that
// leaves none (an order of generators only: then every host calls them).
func withoutGenerated(names []string, generated map[string]bool) []string {
	var out []string
	for _, n := range names {
		if !generated[n] {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return names
	}
	return out
}
