package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Remote is the registry a Mirror copies: the deployment's shared store.
type Remote interface {
	Source
	Dumper
}

// Mirror is a sensor's copy of the deployment's registry, kept in a file
// of its data dir. It answers Active from its copy, with ComputeActive as
// the stores do, so an order's start and end take effect at their exact
// instant even while the shared store is unreachable, and a sensor that
// restarts while it is unreachable serves what it last saw. The copy is
// brought up to date whenever the remote serial differs from it: on every
// Active call (the watcher makes one per change notification, per serial
// change it polls, and at each change instant).
type Mirror struct {
	remote Remote
	path   string
	log    *slog.Logger

	mu   sync.Mutex
	rows *Rows // nil until loaded or copied
}

var (
	_ Source   = (*Mirror)(nil)
	_ Notifier = (*Mirror)(nil)
)

// NewMirror returns the mirror of remote kept in the file path. It loads
// the file when there is one, then copies the remote registry; only when
// neither is available does it fail.
func NewMirror(ctx context.Context, remote Remote, path string, log *slog.Logger) (*Mirror, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Mirror{remote: remote, path: path, log: log}
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		var rs Rows
		if err := json.Unmarshal(b, &rs); err != nil {
			return nil, fmt.Errorf("registry mirror %s: %w", path, err)
		}
		m.rows = &rs
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("registry mirror: %w", err)
	}
	if err := m.sync(ctx); err != nil {
		if m.rows == nil {
			return nil, fmt.Errorf("registry: no copy in %s and the shared store is unreachable: %w", path, err)
		}
		log.Warn("registry: the shared store is unreachable; serving the copy", "file", path, "serial", m.rows.Serial, "err", err)
	}
	return m, nil
}

// sync copies the remote registry when its serial differs from the copy's.
func (m *Mirror) sync(ctx context.Context) error {
	serial, err := m.remote.Serial(ctx)
	if err != nil {
		return err
	}
	m.mu.Lock()
	have := m.rows
	m.mu.Unlock()
	if have != nil && have.Serial == serial {
		return nil
	}
	rs, err := m.remote.Rows(ctx)
	if err != nil {
		return err
	}
	if err := m.save(rs); err != nil {
		// Still serve it: the file is only for the next start.
		m.log.Warn("registry: could not save the copy", "file", m.path, "err", err)
	}
	m.mu.Lock()
	m.rows = rs
	m.mu.Unlock()
	return nil
}

// save writes rs to the file atomically (a temporary file renamed over it,
// synced first), so a crash leaves the old copy or the new one.
func (m *Mirror) save(rs *Rows) error {
	b, err := json.Marshal(rs)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(m.path), ".registry-mirror-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), m.path)
}

// Serial implements Source: the remote serial, so that the watcher sees
// (and counts) an unreachable store; Active still answers from the copy.
func (m *Mirror) Serial(ctx context.Context) (uint32, error) {
	return m.remote.Serial(ctx)
}

// Active implements Source from the copy, brought up to date first when
// the remote store answers.
func (m *Mirror) Active(ctx context.Context, at time.Time, caseID string) (*ActiveSet, error) {
	if err := m.sync(ctx); err != nil {
		m.log.Warn("registry: the shared store is unreachable; answering from the copy", "err", err)
	}
	m.mu.Lock()
	rs := m.rows
	m.mu.Unlock()
	return ComputeActive(rs, at, caseID)
}

// Changes implements Notifier when the remote store does; otherwise it
// returns a channel that only closes with ctx (the watcher polls).
func (m *Mirror) Changes(ctx context.Context) <-chan struct{} {
	if n, ok := m.remote.(Notifier); ok {
		return n.Changes(ctx)
	}
	ch := make(chan struct{})
	go func() { <-ctx.Done(); close(ch) }()
	return ch
}
