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
