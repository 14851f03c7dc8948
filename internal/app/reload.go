package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	geodata "github.com/takedown/takedown/data/geo"
	"github.com/takedown/takedown/internal/config"
	"github.com/takedown/takedown/internal/geo"
)

// A reload is one transaction (house style, rule 5):
//
//  1. the new file is parsed and validated (config.Load);
//  2. every changed key that cannot apply live is refused by name
//     ("dns.listen: needs a restart"), all of them at once;
//  3. every applier prepares its component's new state (databases read,
//     the registry snapshot and the DNS zone index built, rules parsed,
//     trust lists parsed) without putting it in force;
//  4. only when every applier prepared, each commits, in the order of the
//     list; a commit cannot fail. On any failure before that, nothing
//     changed and what was prepared is dropped.
//
// Every attempt counts in takedown_config_reloads_total; every failure, a
// file that does not parse included, in takedown_config_reload_failures_total
// and sets takedown_config_last_reload_successful to 0. docs/configuration.md
// lists which keys apply live.

// restartKeys are the settings (config.Settings names) that need a
// restart: sockets, files opened once, sizes of what is allocated once.
// Every other setting is applied live by an applier below (a test checks
// that the two lists cover config.Keys).
var restartKeys = map[string]string{
	"data":                                 "the data dir is opened at start",
	"db":                                   "the store is opened at start",
	"log.format":                           "the log handler is made at start",
	"dns.listen":                           "a listen address",
	"dns.udp_size":                         "the UDP buffers are sized at start",
	"listeners":                            "listen addresses and their PROXY trust",
	"pipeline.queue":                       "the queue is allocated at start",
	"pipeline.batch":                       "the batches are allocated at start",
	"pipeline.retention":                   "the retention loop reads it at start",
	"pipeline.source_budget.rate":          "the budget's buckets hold state the pipeline owns",
	"pipeline.source_budget.burst":         "the budget's buckets hold state the pipeline owns",
	"pipeline.source_budget.summary_every": "the budget's buckets hold state the pipeline owns",
	"web.listen":                           "a listen address",
	"web.tls_cert":                         "the certificate is loaded with the listener",
	"web.tls_key":                          "the certificate is loaded with the listener",
	"web.trusted_proxy":                    "the dashboard's middleware is built at start",
	"web.secure_cookies":                   "the dashboard's middleware is built at start",
	"web.metrics_listen":                   "a listen address",
	"web.read_header_timeout":              "the HTTP server's timeouts are set at start",
	"web.read_timeout":                     "the HTTP server's timeouts are set at start",
	"web.write_timeout":                    "the HTTP server's timeouts are set at start",
	"web.idle_timeout":                     "the HTTP server's timeouts are set at start",
	"selfcheck.listen":                     "a listen address",
	"evidence.enabled":                     "the evidence log is opened at start",
	"evidence.checkpoint_every":            "the checkpointer reads it at start",
	"notify.enabled":                       "the scheduler runs or not from the start",
}

// liveKeys are the settings applied live, and by what. registry.never_seize
// and registry.dga_margin are read by each order import; serve holds
// nothing of them.
var liveKeys = map[string]string{
	"log.level":                    "log",
	"registry.never_seize":         "order import",
	"registry.poll":                "registry, dns",
	"registry.dga_margin":          "order import",
	"sinkhole.a":                   "dns",
	"sinkhole.aaaa":                "dns",
	"sinkhole.per_case":            "dns",
	"dns.ttl":                      "dns",
	"dns.ns":                       "dns",
	"dns.soa_contact":              "dns",
	"dns.trusted_proxy":            "dns",
	"dns.tcp_per_source":           "dns",
	"dns.rrl.enabled":              "dns",
	"dns.rrl.responses_per_second": "dns",
	"dns.rrl.window":               "dns",
	"dns.rrl.slip":                 "dns",
	"dns.rrl.ipv4_prefix":          "dns",
	"dns.rrl.ipv6_prefix":          "dns",
	"dns.rrl.table_size":           "dns",
	"dns.rrl.exempt":               "dns",
	"pipeline.rules":               "rules",
	"geo.country":                  "geo",
	"geo.asn":                      "geo",
	"web.public_stats":             "web",
	"web.min_count":                "web",
	"selfcheck.trusted_proxy":      "selfcheck",
	"selfcheck.trusted_forwarders": "selfcheck",
	"selfcheck.days":               "selfcheck",
	"notify.at":                    "notify",
	"notify.from":                  "notify",
	"notify.public_source":         "notify",
	"notify.api_url":               "notify",
	"notify.cleanup_url":           "notify",
	"notify.compress_above":        "notify",
	"notify.xarf02_max":            "notify",
	"notify.maildir":               "notify",
	"notify.smtp.addr":             "notify",
	"notify.smtp.starttls":         "notify",
	"notify.smtp.username":         "notify",
	"notify.smtp.password_file":    "notify",
	"notify.smtp.helo":             "notify",
}

