package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/takedown/takedown/internal/evidence"
	"github.com/takedown/takedown/internal/store"
)

// evidenceMigrations is the schema of a shared evidence log
// (evidence.SharedStore), as PostgreSQL's (postgres/evidence_log.go):
// its entries by leaf index and its signing key. One machine's serve keeps
// its log in the data dir only and does not use it; it is here so that
// the one conformance suite runs on both stores, and for processes that
// share one database file with data dirs of their own. Append only.
var evidenceMigrations = []string{
	`CREATE TABLE evidence_entries (
		idx INTEGER PRIMARY KEY CHECK (idx >= 0),
		entry BLOB NOT NULL
	);
	CREATE TABLE evidence_key (
		one INTEGER PRIMARY KEY CHECK (one = 1),
		signer TEXT NOT NULL
	);`,
	`CREATE TABLE evidence_rotations (
		idx INTEGER PRIMARY KEY REFERENCES evidence_entries (idx),
		sig BLOB NOT NULL
	);`,
}

var _ evidence.SharedStore = (*DB)(nil)

// EvidenceKey implements evidence.SharedStore: the first key offered wins.
func (s *DB) EvidenceKey(ctx context.Context, candidate string) (string, error) {
	var stored string
	if _, err := s.db.ExecContext(ctx, `INSERT INTO evidence_key (one, signer) VALUES (1, ?) ON CONFLICT DO NOTHING`, candidate); err != nil {
		return "", fmt.Errorf("evidence key: %w", err)
	}
	if err := s.db.QueryRowContext(ctx, `SELECT signer FROM evidence_key`).Scan(&stored); err != nil {
		return "", fmt.Errorf("evidence key: %w", err)
	}
	return stored, nil
}

// EvidenceSize implements evidence.SharedStore.
func (s *DB) EvidenceSize(ctx context.Context) (uint64, error) {
	var n int64
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(idx) + 1, 0) FROM evidence_entries`).Scan(&n); err != nil {
		return 0, fmt.Errorf("evidence log size: %w", err)
	}
	return uint64(n), nil
}

// EvidenceEntries implements evidence.SharedStore.
func (s *DB) EvidenceEntries(ctx context.Context, from uint64, max int) ([][]byte, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT entry FROM evidence_entries WHERE idx >= ? ORDER BY idx LIMIT ?`, int64(from), max)
	if err != nil {
		return nil, fmt.Errorf("evidence entries: %w", err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var e []byte
		if err := rows.Scan(&e); err != nil {
			return nil, fmt.Errorf("evidence entries: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("evidence entries: %w", err)
	}
	return out, nil
}

// AddEvidenceEntries implements evidence.SharedStore in one transaction,
// which SQLite runs alone among writers: the size is read and the entries
// inserted with no other append between.
func (s *DB) AddEvidenceEntries(ctx context.Context, first uint64, entries [][]byte) error {
	if len(entries) == 0 {
		return nil
	}
	return s.writeTx(ctx, "evidence log", func(tx *sql.Tx) error { return addEvidenceEntries(ctx, tx, first, entries) })
}

// RotateEvidenceKey implements evidence.SharedStore.
func (s *DB) RotateEvidenceKey(ctx context.Context, first uint64, entry, sig []byte, old, signer string) error {
	return s.writeTx(ctx, "evidence log", func(tx *sql.Tx) error {
		if err := addEvidenceEntries(ctx, tx, first, [][]byte{entry}); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO evidence_rotations (idx, sig) VALUES (?, ?)`, int64(first), sig); err != nil {
			return fmt.Errorf("evidence key rotation: %w", err)
		}
		res, err := tx.ExecContext(ctx, `UPDATE evidence_key SET signer = ? WHERE signer = ?`, signer, old)
		if err != nil {
			return fmt.Errorf("evidence key rotation: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return fmt.Errorf("evidence key rotation: the store's key is no longer the one rotated: %w", evidence.ErrEntriesTaken)
		}
		return nil
	})
}

// EvidenceRotations implements evidence.SharedStore.
func (s *DB) EvidenceRotations(ctx context.Context) (map[uint64][]byte, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT idx, sig FROM evidence_rotations`)
	if err != nil {
		return nil, fmt.Errorf("evidence rotations: %w", err)
	}
	defer rows.Close()
	return store.ScanEvidenceRotations(rows)
}

// addEvidenceEntries stores entries from first, which must be the log's
// size (the transaction is SQLite's only writer: no append comes between).
func addEvidenceEntries(ctx context.Context, tx *sql.Tx, first uint64, entries [][]byte) error {
	var n int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(idx) + 1, 0) FROM evidence_entries`).Scan(&n); err != nil {
		return fmt.Errorf("evidence entries: %w", err)
	}
	if uint64(n) != first {
		return fmt.Errorf("evidence entries at %d: the log has %d: %w", first, n, evidence.ErrEntriesTaken)
	}
	st, err := tx.PrepareContext(ctx, `INSERT INTO evidence_entries (idx, entry) VALUES (?, ?)`)
	if err != nil {
		return fmt.Errorf("evidence entries: %w", err)
	}
	defer st.Close()
	for i, e := range entries {
		if _, err := st.ExecContext(ctx, int64(first)+int64(i), e); err != nil {
			return fmt.Errorf("evidence entries: %w", err)
		}
	}
	return nil
}
