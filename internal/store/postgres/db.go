package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// component is one part of the schema with its own migration history, as
// in the SQLite store (internal/store/sqlite/sqlite.go): versions are the
// 1-based index into migrations, which are only ever appended to.
type component struct {
	name       string
	migrations []string
}

// components lists every component's migrations, applied in this order
// (the analytics' build on the events').
func components() []component {
	return []component{
		{"events", migrations},
		{"stats", statsMigrations},
		{"registry", registryMigrations},
		{"api", apiMigrations},
		{"notify", notifyMigrations},
		{"leases", leasesMigrations},
		{"evidence", evidenceMigrations},
	}
}

// DB is an open PostgreSQL store: every role's tables in one database,
// shared by every node of a deployment (docs/operations.md).
type DB struct {
	pool   *pgxpool.Pool
	events *EventStore
}

// Open connects to dsn (postgres://…) and brings every component's schema
// up to date. It refuses a database whose schema is newer than this build
// knows.
func Open(ctx context.Context, dsn string) (*DB, error) {
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	d := newDB(pool)
	if err := d.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("migrate postgres: %w", err)
	}
	return d, nil
}

// Connect returns the store at dsn without touching its schema or
// waiting for the server: for a node that only reads the store and must
// start while the database is unreachable (a sensor, whose registry mirror
// answers meanwhile; registry.Mirror). Its first query connects.
func Connect(dsn string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	return newDB(pool), nil
}

func newDB(pool *pgxpool.Pool) *DB {
	return &DB{pool: pool, events: &EventStore{pool: pool, wstrs: writerStrings{m: map[string]uint64{}}}}
}

// Events is the store's event store.
func (d *DB) Events() *EventStore { return d.events }

// Pool is the connection pool, for other components' queries.
func (d *DB) Pool() *pgxpool.Pool { return d.pool }

// Close closes the connections.
func (d *DB) Close() error {
	d.pool.Close()
	return nil
}

// migrate applies every component's missing migrations in one transaction,
// under an advisory lock so that nodes starting at once take turns.
func (d *DB) migrate(ctx context.Context) error {
	return pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			component TEXT NOT NULL, version INTEGER NOT NULL, applied TIMESTAMPTZ NOT NULL DEFAULT now(),
			PRIMARY KEY (component, version))`); err != nil {
			return err
		}
		for _, c := range components() {
			var have int
			if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations WHERE component = $1`, c.name).Scan(&have); err != nil {
				return err
			}
			if have > len(c.migrations) {
				return fmt.Errorf("component %s is at schema version %d, newer than this build knows (%d): upgrade this node", c.name, have, len(c.migrations))
			}
			for v := have + 1; v <= len(c.migrations); v++ {
				if _, err := tx.Exec(ctx, c.migrations[v-1]); err != nil {
					return fmt.Errorf("%s migration %d: %w", c.name, v, err)
				}
				if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (component, version) VALUES ($1, $2)`, c.name, v); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
