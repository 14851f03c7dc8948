package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/netscope"
	"github.com/takedown/takedown/internal/notify"
	"github.com/takedown/takedown/internal/store"
)

// NotifyStore is the embedded store of notification subscribers and the
// delivery ledger, and a read-only notify.Source of events.
type NotifyStore struct {
	db    *DB
	stats *StatsStore
}

var (
	_ notify.Store  = (*NotifyStore)(nil)
	_ notify.Source = (*NotifyStore)(nil)
)

// NewNotifyStore returns the notification store on db.
func NewNotifyStore(db *DB) *NotifyStore { return &NotifyStore{db: db, stats: NewStatsStore(db)} }

// AddSubscribers implements notify.Store.
func (s *NotifyStore) AddSubscribers(ctx context.Context, subs []notify.Subscriber) error {
	tx, err := s.db.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("add subscribers: %w", err)
	}
	defer tx.Rollback()
	for _, sub := range subs {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM notify_subscribers WHERE id = ?`, sub.ID).Scan(&n); err != nil {
			return fmt.Errorf("add subscriber %s: %w", sub.ID, err)
		}
		if n > 0 {
			return fmt.Errorf("subscriber %s: %w", sub.ID, notify.ErrExists)
		}
		formats := make([]string, len(sub.Formats))
		for i, f := range sub.Formats {
			formats[i] = string(f)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO notify_subscribers (id, org, contacts, networks, formats, cadence, tlp, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			sub.ID, sub.Org, strings.Join(sub.Contacts, "\n"), sub.Networks.String(), strings.Join(formats, "\n"), sub.Cadence, sub.TLP, nanos(sub.Created)); err != nil {
			return fmt.Errorf("add subscriber %s: %w", sub.ID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("add subscribers: %w", err)
	}
	return nil
}

// Subscribers implements notify.Store.
func (s *NotifyStore) Subscribers(ctx context.Context) ([]notify.Subscriber, error) {
	rows, err := s.db.db.QueryContext(ctx, `SELECT id, org, contacts, networks, formats, cadence, tlp, created FROM notify_subscribers ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list subscribers: %w", err)
	}
	defer rows.Close()
	var out []notify.Subscriber
	for rows.Next() {
		var sub notify.Subscriber
		var contacts, nets, formats string
		var created int64
		if err := rows.Scan(&sub.ID, &sub.Org, &contacts, &nets, &formats, &sub.Cadence, &sub.TLP, &created); err != nil {
			return nil, fmt.Errorf("list subscribers: %w", err)
		}
		n, err := netscope.ParseNetworks(nets)
		if err != nil {
			return nil, fmt.Errorf("subscriber %s: %w", sub.ID, err)
		}
		sub.Networks, sub.Created = n, fromNanos(created)
		sub.Contacts = splitLines(contacts)
		for _, f := range splitLines(formats) {
			sub.Formats = append(sub.Formats, notify.Format(f))
		}
		out = append(out, sub)
	}
	return out, rows.Err()
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// RemoveSubscriber implements notify.Store.
func (s *NotifyStore) RemoveSubscriber(ctx context.Context, id string) error {
	r, err := s.db.db.ExecContext(ctx, `DELETE FROM notify_subscribers WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("remove subscriber %s: %w", id, err)
	}
	if n, _ := r.RowsAffected(); n == 0 {
		return fmt.Errorf("subscriber %s: %w", id, notify.ErrNotFound)
	}
	return nil
}

const deliveryCols = `subscriber, day, message_id, state, attempts, next_attempt, last_error, created, sent, rows, recipients`

func scanDelivery(sc interface{ Scan(...any) error }, withMessage bool) (notify.Delivery, error) {
	var d notify.Delivery
	var day, next, created, sent int64
	var state, rcpts string
	dst := []any{&d.Subscriber, &day, &d.MessageID, &state, &d.Attempts, &next, &d.LastError, &created, &sent, &d.Rows, &rcpts}
	if withMessage {
		dst = append(dst, &d.Message)
	}
	if err := sc.Scan(dst...); err != nil {
		return d, err
	}
	d.Day, d.State, d.NextAttempt = time.Unix(day, 0).UTC(), notify.State(state), fromNanos(next)
	d.Created, d.Sent, d.Recipients = fromNanos(created), fromNanos(sent), splitLines(rcpts)
	return d, nil
}

// CreateDelivery implements notify.Store.
func (s *NotifyStore) CreateDelivery(ctx context.Context, d *notify.Delivery) (notify.Delivery, bool, error) {
	day := store.DayOf(d.Day)
	r, err := s.db.db.ExecContext(ctx, `INSERT INTO notify_deliveries (subscriber, day, message_id, state, created, rows, recipients, message)
		VALUES (?, ?, ?, 'pending', ?, ?, ?, ?) ON CONFLICT (subscriber, day) DO NOTHING`,
		d.Subscriber, day, d.MessageID, nanos(d.Created), d.Rows, strings.Join(d.Recipients, "\n"), d.Message)
	if err != nil {
		return notify.Delivery{}, false, fmt.Errorf("record delivery %s: %w", d.Subscriber, err)
	}
	n, _ := r.RowsAffected()
	got, err := scanDelivery(s.db.db.QueryRowContext(ctx, `SELECT `+deliveryCols+`, message FROM notify_deliveries WHERE subscriber = ? AND day = ?`, d.Subscriber, day), true)
	if err != nil {
		return notify.Delivery{}, false, fmt.Errorf("read delivery %s: %w", d.Subscriber, err)
	}
	return got, n == 1, nil
}

// ClaimDelivery implements notify.Store.
func (s *NotifyStore) ClaimDelivery(ctx context.Context, sub string, day, now, until time.Time) (notify.Delivery, bool, error) {
	d, err := scanDelivery(s.db.db.QueryRowContext(ctx, `UPDATE notify_deliveries SET lease_until = ?
		WHERE subscriber = ? AND day = ? AND state = 'pending' AND committing = 0 AND next_attempt <= ? AND lease_until <= ?
		RETURNING `+deliveryCols+`, message`, nanos(until), sub, store.DayOf(day), now.UnixNano(), now.UnixNano()), true)
	if errors.Is(err, sql.ErrNoRows) {
		return notify.Delivery{}, false, nil
	}
	if err != nil {
		return notify.Delivery{}, false, fmt.Errorf("claim delivery %s: %w", sub, err)
	}
	return d, true, nil
}

// RecordAttempt implements notify.Store.
func (s *NotifyStore) RecordAttempt(ctx context.Context, d *notify.Delivery) error {
	r, err := s.db.db.ExecContext(ctx, `UPDATE notify_deliveries SET state = ?, attempts = ?, next_attempt = ?, last_error = ?, sent = ?, lease_until = 0, committing = 0
		WHERE subscriber = ? AND day = ? AND state = 'pending'`,
		string(d.State), d.Attempts, nanos(d.NextAttempt), d.LastError, nanos(d.Sent), d.Subscriber, store.DayOf(d.Day))
	if err != nil {
		return fmt.Errorf("record attempt %s: %w", d.Subscriber, err)
	}
	if n, _ := r.RowsAffected(); n == 0 {
		return fmt.Errorf("record attempt %s %s: no pending delivery: %w", d.Subscriber, d.Day.Format(time.DateOnly), notify.ErrNotFound)
	}
	return nil
}

// Deliveries implements notify.Store.
func (s *NotifyStore) Deliveries(ctx context.Context, from, to time.Time) ([]notify.Delivery, error) {
	lo, hi := int64(-1<<62), int64(1<<62)
	if !from.IsZero() {
		lo = from.Unix()
	}
	if !to.IsZero() {
		hi = to.Unix()
	}
	return s.deliveries(ctx, `SELECT `+deliveryCols+` FROM notify_deliveries WHERE day >= ? AND day < ? ORDER BY day, subscriber`, lo, hi)
}

// Due implements notify.Store.
func (s *NotifyStore) Due(ctx context.Context, now time.Time) ([]notify.Delivery, error) {
	return s.deliveries(ctx, `SELECT `+deliveryCols+` FROM notify_deliveries WHERE state = 'pending' AND next_attempt <= ? ORDER BY day, subscriber`, now.UnixNano())
}

func (s *NotifyStore) deliveries(ctx context.Context, q string, args ...any) ([]notify.Delivery, error) {
	rows, err := s.db.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	defer rows.Close()
	var out []notify.Delivery
	for rows.Next() {
		d, err := scanDelivery(rows, false)
		if err != nil {
			return nil, fmt.Errorf("list deliveries: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// Requeue implements notify.Store.
func (s *NotifyStore) Requeue(ctx context.Context, day time.Time, from notify.State) (int, error) {
	if from != notify.StateFailed && from != notify.StateInDoubt {
		return 0, fmt.Errorf("requeue: only failed or in_doubt deliveries, not %q", from)
	}
	r, err := s.db.db.ExecContext(ctx, `UPDATE notify_deliveries SET state = 'pending', next_attempt = 0, lease_until = 0, committing = 0
		WHERE day = ? AND state = ?`, store.DayOf(day), string(from))
	if err != nil {
		return 0, fmt.Errorf("requeue %s deliveries: %w", from, err)
	}
	n, _ := r.RowsAffected()
	return int(n), nil
}

// MarkCommitting implements notify.Store.
func (s *NotifyStore) MarkCommitting(ctx context.Context, sub string, day time.Time) error {
	r, err := s.db.db.ExecContext(ctx, `UPDATE notify_deliveries SET committing = 1 WHERE subscriber = ? AND day = ? AND state = 'pending'`, sub, store.DayOf(day))
	if err != nil {
		return fmt.Errorf("mark delivery %s committing: %w", sub, err)
	}
	if n, _ := r.RowsAffected(); n == 0 {
		return fmt.Errorf("mark delivery %s %s committing: no pending delivery: %w", sub, day.Format(time.DateOnly), notify.ErrNotFound)
	}
	return nil
}

// ExpireCommitting implements notify.Store.
func (s *NotifyStore) ExpireCommitting(ctx context.Context, now time.Time, reason string) (int, error) {
	r, err := s.db.db.ExecContext(ctx, `UPDATE notify_deliveries SET state = 'in_doubt', committing = 0, lease_until = 0, last_error = ?
		WHERE state = 'pending' AND committing = 1 AND lease_until <= ?`, reason, now.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("expire committing deliveries: %w", err)
	}
	n, _ := r.RowsAffected()
	return int(n), nil
}

// ScanDayIPs implements notify.Source.
func (s *NotifyStore) ScanDayIPs(ctx context.Context, from, to time.Time, fn func(*store.DayIP) error) error {
	return s.stats.ScanDayIPs(ctx, from, to, fn)
}

// ScanDayEvents implements notify.Source.
func (s *NotifyStore) ScanDayEvents(ctx context.Context, day time.Time, prefixes []netip.Prefix, fn func(*event.Event) error) error {
	return scanDayEvents(ctx, s.db, day, prefixes, fn)
}

// EventsBySeq implements store.DetailReader.
func (s *NotifyStore) EventsBySeq(ctx context.Context, seqs []int64, fn func(seq int64, e *event.Event) error) error {
	return eventsBySeq(ctx, s.db, seqs, fn)
}

// ScanDayIPsSelect implements notify.SelectSource.
func (s *NotifyStore) ScanDayIPsSelect(ctx context.Context, from, to time.Time, sel *store.Selection, fn func(*store.DayIP) error) error {
	return scanSelect(ctx, s.db, from, to, sel, nil, fn)
}
