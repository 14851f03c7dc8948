// Package postgres is the PostgreSQL store.EventStore, for a deployment
// where several collectors and dashboards share one database (selected with
// --db postgres://…). It is not the embedded default (that is sqlite).
//
// Each batch is one transaction of a few set-based statements (arrays
// unnested server-side): the raw events, then the (day, IP, family)
// aggregates and the rollups of the newly inserted events, then the health
// counters. Aggregates are written in the batch's own transaction, so
// several collectors can write at once; their keys are written in sorted
// order, so concurrent batches lock rows in the same order and do not
// deadlock.
package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/store"
)

// migrations is the events schema, applied in order; append only. Times
// and addresses are encoded as in the SQLite store (see
// internal/store/sqlite/schema_events.go).
var migrations = []string{
	`CREATE TABLE events (
		day BIGINT NOT NULL,
		id TEXT NOT NULL,
		ts BIGINT NOT NULL,
		case_id TEXT NOT NULL DEFAULT '',
		record BYTEA NOT NULL,
		PRIMARY KEY (day, id)
	);
	CREATE TABLE event_day_ip (
		day BIGINT NOT NULL,
		ip BYTEA NOT NULL,
		family TEXT NOT NULL,
		case_id TEXT NOT NULL,
		country TEXT NOT NULL,
		asn BIGINT NOT NULL,
		org TEXT NOT NULL,
		first_seen BIGINT NOT NULL,
		last_seen BIGINT NOT NULL,
		hits BIGINT NOT NULL,
		protocols INTEGER NOT NULL,
		prev_protocols INTEGER NOT NULL DEFAULT 0,
		bot_ids TEXT NOT NULL DEFAULT '',
		PRIMARY KEY (day, ip, family)
	);
	CREATE TABLE event_rollups (
		day BIGINT NOT NULL,
		country TEXT NOT NULL,
		asn BIGINT NOT NULL,
		family TEXT NOT NULL,
		case_id TEXT NOT NULL,
		ips BIGINT NOT NULL,
		resolver_ips BIGINT NOT NULL,
		hits BIGINT NOT NULL,
		PRIMARY KEY (day, country, asn, family, case_id)
	);
	CREATE TABLE event_health (
		id INTEGER PRIMARY KEY CHECK (id = 1),
		received BIGINT NOT NULL,
		stored BIGINT NOT NULL,
		dropped BIGINT NOT NULL
	);
	INSERT INTO event_health VALUES (1, 0, 0, 0);`,
	`CREATE TABLE event_listener_health (
		name TEXT PRIMARY KEY,
		received BIGINT NOT NULL,
		stored BIGINT NOT NULL,
		dropped BIGINT NOT NULL
	);`,
	// Per-source budget: as SQLite's migration of the same name says.
	`ALTER TABLE event_health ADD COLUMN summarised BIGINT NOT NULL DEFAULT 0;
	CREATE TABLE event_day_summarised (
		day BIGINT PRIMARY KEY,
		contacts BIGINT NOT NULL
	);`,
	// The API's reads of one network's rows (select.go): a network token
	// named by ASN or country reads its own rows through these indexes, as
	// on SQLite.
	`CREATE INDEX event_day_ip_asn ON event_day_ip (asn, day);
	CREATE INDEX event_day_ip_country ON event_day_ip (country, day);`,
	// Hourly sets of package stats: as SQLite's stats migration of the
	// same tables says (internal/store/sqlite/schema_stats.go).
	`CREATE TABLE stats_sets (
		id BIGSERIAL PRIMARY KEY,
		day BIGINT NOT NULL,
		part TEXT NOT NULL,
		data BYTEA NOT NULL
	);
	CREATE INDEX stats_sets_part ON stats_sets (day, part, id);
	CREATE TABLE stats_sets_state (
		id INTEGER PRIMARY KEY CHECK (id = 1),
		sets_from BIGINT NOT NULL
	);
	INSERT INTO stats_sets_state SELECT 1, COALESCE(MAX(day) + 86400, -4611686018427387904) FROM event_day_ip;`,
	// Compact raw events: as SQLite's events migration of the same
	// change says (internal/store/sqlite/schema_events.go). Strings are
	// numbered by a sequence here (several collectors add them).
	`CREATE TABLE event_strings (
		id BIGSERIAL PRIMARY KEY,
		s TEXT NOT NULL UNIQUE
	);
	ALTER TABLE events ADD COLUMN ip BYTEA;
	ALTER TABLE events ALTER COLUMN id TYPE BYTEA USING (CASE
		WHEN id ~ '^[0-9a-f]{16}-[0-9a-f]{16}$'
			THEN decode('01' || substr(id, 1, 16) || regexp_replace(substr(id, 18), '^(00)+', ''), 'hex')
		WHEN id ~ '^ss-[0-9a-f]{32}$' THEN decode('02' || substr(id, 4), 'hex')
		WHEN id ~ '^jl-[0-9a-f]{32}$' THEN decode('03' || substr(id, 4), 'hex')
		ELSE '\x00'::bytea || convert_to(id, 'UTF8') END);
	CREATE INDEX events_day_ip ON events (day, ip);`,
	// The evidence log's storage order (evidence.go): seq numbers raw
	// events in the order they are inserted, as SQLite's does; the rows
	// already stored are numbered by time. A statement that inserts events
	// first makes its transaction's writer mark (events_writer_mark), which
	// RecordsAfter reads so as not to pass rows a transaction still in
	// progress will commit. The sequence caches nothing (CACHE 1): a
	// number handed out must never be smaller than the sequence's
	// last_value read before it.
	`CREATE SEQUENCE events_seq_seq AS BIGINT CACHE 1;
	ALTER TABLE events ADD COLUMN seq BIGINT;
	UPDATE events e SET seq = o.n
		FROM (SELECT day, id, row_number() OVER (ORDER BY ts, day, id) AS n FROM events) o
		WHERE e.day = o.day AND e.id = o.id;
	SELECT setval('events_seq_seq', COALESCE((SELECT MAX(seq) FROM events), 0) + 1, false);
	ALTER TABLE events ALTER COLUMN seq SET DEFAULT nextval('events_seq_seq'), ALTER COLUMN seq SET NOT NULL;
	ALTER SEQUENCE events_seq_seq OWNED BY events.seq;
	CREATE UNIQUE INDEX events_seq_key ON events (seq);
	CREATE FUNCTION events_writer_mark() RETURNS trigger LANGUAGE plpgsql AS $$
	DECLARE
		mark BIGINT;
	BEGIN
		IF current_setting('takedown.events_marked', true) = 'on' THEN
			RETURN NULL;
		END IF;
		mark := nextval('events_seq_seq');
		IF mark >= 281474976710656 THEN
			RAISE EXCEPTION 'events: sequence number % is too large for a writer mark', mark;
		END IF;
		PERFORM pg_advisory_xact_lock_shared((29541::bigint << 48) | mark);
		PERFORM set_config('takedown.events_marked', 'on', true);
		RETURN NULL;
	END $$;
	CREATE TRIGGER events_writer_mark BEFORE INSERT ON events FOR EACH STATEMENT EXECUTE FUNCTION events_writer_mark();`,
}