// applier prepares one component's new state from the new configuration
// and returns the commit that puts it in force. A commit cannot fail.
type applier struct {
	name    string
	prepare func(ctx context.Context, c *config.Config) (commit func(), err error)
}

// appliers are the reload's steps, prepared in this order and committed in
// the same order: the IP databases, the registry index (classification
// and the connection sinkhole follow it), the classification rules, the
// DNS sinkhole (its zone index is built from the registry, its answers
// from sinkhole.* and dns.*), the self-check's trust lists and window (a
// proxy removed is no longer believed), the REST API's public policy, the
// daily reports, and last the log level.
func (a *App) appliers() []applier {
	return []applier{
		{"geo", a.prepareGeo},
		{"registry", a.prepareRegistry},
		{"rules", a.prepareRules},
		{"dns", a.prepareDNS},
		{"selfcheck", a.prepareSelfCheck},
		{"web", a.prepareWeb},
		{"notify", a.prepareNotify},
		{"log", a.prepareLog},
	}
}

// Reload applies c (nil: the configuration in force, with the registry
// and the IP databases re-read) as one transaction: on any failure the old
// state stays and the error says why. SIGHUP and every other caller go
// through ReloadFrom.
func (a *App) Reload(ctx context.Context, c *config.Config) error {
	return a.ReloadFrom(ctx, func() (*config.Config, error) { return c, nil })
}

// ReloadFrom loads the new configuration with load (a file that does not
// parse is a failed reload like any other) and applies it as Reload does.
func (a *App) ReloadFrom(ctx context.Context, load func() (*config.Config, error)) error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	// The attempt is counted with its outcome, so that a scrape never sees
	// the count of an attempt without its result.
	defer a.reloads.Inc()
	c, err := load()
	if err == nil {
		err = a.reload(ctx, c)
	}
	if err != nil {
		a.reloadFails.Inc()
		a.lastReloadOK.Set(0)
		a.log.Error("reload failed; keeping the old configuration", "err", err)
		return err
	}
	a.lastReloadOK.Set(1)
	a.log.Info("reloaded")
	return nil
}

func (a *App) reload(ctx context.Context, c *config.Config) error {
	old := a.cfg.Load()
	if c == nil {
		c = old
	}
	changed := c.Changed(old)
	var refused []string
	for _, k := range changed {
		switch {
		case restartKeys[k] != "":
			refused = append(refused, k+": needs a restart ("+restartKeys[k]+")")
		case k == "log.level" && a.opts.LogLevel == nil:
			refused = append(refused, k+": needs a restart (the log handler is made at start)")
		case liveKeys[k] == "":
			refused = append(refused, k+": needs a restart")
		}
	}
	if len(refused) > 0 {
		return errors.New(strings.Join(refused, "; "))
	}
	commits := make([]func(), 0, 8)
	defer func() { a.stagedReg = nil }()
	for _, ap := range a.appliers() {
		if a.failPrepare != nil {
			if err := a.failPrepare(ap.name); err != nil {
				return fmt.Errorf("%s: %w", ap.name, err)
			}
		}
		commit, err := ap.prepare(ctx, c)
		if err != nil {
			// What was prepared is dropped: every prepared state is
			// memory (databases are read whole, not mapped).
			return fmt.Errorf("%s: %w", ap.name, err)
		}
		if commit != nil {
			commits = append(commits, commit)
		}
	}
	for _, commit := range commits {
		commit()
	}
	a.cfg.Store(c)
	a.log.Debug("reload committed", "appliers", len(commits))
	if len(changed) > 0 {
		a.log.Info("configuration applied", "changed", strings.Join(changed, ","))
	}
	return nil
}

