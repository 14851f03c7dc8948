// Package store defines what the event pipeline needs from a storage
// backend (EventStore) and the backend-neutral pieces every backend shares:
// the aggregate types, the in-batch aggregation and the protocol bitmask.
// Backends live in sqlite/ and postgres/ and pass the one conformance suite
// in storetest/. It is not a query layer for analytics beyond plain scans.
package store

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/takedown/takedown/internal/event"
)

// EventStore is the durable home of raw events and their aggregates.
//
// WriteBatch stores a batch in one transaction: raw events are inserted
// unless their ID is already stored (re-delivery and re-import are
// harmless) and the health counters move in the same transaction. A batch
// that returns nil is durable; one that returns an error changed nothing.
//
// The aggregates are derived from the newly inserted events only, either in
// the same transaction or later (a backend may hold them in memory and
// write them in larger, sorted runs, rebuilding them from the raw events
// after a crash); Flush makes them reflect every stored event.
type EventStore interface {
	WriteBatch(ctx context.Context, b *Batch) (BatchResult, error)
	// Flush writes pending aggregates, so that ScanDayIPs and Rollups
	// reflect every event WriteBatch has stored.
	Flush(ctx context.Context) error
	// Health returns the persisted counters since the store was created.
	Health(ctx context.Context) (Health, error)
	// PurgeEvents deletes raw events of UTC days before before. Aggregates
	// are kept. It returns the number of events deleted.
	PurgeEvents(ctx context.Context, before time.Time) (int64, error)
	// PurgeAggregates deletes aggregates and rollups of UTC days before
	// before.
	PurgeAggregates(ctx context.Context, before time.Time) (int64, error)
	// ScanDayIPs calls fn for every (day, IP, family) aggregate whose day
	// is in [from, to), ordered by day then IP bytes then family. fn must
	// not keep the *DayIP. A non-nil error from fn stops the scan and is
	// returned.
	ScanDayIPs(ctx context.Context, from, to time.Time, fn func(*DayIP) error) error
	// Rollups returns the daily rollups of days in [from, to).
	Rollups(ctx context.Context, from, to time.Time) ([]Rollup, error)
	// CountEvents returns the number of contacts stored with a timestamp
	// in [from, to): the raw records, plus the summarised contacts of the
	// whole UTC days in the window (a summary record of count n counts n
	// on a day that lies wholly in [from, to), 1 otherwise; see
	// SummarisedByDay).
	CountEvents(ctx context.Context, from, to time.Time) (int64, error)
}

// Batch is one unit of durable storage.
type Batch struct {
	// Events are enriched and classified, each with a non-empty ID and a
	// UTC timestamp.
	Events []event.Event
	// Received is added to the received counter in the same transaction:
	// the events the listeners handed over since the previous batch. A
	// batch with no events only moves the counters.
	Received uint64
	// Dropped is added to the dropped counter in the same transaction.
	Dropped uint64
	// Listeners are the per-listener received and dropped deltas, added to
	// the listeners' counters in the same transaction; each event stored
	// anew adds one to its own listener's stored counter (see
	// ListenerChanges, which also adds up the deltas of a name given more
	// than once). They are counted apart from Received and Dropped:
	// events offered without a named listener count only in those.
	Listeners []ListenerDelta
	// Records optionally holds each event's JSON-lines record
	// (event.MarshalJSONL), encoded ahead by the caller on another
	// goroutine; nil makes the store encode them.
	Records [][]byte
}

// EncodeRecords returns b.Records, encoding them if the caller did not.
func (b *Batch) EncodeRecords() ([][]byte, error) {
	if len(b.Records) == len(b.Events) {
		return b.Records, nil
	}
	out := make([][]byte, len(b.Events))
	for i := range b.Events {
		rec, err := event.MarshalJSONL(&b.Events[i])
		if err != nil {
			return nil, errors.Join(ErrBadEvent, err)
		}
		out[i] = rec
	}
	return out, nil
}

