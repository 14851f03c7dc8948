// Package session defines the dashboard's login sessions and where they
// are kept: in memory (Memory) or in a store that outlives a restart (the
// SQLite store implements Store). A session is found by the SHA-256 of its
// cookie value, so a copy of the store does not hand out live sessions.
//
// It is not the login itself (package web checks passwords, CSRF tokens
// and cookies) and not the API's bearer tokens (package api/token).
package session

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/takedown/takedown/internal/netscope"
)

// Key is the SHA-256 of a session cookie's value.
type Key [sha256.Size]byte

// KeyOf returns the key of a cookie value.
func KeyOf(cookie string) Key { return sha256.Sum256([]byte(cookie)) }

// Session is a logged-in dashboard user.
type Session struct {
	User string
	Role netscope.Role
	// CSRF is the token every state-changing request of the session must
	// carry.
	CSRF    string
	Expires time.Time
}

// Store keeps sessions.
type Store interface {
	// CreateSession stores s under k.
	CreateSession(ctx context.Context, k Key, s Session) error
	// Session returns the session under k; ok is false when there is none.
	// An expired session may be returned: the caller checks Expires.
	Session(ctx context.Context, k Key) (s Session, ok bool, err error)
	// ExtendSession sets the expiry of the session under k.
	ExtendSession(ctx context.Context, k Key, expires time.Time) error
	// DeleteSession removes the session under k (no error if none).
	DeleteSession(ctx context.Context, k Key) error
	// PurgeSessions removes the sessions expired at now.
	PurgeSessions(ctx context.Context, now time.Time) error
}

// Memory is a Store in memory: a restart logs everyone out.
type Memory struct {
	mu sync.Mutex
	m  map[Key]Session
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty Memory.
func NewMemory() *Memory { return &Memory{m: map[Key]Session{}} }

// CreateSession implements Store.
func (m *Memory) CreateSession(_ context.Context, k Key, s Session) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.m[k] = s
	return nil
}

// Session implements Store.
func (m *Memory) Session(_ context.Context, k Key) (Session, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.m[k]
	return s, ok, nil
}

// ExtendSession implements Store.
func (m *Memory) ExtendSession(_ context.Context, k Key, expires time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.m[k]; ok {
		s.Expires = expires
		m.m[k] = s
	}
	return nil
}

// DeleteSession implements Store.
func (m *Memory) DeleteSession(_ context.Context, k Key) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.m, k)
	return nil
}

// PurgeSessions implements Store.
func (m *Memory) PurgeSessions(_ context.Context, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, s := range m.m {
		if !now.Before(s.Expires) {
			delete(m.m, k)
		}
	}
	return nil
}
