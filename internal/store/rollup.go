package store

import (
	"cmp"
	"fmt"
	"slices"
)

// RollupFold folds what a batch's aggregate writes did into rollup deltas
// and bot-id updates. Both backends write a batch's deltas to their day/IP
// table (an upsert returning each key's protocols before and after) and
// feed the results here, so the rollup arithmetic is written once:
//
//	f := store.NewRollupFold()
//	f.Inserted(&d)            // a key known to be new, written by a plain INSERT
//	f.Expect(deltas)          // before an upsert of deltas
//	f.Upserted(row)           // per row the upsert returned
//	f.BotIDUpdates(), f.Rollups()
//
// It is not safe for concurrent use.
type RollupFold struct {
	expected map[dayIPKey]*Delta
	rollups  map[RollupKey]*RollupDelta
	bots     []BotIDsUpdate
	touched  []Touched
}

// Touched is one aggregate a batch wrote: the delta written and the row's
// stored attributes and protocols after the write (those of the key's
// first event, which a later delta does not change). The stats' sets are
// maintained from these (internal/stats, SetDelta).
type Touched struct {
	Delta   *Delta
	Case    string
	Country string
	ASN     uint32
	After   Protocols
}

// dayIPKey is a DayKey with the address as bytes, as the backends return it.
type dayIPKey struct {
	day    int64
	ip     string // address bytes
	family string
}

// RollupDelta is how one rollup changes: the counts to add.
type RollupDelta struct {
	Key         RollupKey
	IPs         int64
	ResolverIPs int64
	Hits        int64
}

// BotIDsUpdate is the merged bot-id list to store for one existing
// aggregate row whose list the batch extended.
type BotIDsUpdate struct {
	Day    int64
	IP     []byte // address bytes, as stored
	Family string
	IDs    string // JoinBotIDs form
}

// UpsertedRow is what an aggregate upsert returns for one key: the row's
// identity and attributes, its protocol mask before (0: the key is new) and
// after, and its bot ids as stored before the upsert.
type UpsertedRow struct {
	Day           int64
	IP            []byte
	Family        string
	Case          string
	Country       string
	ASN           uint32
	Before, After Protocols
	BotIDs        string
}

// NewRollupFold returns an empty fold.
func NewRollupFold() *RollupFold {
	return &RollupFold{rollups: make(map[RollupKey]*RollupDelta)}
}

// Inserted folds in d, written as a new key (its protocols before are none).
func (f *RollupFold) Inserted(d *Delta) {
	f.touched = append(f.touched, Touched{Delta: d, Case: d.Case, Country: d.Country, ASN: d.ASN, After: d.Protocols})
	f.add(RollupKey{Day: d.Key.Day, Country: d.Country, ASN: d.ASN, Family: d.Key.Family, Case: d.Case}, 0, d.Protocols, d.Hits)
}

// Expect indexes the deltas about to be upserted, so that Upserted can
// match each returned row to the delta that caused it. deltas must stay
// unchanged until the last Upserted call.
func (f *RollupFold) Expect(deltas []Delta) {
	if f.expected == nil {
		f.expected = make(map[dayIPKey]*Delta, len(deltas))
	}
	for i := range deltas {
		d := &deltas[i]
		f.expected[dayIPKey{d.Key.Day, string(d.Key.IP.AsSlice()), d.Key.Family}] = d
	}
}

// Upserted folds in one row returned by the upsert of expected deltas. A
// row that matches no expected delta is an error.
func (f *RollupFold) Upserted(r UpsertedRow) error {
	d := f.expected[dayIPKey{r.Day, string(r.IP), r.Family}]
	if d == nil {
		return fmt.Errorf("unexpected key %x %s", r.IP, r.Family)
	}
	if r.Before != 0 && len(d.BotIDs) > 0 {
		have := SplitBotIDs(r.BotIDs)
		if merged := MergeBotIDs(slices.Clone(have), d.BotIDs...); len(merged) != len(have) {
			f.bots = append(f.bots, BotIDsUpdate{Day: r.Day, IP: slices.Clone(r.IP), Family: r.Family, IDs: JoinBotIDs(merged)})
		}
	}
	f.add(RollupKey{Day: r.Day, Country: r.Country, ASN: r.ASN, Family: r.Family, Case: r.Case}, r.Before, r.After, d.Hits)
	f.touched = append(f.touched, Touched{Delta: d, Case: r.Case, Country: r.Country, ASN: r.ASN, After: r.After})
	return nil
}

// Touched returns the aggregates written, in the order they were folded
// in. The deltas point into the slices given to Inserted and Expect.
func (f *RollupFold) Touched() []Touched { return f.touched }

func (f *RollupFold) add(k RollupKey, before, after Protocols, hits uint64) {
	r := f.rollups[k]
	if r == nil {
		r = &RollupDelta{Key: k}
		f.rollups[k] = r
	}
	ips, res := RollupChange(before, after)
	r.IPs += ips
	r.ResolverIPs += res
	r.Hits += int64(hits)
}

// BotIDUpdates returns the bot-id lists to store, in the order the rows
// were folded in.
func (f *RollupFold) BotIDUpdates() []BotIDsUpdate { return f.bots }

// Rollups returns the rollup deltas sorted by key (day, country, ASN,
// family, case), so that concurrent writers lock rollup rows in one order.
func (f *RollupFold) Rollups() []RollupDelta {
	out := make([]RollupDelta, 0, len(f.rollups))
	for _, r := range f.rollups {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b RollupDelta) int {
		return cmp.Or(
			cmp.Compare(a.Key.Day, b.Key.Day),
			cmp.Compare(a.Key.Country, b.Key.Country),
			cmp.Compare(a.Key.ASN, b.Key.ASN),
			cmp.Compare(a.Key.Family, b.Key.Family),
			cmp.Compare(a.Key.Case, b.Key.Case),
		)
	})
	return out
}
