package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/takedown/takedown/internal/store"
)

// leasesMigrations is the schema of the roles' leases (store.Leaser), as
// SQLite's. Append only.
var leasesMigrations = []string{
	`CREATE TABLE leases (
		name TEXT PRIMARY KEY,
		holder TEXT NOT NULL,
		until BIGINT NOT NULL
	);`,
}

var (
	_ store.Leaser = (*DB)(nil)
	_ store.Leaser = (*EventStore)(nil)
)

// Lease implements store.Leaser with one upsert. Two nodes racing for an
// expired or new lease cannot both win: the insert of the second waits on
// the first's row lock (or unique index entry), then re-checks the WHERE
// against the row the first wrote, which names another holder and has
// not expired, and updates nothing.
func (d *DB) Lease(ctx context.Context, name, holder string, until, now time.Time) (bool, error) {
	return lease(ctx, d.pool, name, holder, until, now)
}

// ReleaseLease implements store.Leaser.
func (d *DB) ReleaseLease(ctx context.Context, name, holder string) error {
	return releaseLease(ctx, d.pool, name, holder)
}

// LeaseHolder implements store.Leaser.
func (d *DB) LeaseHolder(ctx context.Context, name string) (string, time.Time, bool, error) {
	return leaseHolder(ctx, d.pool, name)
}

// LeaseHolder implements store.Leaser.
func (s *EventStore) LeaseHolder(ctx context.Context, name string) (string, time.Time, bool, error) {
	return leaseHolder(ctx, s.pool, name)
}

func leaseHolder(ctx context.Context, q querier, name string) (string, time.Time, bool, error) {
	var holder string
	var until int64
	err := q.QueryRow(ctx, `SELECT holder, until FROM leases WHERE name = $1`, name).Scan(&holder, &until)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", time.Time{}, false, nil
	}
	if err != nil {
		return "", time.Time{}, false, fmt.Errorf("lease %s: %w", name, err)
	}
	return holder, time.Unix(0, until).UTC(), true, nil
}

// Lease implements store.Leaser for the event store's roles (retention).
func (s *EventStore) Lease(ctx context.Context, name, holder string, until, now time.Time) (bool, error) {
	return lease(ctx, s.pool, name, holder, until, now)
}

// ReleaseLease implements store.Leaser.
func (s *EventStore) ReleaseLease(ctx context.Context, name, holder string) error {
	return releaseLease(ctx, s.pool, name, holder)
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func lease(ctx context.Context, q querier, name, holder string, until, now time.Time) (bool, error) {
	var got string
	err := q.QueryRow(ctx, `INSERT INTO leases AS l (name, holder, until) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
		WHERE l.holder = excluded.holder OR l.until <= $4
		RETURNING holder`, name, holder, until.UnixNano(), now.UnixNano()).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("lease %s: %w", name, err)
	}
	return got == holder, nil
}

func releaseLease(ctx context.Context, q interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}, name, holder string) error {
	if _, err := q.Exec(ctx, `DELETE FROM leases WHERE name = $1 AND holder = $2`, name, holder); err != nil {
		return fmt.Errorf("release lease %s: %w", name, err)
	}
	return nil
}