// BatchResult says what a committed batch did.
type BatchResult struct {
	Inserted   int // events newly stored (the stored counter rose by this)
	Duplicates int // events whose ID was already stored
	// Fresh marks, per event of the batch, those newly stored (nil for a
	// batch of counters only). The evidence log appends exactly these.
	Fresh []bool
}

// ListenerDelta is what one batch adds to one listener's received and
// dropped counters.
type ListenerDelta struct {
	Name     string
	Received uint64
	Dropped  uint64
}

// Health is the persisted pipeline counters, since the store was created.
// Stored never decreases.
type Health struct {
	Received uint64 `json:"events_received"`
	Stored   uint64 `json:"events_stored"`
	Dropped  uint64 `json:"events_dropped"`
	// Summarised counts the contacts beyond a source's budget that were
	// stored only as part of a summary record (event.Event's Count): one
	// record of Count n is one stored event and n-1 summarised.
	Summarised uint64 `json:"events_summarised"`
	// Listeners are the same counters per listener, sorted by name; absent
	// until a listener counted something.
	Listeners []ListenerHealth `json:"listeners,omitempty"`
}

// ListenerHealth is the persisted counters of one listener (event.Event's
// Listener; UnnamedListener for events that name none).
type ListenerHealth struct {
	Name     string `json:"name"`
	Received uint64 `json:"events_received"`
	Stored   uint64 `json:"events_stored"`
	Dropped  uint64 `json:"events_dropped"`
}

// UnnamedListener is the listener name under which the stored and dropped
// events that name no listener are counted (events offered to the queue
// without a producer, records written before the field existed).
const UnnamedListener = "unnamed"

// ListenerOf returns the name e counts under.
func ListenerOf(e *event.Event) string {
	if e.Listener == "" {
		return UnnamedListener
	}
	return e.Listener
}

// ListenerChanges returns what a committed batch adds to each listener's
// counters: b.Listeners' received and dropped, plus one stored for every
// event that fresh marks as newly stored (fresh may be nil for a batch
// without events). One entry per name, sorted by name (the order backends
// update rows in, so concurrent writers do not deadlock); names that
// change nothing are left out.
func ListenerChanges(b *Batch, fresh []bool) []ListenerHealth {
	if len(b.Listeners) == 0 && len(fresh) == 0 {
		return nil
	}
	idx := make(map[string]int, len(b.Listeners)+1)
	var out []ListenerHealth
	at := func(name string) *ListenerHealth {
		i, ok := idx[name]
		if !ok {
			i = len(out)
			idx[name] = i
			out = append(out, ListenerHealth{Name: name})
		}
		return &out[i]
	}
	for _, d := range b.Listeners {
		if d.Received == 0 && d.Dropped == 0 {
			continue
		}
		c := at(d.Name)
		c.Received += d.Received
		c.Dropped += d.Dropped
	}
	for i, f := range fresh {
		if f {
			at(ListenerOf(&b.Events[i])).Stored++
		}
	}
	slices.SortFunc(out, func(x, y ListenerHealth) int { return strings.Compare(x.Name, y.Name) })
	return out
}

// SummarisedByDay returns, per UTC day (unix seconds of its midnight), the
// contacts beyond the first of the summary records that fresh marks as
// newly stored, and their total: what a committed batch adds to the
// summarised counters (Health.Summarised, and the per-day figure that
// CountEvents adds to the records of whole days).
func SummarisedByDay(events []event.Event, fresh []bool) (map[int64]uint64, uint64) {
	var out map[int64]uint64
	var total uint64
	for i := range events {
		e := &events[i]
		if e.Count <= 1 || (fresh != nil && !fresh[i]) {
			continue
		}
		if out == nil {
			out = make(map[int64]uint64)
		}
		out[DayOf(e.Timestamp)] += e.Count - 1
		total += e.Count - 1
	}
	return out, total
}

// ErrBadEvent is returned (wrapped) for a batch holding an event the store
// refuses: no ID, no source address or no timestamp.
var ErrBadEvent = errors.New("bad event")

// Protocols is a bitmask of the protocols an aggregate has seen.
type Protocols uint8

