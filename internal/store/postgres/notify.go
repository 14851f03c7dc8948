package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/netscope"
	"github.com/takedown/takedown/internal/notify"
	"github.com/takedown/takedown/internal/store"
)

// notifyMigrations is the schema of the subscribers and the delivery
// ledger, as SQLite's (internal/store/sqlite/schema_notify.go). Append
// only.
//
// The encodings are SQLite's: contacts, formats and recipients
// newline-separated, networks as netscope.Networks.String, the day as unix
// seconds, every other time in unix nanoseconds (0: none), so that both
// stores give back the same values to the nanosecond. The first migration
// is SQLite's schema as it stands after its second (in_doubt and
// committing), since there is no older PostgreSQL ledger to carry over.
var notifyMigrations = []string{
	`CREATE TABLE notify_subscribers (
		id TEXT PRIMARY KEY,
		org TEXT NOT NULL,
		contacts TEXT NOT NULL,
		networks TEXT NOT NULL,
		formats TEXT NOT NULL,
		cadence TEXT NOT NULL,
		tlp TEXT NOT NULL,
		created BIGINT NOT NULL
	);
	CREATE TABLE notify_deliveries (
		subscriber TEXT NOT NULL,
		day BIGINT NOT NULL,
		message_id TEXT NOT NULL UNIQUE,
		state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed', 'in_doubt')),
		attempts INTEGER NOT NULL DEFAULT 0,
		next_attempt BIGINT NOT NULL DEFAULT 0,
		lease_until BIGINT NOT NULL DEFAULT 0,
		committing BOOLEAN NOT NULL DEFAULT false,
		last_error TEXT NOT NULL DEFAULT '',
		created BIGINT NOT NULL,
		sent BIGINT NOT NULL DEFAULT 0,
		rows INTEGER NOT NULL,
		recipients TEXT NOT NULL,
		message BYTEA NOT NULL,
		PRIMARY KEY (subscriber, day)
	);
	CREATE INDEX notify_deliveries_pending ON notify_deliveries (next_attempt) WHERE state = 'pending';
	CREATE INDEX notify_deliveries_day ON notify_deliveries (day);`,
}

// NotifyStore is the PostgreSQL store of notification subscribers and the
// delivery ledger, and a read-only notify.Source of the event store's
// events: sqlite.NotifyStore's counterpart, shared by every node that runs
// the notify role.
//
// The ledger is what keeps two such nodes from sending one subscriber's
// day twice: a delivery is sent only by the node whose ClaimDelivery
// leased it. Leases compare the claimers' clocks (the now and until they
// pass), so the nodes' clocks must agree to well within a lease.
type NotifyStore struct {
	pool   *pgxpool.Pool
	events *EventStore
}

var (
	_ notify.Store        = (*NotifyStore)(nil)
	_ notify.Source       = (*NotifyStore)(nil)
	_ notify.SelectSource = (*NotifyStore)(nil)
)

// NewNotifyStore returns the notification store on db.
func NewNotifyStore(db *DB) *NotifyStore { return &NotifyStore{pool: db.pool, events: db.events} }

// notifyNanos and notifyTime encode times as the SQLite ledger does: unix
// nanoseconds, 0 for the zero time.
func notifyNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UTC().UnixNano()
}

func notifyTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func notifySplit(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// AddSubscribers implements notify.Store. An ID that is taken, by a row
// already there or by another node adding it at the same moment, makes
// the insert do nothing, which is reported as ErrExists and rolls back the
// whole list.
func (s *NotifyStore) AddSubscribers(ctx context.Context, subs []notify.Subscriber) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("add subscribers: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	for _, sub := range subs {
		formats := make([]string, len(sub.Formats))
		for i, f := range sub.Formats {
			formats[i] = string(f)
		}
		t, err := tx.Exec(ctx, `INSERT INTO notify_subscribers (id, org, contacts, networks, formats, cadence, tlp, created)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING`,
			sub.ID, sub.Org, strings.Join(sub.Contacts, "\n"), sub.Networks.String(), strings.Join(formats, "\n"), sub.Cadence, sub.TLP, notifyNanos(sub.Created))
		if err != nil {
			return fmt.Errorf("add subscriber %s: %w", sub.ID, err)
		}
		if t.RowsAffected() == 0 {
			return fmt.Errorf("subscriber %s: %w", sub.ID, notify.ErrExists)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("add subscribers: %w", err)
	}
	return nil
}

// Subscribers implements notify.Store.
func (s *NotifyStore) Subscribers(ctx context.Context) ([]notify.Subscriber, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, org, contacts, networks, formats, cadence, tlp, created FROM notify_subscribers ORDER BY id`)
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
		sub.Networks, sub.Created = n, notifyTime(created)
		sub.Contacts = notifySplit(contacts)
		for _, f := range notifySplit(formats) {
			sub.Formats = append(sub.Formats, notify.Format(f))
		}
		out = append(out, sub)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list subscribers: %w", err)
	}
	return out, nil
}

// RemoveSubscriber implements notify.Store.
func (s *NotifyStore) RemoveSubscriber(ctx context.Context, id string) error {
	t, err := s.pool.Exec(ctx, `DELETE FROM notify_subscribers WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("remove subscriber %s: %w", id, err)
	}
	if t.RowsAffected() == 0 {
		return fmt.Errorf("subscriber %s: %w", id, notify.ErrNotFound)
	}
	return nil
}

