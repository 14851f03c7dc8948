package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/takedown/takedown/internal/event"
)

// Raw events at rest. Both backends keep an event as its packed ID
// (event.PackID), its timestamp in unix nanoseconds, its source address's
// bytes (for reads of one network's events through an index) and its
// compact record (event.AppendCompact), whose repeated strings are
// references into the backend's string table (event_strings). An event the
// compact encoding cannot carry losslessly (event.CompactLossless), and
// every event stored before the encoding existed, is kept as its
// JSON-lines record: a reader tells the two apart by the first byte.
// Either way a reader gets back the byte-identical JSON-lines record.

// String table limits: a string longer than MaxTableString, or a new one
// once the table holds MaxTableStrings, is written inline. They bound the
// memory every reader may spend on the table (tens of MB at most), and a
// table full of one-off values (random URLs, say) only stops helping.
const (
	MaxTableString  = 160
	MaxTableStrings = 1 << 20
)

// StringTable is a backend's string table as its readers hold it in
// memory: the rows loaded so far, and a way to load more. It is safe for concurrent use.
type StringTable struct {
	mu     sync.RWMutex
	strs   map[uint64]string
	maxRef uint64
	// Templates are the templates decoded so far.
	Templates event.TemplateCache
	// Load adds the table row ref (and any others it likes) to the table
	// with Add. It is called when a reader meets a reference it does not
	// know: a string another process (or this one) stored since.
	Load func(ctx context.Context, t *StringTable, ref uint64) error
}

// NewStringTable returns an empty table that loads rows with load.
func NewStringTable(load func(ctx context.Context, t *StringTable, ref uint64) error) *StringTable {
	return &StringTable{strs: map[uint64]string{}, Load: load}
}

// Add records one table row.
func (t *StringTable) Add(ref uint64, s string) {
	t.mu.Lock()
	t.strs[ref] = s
	t.maxRef = max(t.maxRef, ref)
	t.mu.Unlock()
}

// Len is the number of rows known.
func (t *StringTable) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.strs)
}

// MaxRef is the highest reference known (0 for none).
func (t *StringTable) MaxRef() uint64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.maxRef
}

// Lookup returns an event.Lookup that loads what it misses; the first
// load error is kept in *err.
func (t *StringTable) Lookup(ctx context.Context, errp *error) event.Lookup {
	return func(ref uint64) (string, bool) {
		t.mu.RLock()
		s, ok := t.strs[ref]
		t.mu.RUnlock()
		if ok || t.Load == nil {
			return s, ok
		}
		if err := t.Load(ctx, t, ref); err != nil {
			if *errp == nil {
				*errp = fmt.Errorf("load string table: %w", err)
			}
			return "", false
		}
		t.mu.RLock()
		s, ok = t.strs[ref]
		t.mu.RUnlock()
		return s, ok
	}
}

// MaxTemplate bounds the length of a template kept in the string table
// (event.CompactTemplate); an event with a longer one is stored without.
const MaxTemplate = 1024

// MissingStrings returns the strings of events (event.CompactStrings)
// that known does not hold, each once, at most room of them: what a
// writer adds to its string table before it encodes the events.
func MissingStrings(events []event.Event, known event.Interner, room int) []string {
	var out []string
	seen := map[string]struct{}{}
	for i := range events {
		e := &events[i]
		if !event.CompactLossless(e) {
			continue
		}
		event.CompactStrings(e, func(s string) {
			if len(s) > MaxTableString || len(out) >= room {
				return
			}
			// Known first: nearly every string is, and that is one map
			// lookup instead of two.
			if _, ok := known(s); ok {
				return
			}
			if _, ok := seen[s]; ok {
				return
			}
			seen[s] = struct{}{}
			out = append(out, s)
		})
	}
	return out
}

// Templates returns each event's template (event.CompactTemplate) as the
// strings known holds make it, or "" for an event without one, one the
// compact encoding cannot carry, or one longer than MaxTemplate. Call it
// once the events' strings are added; MissingTemplates and
// EncodeEventsWith take its result, so that each event's template is
// made once (making it is most of the encoding's work: a lookup of every
// string it holds).
func Templates(events []event.Event, known event.Interner) []string {
	out := make([]string, len(events))
	for i := range events {
		e := &events[i]
		if !event.CompactLossless(e) {
			continue
		}
		if t := event.CompactTemplate(e, known); len(t) <= MaxTemplate {
			out[i] = t
		}
	}
	return out
}

