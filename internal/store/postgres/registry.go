package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/takedown/takedown/internal/registry"
)

// registryMigrations is the registry's schema (orders, indicators, audit
// trail, serial), as SQLite's (internal/store/sqlite/schema_registry.go):
// times are unix nanoseconds (0 for none) in BIGINT columns, and the rowids
// are sequences, but for the orders'. An order's ID is what operators type
// (order show 3), and SQLite gives the next one after the highest, with no
// gap where a dry run or a failed import rolled back; a sequence would skip
// it. So Import numbers orders itself, under the serial row's lock (see
// beginRegistryChange). SQLite's two migrations are one here, since no
// PostgreSQL database ever had the first without the second. Append only.
var registryMigrations = []string{
	`CREATE TABLE orders (
		id BIGINT PRIMARY KEY,
		case_id TEXT NOT NULL UNIQUE,
		court TEXT NOT NULL,
		title TEXT NOT NULL DEFAULT '',
		family TEXT NOT NULL DEFAULT '',
		notes TEXT NOT NULL DEFAULT '',
		effective BIGINT NOT NULL,
		expires BIGINT NOT NULL,
		revoked BOOLEAN NOT NULL DEFAULT false,
		revoked_at BIGINT NOT NULL DEFAULT 0,
		created BIGINT NOT NULL
	);
	CREATE TABLE indicators (
		id BIGSERIAL PRIMARY KEY,
		order_id BIGINT NOT NULL REFERENCES orders(id),
		kind TEXT NOT NULL,
		value TEXT NOT NULL,
		family TEXT NOT NULL DEFAULT '',
		note TEXT NOT NULL DEFAULT '',
		source TEXT NOT NULL DEFAULT '',
		valid_from BIGINT NOT NULL DEFAULT 0,
		valid_until BIGINT NOT NULL DEFAULT 0,
		UNIQUE (order_id, kind, value)
	);
	CREATE INDEX indicators_value ON indicators (value);
	CREATE TABLE audit (
		id BIGSERIAL PRIMARY KEY,
		at BIGINT NOT NULL,
		actor TEXT NOT NULL,
		order_id BIGINT,
		action TEXT NOT NULL,
		detail TEXT NOT NULL DEFAULT ''
	);
	CREATE INDEX audit_order ON audit (order_id, id);
	CREATE TABLE registry_serial (id INTEGER PRIMARY KEY CHECK (id = 1), serial BIGINT NOT NULL);
	INSERT INTO registry_serial VALUES (1, 0);
	CREATE TABLE generated_skips (
		indicator_id BIGINT NOT NULL REFERENCES indicators(id),
		name TEXT NOT NULL,
		day BIGINT NOT NULL,
		reason TEXT NOT NULL,
		PRIMARY KEY (indicator_id, name, day)
	);`,
}

var _ registry.Store = (*DB)(nil)
var _ registry.Notifier = (*DB)(nil)

// registryChannel is the channel every registry change notifies in its
// transaction (the payload is the new serial), so that other nodes' watchers
// read the registry at once instead of at their next poll.
const registryChannel = "takedown_registry"

func regNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UTC().UnixNano()
}

func regFromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// beginRegistryChange starts a registry change. Several nodes change the
// registry at once, and SQLite's answers rest on its writers taking turns
// (its transactions are immediate): which import creates an order, how
// many indicators were already present, the audit trail's order. So every
// change first locks the one serial row; a second writer waits there until
// the first commits and then, in READ COMMITTED, sees everything it did. A
// case created by two imports at once is therefore created once, and the
// other adds to it; the serial increases once per change.
func (d *DB) beginRegistryChange(ctx context.Context) (pgx.Tx, error) {
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `SELECT serial FROM registry_serial WHERE id = 1 FOR UPDATE`); err != nil {
		tx.Rollback(ctx)
		return nil, err
	}
	return tx, nil
}

// regBumpSerial increases the serial and notifies registryChannel, which
// PostgreSQL delivers when (and only if) the transaction commits.
func regBumpSerial(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `WITH s AS (UPDATE registry_serial SET serial = serial + 1 WHERE id = 1 RETURNING serial)
		SELECT pg_notify('`+registryChannel+`', serial::text) FROM s`)
	return err
}

