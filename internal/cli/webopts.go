package cli

import (
	"fmt"

	"github.com/takedown/takedown/internal/api"
	"github.com/takedown/takedown/internal/app"
	"github.com/takedown/takedown/internal/config"
	"github.com/takedown/takedown/internal/stats"
	"github.com/takedown/takedown/internal/store/sqlite"
	"github.com/takedown/takedown/internal/web"
)

// webOptions builds the dashboard role for the SQLite store, its figures
// from eng, or nil when web.listen is empty. The first time, it writes the
// admin password to a file only the owner reads and logs the file's path;
// interactive (the demo, in a terminal) also prints the password.
func (g *globals) webOptions(c *config.Config, st *sqlite.DB, es *sqlite.EventStore, eng *stats.Engine, baseline api.Window, interactive bool) (*app.WebOptions, error) {
	if c.Web.Listen == "" {
		return nil, nil
	}
	users, pw, err := web.OpenPasswordFile(c.Data)
	if err != nil {
		return nil, fmt.Errorf("dashboard users: %w", err)
	}
	if pw != "" {
		// Never in a log (serve's output is the service log): in a file.
		path, err := web.SaveAdminPassword(c.Data, pw)
		if err != nil {
			return nil, fmt.Errorf("dashboard users: %w", err)
		}
		if interactive {
			fmt.Fprintf(g.stdout, "dashboard user admin, password %s (stored hashed in %s/%s; shown once, also in %s)\n", pw, c.Data, web.UsersFileName, path)
		} else {
			g.logger(c).Warn("dashboard user admin created: its password is in a file only this user can read; log in, then delete it", "file", path)
		}
	}
	sched := api.NotifySchedule{Enabled: c.Notify.Enabled}
	if sched.Enabled {
		sched.At = c.Notify.At
	}
	return &app.WebOptions{Listen: c.Web.Listen, Registry: st, Events: es, Stats: eng, Tokens: st, Users: users,
		Notify: sqlite.NewNotifyStore(st), NotifySchedule: sched, Sessions: st,
		PublicStats: c.Web.PublicStats, MinCount: c.Web.MinCount, Baseline: baseline, Warm: eng.Warm}, nil
}
