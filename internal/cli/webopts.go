package cli

import (
	"context"
	"fmt"

	"github.com/takedown/takedown/internal/api"
	"github.com/takedown/takedown/internal/app"
	"github.com/takedown/takedown/internal/config"
	"github.com/takedown/takedown/internal/stats"
	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/web"
)

// webOptions builds the dashboard role for the store st, its figures from
// eng, or nil when web.listen is empty. The first time, it writes the
// admin password to a file only the owner reads and logs the file's path;
// interactive (the demo, in a terminal) also prints the password.
func (g *globals) webOptions(c *config.Config, st *stores, es store.EventStore, eng *stats.Engine, baseline api.Window, interactive bool) (*app.WebOptions, error) {
	if c.Web.Listen == "" {
		return nil, nil
	}
	// The store holds the users, so that every dashboard node shares
	// them; a users file in the data dir is imported at each start.
	users, pw, err := web.OpenUsers(context.Background(), st.users, c.Data)
	if err != nil {
		return nil, fmt.Errorf("dashboard users: %w", err)
	}
	users.Logger = g.logger(c).With("role", "web")
	if pw != "" {
		// Never in a log (serve's output is the service log): in a file.
		path, err := web.SaveAdminPassword(c.Data, pw)
		if err != nil {
			return nil, fmt.Errorf("dashboard users: %w", err)
		}
		if interactive {
			fmt.Fprintf(g.stdout, "dashboard user admin, password %s (stored hashed in the %s store; shown once, also in %s)\n", pw, st.engine(), path)
		} else {
			g.logger(c).Warn("dashboard user admin created: its password is in a file only this user can read; log in, then delete it", "file", path)
		}
	}
	sched := api.NotifySchedule{Enabled: c.Notify.Enabled}
	if sched.Enabled {
		sched.At = c.Notify.At
	}
	return &app.WebOptions{Listen: c.Web.Listen, Registry: st.Store, Events: es, Stats: eng, Tokens: st.tokens, Users: users,
		Notify: st.notify(), NotifySchedule: sched, Sessions: st.sessions,
		PublicStats: c.Web.PublicStats, MinCount: c.Web.MinCount, Baseline: baseline, Warm: eng.Warm}, nil
}