// migrationLock is the advisory lock key that serialises migrations of
// several nodes starting at once.
const migrationLock = 0x74616b65646f776e // "takedown"

// EventStore is the PostgreSQL store.EventStore.
type EventStore struct {
	pool  *pgxpool.Pool
	strs  readerStrings // the raw events' string table, for readers (records.go)
	wstrs writerStrings // the numbers of committed strings, for writers (records.go)
}

var _ store.EventStore = (*EventStore)(nil)

// Close is a no-op: the connections are the DB's (DB.Close). It is here
// so that an EventStore can be handed where a store is closed by its user.
func (s *EventStore) Close() error { return nil }

// Pool is the connection pool, for other components' queries.
func (s *EventStore) Pool() *pgxpool.Pool { return s.pool }

const (
	sqlInsertEvents = `INSERT INTO events (day, id, ts, ip, record)
		SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bigint[], $4::bytea[], $5::bytea[])
		ON CONFLICT DO NOTHING RETURNING day, id`
	sqlUpsertDayIPs = `INSERT INTO event_day_ip AS a (day, ip, family, case_id, country, asn, org, first_seen, last_seen, hits, protocols, bot_ids)
		SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[],
			$8::bigint[], $9::bigint[], $10::bigint[], $11::int[], $12::text[])
		ON CONFLICT (day, ip, family) DO UPDATE SET
			first_seen = LEAST(a.first_seen, excluded.first_seen),
			last_seen = GREATEST(a.last_seen, excluded.last_seen),
			hits = a.hits + excluded.hits,
			prev_protocols = a.protocols,
			protocols = a.protocols | excluded.protocols
		RETURNING day, ip, family, case_id, country, asn, protocols, prev_protocols, bot_ids`
	sqlSetBotIDs     = `UPDATE event_day_ip SET bot_ids = $1 WHERE day = $2 AND ip = $3 AND family = $4`
	sqlUpsertRollups = `INSERT INTO event_rollups AS r (day, country, asn, family, case_id, ips, resolver_ips, hits)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[])
		ON CONFLICT (day, country, asn, family, case_id) DO UPDATE SET
			ips = r.ips + excluded.ips,
			resolver_ips = r.resolver_ips + excluded.resolver_ips,
			hits = r.hits + excluded.hits`
	sqlAddHealth     = `UPDATE event_health SET received = received + $1, stored = stored + $2, dropped = dropped + $3, summarised = summarised + $4 WHERE id = 1`
	sqlAddSummarised = `INSERT INTO event_day_summarised AS s (day, contacts) SELECT * FROM unnest($1::bigint[], $2::bigint[])
		ON CONFLICT (day) DO UPDATE SET contacts = s.contacts + excluded.contacts`
	sqlAddListenerHealth = `INSERT INTO event_listener_health AS h (name, received, stored, dropped)
		SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[])
		ON CONFLICT (name) DO UPDATE SET
			received = h.received + excluded.received,
			stored = h.stored + excluded.stored,
			dropped = h.dropped + excluded.dropped`
	// sqlHealth reads the totals (the row whose name is NULL) and every
	// listener's counters in one statement, so from one snapshot.
	sqlHealth = `SELECT NULL::text, received, stored, dropped, summarised FROM event_health WHERE id = 1
		UNION ALL SELECT name, received, stored, dropped, 0 FROM event_listener_health`
)

