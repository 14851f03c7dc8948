package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/takedown/takedown/internal/netscope"
)

// DashboardUser is a dashboard user as stored: the type web.User stands
// for. It is declared here, not imported, because package web's tests
// import this store; being the identical unnamed struct type, it makes *DB
// a web.UserStore.
type DashboardUser = struct {
	Name string
	Role netscope.Role
	Hash string
}

// PutUser stores u, replacing the user of the same name.
func (s *DB) PutUser(ctx context.Context, u DashboardUser) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO dashboard_users (name, role, hash) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET role = excluded.role, hash = excluded.hash`,
		u.Name, string(u.Role), u.Hash)
	if err != nil {
		return fmt.Errorf("store dashboard user %s: %w", u.Name, err)
	}
	return nil
}

// AddFirstUser stores u only if there is no user at all, and reports
// whether it did. It is one statement, so a writer cannot come between
// the check and the insert.
func (s *DB) AddFirstUser(ctx context.Context, u DashboardUser) (bool, error) {
	res, err := s.db.ExecContext(ctx, `INSERT INTO dashboard_users (name, role, hash)
		SELECT ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM dashboard_users)`,
		u.Name, string(u.Role), u.Hash)
	if err != nil {
		return false, fmt.Errorf("store dashboard user %s: %w", u.Name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store dashboard user %s: %w", u.Name, err)
	}
	return n == 1, nil
}

// User returns the user called name; ok is false when there is none.
func (s *DB) User(ctx context.Context, name string) (DashboardUser, bool, error) {
	st, err := s.stmt(ctx, `SELECT name, role, hash FROM dashboard_users WHERE name = ?`)
	if err != nil {
		return DashboardUser{}, false, fmt.Errorf("look up dashboard user: %w", err)
	}
	u, err := scanUser(st.QueryRowContext(ctx, name))
	if errors.Is(err, sql.ErrNoRows) {
		return DashboardUser{}, false, nil
	}
	if err != nil {
		return DashboardUser{}, false, fmt.Errorf("look up dashboard user: %w", err)
	}
	return u, true, nil
}

// Users lists every user, by name.
func (s *DB) Users(ctx context.Context) ([]DashboardUser, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, role, hash FROM dashboard_users ORDER BY name`)
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
func (s *DB) DeleteUser(ctx context.Context, name string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM dashboard_users WHERE name = ?`, name); err != nil {
		return fmt.Errorf("delete dashboard user %s: %w", name, err)
	}
	return nil
}

func scanUser(sc interface{ Scan(...any) error }) (DashboardUser, error) {
	var u DashboardUser
	var role string
	if err := sc.Scan(&u.Name, &role, &u.Hash); err != nil {
		return DashboardUser{}, err
	}
	r, err := netscope.ParseRole(role)
	if err != nil {
		return DashboardUser{}, fmt.Errorf("dashboard user %s: %w", u.Name, err)
	}
	u.Role = r
	return u, nil
}