func regAudit(ctx context.Context, tx pgx.Tx, at time.Time, actor string, orderID int64, action, detail string) error {
	_, err := tx.Exec(ctx, `INSERT INTO audit (at, actor, order_id, action, detail) VALUES ($1, $2, $3, $4, $5)`,
		regNanos(at), actor, orderID, action, detail)
	return err
}

// readOnly runs fn in a read-only transaction that sees one snapshot, so
// that a read of several statements (the serial and the indicators, an
// order and its trail) never mixes two registry states.
func (d *DB) readOnly(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, d.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn)
}

// Serial returns the registry's change counter.
func (d *DB) Serial(ctx context.Context) (uint32, error) {
	var n int64
	err := d.pool.QueryRow(ctx, `SELECT serial FROM registry_serial WHERE id = 1`).Scan(&n)
	return uint32(n), err
}

// Import adds indicators to an order, creating it if needed.
func (d *DB) Import(ctx context.Context, o registry.Order, inds []registry.Indicator, actor string, dryRun bool) (registry.ImportResult, error) {
	var res registry.ImportResult
	tx, err := d.beginRegistryChange(ctx)
	if err != nil {
		return res, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	now := time.Now().UTC()
	err = tx.QueryRow(ctx, `SELECT id FROM orders WHERE case_id = $1`, o.Case).Scan(&res.OrderID)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if o.Court == "" || o.Effective.IsZero() || o.Expires.IsZero() {
			return res, fmt.Errorf("case %s is new: --court, --effective and --expires are required", o.Case)
		}
		if !o.Expires.After(o.Effective) {
			return res, fmt.Errorf("expiry %s is not after effective time %s", o.Expires.Format(time.RFC3339), o.Effective.Format(time.RFC3339))
		}
		// Numbered as SQLite numbers rowids (see registryMigrations); the
		// serial row's lock makes this the only writer.
		if err := tx.QueryRow(ctx, `INSERT INTO orders (id, case_id, court, title, family, notes, effective, expires, created)
			VALUES ((SELECT COALESCE(MAX(id), 0) + 1 FROM orders), $1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
			o.Case, o.Court, o.Title, o.Family, o.Notes, regNanos(o.Effective), regNanos(o.Expires), regNanos(now)).Scan(&res.OrderID); err != nil {
			return res, err
		}
		res.Created = true
		if err := regAudit(ctx, tx, now, actor, res.OrderID, "create", fmt.Sprintf("court=%q effective=%s expires=%s", o.Court, o.Effective.Format(time.RFC3339), o.Expires.Format(time.RFC3339))); err != nil {
			return res, err
		}
	case err != nil:
		return res, err
	}
	if err := importIndicators(ctx, tx, res.OrderID, inds, &res); err != nil {
		return res, err
	}
	if dryRun {
		return res, nil // rolled back by the deferred Rollback
	}
	if res.Added > 0 || res.Created {
		if err := regAudit(ctx, tx, now, actor, res.OrderID, "import", fmt.Sprintf("%d indicators added, %d already present", res.Added, res.AlreadyPresent)); err != nil {
			return res, err
		}
		if err := regBumpSerial(ctx, tx); err != nil {
			return res, err
		}
	}
	return res, tx.Commit(ctx)
}

// importIndicators inserts inds into order orderID one statement each, in
// their order (so that of two copies in one file the first is added and the
// second already present, as on SQLite), sent as one pipelined batch rather
// than a round trip each; then the guard's refusals of the dga indicators
// that were added.
func importIndicators(ctx context.Context, tx pgx.Tx, orderID int64, inds []registry.Indicator, res *registry.ImportResult) error {
	if len(inds) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for _, ind := range inds {
		b.Queue(`INSERT INTO indicators (order_id, kind, value, family, note, source, valid_from, valid_until)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (order_id, kind, value) DO NOTHING RETURNING id`,
			orderID, string(ind.Kind), ind.Value, ind.Family, ind.Note, ind.Source, regNanos(ind.From), regNanos(ind.Until))
	}
	type added struct {
		id  int64
		ind *registry.Indicator
	}
	var skips []added
	br := tx.SendBatch(ctx, b)
	for i := range inds {
		var id int64
		err := br.QueryRow().Scan(&id)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			res.AlreadyPresent++
		case err != nil:
			br.Close()
			return fmt.Errorf("%s: %w", inds[i].Source, err)
		default:
			res.Added++
			if len(inds[i].Skipped) > 0 {
				skips = append(skips, added{id, &inds[i]})
			}
		}
	}
	if err := br.Close(); err != nil {
		return err
	}
	if len(skips) == 0 {
		return nil
	}
	b = &pgx.Batch{}
	for _, a := range skips {
		for _, sk := range a.ind.Skipped {
			b.Queue(`INSERT INTO generated_skips (indicator_id, name, day, reason) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
				a.id, sk.Name, regNanos(sk.Day), sk.Reason)
		}
	}
	br = tx.SendBatch(ctx, b)
	for _, a := range skips {
		for range a.ind.Skipped {
			if _, err := br.Exec(); err != nil {
				br.Close()
				return fmt.Errorf("%s: %w", a.ind.Source, err)
			}
		}
	}
	return br.Close()
}

