package registry

import (
	"context"
	"time"
)

// Source gives the indicators in force at an instant. The store implements
// it; the exporters and the DNS sinkhole consume it.
type Source interface {
	// Active returns the entries in force at at, for every case or only
	// caseID when it is not empty.
	Active(ctx context.Context, at time.Time, caseID string) (*ActiveSet, error)
	// Serial returns a number that increases with every registry change, so
	// that a consumer polls it cheaply and rebuilds only on change.
	Serial(ctx context.Context) (uint32, error)
}

// Notifier is implemented by a Source that can say when the registry
// changed (a shared database, where another node makes the change), so that
// a [Watcher] reads it at once instead of at its next poll. Polling stays
// the fallback: a notification only hastens a read of the serial.
type Notifier interface {
	// Changes returns a channel on which a value arrives after each change
	// to the registry, possibly coalesced (several changes, one value),
	// and whenever changes may have been missed (after a reconnect). It
	// closes when ctx ends.
	Changes(ctx context.Context) <-chan struct{}
}
