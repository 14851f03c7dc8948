package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/takedown/takedown/internal/netscope"
)

// User is a dashboard user as a UserStore keeps it.
//
// It is an alias of an unnamed struct type, not a named type, so that a
// store implements UserStore without importing this package (whose tests
// import the SQLite store): the stores declare the identical type
// (sqlite.DashboardUser, postgres.DashboardUser). A field added here must
// be added there too, in the same order.
type User = struct {
	Name string
	// Role is admin or analyst.
	Role netscope.Role
	// Hash is the password's stored form, from HashPassword; the password
	// itself is never stored.
	Hash string
}

// UserStore keeps the dashboard's users, so that several dashboard nodes
// on one database share them. The SQLite store (*sqlite.DB) and the
// PostgreSQL store (*postgres.DB) implement it.
type UserStore interface {
	// PutUser stores u, replacing the user of the same name.
	PutUser(ctx context.Context, u User) error
	// AddFirstUser stores u only if there is no user at all, in one
	// statement, and reports whether it did. A user of the same name
	// stored meanwhile by another node makes it do nothing rather than
	// fail: nodes starting at once all propose the same first user, and
	// that name's uniqueness settles the race that the emptiness check
	// alone would not (PostgreSQL checks it against the statement's
	// snapshot).
	AddFirstUser(ctx context.Context, u User) (added bool, err error)
	// User returns the user called name; ok is false when there is none.
	User(ctx context.Context, name string) (u User, ok bool, err error)
	// Users lists every user, by name.
	Users(ctx context.Context) ([]User, error)
	// DeleteUser removes the user called name (no error if none).
	DeleteUser(ctx context.Context, name string) error
}

// userLookupTimeout bounds one store lookup of Authenticate or Role,
// which have no context of their own: a store that does not answer
// refuses the login or the request instead of holding it.
const userLookupTimeout = 5 * time.Second

// StoreUsers is the dashboard's users kept in a UserStore. Every
// Authenticate and Role asks the store, so a user added, changed or
// removed on one node counts on every node at once.
type StoreUsers struct {
	st UserStore
	// Logger receives the store's errors (a lookup that fails refuses the
	// login, or ends the session, as for an unknown user); nil discards
	// them. Set it before the dashboard uses s.
	Logger *slog.Logger
}

var _ Users = (*StoreUsers)(nil)

// NewStoreUsers returns the users kept in st. It creates nothing; serve
// opens them with OpenUsers.
func NewStoreUsers(st UserStore) *StoreUsers { return &StoreUsers{st: st} }

// Authenticate checks user and password. An unknown user costs a hash
// check as a known one does, so that timing says nothing.
func (s *StoreUsers) Authenticate(name, password string) (netscope.Role, bool) {
	u, ok := s.lookup(name)
	if !ok {
		checkPassword(dummyHash, password)
		return "", false
	}
	if !checkPassword(u.Hash, password) {
		return "", false
	}
	return u.Role, true
}

// Role returns the current role of user.
func (s *StoreUsers) Role(name string) (netscope.Role, bool) {
	u, ok := s.lookup(name)
	return u.Role, ok
}

// lookup returns the user called name, if the store has it with a
// dashboard role.
func (s *StoreUsers) lookup(name string) (User, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), userLookupTimeout)
	defer cancel()
	u, ok, err := s.st.User(ctx, name)
	if err != nil {
		s.log().Error("dashboard user lookup failed", "user", name, "err", err)
		return User{}, false
	}
	if !ok {
		return User{}, false
	}
	// The file import refuses other roles; a row written otherwise is
	// not honoured rather than given a dashboard it was not meant for.
	if u.Role != netscope.RoleAdmin && u.Role != netscope.RoleAnalyst {
		s.log().Warn("dashboard user refused: role is not admin or analyst", "user", name, "role", string(u.Role))
		return User{}, false
	}
	return u, true
}

func (s *StoreUsers) log() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// OpenUsers returns the dashboard's users kept in st, for serve.
//
// The file dataDir/dashboard-users (UsersFileName, in PasswordFile's
// format) is an import path, not a second source of truth: while it
// exists, every start adds each of its users to st or replaces the user of
// the same name there, and leaves the users only in st alone. The store is
// the truth afterwards: once imported the file can be removed, and while
// it stays it puts its users back as they are in it at every start. A file
// that does not parse is an error naming file:line, and nothing of it is
// imported.
//
// When st then has no user at all, OpenUsers creates "admin" with a random
// password, stored only as its hash, and returns the password for the
// caller to hand to SaveAdminPassword; otherwise adminPassword is empty.
// Of several nodes starting at once against one database, one creates the
// admin and gets its password; the others get an empty password.
func OpenUsers(ctx context.Context, st UserStore, dataDir string) (users *StoreUsers, adminPassword string, err error) {
	if err := importUsers(ctx, st, filepath.Join(dataDir, UsersFileName)); err != nil {
		return nil, "", err
	}
	all, err := st.Users(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("list dashboard users: %w", err)
	}
	if len(all) > 0 {
		return NewStoreUsers(st), "", nil
	}
	password, h, err := newPassword()
	if err != nil {
		return nil, "", err
	}
	added, err := st.AddFirstUser(ctx, User{Name: "admin", Role: netscope.RoleAdmin, Hash: h})
	if err != nil {
		return nil, "", fmt.Errorf("create the first dashboard admin: %w", err)
	}
	if !added {
		// Another node created the first user between the list and
		// the insert: its admin stands, and its password is the one
		// shown.
		password = ""
	}
	return NewStoreUsers(st), password, nil
}

// importUsers adds or replaces the users of the file at path in st; a
// missing file imports nothing. The whole file is parsed before anything
// is stored, so a bad line changes nothing.
func importUsers(ctx context.Context, st UserStore, path string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read dashboard users: %w", err)
	}
	f, err := ParsePasswordFile(path, b)
	if err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(f.users)) {
		u := f.users[name]
		if err := st.PutUser(ctx, User{Name: name, Role: u.role, Hash: u.hash}); err != nil {
			return fmt.Errorf("import dashboard user %s from %s: %w", name, path, err)
		}
	}
	return nil
}