const regOrderCols = `id, case_id, court, title, family, notes, effective, expires, revoked, revoked_at, created`

func regScanOrder(row pgx.Row) (registry.Order, error) {
	var o registry.Order
	var eff, exp, rat, cr int64
	err := row.Scan(&o.ID, &o.Case, &o.Court, &o.Title, &o.Family, &o.Notes, &eff, &exp, &o.Revoked, &rat, &cr)
	o.Effective, o.Expires, o.RevokedAt, o.Created = regFromNanos(eff), regFromNanos(exp), regFromNanos(rat), regFromNanos(cr)
	return o, err
}

// Orders lists every order with its indicator counts.
func (d *DB) Orders(ctx context.Context) ([]registry.OrderSummary, error) {
	var out []registry.OrderSummary
	err := d.readOnly(ctx, func(tx pgx.Tx) error {
		out = nil
		rows, err := tx.Query(ctx, `SELECT `+regOrderCols+` FROM orders ORDER BY id`)
		if err != nil {
			return err
		}
		at := map[int64]int{}
		for rows.Next() {
			o, err := regScanOrder(rows)
			if err != nil {
				rows.Close()
				return err
			}
			at[o.ID] = len(out)
			out = append(out, registry.OrderSummary{Order: o, Counts: map[registry.Kind]int{}})
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(out) == 0 {
			return err
		}
		// Every order's counts in one statement, from the same snapshot.
		rows, err = tx.Query(ctx, `SELECT order_id, kind, COUNT(*) FROM indicators GROUP BY order_id, kind`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			var k string
			var n int
			if err := rows.Scan(&id, &k, &n); err != nil {
				return err
			}
			if i, ok := at[id]; ok {
				out[i].Counts[registry.Kind(k)] = n
			}
		}
		return rows.Err()
	})
	return out, err
}

// regFindOrder finds an order by case ID, or else by numeric ID.
func regFindOrder(ctx context.Context, tx pgx.Tx, id string) (registry.Order, error) {
	o, err := regScanOrder(tx.QueryRow(ctx, `SELECT `+regOrderCols+` FROM orders WHERE case_id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		if n, perr := strconv.ParseInt(id, 10, 64); perr == nil {
			o, err = regScanOrder(tx.QueryRow(ctx, `SELECT `+regOrderCols+` FROM orders WHERE id = $1`, n))
		}
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return o, fmt.Errorf("%w: %s", registry.ErrNotFound, id)
	}
	return o, err
}

// Order returns one order, its indicators and its audit trail.
//
// The indicators are sorted in the "C" collation, bytewise as SQLite's,
// whatever the database's default collation is.
func (d *DB) Order(ctx context.Context, id string) (*registry.OrderSummary, []registry.Indicator, []registry.AuditRecord, error) {
	var (
		sum   *registry.OrderSummary
		inds  []registry.Indicator
		trail []registry.AuditRecord
	)
	err := d.readOnly(ctx, func(tx pgx.Tx) error {
		sum, inds, trail = nil, nil, nil
		o, err := regFindOrder(ctx, tx, id)
		if err != nil {
			return err
		}
		sum = &registry.OrderSummary{Order: o, Counts: map[registry.Kind]int{}}
		rows, err := tx.Query(ctx, `SELECT id, kind, value, family, note, source, valid_from, valid_until FROM indicators
			WHERE order_id = $1 ORDER BY kind COLLATE "C", value COLLATE "C"`, o.ID)
		if err != nil {
			return err
		}
		var dgaRows []int64
		dgaAt := map[int64]int{} // a dga indicator's row ID: its position in inds
		for rows.Next() {
			var ind registry.Indicator
			var k string
			var id, from, until int64
			if err := rows.Scan(&id, &k, &ind.Value, &ind.Family, &ind.Note, &ind.Source, &from, &until); err != nil {
				rows.Close()
				return err
			}
			ind.Kind, ind.From, ind.Until = registry.Kind(k), regFromNanos(from), regFromNanos(until)
			sum.Counts[ind.Kind]++
			if ind.Kind == registry.KindDGA {
				dgaRows = append(dgaRows, id)
				dgaAt[id] = len(inds)
			}
			inds = append(inds, ind)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(dgaRows) > 0 {
			skips, err := regGeneratedSkips(ctx, tx, dgaRows)
			if err != nil {
				return err
			}
			for id, sk := range skips {
				inds[dgaAt[id]].Skipped = sk
			}
		}
		rows, err = tx.Query(ctx, `SELECT at, actor, action, detail FROM audit WHERE order_id = $1 ORDER BY id`, o.ID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			a := registry.AuditRecord{OrderID: o.ID}
			var at int64
			if err := rows.Scan(&at, &a.Actor, &a.Action, &a.Detail); err != nil {
				return err
			}
			a.At = regFromNanos(at)
			trail = append(trail, a)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, nil, nil, err
	}
	return sum, inds, trail, nil
}

// regGeneratedSkips returns the guard's refusals of the dga indicators
// whose row IDs are ids, by row ID, each indicator's by day and name.
func regGeneratedSkips(ctx context.Context, tx pgx.Tx, ids []int64) (map[int64][]registry.Skip, error) {
	rows, err := tx.Query(ctx, `SELECT indicator_id, name, day, reason FROM generated_skips
		WHERE indicator_id = ANY($1) ORDER BY indicator_id, day, name COLLATE "C"`, ids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int64][]registry.Skip{}
	for rows.Next() {
		var id, day int64
		var sk registry.Skip
		if err := rows.Scan(&id, &sk.Name, &day, &sk.Reason); err != nil {
			return nil, err
		}
		sk.Day = regFromNanos(day)
		out[id] = append(out[id], sk)
	}
	return out, rows.Err()
}

// Extend moves an order's expiry.
func (d *DB) Extend(ctx context.Context, id string, expires time.Time, actor string) error {
	tx, err := d.beginRegistryChange(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	o, err := regFindOrder(ctx, tx, id)
	if err != nil {
		return err
	}
	if o.Revoked {
		return fmt.Errorf("order %s was revoked; import a new order instead", o.Case)
	}
	if !expires.After(o.Effective) {
		return fmt.Errorf("new expiry %s is not after the effective time %s", expires.Format(time.RFC3339), o.Effective.Format(time.RFC3339))
	}
	if _, err := tx.Exec(ctx, `UPDATE orders SET expires = $1 WHERE id = $2`, regNanos(expires), o.ID); err != nil {
		return err
	}
	if err := regAudit(ctx, tx, time.Now(), actor, o.ID, "extend", fmt.Sprintf("expires %s -> %s", o.Expires.Format(time.RFC3339), expires.UTC().Format(time.RFC3339))); err != nil {
		return err
	}
	if err := regBumpSerial(ctx, tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// Revoke ends an order at at.
func (d *DB) Revoke(ctx context.Context, id string, at time.Time, actor string) error {
	tx, err := d.beginRegistryChange(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	o, err := regFindOrder(ctx, tx, id)
	if err != nil {
		return err
	}
	if o.Revoked {
		return fmt.Errorf("order %s is already revoked", o.Case)
	}
	if _, err := tx.Exec(ctx, `UPDATE orders SET revoked = true, revoked_at = $1 WHERE id = $2`, regNanos(at), o.ID); err != nil {
		return err
	}
	if err := regAudit(ctx, tx, at, actor, o.ID, "revoke", ""); err != nil {
		return err
	}
	if err := regBumpSerial(ctx, tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// Active returns the indicators in force at at, computed from the
// registry's rows as every store and a sensor's mirror compute them
// (registry.ComputeActive).
func (d *DB) Active(ctx context.Context, at time.Time, caseID string) (*registry.ActiveSet, error) {
	rs, err := d.Rows(ctx)
	if err != nil {
		return nil, err
	}
	return registry.ComputeActive(rs, at, caseID)
}

var _ registry.Dumper = (*DB)(nil)

// Rows returns every indicator with its order, and the serial, from one
// snapshot, so that they are what the registry held at that serial. They
// come in import order, so that entries SortEntries ranks equal stay in
// the same order on every node.
func (d *DB) Rows(ctx context.Context) (*registry.Rows, error) {
	var rs *registry.Rows
	err := d.readOnly(ctx, func(tx pgx.Tx) error {
		var err error
		rs, err = rowsTx(ctx, tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	return rs, nil
}

func rowsTx(ctx context.Context, tx pgx.Tx) (*registry.Rows, error) {
	rs := &registry.Rows{}
	var serial int64
	if err := tx.QueryRow(ctx, `SELECT serial FROM registry_serial WHERE id = 1`).Scan(&serial); err != nil {
		return nil, err
	}
	rs.Serial = uint32(serial)
	rows, err := tx.Query(ctx, `SELECT o.id, o.case_id, o.court, o.family, o.effective, o.expires, o.revoked,
		i.kind, i.value, i.family, i.valid_from, i.valid_until, i.id
		FROM indicators i JOIN orders o ON o.id = i.order_id ORDER BY i.id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var genIDs []int64
	gens := map[int64]int{} // indicator ID → index in rs.Rows
	for rows.Next() {
		var r registry.Row
		var kind string
		var eff, exp, from, until, indID int64
		if err := rows.Scan(&r.Order.ID, &r.Order.Case, &r.Order.Court, &r.Order.Family, &eff, &exp, &r.Order.Revoked,
			&kind, &r.Indicator.Value, &r.Indicator.Family, &from, &until, &indID); err != nil {
			return nil, err
		}
		r.Order.Effective, r.Order.Expires = regFromNanos(eff), regFromNanos(exp)
		r.Indicator.Kind, r.Indicator.From, r.Indicator.Until = registry.Kind(kind), regFromNanos(from), regFromNanos(until)
		if r.Indicator.Kind == registry.KindDGA {
			genIDs = append(genIDs, indID)
			gens[indID] = len(rs.Rows)
		}
		rs.Rows = append(rs.Rows, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	if len(genIDs) > 0 {
		skips, err := regGeneratedSkips(ctx, tx, genIDs)
		if err != nil {
			return nil, err
		}
		for id, i := range gens {
			rs.Rows[i].Indicator.Skipped = skips[id]
		}
	}
	return rs, nil
}

// The listener's waits before it connects again after a failure: doubled
// after each, up to the maximum, and back to the minimum once a connection
// has lasted that long.
const (
	listenMinBackoff = 100 * time.Millisecond
	listenMaxBackoff = 30 * time.Second
)

// Changes implements registry.Notifier: a value arrives after every
// registry change committed by any node (coalesced), and once after each
// time the listening connection is (re)established, since changes made
// while it was down were not heard. The channel closes when ctx ends; end
// ctx before closing the DB (a closed DB's listener retries until then).
//
// It listens on a connection of its own, taken out of the pool (a LISTEN
// holds its connection for good, and the pool's are shared). A dropped
// connection is replaced after a backoff; meanwhile the watcher's poll
// still finds every change.
func (d *DB) Changes(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	go d.listen(ctx, ch)
	return ch
}

func (d *DB) listen(ctx context.Context, ch chan<- struct{}) {
	defer close(ch)
	wake := func() {
		select {
		case ch <- struct{}{}:
		default: // one is pending already: the reader reads the serial once
		}
	}
	backoff := listenMinBackoff
	for {
		conn, err := d.listenConn(ctx)
		if err == nil {
			wake()
			since := time.Now()
			for err == nil {
				_, err = conn.WaitForNotification(ctx)
				if err == nil {
					wake()
				}
			}
			conn.Close(context.Background())
			if time.Since(since) >= listenMaxBackoff {
				backoff = listenMinBackoff
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, listenMaxBackoff)
	}
}

// listenConn takes a connection out of the pool and listens on it.
func (d *DB) listenConn(ctx context.Context) (*pgx.Conn, error) {
	pc, err := d.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	conn := pc.Hijack()
	if _, err := conn.Exec(ctx, `LISTEN `+registryChannel); err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	return conn, nil
}
