package web

import (
	"bufio"
	"bytes"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/takedown/takedown/internal/netscope"
)

// Users checks dashboard logins.
type Users interface {
	// Authenticate returns the role of user when password is right.
	Authenticate(user, password string) (netscope.Role, bool)
	// Role returns the current role of user, false if there is no such
	// user: a session that outlived a restart is only honoured while its
	// user still exists with the same role.
	Role(user string) (netscope.Role, bool)
}

// UsersFileName is the dashboard's user file inside the data dir: read by
// OpenPasswordFile, imported into the store by OpenUsers.
const UsersFileName = "dashboard-users"

// AdminPasswordFileName is the file in the data dir that receives the
// first admin's password (mode 0600), so that serve never writes it to a
// log.
const AdminPasswordFileName = "dashboard-admin-password"

// pbkdf2Iter is the PBKDF2-HMAC-SHA256 iteration count of new hashes
// (OWASP's 2023 recommendation for PBKDF2-SHA256).
const pbkdf2Iter = 600_000

// HashPassword returns the stored form of password:
// pbkdf2-sha256$ITER$SALT$HASH (base64, no padding).
func HashPassword(password string) (string, error) { return hashPassword(password, pbkdf2Iter) }

func hashPassword(password string, iter int) (string, error) {
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	key, err := pbkdf2.Key(sha256.New, password, salt, iter, 32)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	enc := base64.RawStdEncoding
	return "pbkdf2-sha256$" + strconv.Itoa(iter) + "$" + enc.EncodeToString(salt) + "$" + enc.EncodeToString(key), nil
}

// checkPassword reports whether password matches the stored hash.
func checkPassword(stored, password string) bool {
	parts := strings.Split(stored, "$")
	if len(parts) != 4 || parts[0] != "pbkdf2-sha256" {
		return false
	}
	iter, err := strconv.Atoi(parts[1])
	if err != nil || iter < 1 || iter > 10_000_000 {
		return false
	}
	enc := base64.RawStdEncoding
	salt, err1 := enc.DecodeString(parts[2])
	want, err2 := enc.DecodeString(parts[3])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got, err := pbkdf2.Key(sha256.New, password, salt, iter, len(want))
	return err == nil && subtle.ConstantTimeCompare(got, want) == 1
}

// dummyHash is checked against for unknown users, so that the time a
// login takes does not say whether the user exists. It costs what a new
// hash costs (pbkdf2Iter) and matches no password.
var dummyHash = "pbkdf2-sha256$" + strconv.Itoa(pbkdf2Iter) + "$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

type user struct {
	role netscope.Role
	hash string
}

// PasswordFile is the dashboard's users, one a line: "NAME ROLE HASH"
// (HASH from HashPassword; ROLE admin or analyst; # starts a comment).
type PasswordFile struct {
	users map[string]user
	dummy string // a hash to check against for unknown users, so timing says nothing
}

var _ Users = (*PasswordFile)(nil)

// Authenticate checks user and password.
func (f *PasswordFile) Authenticate(name, password string) (netscope.Role, bool) {
	u, ok := f.users[name]
	if !ok {
		checkPassword(f.dummy, password)
		return "", false
	}
	if !checkPassword(u.hash, password) {
		return "", false
	}
	return u.role, true
}

// Role returns the role of user.
func (f *PasswordFile) Role(name string) (netscope.Role, bool) {
	u, ok := f.users[name]
	return u.role, ok
}

// ParsePasswordFile parses the user file's content; name is for messages.
func ParsePasswordFile(name string, b []byte) (*PasswordFile, error) {
	f := &PasswordFile{users: map[string]user{}}
	var errs []error
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fs := strings.Fields(line)
		if len(fs) != 3 {
			errs = append(errs, fmt.Errorf("%s:%d: want NAME ROLE HASH", name, n))
			continue
		}
		r, err := netscope.ParseRole(fs[1])
		if err != nil || r == netscope.RoleNetwork {
			errs = append(errs, fmt.Errorf("%s:%d: role %q: dashboard users are admin or analyst", name, n, fs[1]))
			continue
		}
		if !strings.HasPrefix(fs[2], "pbkdf2-sha256$") {
			errs = append(errs, fmt.Errorf("%s:%d: the hash must be pbkdf2-sha256$…", name, n))
			continue
		}
		if _, dup := f.users[fs[0]]; dup {
			errs = append(errs, fmt.Errorf("%s:%d: user %q listed twice", name, n, fs[0]))
			continue
		}
		f.users[fs[0]] = user{r, fs[2]}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	f.dummy = dummyHash
	return f, nil
}

// OpenPasswordFile reads dir/dashboard-users. When the file does not exist
// it creates it (mode 0600) with one user "admin" and a random password,
// which it returns so that the caller prints it once; otherwise the
// returned password is empty. OpenUsers keeps the users in the store
// instead, so that several dashboard nodes share them.
func OpenPasswordFile(dir string) (*PasswordFile, string, error) {
	path := filepath.Join(dir, UsersFileName)
	b, err := os.ReadFile(path)
	if err == nil {
		f, err := ParsePasswordFile(path, b)
		return f, "", err
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, "", fmt.Errorf("read users: %w", err)
	}
	password, h, err := newPassword()
	if err != nil {
		return nil, "", err
	}
	content := "# takedown dashboard users: NAME ROLE HASH (role admin or analyst).\n" +
		"# Add a user with the hash printed by HashPassword; see docs/api.md.\n" +
		"admin admin " + h + "\n"
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", fmt.Errorf("create data dir: %w", err)
	}
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, "", fmt.Errorf("create users: %w", err)
	}
	if _, err := fh.WriteString(content); err != nil {
		fh.Close()
		return nil, "", fmt.Errorf("write users: %w", err)
	}
	if err := fh.Close(); err != nil {
		return nil, "", fmt.Errorf("write users: %w", err)
	}
	f, err := ParsePasswordFile(path, []byte(content))
	return f, password, err
}

// newPassword returns a random password for a first admin and its hash.
func newPassword() (password, hash string, err error) {
	raw := make([]byte, 18)
	_, _ = rand.Read(raw)
	password = base64.RawURLEncoding.EncodeToString(raw)
	hash, err = HashPassword(password)
	return password, hash, err
}

// SaveAdminPassword writes the first admin's password to
// dir/dashboard-admin-password, readable by the owner only, and returns
// the file's path. The operator reads it once, logs in, and deletes it.
func SaveAdminPassword(dir, password string) (string, error) {
	path := filepath.Join(dir, AdminPasswordFileName)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return "", fmt.Errorf("save the admin password: %w", err)
	}
	// A file left by an older version may be readable by others.
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.WriteString("# dashboard user admin; log in, then delete this file\n" + password + "\n")
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("save the admin password: %w", err)
	}
	return path, nil
}
