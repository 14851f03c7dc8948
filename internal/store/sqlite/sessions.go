package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/takedown/takedown/internal/netscope"
	"github.com/takedown/takedown/internal/web/session"
)

var _ session.Store = (*DB)(nil)

// CreateSession implements session.Store.
func (s *DB) CreateSession(ctx context.Context, k session.Key, ss session.Session) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO web_sessions (key, user, role, csrf, expires) VALUES (?, ?, ?, ?, ?)`,
		k[:], ss.User, string(ss.Role), ss.CSRF, nanos(ss.Expires))
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}

// Session implements session.Store.
func (s *DB) Session(ctx context.Context, k session.Key) (session.Session, bool, error) {
	var ss session.Session
	var role string
	var expires int64
	st, err := s.stmt(ctx, `SELECT user, role, csrf, expires FROM web_sessions WHERE key = ?`)
	if err != nil {
		return session.Session{}, false, fmt.Errorf("look up session: %w", err)
	}
	err = st.QueryRowContext(ctx, k[:]).Scan(&ss.User, &role, &ss.CSRF, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return session.Session{}, false, nil
	}
	if err != nil {
		return session.Session{}, false, fmt.Errorf("look up session: %w", err)
	}
	r, err := netscope.ParseRole(role)
	if err != nil {
		return session.Session{}, false, fmt.Errorf("session of %s: %w", ss.User, err)
	}
	ss.Role, ss.Expires = r, fromNanos(expires)
	return ss, true, nil
}

// ExtendSession implements session.Store.
func (s *DB) ExtendSession(ctx context.Context, k session.Key, expires time.Time) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE web_sessions SET expires = ? WHERE key = ?`, nanos(expires), k[:]); err != nil {
		return fmt.Errorf("extend session: %w", err)
	}
	return nil
}

// DeleteSession implements session.Store.
func (s *DB) DeleteSession(ctx context.Context, k session.Key) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM web_sessions WHERE key = ?`, k[:]); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// PurgeSessions implements session.Store.
func (s *DB) PurgeSessions(ctx context.Context, now time.Time) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM web_sessions WHERE expires <= ?`, now.UnixNano()); err != nil {
		return fmt.Errorf("purge sessions: %w", err)
	}
	return nil
}
