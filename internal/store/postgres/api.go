package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/takedown/takedown/internal/api/token"
	"github.com/takedown/takedown/internal/netscope"
	"github.com/takedown/takedown/internal/web/session"
)

// apiMigrations is the schema of API tokens, dashboard sessions and
// dashboard users, as SQLite's (internal/store/sqlite/schema_api.go):
// times in unix nanoseconds (0: none), hashes and keys as bytes, only ever
// the SHA-256 of a token's secret or of a session's cookie, never the
// value. SQLite's api component also indexes event_day_ip by ASN and by
// country; here the events component does. Append only.
var apiMigrations = []string{
	`CREATE TABLE api_tokens (
		id TEXT PRIMARY KEY,
		hash BYTEA NOT NULL UNIQUE,
		role TEXT NOT NULL,
		networks TEXT NOT NULL DEFAULT '',
		note TEXT NOT NULL DEFAULT '',
		created BIGINT NOT NULL,
		expires BIGINT NOT NULL DEFAULT 0,
		revoked BIGINT NOT NULL DEFAULT 0
	);`,
	// The session's user is user_name: "user" is a reserved word here.
	`CREATE TABLE web_sessions (
		key BYTEA PRIMARY KEY,
		user_name TEXT NOT NULL,
		role TEXT NOT NULL,
		csrf TEXT NOT NULL,
		expires BIGINT NOT NULL
	);
	CREATE INDEX web_sessions_expires ON web_sessions (expires);`,
	`CREATE TABLE dashboard_users (
		name TEXT PRIMARY KEY,
		role TEXT NOT NULL,
		hash TEXT NOT NULL
	);`,
}

var (
	_ token.Store   = (*DB)(nil)
	_ session.Store = (*DB)(nil)
)

// apiNanos is t in unix nanoseconds, 0 for the zero time (none).
func apiNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UTC().UnixNano()
}

