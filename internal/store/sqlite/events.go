package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/store"
)

// Durability of a committed batch. The opener runs SQLite in WAL mode with
// synchronous=NORMAL: a committed transaction is in the WAL file (in the
// operating system's page cache) before Commit returns, so it survives the
// process being killed (kill -9, a crash, an OOM kill); only a power loss
// or kernel crash can undo the last transactions before the next
// checkpoint. FullSync (synchronous=FULL) fsyncs the WAL on every commit
// and makes a batch survive power loss too, at the cost of one fsync per
// batch.

// EventStoreOptions configures an EventStore.
type EventStoreOptions struct {
	// FullSync makes every committed batch survive power loss, not only a
	// killed process (see above).
	FullSync bool
}

// EventStore is the SQLite store.EventStore, in the same database as the
// rest of the embedded store. Writes go through one connection, one
// transaction per batch.
type EventStore struct {
	db   *DB
	mu   sync.Mutex // serialises writers on conn
	conn *sql.Conn
}

var _ store.EventStore = (*EventStore)(nil)

// NewEventStore returns the event store of db. Close it before db.
func NewEventStore(ctx context.Context, db *DB, opts EventStoreOptions) (*EventStore, error) {
	conn, err := db.SQL().Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("event store connection: %w", err)
	}
	if opts.FullSync {
		if _, err := conn.ExecContext(ctx, `PRAGMA synchronous=FULL`); err != nil {
			conn.Close()
			return nil, fmt.Errorf("event store synchronous=FULL: %w", err)
		}
	}
	return &EventStore{db: db, conn: conn}, nil
}

// Close releases the writer connection.
func (s *EventStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn.Close()
}

const (
	sqlInsertEvent = `INSERT INTO events (day, id, ts, case_id, record) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`
	sqlUpsertDayIP = `INSERT INTO event_day_ip (day, ip, family, case_id, country, asn, org, first_seen, last_seen, hits, protocols, prev_protocols, bot_ids)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)
		ON CONFLICT (day, ip, family) DO UPDATE SET
			first_seen = min(first_seen, excluded.first_seen),
			last_seen = max(last_seen, excluded.last_seen),
			hits = hits + excluded.hits,
			prev_protocols = protocols,
			protocols = protocols | excluded.protocols
		RETURNING case_id, country, asn, protocols, prev_protocols, bot_ids`
	sqlSetBotIDs    = `UPDATE event_day_ip SET bot_ids = ? WHERE day = ? AND ip = ? AND family = ?`
	sqlUpsertRollup = `INSERT INTO event_rollups (day, country, asn, family, case_id, ips, resolver_ips, hits)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (day, country, asn, family, case_id) DO UPDATE SET
			ips = ips + excluded.ips,
			resolver_ips = resolver_ips + excluded.resolver_ips,
			hits = hits + excluded.hits`
	sqlAddHealth = `UPDATE event_health SET received = received + ?, stored = stored + ?, dropped = dropped + ? WHERE id = 1`
)

