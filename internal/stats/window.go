package stats

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/RoaringBitmap/roaring/v2/roaring64"

	"github.com/takedown/takedown/internal/store"
)

const daySecs = 86400

// windowSets is what a window's day pieces add up to: distinct counts
// over the union of the pieces (never built, only counted: UnionLen), and
// each key's per-piece sets for rows and the rest.
type windowSets struct {
	all       uint64 // distinct direct sources
	resolvers uint64 // distinct DNS-only sources not among them
	idAddrs   uint64 // distinct sources of identifier-carrying families (a subset of all)
	idHosts   uint64 // distinct bot identifiers
	by        map[string][]Set
	byLen     map[string]uint64
	busiest   uint64 // max over pieces of sources without identifiers
	undecided uint64
}

// minCalibration is the number of distinct bot identifiers below which
// their addresses-per-identifier ratio is not used to estimate the hosts
// of the other families (too few to say anything about churn and NAT).
const minCalibration = 100

// fill sets r's totals and estimate from w.
func (w *windowSets) fill(r *Result) {
	r.UniqueIPs = w.all
	r.ResolverIPsExcluded = w.resolvers
	r.Undecided = w.undecided
	est := Estimate{Method: "none", IDHosts: w.idHosts}
	// Addresses explained by identifiers are not estimated again.
	est.ModelAddrs = w.all - w.idAddrs
	idAddrs := w.idAddrs
	switch {
	case est.ModelAddrs == 0 && est.IDHosts > 0:
		est.Method = "identifiers"
	case est.IDHosts >= minCalibration && idAddrs > 0:
		est.Method = "identifiers+calibrated"
		est.AddrsPerHost = float64(idAddrs) / float64(est.IDHosts)
		est.ModelHosts = uint64(math.Round(float64(est.ModelAddrs) / est.AddrsPerHost))
	case est.ModelAddrs > 0:
		est.Method = "busiest-day"
		est.ModelHosts = min(est.ModelAddrs, w.busiest)
		if est.ModelHosts > 0 {
			est.AddrsPerHost = float64(est.ModelAddrs) / float64(est.ModelHosts)
		}
	}
	r.Estimate = est
	r.EstimatedHosts = est.IDHosts + est.ModelHosts
}

// built is one built piece of a window, as shared between queries.
type built struct {
	day       *Day
	undecided uint64
}

// pieceKind is how a piece of a window is built.
type pieceKind uint8

const (
	pieceOpen    pieceKind = iota // a whole day without cache (today, or no cache): from the aggregates
	piecePartial                  // a day cut by the window: from the aggregates and raw events
	pieceClosed                   // a whole closed day with a cache: from the cache
	pieceSets                     // a day with hourly sets: from them (hourlyread.go)
	pieceBlock                    // closed days with sets, 2^k of them: from a block (blocks.go)
)

// firstSetsDay returns the first day built from hourly sets
// (math.MaxInt64 without Sets).
func (e *Engine) firstSetsDay(ctx context.Context) (int64, error) {
	if e.sets == nil {
		return math.MaxInt64, nil
	}
	if v := e.setsFrom.Load(); v != 0 {
		return v, nil
	}
	v, err := e.sets.SetsFrom(ctx)
	if err != nil {
		return 0, fmt.Errorf("first day with sets: %w", err)
	}
	if v == 0 {
		v = 1 // 0 means unread; day 0 and 1 are the same for a window
	}
	e.setsFrom.Store(v)
	return v, nil
}