const notifyDeliveryCols = `subscriber, day, message_id, state, attempts, next_attempt, last_error, created, sent, rows, recipients`

func scanNotifyDelivery(row pgx.Row, withMessage bool) (notify.Delivery, error) {
	var d notify.Delivery
	var day, next, created, sent int64
	var state, rcpts string
	dst := []any{&d.Subscriber, &day, &d.MessageID, &state, &d.Attempts, &next, &d.LastError, &created, &sent, &d.Rows, &rcpts}
	if withMessage {
		dst = append(dst, &d.Message)
	}
	if err := row.Scan(dst...); err != nil {
		return d, err
	}
	d.Day, d.State, d.NextAttempt = time.Unix(day, 0).UTC(), notify.State(state), notifyTime(next)
	d.Created, d.Sent, d.Recipients = notifyTime(created), notifyTime(sent), notifySplit(rcpts)
	return d, nil
}

// CreateDelivery implements notify.Store. When two nodes create the same
// (subscriber, day) at once, the second insert waits for the first's
// commit and then does nothing; both read back the one stored delivery.
// The conflict is left unnamed, so that both unique keys are arbiters:
// two nodes compose the same Message-ID for a (subscriber, day), and
// naming only the primary key would let the second insert fail on the
// Message-ID instead. A Message-ID taken by another (subscriber, day) then
// inserts nothing either, and reading the delivery back fails.
func (s *NotifyStore) CreateDelivery(ctx context.Context, d *notify.Delivery) (notify.Delivery, bool, error) {
	day := store.DayOf(d.Day)
	t, err := s.pool.Exec(ctx, `INSERT INTO notify_deliveries (subscriber, day, message_id, state, created, rows, recipients, message)
		VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
		d.Subscriber, day, d.MessageID, notifyNanos(d.Created), d.Rows, strings.Join(d.Recipients, "\n"), d.Message)
	if err != nil {
		return notify.Delivery{}, false, fmt.Errorf("record delivery %s: %w", d.Subscriber, err)
	}
	got, err := scanNotifyDelivery(s.pool.QueryRow(ctx, `SELECT `+notifyDeliveryCols+`, message FROM notify_deliveries WHERE subscriber = $1 AND day = $2`, d.Subscriber, day), true)
	if errors.Is(err, pgx.ErrNoRows) {
		return notify.Delivery{}, false, fmt.Errorf("record delivery %s: Message-ID %s is another delivery's", d.Subscriber, d.MessageID)
	}
	if err != nil {
		return notify.Delivery{}, false, fmt.Errorf("read delivery %s: %w", d.Subscriber, err)
	}
	return got, t.RowsAffected() == 1, nil
}

// ClaimDelivery implements notify.Store.
//
// The claim is one UPDATE whose WHERE holds every condition (pending, not
// committing, due, lease run out), and that is what makes it race-free
// across nodes: PostgreSQL lets only one transaction at a time update a
// row. A second claimer of the same delivery waits for the first's row
// lock, and once the first commits it re-evaluates the WHERE against the
// row as the first left it (READ COMMITTED's re-check of an updated row),
// where lease_until is now in the future: it updates nothing and returns
// no row. So exactly one of any number of concurrent claimers, on any
// number of nodes, gets the delivery until its lease runs out.
func (s *NotifyStore) ClaimDelivery(ctx context.Context, sub string, day, now, until time.Time) (notify.Delivery, bool, error) {
	d, err := scanNotifyDelivery(s.pool.QueryRow(ctx, `UPDATE notify_deliveries SET lease_until = $1
		WHERE subscriber = $2 AND day = $3 AND state = 'pending' AND NOT committing AND next_attempt <= $4 AND lease_until <= $4
		RETURNING `+notifyDeliveryCols+`, message`, notifyNanos(until), sub, store.DayOf(day), now.UnixNano()), true)
	if errors.Is(err, pgx.ErrNoRows) {
		return notify.Delivery{}, false, nil
	}
	if err != nil {
		return notify.Delivery{}, false, fmt.Errorf("claim delivery %s: %w", sub, err)
	}
	return d, true, nil
}

// RecordAttempt implements notify.Store. The last error is made valid
// UTF-8 without NUL bytes first: it quotes the mail server, and a reply
// PostgreSQL's text cannot hold must not keep the outcome (perhaps "sent")
// from being recorded.
func (s *NotifyStore) RecordAttempt(ctx context.Context, d *notify.Delivery) error {
	lastErr := strings.ReplaceAll(strings.ToValidUTF8(d.LastError, "\uFFFD"), "\x00", "\uFFFD")
	t, err := s.pool.Exec(ctx, `UPDATE notify_deliveries SET state = $1, attempts = $2, next_attempt = $3, last_error = $4, sent = $5, lease_until = 0, committing = false
		WHERE subscriber = $6 AND day = $7 AND state = 'pending'`,
		string(d.State), d.Attempts, notifyNanos(d.NextAttempt), lastErr, notifyNanos(d.Sent), d.Subscriber, store.DayOf(d.Day))
	if err != nil {
		return fmt.Errorf("record attempt %s: %w", d.Subscriber, err)
	}
	if t.RowsAffected() == 0 {
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
	return s.deliveries(ctx, `SELECT `+notifyDeliveryCols+` FROM notify_deliveries WHERE day >= $1 AND day < $2 ORDER BY day, subscriber`, lo, hi)
}

// Due implements notify.Store.
func (s *NotifyStore) Due(ctx context.Context, now time.Time) ([]notify.Delivery, error) {
	return s.deliveries(ctx, `SELECT `+notifyDeliveryCols+` FROM notify_deliveries WHERE state = 'pending' AND next_attempt <= $1 ORDER BY day, subscriber`, now.UnixNano())
}

func (s *NotifyStore) deliveries(ctx context.Context, q string, args ...any) ([]notify.Delivery, error) {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	defer rows.Close()
	var out []notify.Delivery
	for rows.Next() {
		d, err := scanNotifyDelivery(rows, false)
		if err != nil {
			return nil, fmt.Errorf("list deliveries: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	return out, nil
}

// Requeue implements notify.Store.
func (s *NotifyStore) Requeue(ctx context.Context, day time.Time, from notify.State) (int, error) {
	if from != notify.StateFailed && from != notify.StateInDoubt {
		return 0, fmt.Errorf("requeue: only failed or in_doubt deliveries, not %q", from)
	}
	t, err := s.pool.Exec(ctx, `UPDATE notify_deliveries SET state = 'pending', next_attempt = 0, lease_until = 0, committing = false
		WHERE day = $1 AND state = $2`, store.DayOf(day), string(from))
	if err != nil {
		return 0, fmt.Errorf("requeue %s deliveries: %w", from, err)
	}
	return int(t.RowsAffected()), nil
}

// MarkCommitting implements notify.Store.
func (s *NotifyStore) MarkCommitting(ctx context.Context, sub string, day time.Time) error {
	t, err := s.pool.Exec(ctx, `UPDATE notify_deliveries SET committing = true WHERE subscriber = $1 AND day = $2 AND state = 'pending'`, sub, store.DayOf(day))
	if err != nil {
		return fmt.Errorf("mark delivery %s committing: %w", sub, err)
	}
	if t.RowsAffected() == 0 {
		return fmt.Errorf("mark delivery %s %s committing: no pending delivery: %w", sub, day.Format(time.DateOnly), notify.ErrNotFound)
	}
	return nil
}

// ExpireCommitting implements notify.Store.
func (s *NotifyStore) ExpireCommitting(ctx context.Context, now time.Time, reason string) (int, error) {
	t, err := s.pool.Exec(ctx, `UPDATE notify_deliveries SET state = 'in_doubt', committing = false, lease_until = 0, last_error = $1
		WHERE state = 'pending' AND committing AND lease_until <= $2`, reason, now.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("expire committing deliveries: %w", err)
	}
	return int(t.RowsAffected()), nil
}

// ScanDayIPs implements notify.Source.
func (s *NotifyStore) ScanDayIPs(ctx context.Context, from, to time.Time, fn func(*store.DayIP) error) error {
	return s.events.ScanDayIPs(ctx, from, to, fn)
}

// ScanDayEvents implements notify.Source.
func (s *NotifyStore) ScanDayEvents(ctx context.Context, day time.Time, prefixes []netip.Prefix, fn func(*event.Event) error) error {
	return s.events.ScanDayEvents(ctx, day, prefixes, fn)
}

// ScanDayIPsSelect implements notify.SelectSource.
func (s *NotifyStore) ScanDayIPsSelect(ctx context.Context, from, to time.Time, sel *store.Selection, fn func(*store.DayIP) error) error {
	return s.events.ScanDayIPsSelect(ctx, from, to, sel, nil, fn)
}
