// Package sqlite is the embedded default store: one SQLite database in the
// data dir, in WAL mode, with versioned migrations per component. It is not
// for a store shared by several machines: that is PostgreSQL's.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"modernc.org/sqlite" // the pure-Go SQLite driver, "sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/takedown/takedown/internal/store"
)

// FileName is the database's name inside the data dir.
const FileName = "takedown.db"

// component is one part of the schema with its own migration history.
// Versions are the 1-based index into migrations; a migration is never
// edited once released, only appended.
type component struct {
	name       string
	migrations []string
}

// components lists every component's migrations, applied in this order.
func components() []component {
	return []component{
		{"registry", registryMigrations},
		{"events", eventsMigrations},
		{"stats", statsMigrations},
		{"api", apiMigrations},
		{"notify", notifyMigrations},
		{"leases", leasesMigrations},
		{"evidence", evidenceMigrations},
	}
}

// DB is the open embedded store.
type DB struct {
	db   *sql.DB
	path string

	mu    sync.Mutex // guards stmts
	stmts map[string]*sql.Stmt

	strsOnce sync.Once
	strs     *store.StringTable // the raw events' string table, for readers (records.go)
}

// OpenDir opens (creating if needed) the store in data dir dir.
// The data dir is the owner's only (0700): an existing one readable by
// others is tightened.
func OpenDir(ctx context.Context, dir string) (*DB, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, fi.Mode().Perm()&^0o077); err != nil {
			return nil, fmt.Errorf("restrict data dir %s to its owner: %w", dir, err)
		}
	}
	return Open(ctx, filepath.Join(dir, FileName))
}

// ownerOnly creates the database file with mode 0600 unless it exists, and
// takes group and other access away from it and its -wal and -shm: they
// hold infected machines' addresses. SQLite gives a new -wal and -shm the
// database file's mode, so they are created 0600 too, whatever the umask.
func ownerOnly(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(p, fi.Mode().Perm()&^0o077); err != nil {
				return err
			}
		}
	}
	return nil
}

// Open opens (creating if needed, mode 0600) the database file at path and
// brings its schema up to date.
func Open(ctx context.Context, path string) (*DB, error) {
	if err := ownerOnly(path); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := pingBusy(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	s := &DB{db: db, path: path}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate %s: %w", path, err)
	}
	return s, nil
}

// pingBusy opens db's first connection. A new file's switch to WAL
// (journal_mode in the DSN) needs the file to itself, and SQLite answers
// SQLITE_BUSY at once, without its busy handler, to a process that
// switches it while another does: that is retried for up to the busy
// timeout, 10 s.
func pingBusy(ctx context.Context, db *sql.DB) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := db.PingContext(ctx)
		var se *sqlite.Error
		if err == nil || !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// SQL is the underlying handle, for the components' own code in this package.
func (s *DB) SQL() *sql.DB { return s.db }

// Path is the database file.
func (s *DB) Path() string { return s.path }

// BackupTo writes a consistent copy of the database to path (which must not
// exist) with VACUUM INTO: one read transaction, so the copy is the
// database as of one instant while other connections and processes go on
// writing. The copy is compact, holds no WAL, and is made 0600.
func (s *DB) BackupTo(ctx context.Context, path string) error {
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("backup %s: file exists", path)
	}
	if _, err := s.db.ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
		return fmt.Errorf("backup %s to %s: %w", s.path, path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("backup %s: %w", path, err)
	}
	return nil
}

// Close closes the database.
func (s *DB) Close() error {
	s.mu.Lock()
	for _, st := range s.stmts {
		st.Close()
	}
	s.stmts = nil
	s.mu.Unlock()
	return s.db.Close()
}

// stmt returns the prepared statement of query, prepared once: the read
// paths that serve every API request use it, so that SQLite does not parse
// the same text again each time.
func (s *DB) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.stmts[query]; ok {
		return st, nil
	}
	st, err := s.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if s.stmts == nil {
		s.stmts = make(map[string]*sql.Stmt)
	}
	s.stmts[query] = st
	return st, nil
}

// schemaVersion reads component name's schema version through q (the
// database, or a transaction), refusing one newer than the n migrations
// this build knows.
func schemaVersion(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, name string, n int) (int, error) {
	var have int
	if err := q.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations WHERE component = ?`, name).Scan(&have); err != nil {
		return 0, err
	}
	if have > n {
		return 0, fmt.Errorf("component %s is at schema version %d, newer than this build knows (%d)", name, have, n)
	}
	return have, nil
}

// migrateOne applies the next migration of component name, or reports
// that there is none.
func (s *DB) migrateOne(ctx context.Context, name string, migrations []string) (done bool, err error) {
	err = s.writeTx(ctx, name+" migration", func(tx *sql.Tx) error {
		have, err := schemaVersion(ctx, tx, name, len(migrations))
		if err != nil || have == len(migrations) {
			done = true
			return err
		}
		v := have + 1
		if _, err := tx.ExecContext(ctx, migrations[v-1]); err != nil {
			return fmt.Errorf("%s migration %d: %w", name, v, err)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO schema_migrations VALUES (?, ?, strftime('%Y-%m-%dT%H:%M:%fZ','now'))`, name, v)
		return err
	})
	return done, err
}

func (s *DB) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		component TEXT NOT NULL, version INTEGER NOT NULL, applied TEXT NOT NULL,
		PRIMARY KEY (component, version))`); err != nil {
		return err
	}
	for _, c := range components() {
		// Read first without the write lock: opening an up-to-date store
		// (every command run beside serve) must not wait for its writer.
		have, err := schemaVersion(ctx, s.db, c.name, len(c.migrations))
		if err != nil {
			return err
		}
		// Then each version in a transaction of its own (IMMEDIATE: the
		// write lock first) that reads the version again: another process
		// opening the same new file may have applied it meanwhile.
		for done := have == len(c.migrations); !done; {
			if done, err = s.migrateOne(ctx, c.name, c.migrations); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeTx runs fn in a write transaction and commits it when fn
// succeeds; a failure to begin or commit is wrapped as what's. BEGIN
// IMMEDIATE (_txlock): SQLite's one writer, from the start.
func (s *DB) writeTx(ctx context.Context, what string, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit, a no-op
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