type eventKey struct {
	day int64
	id  string // packed (event.PackID)
}

// WriteBatch implements store.EventStore.
func (s *EventStore) WriteBatch(ctx context.Context, b *store.Batch) (store.BatchResult, error) {
	var res store.BatchResult
	cols, err := columnsOf(b)
	if err != nil {
		return res, err
	}
	// Encoded before the transaction: it takes the strings' numbers,
	// committing new strings on their own (records.go).
	stored, err := s.encodeEvents(ctx, b.Events, cols.records)
	if err != nil {
		return res, fmt.Errorf("store batch: %w", err)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		res, err = writeBatchTx(ctx, tx, b, cols, stored)
		return err
	})
	if err != nil {
		return store.BatchResult{}, fmt.Errorf("store batch: %w", err)
	}
	return res, nil
}

// batchColumns are a batch's events as the columns of sqlInsertEvents.
type batchColumns struct {
	days, tss  []int64
	ids, cases []string
	records    [][]byte
}

// columnsOf checks b's events and returns their columns, encoded before
// any transaction starts.
func columnsOf(b *store.Batch) (batchColumns, error) {
	n := len(b.Events)
	c := batchColumns{days: make([]int64, n), ids: make([]string, n), tss: make([]int64, n), cases: make([]string, n)}
	for i := range b.Events {
		e := &b.Events[i]
		if err := store.CheckEvent(e); err != nil {
			return c, err
		}
		c.days[i], c.ids[i], c.tss[i], c.cases[i] = store.DayOf(e.Timestamp), e.ID, e.Timestamp.UnixNano(), e.Case
	}
	// The JSON-lines records the caller made, if any, for the events the
	// compact encoding cannot carry (records.go makes them otherwise).
	if len(b.Records) == n {
		c.records = b.Records
	}
	return c, nil
}

