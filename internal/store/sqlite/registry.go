package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/takedown/takedown/internal/registry"
)

var _ registry.Store = (*DB)(nil)

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UTC().UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func bumpSerial(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `UPDATE registry_serial SET serial = serial + 1 WHERE id = 1`)
	return err
}

func audit(ctx context.Context, tx *sql.Tx, at time.Time, actor string, orderID int64, action, detail string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO audit (at, actor, order_id, action, detail) VALUES (?, ?, ?, ?, ?)`,
		nanos(at), actor, orderID, action, detail)
	return err
}

// Serial returns the registry's change counter.
func (s *DB) Serial(ctx context.Context) (uint32, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT serial FROM registry_serial WHERE id = 1`).Scan(&n)
	return uint32(n), err
}

// Import adds indicators to an order, creating it if needed.
func (s *DB) Import(ctx context.Context, o registry.Order, inds []registry.Indicator, actor string, dryRun bool) (registry.ImportResult, error) {
	var res registry.ImportResult
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return res, err
	}
	defer tx.Rollback()
	now := time.Now().UTC()
	var existing registry.Order
	err = tx.QueryRowContext(ctx, `SELECT id, court, effective, expires FROM orders WHERE case_id = ?`, o.Case).
		Scan(&existing.ID, &existing.Court, new(int64), new(int64))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if o.Court == "" || o.Effective.IsZero() || o.Expires.IsZero() {
			return res, fmt.Errorf("case %s is new: --court, --effective and --expires are required", o.Case)
		}
		if !o.Expires.After(o.Effective) {
			return res, fmt.Errorf("expiry %s is not after effective time %s", o.Expires.Format(time.RFC3339), o.Effective.Format(time.RFC3339))
		}
		r, err := tx.ExecContext(ctx, `INSERT INTO orders (case_id, court, title, family, notes, effective, expires, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			o.Case, o.Court, o.Title, o.Family, o.Notes, nanos(o.Effective), nanos(o.Expires), nanos(now))
		if err != nil {
			return res, err
		}
		res.OrderID, _ = r.LastInsertId()
		res.Created = true
		if err := audit(ctx, tx, now, actor, res.OrderID, "create", fmt.Sprintf("court=%q effective=%s expires=%s", o.Court, o.Effective.Format(time.RFC3339), o.Expires.Format(time.RFC3339))); err != nil {
			return res, err
		}
	case err != nil:
		return res, err
	default:
		res.OrderID = existing.ID
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO indicators (order_id, kind, value, family, note, source, valid_from, valid_until)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (order_id, kind, value) DO NOTHING`)
	if err != nil {
		return res, err
	}
	defer stmt.Close()
	for _, ind := range inds {
		r, err := stmt.ExecContext(ctx, res.OrderID, string(ind.Kind), ind.Value, ind.Family, ind.Note, ind.Source, nanos(ind.From), nanos(ind.Until))
		if err != nil {
			return res, fmt.Errorf("%s: %w", ind.Source, err)
		}
		if n, _ := r.RowsAffected(); n == 1 {
			res.Added++
			if len(ind.Skipped) > 0 {
				id, _ := r.LastInsertId()
				for _, sk := range ind.Skipped {
					if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO generated_skips (indicator_id, name, day, reason) VALUES (?, ?, ?, ?)`,
						id, sk.Name, nanos(sk.Day), sk.Reason); err != nil {
						return res, fmt.Errorf("%s: %w", ind.Source, err)
					}
				}
			}
		} else {
			res.AlreadyPresent++
		}
	}
	if dryRun {
		return res, nil // rolled back by the deferred Rollback
	}
	if res.Added > 0 || res.Created {
		if err := audit(ctx, tx, now, actor, res.OrderID, "import", fmt.Sprintf("%d indicators added, %d already present", res.Added, res.AlreadyPresent)); err != nil {
			return res, err
		}
		if err := bumpSerial(ctx, tx); err != nil {
			return res, err
		}
	}
	return res, tx.Commit()
}

const orderCols = `id, case_id, court, title, family, notes, effective, expires, revoked, revoked_at, created`

func scanOrder(sc interface{ Scan(...any) error }) (registry.Order, error) {
	var o registry.Order
	var eff, exp, rat, cr int64
	err := sc.Scan(&o.ID, &o.Case, &o.Court, &o.Title, &o.Family, &o.Notes, &eff, &exp, &o.Revoked, &rat, &cr)
	o.Effective, o.Expires, o.RevokedAt, o.Created = fromNanos(eff), fromNanos(exp), fromNanos(rat), fromNanos(cr)
	return o, err
}

// Orders lists every order with its indicator counts.
func (s *DB) Orders(ctx context.Context) ([]registry.OrderSummary, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+orderCols+` FROM orders ORDER BY id`)
	if err != nil {
		return nil, err
	}
	var out []registry.OrderSummary
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, registry.OrderSummary{Order: o, Counts: map[registry.Kind]int{}})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		if err := s.counts(ctx, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *DB) counts(ctx context.Context, o *registry.OrderSummary) error {
	rows, err := s.db.QueryContext(ctx, `SELECT kind, COUNT(*) FROM indicators WHERE order_id = ? GROUP BY kind`, o.ID)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			return err
		}
		o.Counts[registry.Kind(k)] = n
	}
	return rows.Err()
}

func (s *DB) findOrder(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, id string) (registry.Order, error) {
	o, err := scanOrder(q.QueryRowContext(ctx, `SELECT `+orderCols+` FROM orders WHERE case_id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		if n, perr := strconv.ParseInt(id, 10, 64); perr == nil {
			o, err = scanOrder(q.QueryRowContext(ctx, `SELECT `+orderCols+` FROM orders WHERE id = ?`, n))
		}
	}
	if errors.Is(err, sql.ErrNoRows) {
		return o, fmt.Errorf("%w: %s", registry.ErrNotFound, id)
	}
	return o, err
}

// Order returns one order, its indicators and its audit trail.
func (s *DB) Order(ctx context.Context, id string) (*registry.OrderSummary, []registry.Indicator, []registry.AuditRecord, error) {
	o, err := s.findOrder(ctx, s.db, id)
	if err != nil {
		return nil, nil, nil, err
	}
	sum := &registry.OrderSummary{Order: o, Counts: map[registry.Kind]int{}}
	rows, err := s.db.QueryContext(ctx, `SELECT id, kind, value, family, note, source, valid_from, valid_until FROM indicators WHERE order_id = ? ORDER BY kind, value`, o.ID)
	if err != nil {
		return nil, nil, nil, err
	}
	var inds []registry.Indicator
	var dgaRows []int64 // indicator row IDs of the dga indicators, by position in inds
	dgaAt := map[int64]int{}
	for rows.Next() {
		var ind registry.Indicator
		var k string
		var id, from, until int64
		if err := rows.Scan(&id, &k, &ind.Value, &ind.Family, &ind.Note, &ind.Source, &from, &until); err != nil {
			rows.Close()
			return nil, nil, nil, err
		}
		ind.Kind, ind.From, ind.Until = registry.Kind(k), fromNanos(from), fromNanos(until)
		sum.Counts[ind.Kind]++
		if ind.Kind == registry.KindDGA {
			dgaRows = append(dgaRows, id)
			dgaAt[id] = len(inds)
		}
		inds = append(inds, ind)
	}
	rows.Close()
	if len(dgaRows) > 0 {
		skips, err := s.generatedSkips(ctx, s.db, o.ID)
		if err != nil {
			return nil, nil, nil, err
		}
		for id, sk := range skips {
			if i, ok := dgaAt[id]; ok {
				inds[i].Skipped = sk
			}
		}
	}
	rows, err = s.db.QueryContext(ctx, `SELECT at, actor, action, detail FROM audit WHERE order_id = ? ORDER BY id`, o.ID)
	if err != nil {
		return nil, nil, nil, err
	}
	defer rows.Close()
	var trail []registry.AuditRecord
	for rows.Next() {
		a := registry.AuditRecord{OrderID: o.ID}
		var at int64
		if err := rows.Scan(&at, &a.Actor, &a.Action, &a.Detail); err != nil {
			return nil, nil, nil, err
		}
		a.At = fromNanos(at)
		trail = append(trail, a)
	}
	return sum, inds, trail, rows.Err()
}

// generatedSkips returns the guard's refusals of an order's dga indicators
// (every order's when orderID is 0), by indicator row ID.
func (s *DB) generatedSkips(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, orderID int64) (map[int64][]registry.Skip, error) {
	query := `SELECT g.indicator_id, g.name, g.day, g.reason FROM generated_skips g`
	var args []any
	if orderID != 0 {
		query += ` JOIN indicators i ON i.id = g.indicator_id WHERE i.order_id = ?`
		args = append(args, orderID)
	}
	rows, err := q.QueryContext(ctx, query+` ORDER BY g.indicator_id, g.day, g.name`, args...)
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
		sk.Day = fromNanos(day)
		out[id] = append(out[id], sk)
	}
	return out, rows.Err()
}

// Extend moves an order's expiry.
func (s *DB) Extend(ctx context.Context, id string, expires time.Time, actor string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	o, err := s.findOrder(ctx, tx, id)
	if err != nil {
		return err
	}
	if o.Revoked {
		return fmt.Errorf("order %s was revoked; import a new order instead", o.Case)
	}
	if !expires.After(o.Effective) {
		return fmt.Errorf("new expiry %s is not after the effective time %s", expires.Format(time.RFC3339), o.Effective.Format(time.RFC3339))
	}
	if _, err := tx.ExecContext(ctx, `UPDATE orders SET expires = ? WHERE id = ?`, nanos(expires), o.ID); err != nil {
		return err
	}
	if err := audit(ctx, tx, time.Now(), actor, o.ID, "extend", fmt.Sprintf("expires %s -> %s", o.Expires.Format(time.RFC3339), expires.UTC().Format(time.RFC3339))); err != nil {
		return err
	}
	if err := bumpSerial(ctx, tx); err != nil {
		return err
	}
	return tx.Commit()
}

// Revoke ends an order at at.
func (s *DB) Revoke(ctx context.Context, id string, at time.Time, actor string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	o, err := s.findOrder(ctx, tx, id)
	if err != nil {
		return err
	}
	if o.Revoked {
		return fmt.Errorf("order %s is already revoked", o.Case)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE orders SET revoked = 1, revoked_at = ? WHERE id = ?`, nanos(at), o.ID); err != nil {
		return err
	}
	if err := audit(ctx, tx, at, actor, o.ID, "revoke", ""); err != nil {
		return err
	}
	if err := bumpSerial(ctx, tx); err != nil {
		return err
	}
	return tx.Commit()
}

// Active returns the indicators in force at at.
func (s *DB) Active(ctx context.Context, at time.Time, caseID string) (*registry.ActiveSet, error) {
	rs, err := s.Rows(ctx)
	if err != nil {
		return nil, err
	}
	return registry.ComputeActive(rs, at, caseID)
}

var _ registry.Dumper = (*DB)(nil)

// Rows returns every indicator with its order, and the serial they are
// at, from one snapshot.
func (s *DB) Rows(ctx context.Context) (*registry.Rows, error) {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	rs := &registry.Rows{}
	var serial int64
	if err := tx.QueryRowContext(ctx, `SELECT serial FROM registry_serial WHERE id = 1`).Scan(&serial); err != nil {
		return nil, err
	}
	rs.Serial = uint32(serial)
	rows, err := tx.QueryContext(ctx, `SELECT o.id, o.case_id, o.court, o.family, o.effective, o.expires, o.revoked,
		i.kind, i.value, i.family, i.valid_from, i.valid_until, i.id
		FROM indicators i JOIN orders o ON o.id = i.order_id ORDER BY i.id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var gens []int // indexes of the dga rows, whose skips are read below
	ids := map[int]int64{}
	for rows.Next() {
		var r registry.Row
		var kind string
		var eff, exp, from, until, indID int64
		if err := rows.Scan(&r.Order.ID, &r.Order.Case, &r.Order.Court, &r.Order.Family, &eff, &exp, &r.Order.Revoked,
			&kind, &r.Indicator.Value, &r.Indicator.Family, &from, &until, &indID); err != nil {
			return nil, err
		}
		r.Order.Effective, r.Order.Expires = fromNanos(eff), fromNanos(exp)
		r.Indicator.Kind, r.Indicator.From, r.Indicator.Until = registry.Kind(kind), fromNanos(from), fromNanos(until)
		if r.Indicator.Kind == registry.KindDGA {
			gens = append(gens, len(rs.Rows))
			ids[len(rs.Rows)] = indID
		}
		rs.Rows = append(rs.Rows, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	if len(gens) > 0 {
		skips, err := s.generatedSkips(ctx, tx, 0)
		if err != nil {
			return nil, err
		}
		for _, i := range gens {
			rs.Rows[i].Indicator.Skipped = skips[ids[i]]
		}
	}
	return rs, nil
}