// apiTime is the time of apiNanos' n.
func apiTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// CreateToken stores t under the hash of its secret.
func (d *DB) CreateToken(ctx context.Context, t token.Token, h token.Hash) error {
	_, err := d.pool.Exec(ctx,
		`INSERT INTO api_tokens (id, hash, role, networks, note, created, expires, revoked) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		t.ID, h[:], string(t.Role), t.Networks.String(), t.Note, apiNanos(t.Created), apiNanos(t.Expires), apiNanos(t.Revoked))
	if err != nil {
		return fmt.Errorf("create token %s: %w", t.ID, err)
	}
	return nil
}

const tokenCols = `id, role, networks, note, created, expires, revoked`

func scanToken(row pgx.Row) (token.Token, error) {
	var t token.Token
	var role, nets string
	var created, expires, revoked int64
	if err := row.Scan(&t.ID, &role, &nets, &t.Note, &created, &expires, &revoked); err != nil {
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
	t.Created, t.Expires, t.Revoked = apiTime(created), apiTime(expires), apiTime(revoked)
	return t, nil
}

// TokenByHash returns the token whose secret hashes to h.
func (d *DB) TokenByHash(ctx context.Context, h token.Hash) (token.Token, error) {
	t, err := scanToken(d.pool.QueryRow(ctx, `SELECT `+tokenCols+` FROM api_tokens WHERE hash = $1`, h[:]))
	if errors.Is(err, pgx.ErrNoRows) {
		return token.Token{}, token.ErrNotFound
	}
	if err != nil {
		return token.Token{}, fmt.Errorf("look up token: %w", err)
	}
	return t, nil
}

// Tokens lists every token, oldest first.
func (d *DB) Tokens(ctx context.Context) ([]token.Token, error) {
	// Ties in byte order of id, as on SQLite.
	rows, err := d.pool.Query(ctx, `SELECT `+tokenCols+` FROM api_tokens ORDER BY created, id COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	var out []token.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return out, nil
}

// RevokeToken marks token id revoked at at. Revoking a revoked token keeps
// the first revocation time.
func (d *DB) RevokeToken(ctx context.Context, id string, at time.Time) error {
	tag, err := d.pool.Exec(ctx, `UPDATE api_tokens SET revoked = CASE WHEN revoked = 0 THEN $1 ELSE revoked END WHERE id = $2`, apiNanos(at), id)
	if err != nil {
		return fmt.Errorf("revoke token %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("revoke token %s: %w", id, token.ErrNotFound)
	}
	return nil
}

// CreateSession implements session.Store.
func (d *DB) CreateSession(ctx context.Context, k session.Key, ss session.Session) error {
	_, err := d.pool.Exec(ctx, `INSERT INTO web_sessions (key, user_name, role, csrf, expires) VALUES ($1, $2, $3, $4, $5)`,
		k[:], ss.User, string(ss.Role), ss.CSRF, apiNanos(ss.Expires))
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}

// Session implements session.Store.
func (d *DB) Session(ctx context.Context, k session.Key) (session.Session, bool, error) {
	var ss session.Session
	var role string
	var expires int64
	err := d.pool.QueryRow(ctx, `SELECT user_name, role, csrf, expires FROM web_sessions WHERE key = $1`, k[:]).
		Scan(&ss.User, &role, &ss.CSRF, &expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return session.Session{}, false, nil
	}
	if err != nil {
		return session.Session{}, false, fmt.Errorf("look up session: %w", err)
	}
	r, err := netscope.ParseRole(role)
	if err != nil {
		return session.Session{}, false, fmt.Errorf("session of %s: %w", ss.User, err)
	}
	ss.Role, ss.Expires = r, apiTime(expires)
	return ss, true, nil
}

// ExtendSession implements session.Store.
func (d *DB) ExtendSession(ctx context.Context, k session.Key, expires time.Time) error {
	if _, err := d.pool.Exec(ctx, `UPDATE web_sessions SET expires = $1 WHERE key = $2`, apiNanos(expires), k[:]); err != nil {
		return fmt.Errorf("extend session: %w", err)
	}
	return nil
}

// DeleteSession implements session.Store.
func (d *DB) DeleteSession(ctx context.Context, k session.Key) error {
	if _, err := d.pool.Exec(ctx, `DELETE FROM web_sessions WHERE key = $1`, k[:]); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// PurgeSessions implements session.Store.
func (d *DB) PurgeSessions(ctx context.Context, now time.Time) error {
	if _, err := d.pool.Exec(ctx, `DELETE FROM web_sessions WHERE expires <= $1`, now.UnixNano()); err != nil {
		return fmt.Errorf("purge sessions: %w", err)
	}
	return nil
}

// DashboardUser is a dashboard user as stored: the type web.User stands
// for. It is declared here, not imported, to keep the store below package
// web, as the SQLite store is; being the identical unnamed struct type, it
// makes *DB a web.UserStore.
type DashboardUser = struct {
	Name string
	Role netscope.Role
	Hash string
}

// PutUser stores u, replacing the user of the same name.
func (d *DB) PutUser(ctx context.Context, u DashboardUser) error {
	_, err := d.pool.Exec(ctx, `INSERT INTO dashboard_users (name, role, hash) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET role = excluded.role, hash = excluded.hash`,
		u.Name, string(u.Role), u.Hash)
	if err != nil {
		return fmt.Errorf("store dashboard user %s: %w", u.Name, err)
	}
	return nil
}

// AddFirstUser stores u only if there is no user at all, and reports
// whether it did. Under read committed, nodes running it at once may all
// see no user (each statement's snapshot); they all propose the same
// name, so ON CONFLICT makes all but the first insert do nothing instead
// of adding a second user or failing.
func (d *DB) AddFirstUser(ctx context.Context, u DashboardUser) (bool, error) {
	tag, err := d.pool.Exec(ctx, `INSERT INTO dashboard_users (name, role, hash)
		SELECT $1::text, $2::text, $3::text WHERE NOT EXISTS (SELECT 1 FROM dashboard_users)
		ON CONFLICT (name) DO NOTHING`,
		u.Name, string(u.Role), u.Hash)
	if err != nil {
		return false, fmt.Errorf("store dashboard user %s: %w", u.Name, err)
	}
	return tag.RowsAffected() == 1, nil
}

// User returns the user called name; ok is false when there is none.
func (d *DB) User(ctx context.Context, name string) (DashboardUser, bool, error) {
	u, err := scanUser(d.pool.QueryRow(ctx, `SELECT name, role, hash FROM dashboard_users WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return DashboardUser{}, false, nil
	}
	if err != nil {
		return DashboardUser{}, false, fmt.Errorf("look up dashboard user: %w", err)
	}
	return u, true, nil
}

// Users lists every user, by name.
func (d *DB) Users(ctx context.Context) ([]DashboardUser, error) {
	// COLLATE "C": byte order, as SQLite's, whatever the database's
	// collation.
	rows, err := d.pool.Query(ctx, `SELECT name, role, hash FROM dashboard_users ORDER BY name COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("list dashboard users: %w", err)
	}
	defer rows.Close()
	var out []DashboardUser
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list dashboard users: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list dashboard users: %w", err)
	}
	return out, nil
}

// DeleteUser removes the user called name (no error if none).
func (d *DB) DeleteUser(ctx context.Context, name string) error {
	if _, err := d.pool.Exec(ctx, `DELETE FROM dashboard_users WHERE name = $1`, name); err != nil {
		return fmt.Errorf("delete dashboard user %s: %w", name, err)
	}
	return nil
}

func scanUser(row pgx.Row) (DashboardUser, error) {
	var u DashboardUser
	var role string
	if err := row.Scan(&u.Name, &role, &u.Hash); err != nil {
		return DashboardUser{}, err
	}
	r, err := netscope.ParseRole(role)
	if err != nil {
		return DashboardUser{}, fmt.Errorf("dashboard user %s: %w", u.Name, err)
	}
	u.Role = r
	return u, nil
}
