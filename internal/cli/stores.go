package cli

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/takedown/takedown/internal/api/token"
	"github.com/takedown/takedown/internal/config"
	"github.com/takedown/takedown/internal/notify"
	"github.com/takedown/takedown/internal/registry"
	"github.com/takedown/takedown/internal/stats"
	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/store/postgres"
	"github.com/takedown/takedown/internal/store/sqlite"
	"github.com/takedown/takedown/internal/web"
	"github.com/takedown/takedown/internal/web/session"
)

// stores is the configured store with every role's part of it, whichever
// engine holds them: the embedded SQLite database of the data dir (the
// default, or db: sqlite:PATH) or a PostgreSQL database that several nodes
// share (db: postgres://…). Commands use the roles' interfaces and never
// ask which engine it is, except where a feature is the engine's own
// (SQLite's online backup).
type stores struct {
	registry.Store
	tokens   token.Store
	sessions session.Store
	users    web.UserStore

	sq *sqlite.DB   // the embedded store; nil on PostgreSQL
	pg *postgres.DB // nil on SQLite
}

// isPostgres reports whether dsn names a PostgreSQL store.
func isPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// openStore opens the configured store. The caller closes it.
func (g *globals) openStore(ctx context.Context, c *config.Config) (*stores, error) {
	switch {
	case c.DB == "" || strings.HasPrefix(c.DB, "sqlite:"):
		var (
			db  *sqlite.DB
			err error
		)
		if c.DB == "" {
			db, err = sqlite.OpenDir(ctx, c.Data)
		} else {
			db, err = sqlite.Open(ctx, strings.TrimPrefix(c.DB, "sqlite:"))
		}
		if err != nil {
			return nil, err
		}
		return sqliteStores(db), nil
	case isPostgres(c.DB):
		// The data dir still holds this node's own files (the evidence
		// log, an import's spool, the sinkhole's CA).
		if err := os.MkdirAll(c.Data, 0o700); err != nil {
			return nil, fmt.Errorf("create data dir: %w", err)
		}
		db, err := postgres.Open(ctx, c.DB)
		if err != nil {
			return nil, err
		}
		return &stores{Store: db, tokens: db, sessions: db, users: db, pg: db}, nil
	default:
		return nil, usagef("--db %s: not a store takedown knows (sqlite:PATH or postgres://…)", redactDSN(c.DB))
	}
}

// sqliteStores is the embedded store db with its roles.
func sqliteStores(db *sqlite.DB) *stores {
	return &stores{Store: db, tokens: db, sessions: db, users: db, sq: db}
}

// Close closes the store.
func (s *stores) Close() error {
	if s.pg != nil {
		return s.pg.Close()
	}
	return s.sq.Close()
}

// engine names the store's engine, for messages and manifests.
func (s *stores) engine() string {
	if s.pg != nil {
		return "postgres"
	}
	return "sqlite"
}

// eventStore is an event store its opener closes.
type eventStore interface {
	store.EventStore
	Close() error
}

// eventStore opens the store's event store; the caller closes it (on
// PostgreSQL closing it is a no-op: the connections are the store's).
func (s *stores) eventStore(ctx context.Context, opts sqlite.EventStoreOptions) (eventStore, error) {
	if s.pg != nil {
		return s.pg.Events(), nil
	}
	return sqlite.NewEventStore(ctx, s.sq, opts)
}

// notifyStore is the subscribers and delivery ledger and the events the
// reports read: one value, so that its optional interfaces
// (notify.SelectSource) stay visible to the reports.
type notifyStore interface {
	notify.Store
	notify.Source
}

// notify opens the store's subscribers and delivery ledger.
func (s *stores) notify() notifyStore {
	if s.pg != nil {
		return postgres.NewNotifyStore(s.pg)
	}
	return sqlite.NewNotifyStore(s.sq)
}

// statsOptions are the analytics engine's reads of the store, its per-day
// cache in the store.
func (s *stores) statsOptions() stats.Options {
	if s.pg != nil {
		es := s.pg.Events()
		return stats.Options{Source: es, Raw: es, Cache: es, Sets: es}
	}
	ss := sqlite.NewStatsStore(s.sq)
	return stats.Options{Source: ss, Raw: ss, Cache: ss, Sets: ss}
}
