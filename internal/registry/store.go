package registry

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned for an order that does not exist.
var ErrNotFound = errors.New("no such order")

// AuditRecord is one change to the registry: who, when, what.
type AuditRecord struct {
	At      time.Time `json:"at"`
	Actor   string    `json:"actor"`
	OrderID int64     `json:"order_id"`
	Action  string    `json:"action"`
	Detail  string    `json:"detail,omitempty"`
}

// OrderSummary is an order with its indicator counts by kind.
type OrderSummary struct {
	Order
	Counts map[Kind]int `json:"indicators"`
}

// ImportResult says what an import changed.
type ImportResult struct {
	OrderID        int64 `json:"order_id"`
	Created        bool  `json:"created"`
	Added          int   `json:"added"`
	AlreadyPresent int   `json:"already_present"`
}

// Store keeps orders, indicators and the audit trail. Every method that
// changes something does it in one transaction, records it in the audit
// trail and increases the serial.
type Store interface {
	Source
	// Import adds inds to the order of o.Case, creating the order from o
	// when it does not exist yet. With dryRun it changes nothing and says
	// what it would have done.
	Import(ctx context.Context, o Order, inds []Indicator, actor string, dryRun bool) (ImportResult, error)
	// Orders lists every order, oldest first.
	Orders(ctx context.Context) ([]OrderSummary, error)
	// Order returns one order by case ID (or numeric ID), its indicators
	// and its audit trail.
	Order(ctx context.Context, id string) (*OrderSummary, []Indicator, []AuditRecord, error)
	// Extend moves an order's expiry.
	Extend(ctx context.Context, id string, expires time.Time, actor string) error
	// Revoke ends an order at at.
	Revoke(ctx context.Context, id string, at time.Time, actor string) error
}