func (a *App) prepareGeo(_ context.Context, c *config.Config) (func(), error) {
	o := geoOptions(c, a.log)
	st, err := a.geo.Stage(o.Country, o.ASN)
	if err != nil {
		return nil, fmt.Errorf("geo: %w", err)
	}
	return func() { a.geo.Commit(st) }, nil
}

// prepareRegistry reads the registry into a snapshot that the DNS applier
// builds from; its commit publishes it to every reader (kept only if the
// watcher has not read a newer one meanwhile) with the new poll interval.
func (a *App) prepareRegistry(ctx context.Context, c *config.Config) (func(), error) {
	snap, err := a.reg.Read(ctx)
	if err != nil {
		return nil, err
	}
	a.stagedReg = snap
	return func() {
		a.reg.SetPoll(c.Registry.Poll.D())
		a.reg.Publish(snap)
	}, nil
}

func (a *App) prepareRules(_ context.Context, c *config.Config) (func(), error) {
	rules, err := loadRules(c)
	if err != nil {
		return nil, err
	}
	return func() {
		for _, l := range a.conns {
			l.SetRules(rules)
		}
	}, nil
}

func (a *App) prepareDNS(ctx context.Context, c *config.Config) (func(), error) {
	if a.dns == nil {
		return nil, nil
	}
	st, err := dnsSettings(a, c)
	if err != nil {
		return nil, err
	}
	staged, err := a.dns.Stage(ctx, st, a.stagedReg)
	if err != nil {
		return nil, err
	}
	return func() { a.dns.Commit(staged) }, nil
}

func (a *App) prepareSelfCheck(_ context.Context, c *config.Config) (func(), error) {
	proxies, err := parseTrust(c.SelfCheck.TrustedProxy)
	if err != nil {
		return nil, fmt.Errorf("selfcheck.trusted_proxy: %w", err)
	}
	forwarders, err := parseTrust(c.SelfCheck.TrustedForwarders)
	if err != nil {
		return nil, fmt.Errorf("selfcheck.trusted_forwarders: %w", err)
	}
	if c.SelfCheck.Days < 1 || c.SelfCheck.Days > 366 {
		return nil, fmt.Errorf("selfcheck.days: %d is not between 1 and 366", c.SelfCheck.Days)
	}
	if a.selfcheck == nil {
		return nil, nil
	}
	return func() {
		a.selfcheck.SetTrust(proxies, forwarders)
		_ = a.selfcheck.SetDays(c.SelfCheck.Days) // checked above
	}, nil
}

func (a *App) prepareWeb(_ context.Context, c *config.Config) (func(), error) {
	if a.web == nil {
		return nil, nil
	}
	h := a.web.stageAPI(c.Web)
	return func() { a.web.commitAPI(h, c.Web) }, nil
}

func (a *App) prepareNotify(_ context.Context, c *config.Config) (func(), error) {
	if a.notify == nil {
		return nil, nil
	}
	at, err := time.Parse("15:04", c.Notify.At)
	if err != nil {
		return nil, fmt.Errorf("notify.at: %w", err)
	}
	n, err := NewNotifier(c, a.opts.Notify, a.opts.Events.Flush, a.log.With("role", "notify"))
	if err != nil {
		return nil, err
	}
	d := time.Duration(at.Hour())*time.Hour + time.Duration(at.Minute())*time.Minute
	return func() { a.notify.Set(n, d) }, nil
}

func (a *App) prepareLog(_ context.Context, c *config.Config) (func(), error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.Log.Level)); err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	if a.opts.LogLevel == nil {
		return nil, nil
	}
	return func() { a.opts.LogLevel.Set(lvl) }, nil
}

// geoOptions are the IP databases c names, or the bundled data.
func geoOptions(c *config.Config, log *slog.Logger) geo.Options {
	o := geo.Options{Logger: log.With("role", "geo")}
	if c.Geo.Country != "" {
		o.Country.Path = c.Geo.Country
	} else {
		o.Country.Data = geodata.Country()
	}
	if c.Geo.ASN != "" {
		o.ASN.Path = c.Geo.ASN
	} else {
		o.ASN.Data = geodata.ASN()
	}
	return o
}