// Protocol bits.
const (
	ProtoDNS Protocols = 1 << iota
	ProtoHTTP
	ProtoHTTPS
	ProtoTCP
	ProtoUDP
	// ProtoUnverified is set by events whose source the sinkhole could not
	// verify (event.Event's Unverified): they add this bit instead of
	// their protocol's, so a source seen only unverified is neither a
	// direct source nor a resolver, and is never counted as infected.
	ProtoUnverified
)

// Direct is the mask of direct-connection protocols: a source seen with one
// of them is a candidate infected host; one seen only with DNS is a
// resolver.
const Direct = ProtoHTTP | ProtoHTTPS | ProtoTCP | ProtoUDP

// ProtocolBit returns the bit of an event protocol name (0 if unknown).
func ProtocolBit(p string) Protocols {
	switch p {
	case event.ProtoDNS:
		return ProtoDNS
	case event.ProtoHTTP:
		return ProtoHTTP
	case event.ProtoHTTPS:
		return ProtoHTTPS
	case event.ProtoTCP:
		return ProtoTCP
	case event.ProtoUDP:
		return ProtoUDP
	}
	return 0
}

// EventBits returns the bit an event adds to its aggregate's mask: its
// protocol's, or ProtoUnverified for an unverified event.
func EventBits(e *event.Event) Protocols {
	if e.Unverified {
		return ProtoUnverified
	}
	return ProtocolBit(e.Protocol)
}

// Unverified is the name Names gives ProtoUnverified.
const Unverified = "unverified"

// Names lists the protocols in the mask.
func (p Protocols) Names() []string {
	var out []string
	for i, n := range []string{event.ProtoDNS, event.ProtoHTTP, event.ProtoHTTPS, event.ProtoTCP, event.ProtoUDP, Unverified} {
		if p&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// Resolver reports whether a source with this mask is only a resolver: it
// sent DNS queries and made no verified direct connection.
func (p Protocols) Resolver() bool { return p&ProtoDNS != 0 && p&Direct == 0 }

// MaxBotIDs bounds the bot identifiers kept per aggregate.
const MaxBotIDs = 8

// DayIP is the aggregate of one source address, family and UTC day. Its
// attributes (case, country, ASN, organisation) are those of the first
// stored event of the key.
type DayIP struct {
	Day       time.Time // UTC midnight
	IP        netip.Addr
	Family    string
	Case      string
	Country   string
	ASN       uint32
	Org       string
	FirstSeen time.Time
	LastSeen  time.Time
	Hits      uint64
	Protocols Protocols
	BotIDs    []string // at most MaxBotIDs, in order of first sight
	// Detail is the number of the key's best direct event in the store's
	// raw events (detail.go), when the store keeps it; 0 or less: unknown,
	// read the raw events.
	Detail int64
}

// Resolver reports whether the source was only ever seen as a DNS resolver
// for this key; analytics never count it as infected.
func (a *DayIP) Resolver() bool { return a.Protocols.Resolver() }

// Rollup is the daily total of one (day, country, ASN, family, case).
type Rollup struct {
	Day         time.Time
	Country     string
	ASN         uint32
	Family      string
	Case        string
	IPs         uint64 // distinct sources with a direct connection that day
	ResolverIPs uint64 // distinct sources seen only through DNS that day
	Hits        uint64 // events
}

// RollupKey identifies a rollup.
type RollupKey struct {
	Day     int64 // unix seconds of UTC midnight
	Country string
	ASN     uint32
	Family  string
	Case    string
}

// Key returns the rollup's key.
func (r *Rollup) Key() RollupKey {
	return RollupKey{r.Day.Unix(), r.Country, r.ASN, r.Family, r.Case}
}

// WholeDays returns the UTC days that lie wholly in [from, to), as unix
// seconds [lo, hi) of their midnights (lo >= hi when there are none).
func WholeDays(from, to time.Time) (lo, hi int64) {
	lo = DayOf(from)
	if lo < from.Unix() || (lo == from.Unix() && from.Nanosecond() > 0) {
		lo += 86400
	}
	return lo, DayOf(to)
}

// DayOf returns the UTC day of t as unix seconds of its midnight.
func DayOf(t time.Time) int64 {
	s := t.Unix()
	d := s - s%86400
	if s < 0 && s%86400 != 0 {
		d -= 86400
	}
	return d
}

// DayKey identifies a DayIP aggregate.
type DayKey struct {
	Day    int64 // unix seconds of UTC midnight
	IP     netip.Addr
	Family string
}

// Delta is the change one batch brings to one DayIP aggregate.
type Delta struct {
	Key       DayKey
	Case      string
	Country   string
	ASN       uint32
	Org       string
	FirstSeen int64 // unix nanoseconds
	LastSeen  int64
	Hits      uint64
	Protocols Protocols
	BotIDs    []string
	// Hours are the hours of the day (bit h: [h:00, h+1:00) UTC) in which
	// the key had a contact of each kind: direct (Direct protocols), DNS,
	// and one carrying a bot identifier. The stats' hourly sets are built
	// from them (docs/counting.md, "Hourly sets").
	DirectHours, DNSHours, BotHours uint32
	// Detail and DetailRank are the best direct event's number and rank
	// (detail.go), from AddSeq; 0 when the events came without numbers.
	Detail, DetailRank int64
}

// HourOf returns the hour of its UTC day in which ts (unix nanoseconds)
// lies, 0 to 23.
func HourOf(ts int64) uint {
	s := ts / 1e9
	if ts < 0 && ts%1e9 != 0 {
		s--
	}
	h := s % 86400
	if h < 0 {
		h += 86400
	}
	return uint(h / 3600)
}

// Aggregator folds events into one Delta per (day, IP, family). Memory is
// bounded by the number of distinct keys added since the last Take.
// Addresses are unmapped (::ffff:a.b.c.d counts as a.b.c.d). It is not safe
// for concurrent use.
type Aggregator struct {
	idx    map[aggKey]int32
	deltas []Delta
}

// aggKey is DayKey in a form that hashes and compares fast (no address
// zone handle).
type aggKey struct {
	day    int64
	hi, lo uint64
	family string
}

func keyOf(k DayKey) aggKey {
	b := k.IP.As16()
	return aggKey{k.Day, binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:]), k.Family}
}

