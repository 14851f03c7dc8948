package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/takedown/takedown/internal/store"
)

// leasesMigrations is the schema of the roles' leases (store.Leaser).
// Append only.
var leasesMigrations = []string{
	`CREATE TABLE leases (
		name TEXT PRIMARY KEY,
		holder TEXT NOT NULL,
		until INTEGER NOT NULL
	);`,
}

var _ store.Leaser = (*DB)(nil)

// Lease implements store.Leaser with one upsert: the row changes only
// when holder already has it or it has expired, and SQLite runs one
// writer at a time, so two processes never both get it.
func (s *DB) Lease(ctx context.Context, name, holder string, until, now time.Time) (bool, error) {
	var got string
	err := s.db.QueryRowContext(ctx, `INSERT INTO leases (name, holder, until) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
		WHERE leases.holder = excluded.holder OR leases.until <= ?
		RETURNING holder`, name, holder, until.UnixNano(), now.UnixNano()).Scan(&got)
	if err == nil {
		return got == holder, nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return false, fmt.Errorf("lease %s: %w", name, err)
}

// ReleaseLease implements store.Leaser.
func (s *DB) ReleaseLease(ctx context.Context, name, holder string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM leases WHERE name = ? AND holder = ?`, name, holder); err != nil {
		return fmt.Errorf("release lease %s: %w", name, err)
	}
	return nil
}

// LeaseHolder implements store.Leaser.
func (s *DB) LeaseHolder(ctx context.Context, name string) (string, time.Time, bool, error) {
	var holder string
	var until int64
	err := s.db.QueryRowContext(ctx, `SELECT holder, until FROM leases WHERE name = ?`, name).Scan(&holder, &until)
	if errors.Is(err, sql.ErrNoRows) {
		return "", time.Time{}, false, nil
	}
	if err != nil {
		return "", time.Time{}, false, fmt.Errorf("lease %s: %w", name, err)
	}
	return holder, time.Unix(0, until).UTC(), true, nil
}

// LeaseHolder implements store.Leaser.
func (s *EventStore) LeaseHolder(ctx context.Context, name string) (string, time.Time, bool, error) {
	return s.db.LeaseHolder(ctx, name)
}

// Lease implements store.Leaser for the event store's roles (retention).
func (s *EventStore) Lease(ctx context.Context, name, holder string, until, now time.Time) (bool, error) {
	return s.db.Lease(ctx, name, holder, until, now)
}

// ReleaseLease implements store.Leaser.
func (s *EventStore) ReleaseLease(ctx context.Context, name, holder string) error {
	return s.db.ReleaseLease(ctx, name, holder)
}
