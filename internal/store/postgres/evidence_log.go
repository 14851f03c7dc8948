package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/takedown/takedown/internal/evidence"
	"github.com/takedown/takedown/internal/store"
)

// evidenceMigrations is the schema of the deployment's one evidence log
// (evidence.SharedStore, internal/evidence/shared.go): its entries, as
// the log's tiles hold them (nonce || record), by leaf index, and its
// signing key. The key's row is the private key: the database holds the
// power to sign the deployment's checkpoints, as each node's evidence
// directory does (docs/operations.md). Append only.
var evidenceMigrations = []string{
	`CREATE TABLE evidence_entries (
		idx BIGINT PRIMARY KEY CHECK (idx >= 0),
		entry BYTEA NOT NULL
	);
	CREATE TABLE evidence_key (
		one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
		signer TEXT NOT NULL
	);`,
	// The old key's signature of each rotate-key record, by the record's
	// leaf index.
	`CREATE TABLE evidence_rotations (
		idx BIGINT PRIMARY KEY REFERENCES evidence_entries (idx),
		sig BYTEA NOT NULL
	);`,
}

var _ evidence.SharedStore = (*EventStore)(nil)

// EvidenceKey implements evidence.SharedStore: the first key offered wins
// (two nodes racing insert one row; the second's insert does nothing).
func (s *EventStore) EvidenceKey(ctx context.Context, candidate string) (string, error) {
	if _, err := s.pool.Exec(ctx, `INSERT INTO evidence_key (signer) VALUES ($1) ON CONFLICT DO NOTHING`, candidate); err != nil {
		return "", fmt.Errorf("evidence key: %w", err)
	}
	var stored string
	if err := s.pool.QueryRow(ctx, `SELECT signer FROM evidence_key`).Scan(&stored); err != nil {
		return "", fmt.Errorf("evidence key: %w", err)
	}
	return stored, nil
}

// EvidenceSize implements evidence.SharedStore. The entries' indexes are
// dense from 0 (AddEvidenceEntries), so the size is the largest plus one,
// read from the primary key's last entry.
func (s *EventStore) EvidenceSize(ctx context.Context) (uint64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT COALESCE(MAX(idx) + 1, 0) FROM evidence_entries`).Scan(&n); err != nil {
		return 0, fmt.Errorf("evidence log size: %w", err)
	}
	return uint64(n), nil
}

// EvidenceEntries implements evidence.SharedStore.
func (s *EventStore) EvidenceEntries(ctx context.Context, from uint64, max int) ([][]byte, error) {
	rows, err := s.pool.Query(ctx, `SELECT idx, entry FROM evidence_entries WHERE idx >= $1 ORDER BY idx LIMIT $2`, int64(from), max)
	if err != nil {
		return nil, fmt.Errorf("evidence entries: %w", err)
	}
	var out [][]byte
	want := int64(from)
	for rows.Next() {
		var idx int64
		var e []byte
		if err := rows.Scan(&idx, &e); err != nil {
			rows.Close()
			return nil, fmt.Errorf("evidence entries: %w", err)
		}
		if idx != want {
			// A transaction numbered entries beyond ones not yet
			// committed: impossible while AddEvidenceEntries checks the
			// entry before; stop at the gap rather than skip it.
			break
		}
		out = append(out, e)
		want++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("evidence entries: %w", err)
	}
	return out, nil
}

// RotateEvidenceKey implements evidence.SharedStore.
func (s *EventStore) RotateEvidenceKey(ctx context.Context, first uint64, entry, sig []byte, old, signer string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := addEvidenceEntries(ctx, tx, first, [][]byte{entry}); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO evidence_rotations (idx, sig) VALUES ($1, $2)`, int64(first), sig); err != nil {
			return fmt.Errorf("evidence key rotation: %w", err)
		}
		tag, err := tx.Exec(ctx, `UPDATE evidence_key SET signer = $2 WHERE signer = $1`, old, signer)
		if err != nil {
			return fmt.Errorf("evidence key rotation: %w", err)
		}
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("evidence key rotation: the store's key is no longer the one rotated: %w", evidence.ErrEntriesTaken)
		}
		return nil
	})
}

// EvidenceRotations implements evidence.SharedStore.
func (s *EventStore) EvidenceRotations(ctx context.Context) (map[uint64][]byte, error) {
	rows, err := s.pool.Query(ctx, `SELECT idx, sig FROM evidence_rotations`)
	if err != nil {
		return nil, fmt.Errorf("evidence rotations: %w", err)
	}
	defer rows.Close()
	return store.ScanEvidenceRotations(rows)
}

// AddEvidenceEntries implements evidence.SharedStore in one statement:
// the rows are inserted only if entry first-1 exists (so indexes stay
// dense), and two nodes inserting at the same index cannot both succeed:
// the second's insert waits on the first's primary-key entry and then
// fails as a duplicate, storing nothing.
func (s *EventStore) AddEvidenceEntries(ctx context.Context, first uint64, entries [][]byte) error {
	if len(entries) == 0 {
		return nil
	}
	return addEvidenceEntries(ctx, s.pool, first, entries)
}

func addEvidenceEntries(ctx context.Context, q interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
}, first uint64, entries [][]byte) error {
	tag, err := q.Exec(ctx, `INSERT INTO evidence_entries (idx, entry)
		SELECT $1::bigint + o - 1, e FROM unnest($2::bytea[]) WITH ORDINALITY AS t(e, o)
		WHERE $1::bigint = 0 OR EXISTS (SELECT 1 FROM evidence_entries WHERE idx = $1::bigint - 1)`, int64(first), entries)
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe) && pe.Code == "23505": // unique_violation
		return fmt.Errorf("evidence entries at %d: %w", first, evidence.ErrEntriesTaken)
	case err != nil:
		return fmt.Errorf("evidence entries at %d: %w", first, err)
	case tag.RowsAffected() == 0:
		return fmt.Errorf("evidence entries at %d: the log has fewer entries: %w", first, evidence.ErrEntriesTaken)
	}
	return nil
}