// WriteBatch implements store.EventStore.
func (s *EventStore) WriteBatch(ctx context.Context, b *store.Batch) (store.BatchResult, error) {
	var res store.BatchResult
	for i := range b.Events {
		if err := store.CheckEvent(&b.Events[i]); err != nil {
			return res, err
		}
	}
	// Encode before taking the lock and the transaction.
	records := make([][]byte, len(b.Events))
	for i := range b.Events {
		rec, err := event.MarshalJSONL(&b.Events[i])
		if err != nil {
			return res, fmt.Errorf("encode event %s: %w", b.Events[i].ID, err)
		}
		records[i] = rec
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	tx, err := s.conn.BeginTx(ctx, nil)
	if err != nil {
		return res, fmt.Errorf("begin batch: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit

	ins, err := tx.PrepareContext(ctx, sqlInsertEvent)
	if err != nil {
		return res, fmt.Errorf("prepare event insert: %w", err)
	}
	defer ins.Close()
	fresh := make([]event.Event, 0, len(b.Events))
	for i := range b.Events {
		e := &b.Events[i]
		r, err := ins.ExecContext(ctx, store.DayOf(e.Timestamp), e.ID, e.Timestamp.UnixNano(), e.Case, records[i])
		if err != nil {
			return res, fmt.Errorf("insert event %s: %w", e.ID, err)
		}
		if n, _ := r.RowsAffected(); n == 1 {
			fresh = append(fresh, *e)
		}
	}
	res.Inserted = len(fresh)
	res.Duplicates = len(b.Events) - len(fresh)

	if err := upsertAggregates(ctx, tx, store.Aggregate(fresh)); err != nil {
		return store.BatchResult{}, err
	}
	if _, err := tx.ExecContext(ctx, sqlAddHealth, int64(b.Received), int64(res.Inserted), int64(b.Dropped)); err != nil {
		return store.BatchResult{}, fmt.Errorf("update health: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return store.BatchResult{}, fmt.Errorf("commit batch: %w", err)
	}
	return res, nil
}

type rollupDelta struct{ ips, resolverIPs, hits int64 }

func upsertAggregates(ctx context.Context, tx *sql.Tx, deltas []store.Delta) error {
	if len(deltas) == 0 {
		return nil
	}
	up, err := tx.PrepareContext(ctx, sqlUpsertDayIP)
	if err != nil {
		return fmt.Errorf("prepare aggregate upsert: %w", err)
	}
	defer up.Close()
	rollups := make(map[store.RollupKey]*rollupDelta)
	for i := range deltas {
		d := &deltas[i]
		ip := d.Key.IP.AsSlice()
		var (
			caseID, country, botIDs string
			asn                     int64
			after, before           int64
		)
		if err := up.QueryRowContext(ctx, d.Key.Day, ip, d.Key.Family, d.Case, d.Country, int64(d.ASN), d.Org,
			d.FirstSeen, d.LastSeen, int64(d.Hits), int64(d.Protocols), store.JoinBotIDs(d.BotIDs)).
			Scan(&caseID, &country, &asn, &after, &before, &botIDs); err != nil {
			return fmt.Errorf("upsert aggregate %s %s: %w", d.Key.IP, d.Key.Family, err)
		}
		if before != 0 && len(d.BotIDs) > 0 {
			have := store.SplitBotIDs(botIDs)
			merged := store.MergeBotIDs(slices.Clone(have), d.BotIDs...)
			if len(merged) != len(have) {
				if _, err := tx.ExecContext(ctx, sqlSetBotIDs, store.JoinBotIDs(merged), d.Key.Day, ip, d.Key.Family); err != nil {
					return fmt.Errorf("update bot ids: %w", err)
				}
			}
		}
		k := store.RollupKey{Day: d.Key.Day, Country: country, ASN: uint32(asn), Family: d.Key.Family, Case: caseID}
		r := rollups[k]
		if r == nil {
			r = &rollupDelta{}
			rollups[k] = r
		}
		ips, res := store.RollupChange(store.Protocols(before), store.Protocols(after))
		r.ips += ips
		r.resolverIPs += res
		r.hits += int64(d.Hits)
	}
	ru, err := tx.PrepareContext(ctx, sqlUpsertRollup)
	if err != nil {
		return fmt.Errorf("prepare rollup upsert: %w", err)
	}
	defer ru.Close()
	for k, r := range rollups {
		if _, err := ru.ExecContext(ctx, k.Day, k.Country, int64(k.ASN), k.Family, k.Case, r.ips, r.resolverIPs, r.hits); err != nil {
			return fmt.Errorf("upsert rollup: %w", err)
		}
	}
	return nil
}

// Health implements store.EventStore.
func (s *EventStore) Health(ctx context.Context) (store.Health, error) {
	var h store.Health
	var r, st, d int64
	if err := s.db.SQL().QueryRowContext(ctx, `SELECT received, stored, dropped FROM event_health WHERE id = 1`).Scan(&r, &st, &d); err != nil {
		return h, fmt.Errorf("read health: %w", err)
	}
	return store.Health{Received: uint64(r), Stored: uint64(st), Dropped: uint64(d)}, nil
}

// PurgeEvents implements store.EventStore.
func (s *EventStore) PurgeEvents(ctx context.Context, before time.Time) (int64, error) {
	return s.purge(ctx, `DELETE FROM events WHERE day < ?`, before)
}

// PurgeAggregates implements store.EventStore.
func (s *EventStore) PurgeAggregates(ctx context.Context, before time.Time) (int64, error) {
	n, err := s.purge(ctx, `DELETE FROM event_day_ip WHERE day < ?`, before)
	if err != nil {
		return n, err
	}
	_, err = s.purge(ctx, `DELETE FROM event_rollups WHERE day < ?`, before)
	return n, err
}

func (s *EventStore) purge(ctx context.Context, q string, before time.Time) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.conn.ExecContext(ctx, q, store.DayOf(before))
	if err != nil {
		return 0, fmt.Errorf("purge: %w", err)
	}
	return r.RowsAffected()
}

// ScanDayIPs implements store.EventStore.
func (s *EventStore) ScanDayIPs(ctx context.Context, from, to time.Time, fn func(*store.DayIP) error) error {
	rows, err := s.db.SQL().QueryContext(ctx, `SELECT day, ip, family, case_id, country, asn, org, first_seen, last_seen, hits, protocols, bot_ids
		FROM event_day_ip WHERE day >= ? AND day < ? ORDER BY day, ip, family`, from.Unix(), to.Unix())
	if err != nil {
		return fmt.Errorf("scan aggregates: %w", err)
	}
	defer rows.Close()
	var (
		a                 store.DayIP
		day, asn, f, l, h int64
		protos            int64
		ip                []byte
		bots              string
	)
	for rows.Next() {
		if err := rows.Scan(&day, &ip, &a.Family, &a.Case, &a.Country, &asn, &a.Org, &f, &l, &h, &protos, &bots); err != nil {
			return fmt.Errorf("scan aggregates: %w", err)
		}
		addr, ok := netip.AddrFromSlice(ip)
		if !ok {
			return fmt.Errorf("scan aggregates: bad address bytes %x", ip)
		}
		a.Day, a.IP, a.ASN = time.Unix(day, 0).UTC(), addr, uint32(asn)
		a.FirstSeen, a.LastSeen = time.Unix(0, f).UTC(), time.Unix(0, l).UTC()
		a.Hits, a.Protocols, a.BotIDs = uint64(h), store.Protocols(protos), store.SplitBotIDs(bots)
		if err := fn(&a); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Rollups implements store.EventStore.
func (s *EventStore) Rollups(ctx context.Context, from, to time.Time) ([]store.Rollup, error) {
	rows, err := s.db.SQL().QueryContext(ctx, `SELECT day, country, asn, family, case_id, ips, resolver_ips, hits
		FROM event_rollups WHERE day >= ? AND day < ? ORDER BY day, country, asn, family, case_id`, from.Unix(), to.Unix())
	if err != nil {
		return nil, fmt.Errorf("read rollups: %w", err)
	}
	defer rows.Close()
	var out []store.Rollup
	for rows.Next() {
		var r store.Rollup
		var day, asn, ips, res, hits int64
		if err := rows.Scan(&day, &r.Country, &asn, &r.Family, &r.Case, &ips, &res, &hits); err != nil {
			return nil, fmt.Errorf("read rollups: %w", err)
		}
		r.Day, r.ASN, r.IPs, r.ResolverIPs, r.Hits = time.Unix(day, 0).UTC(), uint32(asn), uint64(ips), uint64(res), uint64(hits)
		out = append(out, r)
	}
	return out, rows.Err()
}

// CountEvents implements store.EventStore.
func (s *EventStore) CountEvents(ctx context.Context, from, to time.Time) (int64, error) {
	var n int64
	err := s.db.SQL().QueryRowContext(ctx, `SELECT COUNT(*) FROM events WHERE day >= ? AND day <= ? AND ts >= ? AND ts < ?`,
		store.DayOf(from), store.DayOf(to), from.UnixNano(), to.UnixNano()).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count events: %w", err)
	}
	return n, nil
}