// Add folds events in.
func (a *Aggregator) Add(events []event.Event) { a.AddSeq(events, nil) }

// AddSeq folds events in, seqs[i] being the number of events[i] in the
// store's raw events: each key keeps its best direct event's (Delta.Detail).
// seqs nil: no detail is kept.
func (a *Aggregator) AddSeq(events []event.Event, seqs []int64) {
	if a.idx == nil {
		a.idx = make(map[aggKey]int32, len(events))
	}
	for i := range events {
		e := &events[i]
		k := DayKey{DayOf(e.Timestamp), e.SrcIP.Unmap(), e.Family}
		ts := e.Timestamp.UnixNano()
		ak := keyOf(k)
		j, ok := a.idx[ak]
		if !ok {
			j = int32(len(a.deltas))
			a.idx[ak] = j
			a.deltas = append(a.deltas, Delta{Key: k, Case: e.Case, Country: e.SrcGeo, ASN: e.SrcASN, Org: e.SrcOrg, FirstSeen: ts, LastSeen: ts})
		}
		d := &a.deltas[j]
		d.Hits += e.Contacts()
		bits := EventBits(e)
		d.Protocols |= bits
		hour := uint32(1) << HourOf(ts)
		if bits&Direct != 0 {
			d.DirectHours |= hour
		}
		if bits == ProtoDNS {
			d.DNSHours |= hour
		}
		if e.BotID != "" {
			d.BotHours |= hour
		}
		d.FirstSeen = min(d.FirstSeen, ts)
		d.LastSeen = max(d.LastSeen, ts)
		if d.Case == "" {
			d.Case = e.Case
		}
		if e.BotID != "" {
			d.BotIDs = MergeBotIDs(d.BotIDs, e.BotID)
		}
		if seqs != nil {
			d.FoldDetail(DetailRank(e), seqs[i])
		}
	}
}

// Len is the number of distinct keys held.
func (a *Aggregator) Len() int { return len(a.deltas) }

