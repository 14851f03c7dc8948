package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/takedown/takedown/internal/api/token"
	"github.com/takedown/takedown/internal/netscope"
)

var _ token.Store = (*DB)(nil)

// CreateToken stores t under the hash of its secret.
func (s *DB) CreateToken(ctx context.Context, t token.Token, h token.Hash) error {
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO api_tokens (id, hash, role, networks, note, created, expires, revoked) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, h[:], string(t.Role), t.Networks.String(), t.Note, nanos(t.Created), nanos(t.Expires), nanos(t.Revoked))
	if err != nil {
		return fmt.Errorf("create token %s: %w", t.ID, err)
	}
	return nil
}

const tokenCols = `id, role, networks, note, created, expires, revoked`

func scanToken(sc interface{ Scan(...any) error }) (token.Token, error) {
	var t token.Token
	var role, nets string
	var created, expires, revoked int64
	if err := sc.Scan(&t.ID, &role, &nets, &t.Note, &created, &expires, &revoked); err != nil {
		return token.Token{}, err
	}
	r, err := netscope.ParseRole(role)
	if err != nil {
		return token.Token{}, fmt.Errorf("token %s: %w", t.ID, err)
	}
	n, err := netscope.ParseNetworks(nets)
	if err != nil {
		return token.Token{}, fmt.Errorf("token %s: %w", t.ID, err)
	}
	t.Role, t.Networks = r, n
	t.Created, t.Expires, t.Revoked = fromNanos(created), fromNanos(expires), fromNanos(revoked)
	return t, nil
}

// TokenByHash returns the token whose secret hashes to h.
func (s *DB) TokenByHash(ctx context.Context, h token.Hash) (token.Token, error) {
	st, err := s.stmt(ctx, `SELECT `+tokenCols+` FROM api_tokens WHERE hash = ?`)
	if err != nil {
		return token.Token{}, fmt.Errorf("look up token: %w", err)
	}
	t, err := scanToken(st.QueryRowContext(ctx, h[:]))
	if errors.Is(err, sql.ErrNoRows) {
		return token.Token{}, token.ErrNotFound
	}
	if err != nil {
		return token.Token{}, fmt.Errorf("look up token: %w", err)
	}
	return t, nil
}

// Tokens lists every token, oldest first.
func (s *DB) Tokens(ctx context.Context) ([]token.Token, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+tokenCols+` FROM api_tokens ORDER BY created, id`)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	var out []token.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// RevokeToken marks token id revoked at at. Revoking a revoked token keeps
// the first revocation time.
func (s *DB) RevokeToken(ctx context.Context, id string, at time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE api_tokens SET revoked = CASE WHEN revoked = 0 THEN ? ELSE revoked END WHERE id = ?`, nanos(at), id)
	if err != nil {
		return fmt.Errorf("revoke token %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("revoke token %s: %w", id, token.ErrNotFound)
	}
	return nil
}
