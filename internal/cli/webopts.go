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
// from eng, or nil when web.listen is empty. It prints the admin password
// the first time.
func (g *globals) webOptions(c *config.Config, st *sqlite.DB, es *sqlite.EventStore, eng *stats.Engine, baseline api.Window) (*app.WebOptions, error) {
	if c.Web.Listen == "" {
		return nil, nil
	}
	users, pw, err := web.OpenPasswordFile(c.Data)
	if err != nil {
		return nil, fmt.Errorf("dashboard users: %w", err)
	}
	if pw != "" {
		fmt.Fprintf(g.stdout, "dashboard user admin, password %s (stored hashed in %s/%s; shown once)\n", pw, c.Data, web.UsersFileName)
	}
	sched := api.NotifySchedule{Enabled: c.Notify.Enabled}
	if sched.Enabled {
		sched.At = c.Notify.At
	}
	return &app.WebOptions{Listen: c.Web.Listen, Registry: st, Events: es, Stats: eng, Tokens: st, Users: users,
		Notify: sqlite.NewNotifyStore(st), NotifySchedule: sched, Sessions: st,
		PublicStats: c.Web.PublicStats, MinCount: c.Web.MinCount, Baseline: baseline, Warm: eng.Warm}, nil
}