// writeBatchTx stores b, whose columns are cols and whose events are
// encoded as stored, in tx: WriteBatch's transaction, or an import's
// (import.go).
func writeBatchTx(ctx context.Context, tx pgx.Tx, b *store.Batch, cols batchColumns, stored []store.StoredEvent) (store.BatchResult, error) {
	var res store.BatchResult
	n := len(b.Events)
	days, ids := cols.days, make([]string, n)
	inserted := make(map[eventKey]bool, n)
	if n > 0 {
		pids, ips, recs := make([][]byte, n), make([][]byte, n), make([][]byte, n)
		for i := range stored {
			pids[i], ips[i], recs[i] = stored[i].ID, stored[i].IP, stored[i].Record
			ids[i] = string(stored[i].ID)
		}
		rows, err := tx.Query(ctx, sqlInsertEvents, cols.days, pids, cols.tss, ips, recs)
		if err != nil {
			return store.BatchResult{}, fmt.Errorf("insert events: %w", err)
		}
		for rows.Next() {
			var k eventKey
			var id []byte
			if err := rows.Scan(&k.day, &id); err != nil {
				rows.Close()
				return store.BatchResult{}, fmt.Errorf("insert events: %w", err)
			}
			k.id = string(id)
			inserted[k] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return store.BatchResult{}, fmt.Errorf("insert events: %w", err)
		}
	}
	fresh := make([]event.Event, 0, len(inserted))
	res.Fresh = make([]bool, len(b.Events))
	for i := range b.Events {
		k := eventKey{days[i], ids[i]}
		if inserted[k] {
			delete(inserted, k) // a copy later in the batch is a duplicate
			fresh = append(fresh, b.Events[i])
			res.Fresh[i] = true
		}
	}
	res.Inserted, res.Duplicates = len(fresh), n-len(fresh)
	if err := upsertAggregates(ctx, tx, store.Aggregate(fresh)); err != nil {
		return store.BatchResult{}, err
	}
	byDay, summarised := store.SummarisedByDay(b.Events, res.Fresh)
	if _, err := tx.Exec(ctx, sqlAddHealth, int64(b.Received), int64(res.Inserted), int64(b.Dropped), int64(summarised)); err != nil {
		return store.BatchResult{}, fmt.Errorf("update health: %w", err)
	}
	if len(byDay) > 0 {
		days, contacts := make([]int64, 0, len(byDay)), make([]int64, 0, len(byDay))
		for d, n := range byDay {
			days, contacts = append(days, d), append(contacts, int64(n))
		}
		if _, err := tx.Exec(ctx, sqlAddSummarised, days, contacts); err != nil {
			return store.BatchResult{}, fmt.Errorf("update summarised contacts: %w", err)
		}
	}
	// Sorted by name: concurrent collectors lock the rows in one order.
	if ch := store.ListenerChanges(b, res.Fresh); len(ch) > 0 {
		names, recv, stored, dropped := make([]string, len(ch)), make([]int64, len(ch)), make([]int64, len(ch)), make([]int64, len(ch))
		for i, c := range ch {
			names[i], recv[i], stored[i], dropped[i] = c.Name, int64(c.Received), int64(c.Stored), int64(c.Dropped)
		}
		if _, err := tx.Exec(ctx, sqlAddListenerHealth, names, recv, stored, dropped); err != nil {
			return store.BatchResult{}, fmt.Errorf("update listener health: %w", err)
		}
	}
	return res, nil
}