// MissingTemplates is MissingStrings for the events' templates (from
// Templates).
func MissingTemplates(templates []string, known event.Interner, room int) []string {
	var out []string
	seen := map[string]struct{}{}
	for _, t := range templates {
		if t == "" || len(out) >= room {
			continue
		}
		if _, ok := known(t); ok {
			continue
		}
		if _, ok := seen[t]; ok {
			continue
		}
		seen[t] = struct{}{}
		out = append(out, t)
	}
	return out
}

// StoredEvent is one raw event as a backend keeps it.
type StoredEvent struct {
	Day    int64  // unix seconds of the UTC midnight of TS
	ID     []byte // event.PackID
	TS     int64  // unix nanoseconds
	IP     []byte // the source address unmapped: 4 or 16 bytes
	Record []byte // compact or, failing that, the JSON-lines record
}

// EncodeEventsWith returns the stored form of events: compact records
// with the strings intern knows as references. jsonl are the events'
// JSON-lines records when the caller has them (nil: made here for the
// events that need them); templates are the events' templates as
// Templates made them with intern (nil: made here).
func EncodeEventsWith(intern event.Interner, events []event.Event, jsonl [][]byte, templates []string) ([]StoredEvent, error) {
	if len(templates) != len(events) {
		templates = Templates(events, intern)
	}
	out := make([]StoredEvent, len(events))
	var buf []byte
	for i := range events {
		e := &events[i]
		if err := CheckEvent(e); err != nil {
			return nil, err
		}
		se := &out[i]
		se.Day, se.ID, se.TS, se.IP = DayOf(e.Timestamp), event.PackID(e.ID), e.Timestamp.UnixNano(), e.SrcIP.Unmap().AsSlice()
		if event.CompactLossless(e) {
			buf = event.AppendCompactWith(buf[:0], e, intern, templates[i])
			se.Record = bytes.Clone(buf)
			continue
		}
		if len(jsonl) == len(events) {
			se.Record = jsonl[i]
			continue
		}
		rec, err := event.MarshalJSONL(e)
		if err != nil {
			return nil, errors.Join(ErrBadEvent, err)
		}
		se.Record = rec
	}
	return out, nil
}

// isJSONL reports whether a stored record is a JSON-lines one.
func isJSONL(rec []byte) bool { return len(rec) > 0 && rec[0] == '{' }

// DecodeEvent returns the event of a stored record: id is the packed ID,
// ts the unix nanoseconds.
func DecodeEvent(id []byte, ts int64, rec []byte, lookup event.Lookup) (event.Event, error) {
	return DecodeEventCached(id, ts, rec, lookup, nil)
}

// DecodeEventCached is DecodeEvent with the templates of cache (which may
// be nil).
func DecodeEventCached(id []byte, ts int64, rec []byte, lookup event.Lookup, cache *event.TemplateCache) (event.Event, error) {
	if isJSONL(rec) {
		return event.UnmarshalJSONL(rec)
	}
	sid, err := unpackStoredID(id)
	if err != nil {
		return event.Event{}, err
	}
	return event.DecodeCompactCached(rec, sid, time.Unix(0, ts), lookup, cache)
}

// unpackStoredID unpacks an ID column: packed, or the text of a row
// written before IDs were packed and not migrated.
func unpackStoredID(id []byte) (string, error) {
	return event.UnpackID(id)
}

// DecodeRecord returns the JSON-lines record of a stored record, byte for
// byte the one MarshalJSONL made of the event that was stored. A
// JSON-lines record is returned as it is (not copied).
func DecodeRecord(id []byte, ts int64, rec []byte, lookup event.Lookup) ([]byte, error) {
	if isJSONL(rec) {
		return rec, nil
	}
	e, err := DecodeEvent(id, ts, rec, lookup)
	if err != nil {
		return nil, err
	}
	return event.MarshalJSONL(&e)
}

// DecodeSource returns what a scan of sources needs of a stored record:
// the event with only its protocol, source address, family and unverified
// flag set (see event.CompactSource).
func DecodeSource(rec []byte, lookup event.Lookup) (event.Event, error) {
	if isJSONL(rec) {
		return event.UnmarshalJSONL(rec)
	}
	return event.CompactSource(rec, lookup)
}
