package store

import (
	"context"
	"time"
)

// Leaser lets one node of a deployment run a role at a time (retention,
// for one): a named lease has one holder until it expires or its holder
// gives it up. Both stores implement it; on SQLite, where one machine
// holds the store, it still keeps two processes on one file from running
// a role twice.
type Leaser interface {
	// Lease takes or renews lease name for holder until until, and
	// reports whether holder has it: false while another holder's lease
	// has not expired at now. Clocks of the nodes must agree (NTP).
	Lease(ctx context.Context, name, holder string, until, now time.Time) (bool, error)
	// ReleaseLease gives the lease up if holder has it, so that another
	// node takes over at once instead of after its expiry.
	ReleaseLease(ctx context.Context, name, holder string) error
	// LeaseHolder returns who holds lease name and until when; ok is
	// false when nobody ever took it or its holder released it.
	LeaseHolder(ctx context.Context, name string) (holder string, until time.Time, ok bool, err error)
}