// Take returns the deltas sorted by (day, address, family), the order of
// the aggregate tables' keys, and empties the aggregator.
func (a *Aggregator) Take() []Delta {
	out := a.deltas
	a.deltas, a.idx = nil, nil
	slices.SortFunc(out, func(x, y Delta) int {
		if c := cmp.Compare(x.Key.Day, y.Key.Day); c != 0 {
			return c
		}
		if c := compareAddrBytes(x.Key.IP, y.Key.IP); c != 0 {
			return c
		}
		return strings.Compare(x.Key.Family, y.Key.Family)
	})
	return out
}

// compareAddrBytes orders addresses as their stored bytes do: all IPv4 (4
// bytes) before IPv6 (16 bytes) only where the first bytes tie, exactly as
// a BLOB comparison does.
func compareAddrBytes(a, b netip.Addr) int {
	x, y := a.AsSlice(), b.AsSlice()
	return bytes.Compare(x, y)
}

// Aggregate folds events into deltas sorted by key.
func Aggregate(events []event.Event) []Delta {
	var a Aggregator
	a.Add(events)
	return a.Take()
}

// MergeBotIDs adds ids not yet in have, up to MaxBotIDs in all.
func MergeBotIDs(have []string, ids ...string) []string {
	for _, id := range ids {
		if len(have) >= MaxBotIDs {
			break
		}
		if id != "" && !slices.Contains(have, id) {
			have = append(have, id)
		}
	}
	return have
}

// JoinBotIDs encodes bot identifiers for a text column. Identifiers are
// stored separated by newlines, which they cannot contain (CheckEvent).
func JoinBotIDs(ids []string) string { return strings.Join(ids, "\n") }

// SplitBotIDs decodes JoinBotIDs.
func SplitBotIDs(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// CheckEvent reports why a store must refuse e, or nil.
func CheckEvent(e *event.Event) error {
	switch {
	case e.ID == "":
		return errors.Join(ErrBadEvent, errors.New("event has no id"))
	case !e.SrcIP.IsValid():
		return errors.Join(ErrBadEvent, errors.New("event "+e.ID+" has no src_ip"))
	case e.Timestamp.IsZero():
		return errors.Join(ErrBadEvent, errors.New("event "+e.ID+" has no timestamp"))
	case strings.ContainsRune(e.BotID, '\n'):
		return errors.Join(ErrBadEvent, errors.New("event "+e.ID+" has a newline in bot_id"))
	}
	return nil
}

// RollupChange computes how one aggregate upsert moves its rollup: before
// and after are the key's protocol masks (before is 0 for a new key).
func RollupChange(before, after Protocols) (ips, resolverIPs int64) {
	wasDirect, isDirect := before&Direct != 0, after&Direct != 0
	wasRes, isRes := before.Resolver(), after.Resolver()
	if isDirect && !wasDirect {
		ips = 1
	}
	if isRes && !wasRes {
		resolverIPs = 1
	}
	if wasRes && !isRes {
		resolverIPs = -1
	}
	return ips, resolverIPs
}

// AddDeltas folds deltas back in (a flush that failed).
func (a *Aggregator) AddDeltas(deltas []Delta) {
	if a.idx == nil {
		a.idx = make(map[aggKey]int32, len(deltas))
	}
	for _, d := range deltas {
		ak := keyOf(d.Key)
		j, ok := a.idx[ak]
		if !ok {
			a.idx[ak] = int32(len(a.deltas))
			a.deltas = append(a.deltas, d)
			continue
		}
		x := &a.deltas[j]
		x.Hits += d.Hits
		x.Protocols |= d.Protocols
		x.DirectHours |= d.DirectHours
		x.DNSHours |= d.DNSHours
		x.BotHours |= d.BotHours
		x.FirstSeen = min(x.FirstSeen, d.FirstSeen)
		x.LastSeen = max(x.LastSeen, d.LastSeen)
		if x.Case == "" {
			x.Case = d.Case
		}
		x.BotIDs = MergeBotIDs(x.BotIDs, d.BotIDs...)
		x.FoldDetail(d.DetailRank, d.Detail)
	}
}
