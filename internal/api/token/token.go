// Package token is the API's access tokens: issuing, secret generation and
// hashing, validity, and the storage interface. Secrets are never stored:
// only their SHA-256. A token carries a role and the networks it may see,
// both from package netscope. It is not the dashboard's password login
// (package web) and it does not decide what a route allows (package api
// does).
package token

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/takedown/takedown/internal/netscope"
)

// Token is a stored token: everything but the secret.
type Token struct {
	ID       string            `json:"id"`
	Role     netscope.Role     `json:"role"`
	Networks netscope.Networks `json:"networks"`
	Note     string            `json:"note,omitempty"`
	Created  time.Time         `json:"created"`
	Expires  time.Time         `json:"expires,omitzero"` // zero: never
	Revoked  time.Time         `json:"revoked,omitzero"` // zero: not revoked
}

// ValidAt reports whether t may be used at now.
func (t *Token) ValidAt(now time.Time) bool {
	return t.Revoked.IsZero() && (t.Expires.IsZero() || now.Before(t.Expires))
}

// Hash is the SHA-256 of a secret, as stored.
type Hash [sha256.Size]byte

// HashSecret hashes a presented secret.
func HashSecret(secret string) Hash { return sha256.Sum256([]byte(secret)) }

// Prefix starts every secret, so that scanners recognise a leaked one.
const Prefix = "tdk_"

// NewSecret returns a fresh secret (Prefix and 32 random bytes, base64url)
// and its hash.
func NewSecret() (string, Hash) {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	s := Prefix + base64.RawURLEncoding.EncodeToString(b)
	return s, HashSecret(s)
}

// NewID returns a fresh public token identifier (16 hex digits).
func NewID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ErrNotFound is returned for a token that does not exist.
var ErrNotFound = errors.New("no such token")

// Store keeps tokens by the hash of their secret.
type Store interface {
	// CreateToken stores t under hash h.
	CreateToken(ctx context.Context, t Token, h Hash) error
	// TokenByHash returns the token whose secret hashes to h, or
	// ErrNotFound.
	TokenByHash(ctx context.Context, h Hash) (Token, error)
	// Tokens lists every token, oldest first.
	Tokens(ctx context.Context) ([]Token, error)
	// RevokeToken marks token id revoked at at; ErrNotFound if unknown.
	RevokeToken(ctx context.Context, id string, at time.Time) error
}

// Spec is what a new token is made of.
type Spec struct {
	Role     netscope.Role
	Networks netscope.Networks
	Note     string
	Expires  time.Time // zero: never
}

// Validate reports what is wrong with s.
func (s Spec) Validate() error {
	var errs []error
	if _, err := netscope.ParseRole(string(s.Role)); err != nil {
		errs = append(errs, err)
	}
	if s.Role == netscope.RoleNetwork && s.Networks.Empty() {
		errs = append(errs, errors.New("a network token needs --networks (ASNs, CIDRs or country codes)"))
	}
	if s.Role != netscope.RoleNetwork && !s.Networks.Empty() {
		errs = append(errs, fmt.Errorf("role %s sees every network: --networks applies to network tokens only", s.Role))
	}
	return errors.Join(errs...)
}

// Issue makes and stores a token from s at now and returns it with its
// secret, which is shown once and never stored.
func Issue(ctx context.Context, st Store, s Spec, now time.Time) (Token, string, error) {
	if err := s.Validate(); err != nil {
		return Token{}, "", err
	}
	if !s.Expires.IsZero() && !s.Expires.After(now) {
		return Token{}, "", fmt.Errorf("expiry %s is not in the future", s.Expires.UTC().Format(time.RFC3339))
	}
	secret, h := NewSecret()
	t := Token{ID: NewID(), Role: s.Role, Networks: s.Networks, Note: s.Note, Created: now.UTC(), Expires: s.Expires.UTC()}
	if s.Expires.IsZero() {
		t.Expires = time.Time{}
	}
	if err := st.CreateToken(ctx, t, h); err != nil {
		return Token{}, "", fmt.Errorf("store token: %w", err)
	}
	return t, secret, nil
}
