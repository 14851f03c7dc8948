package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/takedown/takedown/internal/app"
	"github.com/takedown/takedown/internal/config"
	"github.com/takedown/takedown/internal/netscope"
	"github.com/takedown/takedown/internal/notify"
	"github.com/takedown/takedown/internal/stats"
	"github.com/takedown/takedown/internal/store/sqlite"
)

// demoMailbox is the maildir, inside the data dir, that the demo delivers
// the daily reports into: the demo sends no mail.
const demoMailbox = "mailbox"

// demoNotifyNote is what the dashboard's Notifications view says about the
// demo's schedule.
const demoNotifyNote = "The demo delivers the previous day's reports into the data folder's mailbox/ (a maildir) once its history is loaded; serve sends them by SMTP at notify.at."

// demoNotify subscribes the national CERTs of the three countries and the
// network of the ASN with the most infected addresses on day (once per data
// dir), then delivers day's reports into the demo's maildir through the
// delivery ledger, exactly once, and prints what it did.
func demoNotify(ctx context.Context, w io.Writer, c *config.Config, st *sqlite.DB, engine *stats.Engine, day time.Time, log *slog.Logger) error {
	ns := sqlite.NewNotifyStore(st)
	have, err := ns.Subscribers(ctx)
	if err != nil {
		return err
	}
	if len(have) == 0 {
		subs, err := demoSubscribers(ctx, engine, day)
		if err != nil {
			return err
		}
		if err := ns.AddSubscribers(ctx, subs); err != nil && !errors.Is(err, notify.ErrExists) {
			return err
		}
	}
	dc := *c
	dc.Notify.Maildir = filepath.Join(c.Data, demoMailbox)
	dc.Notify.From = "takedown-demo@dcu.example"
	dc.Notify.PublicSource = "takedown demo"
	dc.Notify.APIURL = "http://" + demoDashboard + "/api/v1"
	dc.Notify.CleanupURL = "http://" + demoSelfCheck + "/"
	n, err := app.NewNotifier(&dc, &app.NotifyStores{Store: ns, Source: ns}, nil, log.With("role", "notify"))
	if err != nil {
		return err
	}
	outs, err := n.Send(ctx, day)
	if err != nil {
		return err
	}
	var sent, rows int
	var names []string
	for _, o := range outs {
		if o.State == notify.StateSent {
			sent++
			rows += o.Rows
			names = append(names, o.Subscriber)
		}
	}
	fmt.Fprintf(w, "\nnotifications for %s: %d daily report(s), %d rows, for %s, in %s (the demo sends no mail; dashboard: Notifications)\n",
		day.Format(time.DateOnly), sent, rows, strings.Join(names, ", "), filepath.Join(dc.Notify.Maildir, "new"))
	return nil
}

// demoSubscribers are the national CERTs of the three countries with the
// most infected addresses on day, and the operator of the busiest ASN.
func demoSubscribers(ctx context.Context, engine *stats.Engine, day time.Time) ([]notify.Subscriber, error) {
	q := stats.Query{From: day, To: day.AddDate(0, 0, 1), By: stats.ByCountry, Top: 3}
	byCountry, err := engine.Stats(ctx, q)
	if err != nil {
		return nil, err
	}
	q.By, q.Top = stats.ByASN, 2 // the first may be "unknown"
	byASN, err := engine.Stats(ctx, q)
	if err != nil {
		return nil, err
	}
	var subs []notify.Subscriber
	add := func(id, org, networks string, formats ...notify.Format) error {
		nets, err := netscope.ParseNetworks(networks)
		if err != nil {
			return err
		}
		s := notify.Subscriber{ID: id, Org: org + " (demo)", Contacts: []string{"abuse@" + id + ".example"}, Networks: nets,
			Formats: formats, TLP: "AMBER", Created: time.Now().UTC()}
		if err := s.Normalize(); err != nil {
			return err
		}
		subs = append(subs, s)
		return nil
	}
	for _, r := range byCountry.Rows {
		if r.Key == stats.Unknown {
			continue
		}
		cc := strings.ToLower(r.Key)
		if err := add("cert-"+cc, "National CERT "+r.Key, r.Key, notify.FormatShadowserver); err != nil {
			return nil, err
		}
	}
	for _, r := range byASN.Rows {
		if r.Key == stats.Unknown {
			continue
		}
		if err := add("isp-as"+r.Key, "Network AS"+r.Key, "AS"+r.Key, notify.FormatShadowserver, notify.FormatXARF4); err != nil {
			return nil, err
		}
		break
	}
	return subs, nil
}