// window computes the sets of [from, to), with the keys of dimension by,
// restricted to the sources of case caseID when it is not empty. Only the
// days inside h are built: the others hold nothing.
func (e *Engine) window(ctx context.Context, h History, from, to time.Time, by Dim, caseID string) (*windowSets, error) {
	f, t := from.Unix(), to.Unix()
	firstDay, endDay := h.Clip(f, t)
	if firstDay >= endDay {
		return combine(nil, by, 0), nil
	}
	today := store.DayOf(e.now())
	setsFrom, err := e.firstSetsDay(ctx)
	if err != nil {
		return nil, err
	}
	var fps map[int64]uint64
	// Closed days with sets in runs of at least blockDays are read as
	// blocks (blocks.go), which need the days' fingerprints too.
	if e.cache != nil && (firstDay < setsFrom || endDay-firstDay >= minBlock*daySecs) {
		var err error
		if fps, err = e.cache.Fingerprints(ctx, time.Unix(firstDay, 0), time.Unix(endDay, 0)); err != nil {
			return nil, fmt.Errorf("day fingerprints: %w", err)
		}
	}
	// The days are independent: they are built on up to GOMAXPROCS
	// goroutines (a day cut by the window, today and an uncached closed
	// day each scan their aggregates), and combined in order.
	type piece struct {
		d, lo, hi int64
		kind      pieceKind
		k         uint   // pieceBlock: 2^k days
		fp        uint64 // pieceBlock: the sum of its days' fingerprints
		built
	}
	var pieces []*piece
	// The end of the closed whole days of the window, for blocks.
	wholeEnd := min(store.DayOf(time.Unix(t, 0)), today, endDay)
	for d := firstDay; d < endDay; d += daySecs {
		p := &piece{d: d, lo: max(f, d), hi: min(t, d+daySecs)}
		if k := e.blockAt(d, p.lo, wholeEnd, setsFrom); k > 0 {
			n := int64(1) << k
			p.kind, p.k, p.hi = pieceBlock, k, d+n*daySecs
			fp := blockFP(fps, d, n)
			d += (n - 1) * daySecs
			if fp == 0 {
				continue // nothing stored those days
			}
			p.fp = fp
			pieces = append(pieces, p)
			continue
		}
		switch {
		case d >= setsFrom:
			p.kind = pieceSets
		case p.lo != d || p.hi != d+daySecs:
			p.kind = piecePartial
		case d < today && e.cache != nil:
			if _, ok := fps[d]; !ok {
				continue // nothing stored that day
			}
			p.kind = pieceClosed
		}
		pieces = append(pieces, p)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(pieces)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(pieces) || ctx.Err() != nil {
					return
				}
				p := pieces[i]
				// Concurrent queries that need the same piece (the
				// dashboard asks for several dimensions of one window at
				// once) share one build. The shared Day is only read
				// afterwards.
				// Built from the aggregates, a Day holds every dimension;
				// from the cache, only the dimension asked for.
				keyBy := Dim("*")
				fp := fps[p.d]
				switch p.kind {
				case pieceClosed, pieceSets:
					keyBy = by
				case pieceBlock:
					keyBy, fp = by, p.fp
				}
				key := fmt.Sprintf("%d/%d/%d/%s/%s/%d", p.d, p.lo, p.hi, keyBy, caseID, fp)
				v, err, _ := e.flights.Do(key, func() (any, error) {
					// A build outlives the query that started it when
					// others wait for it.
					ctx := context.WithoutCancel(ctx)
					var (
						b   built
						err error
					)
					switch p.kind {
					case piecePartial:
						b.day, b.undecided, err = e.partialDay(ctx, p.d, p.lo, p.hi)
					case pieceClosed:
						b.day, err = e.closedDay(ctx, p.d, fps[p.d], by, caseID != "")
					case pieceSets:
						b.day, b.undecided, err = e.setsDay(ctx, p.d, p.lo, p.hi, by, caseID != "")
					case pieceBlock:
						b.day, err = e.blockDay(ctx, p.d, p.k, p.fp, fps, by, caseID != "")
					default:
						b.day, _, err = e.buildDay(ctx, p.d)
					}
					if err == nil && caseID != "" {
						b.day.restrict(caseID)
					}
					return b, err
				})
				if err != nil {
					cancel(err)
					return
				}
				p.built = v.(built)
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	workOf(ctx).addPieces(len(pieces))
	days := make([]*Day, 0, len(pieces))
	var undecided uint64
	for _, p := range pieces {
		days = append(days, p.day)
		undecided += p.undecided
	}
	return combine(days, by, undecided), nil
}

func combine(days []*Day, by Dim, undecided uint64) *windowSets {
	w := &windowSets{undecided: undecided, by: make(map[string][]Set), byLen: make(map[string]uint64)}
	var all, res, ids []*roaring.Bitmap
	var all6, res6, ids6 []Set
	bots := make([]*roaring64.Bitmap, 0, len(days))
	for _, d := range days {
		all, res, ids = append(all, d.All.V4), append(res, d.Resolvers.V4), append(ids, d.IDAddrs.V4)
		all6, res6, ids6 = append(all6, Set{V6: d.All.V6}), append(res6, Set{V6: d.Resolvers.V6}), append(ids6, Set{V6: d.IDAddrs.V6})
		for _, b := range d.BotIDs {
			bots = append(bots, b)
		}
		w.busiest = max(w.busiest, d.busiestDay())
	}
	// One pass for the direct sources and, layered on them, the resolvers.
	n := unionLens32(all, res)
	w.all = n[0] + unionLen64(all6)
	w.resolvers = n[1] - n[0] + unionLen64(append(all6, res6...)) - unionLen64(all6)
	w.idAddrs = unionLen32(ids) + unionLen64(ids6)
	if len(bots) > 0 {
		w.idHosts = roaring64.FastOr(bots...).GetCardinality()
	}
	if by != "" {
		for _, d := range days {
			for k, s := range d.By[by] {
				w.by[k] = append(w.by[k], s)
			}
		}
		for k, ss := range w.by {
			w.byLen[k] = UnionLen(ss...)
		}
	}
	return w
}

// closedDay returns a closed day's sets from the cache, building and
// caching them when missing or stale.
func (e *Engine) closedDay(ctx context.Context, d int64, fp uint64, by Dim, withCase bool) (*Day, error) {
	day := newDay(d)
	ok, err := e.loadPart(ctx, day, "", fp)
	if err == nil && ok && by != "" {
		ok, err = e.loadPart(ctx, day, string(by), fp)
	}
	if err == nil && ok && withCase && by != ByCase {
		ok, err = e.loadPart(ctx, day, string(ByCase), fp)
	}
	if err != nil {
		e.log.Warn("stats cache unreadable, rebuilding", "day", time.Unix(d, 0).UTC().Format(time.DateOnly), "err", err)
	} else if ok {
		return day, nil
	}
	day, sum, err := e.buildDay(ctx, d)
	if err != nil {
		return nil, err
	}
	// The aggregates scanned are those of fingerprint fp only if no event
	// of the day arrived meanwhile: cache only then.
	if sum == fp {
		if err := e.saveDay(ctx, day, fp); err != nil {
			e.log.Warn("stats cache not written", "day", time.Unix(d, 0).UTC().Format(time.DateOnly), "err", err)
		}
	} else {
		e.log.Debug("stats day changed while read, not cached", "day", time.Unix(d, 0).UTC().Format(time.DateOnly), "fingerprint", fp, "aggregated", sum)
	}
	return day, nil
}

func (e *Engine) loadPart(ctx context.Context, day *Day, part string, fp uint64) (bool, error) {
	b, ok, err := e.cache.LoadDayPart(ctx, day.Day, part, fp)
	if err != nil || !ok {
		return false, err
	}
	workOf(ctx).addCached()
	if part == "" {
		err = day.decodeOverall(b)
	} else {
		err = day.decodeDim(Dim(part), b)
	}
	return err == nil, err
}

func (e *Engine) saveDay(ctx context.Context, day *Day, fp uint64) error {
	day.optimize()
	parts := make(map[string][]byte, len(Dims)+1)
	b, err := day.EncodeOverall()
	if err != nil {
		return err
	}
	parts[""] = b
	for _, dim := range Dims {
		if parts[string(dim)], err = day.EncodeDim(dim); err != nil {
			return err
		}
	}
	return e.cache.SaveDay(ctx, day.Day, fp, parts)
}

// buildDay builds the sets of the whole day d from its aggregates. It
// returns the sum of the aggregates' hits (the day's fingerprint).
func (e *Engine) buildDay(ctx context.Context, d int64) (*Day, uint64, error) {
	day := newDay(d)
	var sum, n uint64
	err := e.src.ScanDayIPs(ctx, time.Unix(d, 0), time.Unix(d+daySecs, 0), func(a *store.DayIP) error {
		sum += a.Hits
		n++
		add(day, a, a.Protocols)
		return nil
	})
	workOf(ctx).addRows(n)
	if err != nil {
		return nil, 0, fmt.Errorf("stats of %s: %w", time.Unix(d, 0).UTC().Format(time.DateOnly), err)
	}
	day.finish()
	return day, sum, nil
}

// add adds aggregate a, with protocol mask p, to day.
func add(day *Day, a *store.DayIP, p store.Protocols) {
	switch {
	case p&store.Direct != 0:
		day.addDirect(a.IP, a.Family, dimKeys(a), a.BotIDs)
	case p.Resolver():
		day.Resolvers.Add(a.IP)
	}
}

type ipFamily struct {
	ip     netip.Addr
	family string
}

// partialDay builds the sets of the part [lo, hi) of day d (unix seconds).
// An aggregate whose first or last sighting lies in the part, and whose
// events are all of one kind (direct, or DNS only), is decided by that
// sighting; one that spans the part or mixes DNS with direct connections
// is decided by the raw events of the part. It returns the number of
// aggregates left undecided (counted with their whole day's protocols).
func (e *Engine) partialDay(ctx context.Context, d, lo, hi int64) (*Day, uint64, error) {
	day := newDay(d)
	loNs, hiNs := lo*1e9, hi*1e9
	var sum, n uint64
	pending := make(map[ipFamily]*store.DayIP)
	defer func() { workOf(ctx).addRows(n) }()
	err := e.src.ScanDayIPs(ctx, time.Unix(d, 0), time.Unix(d+daySecs, 0), func(a *store.DayIP) error {
		sum += a.Hits
		n++
		f, l := a.FirstSeen.UnixNano(), a.LastSeen.UnixNano()
		if l < loNs || f >= hiNs {
			return nil
		}
		// Direct connections mixed with DNS queries or unverified contacts:
		// which kind fell in the part only the raw events tell.
		mixed := a.Protocols&(store.ProtoDNS|store.ProtoUnverified) != 0 && a.Protocols&store.Direct != 0
		inside := (f >= loNs && f < hiNs) || (l >= loNs && l < hiNs)
		if inside && !mixed {
			add(day, a, a.Protocols)
			return nil
		}
		c := *a
		c.BotIDs = slices.Clone(a.BotIDs)
		pending[ipFamily{a.IP.Unmap(), a.Family}] = &c
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("stats of %s: %w", time.Unix(d, 0).UTC().Format(time.DateOnly), err)
	}
	if len(pending) == 0 {
		day.finish()
		return day, 0, nil
	}
	complete := false
	if e.raw != nil {
		n, err := e.src.CountEvents(ctx, time.Unix(d, 0), time.Unix(d+daySecs, 0))
		if err != nil {
			return nil, 0, err
		}
		complete = n >= 0 && uint64(n) >= sum
	}
	if !complete {
		for _, a := range pending {
			add(day, a, a.Protocols)
		}
		day.finish()
		return day, uint64(len(pending)), nil
	}
	seen := make(map[ipFamily]store.Protocols, len(pending))
	var raw uint64
	defer func() { workOf(ctx).addRaw(raw) }()
	err = e.raw.ScanEventSources(ctx, time.Unix(lo, 0), time.Unix(hi, 0), func(ip netip.Addr, family string, p store.Protocols) error {
		raw++
		k := ipFamily{ip.Unmap(), family}
		if _, ok := pending[k]; ok {
			seen[k] |= p
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("raw events of %s: %w", time.Unix(d, 0).UTC().Format(time.DateOnly), err)
	}
	for k, p := range seen {
		add(day, pending[k], p)
	}
	day.finish()
	return day, 0, nil
}

// Warm builds and caches the sets of the closed days in [from, to) that
// are not cached yet, so that the first query after midnight does not pay
// for them, and then the blocks of closed days with hourly sets
// (BuildBlocks) and the points of a daily series over them (points.go). A
// server calls it at start and after every UTC midnight;
// it does nothing without a Cache.
func (e *Engine) Warm(ctx context.Context, from, to time.Time) error {
	if e.cache == nil {
		return nil
	}
	first, today := store.DayOf(from), store.DayOf(e.now())
	// Days with hourly sets need no cache.
	setsFrom, err := e.firstSetsDay(ctx)
	if err != nil {
		return err
	}
	today = min(today, setsFrom)
	fps, err := e.cache.Fingerprints(ctx, time.Unix(first, 0), to)
	if err != nil {
		return fmt.Errorf("day fingerprints: %w", err)
	}
	for d := first; d < to.Unix() && d < today; d += daySecs {
		if fp, ok := fps[d]; ok {
			if _, err := e.closedDay(ctx, d, fp, "", false); err != nil {
				return err
			}
		}
	}
	start := time.Now()
	n, err := e.BuildBlocks(ctx)
	if n > 0 {
		e.log.Info("stats blocks built", "blocks", n, "seconds", time.Since(start).Seconds())
	}
	if err != nil {
		return err
	}
	// The closed days' points of the dashboard's trend (points.go), as
	// far back as a daily series reaches.
	end := time.Unix(store.DayOf(e.now()), 0)
	_, err = e.Series(ctx, Query{From: end.AddDate(0, 0, -(MaxSeriesPoints - 1)), To: end}, Daily)
	return err
}