func upsertAggregates(ctx context.Context, tx pgx.Tx, deltas []store.Delta) error {
	if len(deltas) == 0 {
		return nil
	}
	n := len(deltas)
	var (
		days, asns, firsts, lasts, hits = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		ips                             = make([][]byte, n)
		families, cases, countries      = make([]string, n), make([]string, n), make([]string, n)
		orgs, bots                      = make([]string, n), make([]string, n)
		protos                          = make([]int32, n)
	)
	for i := range deltas {
		d := &deltas[i]
		ip := d.Key.IP.AsSlice()
		days[i], ips[i], families[i], cases[i], countries[i] = d.Key.Day, ip, d.Key.Family, d.Case, d.Country
		asns[i], orgs[i], firsts[i], lasts[i], hits[i] = int64(d.ASN), d.Org, d.FirstSeen, d.LastSeen, int64(d.Hits)
		protos[i], bots[i] = int32(d.Protocols), store.JoinBotIDs(d.BotIDs)
	}
	fold := store.NewRollupFold()
	fold.Expect(deltas)
	rows, err := tx.Query(ctx, sqlUpsertDayIPs, days, ips, families, cases, countries, asns, orgs, firsts, lasts, hits, protos, bots)
	if err != nil {
		return fmt.Errorf("upsert aggregates: %w", err)
	}
	for rows.Next() {
		var (
			u             store.UpsertedRow
			asn           int64
			after, before int32
		)
		if err := rows.Scan(&u.Day, &u.IP, &u.Family, &u.Case, &u.Country, &asn, &after, &before, &u.BotIDs); err != nil {
			rows.Close()
			return fmt.Errorf("upsert aggregates: %w", err)
		}
		u.ASN, u.Before, u.After = uint32(asn), store.Protocols(before), store.Protocols(after)
		if err := fold.Upserted(u); err != nil {
			rows.Close()
			return fmt.Errorf("upsert aggregates: %w", err)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("upsert aggregates: %w", err)
	}
	for _, u := range fold.BotIDUpdates() {
		if _, err := tx.Exec(ctx, sqlSetBotIDs, u.IDs, u.Day, u.IP, u.Family); err != nil {
			return fmt.Errorf("update bot ids: %w", err)
		}
	}
	// The hourly sets move in the same transaction as the aggregates.
	if err := writeSets(ctx, tx, fold.Touched()); err != nil {
		return err
	}
	// Sorted by key, so that concurrent collectors lock rollup rows in one
	// order.
	rollups := fold.Rollups()
	m := len(rollups)
	rDays, rCountries, rASNs, rFamilies, rCases := make([]int64, m), make([]string, m), make([]int64, m), make([]string, m), make([]string, m)
	rIPs, rRes, rHits := make([]int64, m), make([]int64, m), make([]int64, m)
	for i, r := range rollups {
		k := r.Key
		rDays[i], rCountries[i], rASNs[i], rFamilies[i], rCases[i] = k.Day, k.Country, int64(k.ASN), k.Family, k.Case
		rIPs[i], rRes[i], rHits[i] = r.IPs, r.ResolverIPs, r.Hits
	}
	if _, err := tx.Exec(ctx, sqlUpsertRollups, rDays, rCountries, rASNs, rFamilies, rCases, rIPs, rRes, rHits); err != nil {
		return fmt.Errorf("upsert rollups: %w", err)
	}
	return nil
}

// Flush implements store.EventStore: aggregates are written with each
// batch, so there is nothing pending.
func (s *EventStore) Flush(context.Context) error { return nil }

// PendingAggregates returns 0: every committed batch's aggregates are
// visible (the pipeline's accept-to-visible histogram asks).
func (s *EventStore) PendingAggregates() int { return 0 }

// Health implements store.EventStore.
func (s *EventStore) Health(ctx context.Context) (store.Health, error) {
	rows, err := s.pool.Query(ctx, sqlHealth)
	if err != nil {
		return store.Health{}, fmt.Errorf("read health: %w", err)
	}
	defer rows.Close()
	return store.ScanHealth(rows)
}

// PurgeEvents implements store.EventStore.
func (s *EventStore) PurgeEvents(ctx context.Context, before time.Time) (int64, error) {
	t, err := s.pool.Exec(ctx, `DELETE FROM events WHERE day < $1`, store.DayOf(before))
	if err != nil {
		return 0, fmt.Errorf("purge events: %w", err)
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM event_day_summarised WHERE day < $1`, store.DayOf(before)); err != nil {
		return t.RowsAffected(), fmt.Errorf("purge events: %w", err)
	}
	return t.RowsAffected(), nil
}

// PurgeAggregates implements store.EventStore.
func (s *EventStore) PurgeAggregates(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		t, err := tx.Exec(ctx, `DELETE FROM event_day_ip WHERE day < $1`, store.DayOf(before))
		if err != nil {
			return err
		}
		n = t.RowsAffected()
		if _, err = tx.Exec(ctx, `DELETE FROM event_rollups WHERE day < $1`, store.DayOf(before)); err != nil {
			return err
		}
		if _, err = tx.Exec(ctx, `DELETE FROM stats_sets WHERE day < $1`, store.DayOf(before)); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM stats_day_sets WHERE day < $1`, store.DayOf(before))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("purge aggregates: %w", err)
	}
	return n, nil
}

// ScanDayIPs implements store.EventStore.
func (s *EventStore) ScanDayIPs(ctx context.Context, from, to time.Time, fn func(*store.DayIP) error) error {
	return s.scanQuery(ctx, `SELECT day, ip, family, case_id, country, asn, org, first_seen, last_seen, hits, protocols, bot_ids
		FROM event_day_ip WHERE day >= $1 AND day < $2 ORDER BY day, ip, family`, []any{from.Unix(), to.Unix()}, fn)
}

// Rollups implements store.EventStore.
func (s *EventStore) Rollups(ctx context.Context, from, to time.Time) ([]store.Rollup, error) {
	rows, err := s.pool.Query(ctx, `SELECT day, country, asn, family, case_id, ips, resolver_ips, hits
		FROM event_rollups WHERE day >= $1 AND day < $2 ORDER BY day, country, asn, family, case_id`, from.Unix(), to.Unix())
	if err != nil {
		return nil, fmt.Errorf("read rollups: %w", err)
	}
	defer rows.Close()
	return store.ScanRollups(rows)
}

// CountEvents implements store.EventStore.
func (s *EventStore) CountEvents(ctx context.Context, from, to time.Time) (int64, error) {
	var n int64
	lo, hi := store.WholeDays(from, to)
	err := s.pool.QueryRow(ctx, `SELECT (SELECT COUNT(*) FROM events WHERE day >= $1 AND day <= $2 AND ts >= $3 AND ts < $4)
		+ (SELECT COALESCE(SUM(contacts), 0) FROM event_day_summarised WHERE day >= $5 AND day < $6)`,
		store.DayOf(from), store.DayOf(to), from.UnixNano(), to.UnixNano(), lo, hi).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count events: %w", err)
	}
	return n, nil
}
