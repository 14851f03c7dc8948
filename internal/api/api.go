// Package api is takedown's JSON REST API under /api/v1: orders,
// indicators, exports, statistics and series, events scoped to the
// caller's networks, notification subscribers and the delivery ledger,
// evidence checkpoints, sinkhole health and API tokens,
// with one error catalogue (errors.go) and an OpenAPI 3 document
// (openapi.json) that a test keeps equal to the router. It also serves
// /metrics in the Prometheus format (MetricsHandler).
//
// Who sees what (issue 7): admins and analysts see everything; a network
// token sees IP-level rows only inside its own networks, checked on every
// row; without a token only aggregate statistics are served, only when
// Options.PublicStats is set, and never a row below Options.MinCount.
//
// It is not the dashboard (package web, which mounts this handler and
// authenticates its users with sessions) and it computes nothing itself:
// figures come from package stats, rows from the event store.
package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown/takedown/internal/api/token"
	"github.com/takedown/takedown/internal/evidence"
	"github.com/takedown/takedown/internal/netscope"
	"github.com/takedown/takedown/internal/notify"
	"github.com/takedown/takedown/internal/registry"
	"github.com/takedown/takedown/internal/stats"
	"github.com/takedown/takedown/internal/store"
)

// Prefix is where the API is mounted.
const Prefix = "/api/v1"

// Registry is what the API reads of the registry; registry.Store is one.
type Registry interface {
	registry.Source
	Orders(ctx context.Context) ([]registry.OrderSummary, error)
	Order(ctx context.Context, id string) (*registry.OrderSummary, []registry.Indicator, []registry.AuditRecord, error)
}

// Events is what the API reads of the event store; store.EventStore is
// one.
type Events interface {
	ScanDayIPs(ctx context.Context, from, to time.Time, fn func(*store.DayIP) error) error
	Health(ctx context.Context) (store.Health, error)
}

// Stats computes the statistics documents; *stats.Engine is one.
type Stats interface {
	Stats(ctx context.Context, q stats.Query) (*stats.Result, error)
	Series(ctx context.Context, q stats.Query, every stats.Every) (*stats.Series, error)
}

// Evidence gives the evidence log's checkpoints and key; *evidence.Log is
// one.
type Evidence interface {
	Checkpoints() ([]evidence.Checkpoint, error)
	Key() *evidence.Key
}

// Window is a time window [From, To).
type Window struct {
	From, To time.Time
}

// Options configures the API. Registry, Events and Stats are required.
type Options struct {
	Registry Registry
	Events   Events
	Stats    Stats
	// Evidence is optional: without it the evidence routes answer
	// not_configured.
	Evidence Evidence
	// Notify is the subscribers and the delivery ledger; optional: without
	// it the subscriber and notification routes answer not_configured.
	Notify notify.Store
	// NotifySchedule is shown by the notifications route.
	NotifySchedule NotifySchedule
	// Gatherer is the metrics registry; with Registerer nil, the API
	// registers its own metrics in it.
	Gatherer prometheus.Gatherer
	// Counters reads the running roles' live counters for the sinkhole
	// route, from their Stats() snapshots; nil: the route has the store's
	// figures only (metrics_available false).
	Counters func() Counters
	// Registerer receives the API's own metrics (limits.go); nil: Gatherer
	// when it is also a Registerer (a *prometheus.Registry), else none.
	Registerer prometheus.Registerer
	// MaxScanRows bounds the aggregate rows one events request reads
	// (default DefaultMaxScanRows): a page that reaches it ends early,
	// with a cursor to continue.
	MaxScanRows int
	// Tokens authenticates bearer tokens; nil accepts none.
	Tokens token.Store
	// PublicStats serves aggregate statistics without a token.
	PublicStats bool
	// MinCount is the smallest row count shown to callers that do not see
	// everything (no token, network tokens); default 5.
	MinCount uint64
	// Baseline is applied to statistics requests that name none (unless
	// baseline=none); zero for none.
	Baseline Window
	// ASOrg names an autonomous system's organisation for the rows of
	// statistics grouped by ASN (geo.DB.ASOrg); nil names none.
	ASOrg func(asn uint32) string
	// AccessLog receives one JSON line per read of IP-level data (who,
	// role, networks, path, query, rows, remote address), written before
	// the answer; nil logs them through Logger only.
	AccessLog io.Writer
	Logger    *slog.Logger
	Now       func() time.Time
}

// API is the REST API handler.
type API struct {
	opt      Options
	accessMu sync.Mutex // serialises AccessLog lines
	mux      *http.ServeMux
	log      *slog.Logger
	routes   []route
	work     *workMetrics
}

var _ http.Handler = (*API)(nil)

// level is who may call a route.
type level int

const (
	levelPublic    level = iota // anyone
	levelAggregate              // anyone when PublicStats, else any token; rows thresholded unless SeesAll
	levelToken                  // any valid token or session
	levelAnalyst                // admin or analyst
	levelAdmin                  // admin
)

type route struct {
	method, pattern string // pattern relative to Prefix, in ServeMux syntax
	level           level
	h               func(w http.ResponseWriter, r *http.Request, p *Principal) error
}

// New returns the API handler, serving paths under Prefix.
func New(o Options) *API {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if l, ok := o.Evidence.(*evidence.Log); ok && l == nil {
		o.Evidence = nil // a nil *evidence.Log means no evidence log
	}
	if o.MinCount == 0 {
		o.MinCount = 5
	}
	if o.MaxScanRows <= 0 {
		o.MaxScanRows = DefaultMaxScanRows
	}
	if o.Registerer == nil {
		o.Registerer, _ = o.Gatherer.(prometheus.Registerer)
	}
	a := &API{opt: o, mux: http.NewServeMux(), log: o.Logger, work: newWorkMetrics(o.Registerer)}
	a.routes = []route{
		{"GET", "/health", levelPublic, a.health},
		{"GET", "/openapi.json", levelPublic, a.openapi},
		{"GET", "/whoami", levelPublic, a.whoami},
		{"GET", "/orders", levelAnalyst, a.orders},
		{"GET", "/orders/{id}", levelAnalyst, a.order},
		{"GET", "/indicators", levelToken, a.indicators},
		{"GET", "/exports", levelToken, a.exportList},
		{"GET", "/exports/{format}", levelToken, a.export},
		{"GET", "/stats", levelAggregate, a.stats},
		{"GET", "/series", levelAggregate, a.series},
		{"GET", "/events", levelToken, a.events},
		{"GET", "/sinkhole", levelAnalyst, a.sinkhole},
		{"GET", "/evidence/checkpoints", levelAnalyst, a.checkpoints},
		{"GET", "/evidence/checkpoints/latest", levelAnalyst, a.latestCheckpoint},
		{"GET", "/subscribers", levelAnalyst, a.subscribers},
		{"POST", "/subscribers", levelAdmin, a.addSubscribers},
		{"GET", "/subscribers/{id}", levelAnalyst, a.subscriber},
		{"DELETE", "/subscribers/{id}", levelAdmin, a.removeSubscriber},
		{"GET", "/notifications", levelAnalyst, a.notifications},
		{"GET", "/tokens", levelAdmin, a.tokens},
		{"POST", "/tokens", levelAdmin, a.createToken},
		{"DELETE", "/tokens/{id}", levelAdmin, a.revokeToken},
	}
	for _, rt := range a.routes {
		a.mux.Handle(rt.method+" "+Prefix+rt.pattern, a.wrap(rt))
	}
	return a
}

// ServeHTTP serves the API.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pat := a.mux.Handler(r); pat == "" {
		if allow := a.methods(r); len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeError(w, errBadMethod.withf("%s %s: allowed: %s", r.Method, r.URL.Path, strings.Join(allow, ", ")))
			return
		}
		writeError(w, errNoRoute.withf("no route %s %s", r.Method, r.URL.Path))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	a.mux.ServeHTTP(w, r)
}

// methods returns the methods with a route for r's path.
func (a *API) methods(r *http.Request) []string {
	var out []string
	for _, m := range []string{"GET", "POST", "DELETE"} {
		c := r.Clone(r.Context())
		c.Method = m
		if _, pat := a.mux.Handler(c); pat != "" {
			out = append(out, m)
		}
	}
	return out
}

// Principal is an authenticated caller.
type Principal struct {
	// TokenID is set for bearer tokens, User for dashboard sessions.
	TokenID  string            `json:"token_id,omitempty"`
	User     string            `json:"user,omitempty"`
	Role     netscope.Role     `json:"role"`
	Networks netscope.Networks `json:"networks,omitzero"`
}

// SeesAll reports whether p sees every network's IP-level data.
func (p *Principal) SeesAll() bool { return p != nil && p.Role.SeesAll() }

func (p *Principal) who() string {
	switch {
	case p == nil:
		return "anonymous"
	case p.TokenID != "":
		return "token:" + p.TokenID
	default:
		return "user:" + p.User
	}
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p: the dashboard uses it to call the
// API for a logged-in user. A request with a principal in its context is
// not asked for a bearer token.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// authenticate returns the caller, nil for anonymous, or an error for a
// presented token that is not valid.
func (a *API) authenticate(r *http.Request) (*Principal, error) {
	if p, ok := r.Context().Value(principalKey{}).(*Principal); ok && p != nil {
		return p, nil
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, nil
	}
	scheme, secret, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || secret == "" {
		return nil, errUnauthorized.withf("the Authorization header must be \"Bearer <token>\"")
	}
	if a.opt.Tokens == nil || !strings.HasPrefix(secret, token.Prefix) {
		return nil, errUnauthorized.withf("unknown, expired or revoked token")
	}
	hash := token.HashSecret(strings.TrimSpace(secret))
	t, err := a.opt.Tokens.TokenByHash(r.Context(), hash)
	if errors.Is(err, token.ErrNotFound) {
		return nil, errUnauthorized.withf("unknown, expired or revoked token")
	}
	if err != nil {
		return nil, errInternal.wrap(err)
	}
	// The lookup is by hash already; compare again in constant time so a
	// store that matched loosely cannot let a wrong secret through.
	got := token.HashSecret(strings.TrimSpace(secret))
	if subtle.ConstantTimeCompare(got[:], hash[:]) != 1 || !t.ValidAt(a.opt.Now()) {
		return nil, errUnauthorized.withf("unknown, expired or revoked token")
	}
	return &Principal{TokenID: t.ID, Role: t.Role, Networks: t.Networks}, nil
}

func (a *API) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := a.authenticate(r)
		if err == nil {
			err = a.allow(rt.level, p)
		}
		if err == nil {
			err = rt.h(w, r, p)
		}
		if err != nil {
			e := asError(err)
			if e.Status >= 500 {
				a.log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "who", p.who(), "err", err)
			}
			writeError(w, e)
		}
	})
}

func (a *API) allow(l level, p *Principal) error {
	switch l {
	case levelPublic:
		return nil
	case levelAggregate:
		if p == nil && !a.opt.PublicStats {
			return errUnauthorized.withf("statistics need a token here: this deployment does not publish them")
		}
		return nil
	}
	if p == nil {
		return errUnauthorized.withf("this route needs a token (Authorization: Bearer …) or a dashboard session")
	}
	switch {
	case l == levelAnalyst && !p.SeesAll():
		return errForbidden.withf("this route is for analysts and admins")
	case l == levelAdmin && p.Role != netscope.RoleAdmin:
		return errForbidden.withf("this route is for admins")
	}
	return nil
}

// Routes lists the routes as "METHOD /path" relative to Prefix, for the
// documentation test.
func (a *API) Routes() []string {
	out := make([]string, len(a.routes))
	for i, rt := range a.routes {
		out[i] = rt.method + " " + rt.pattern
	}
	return out
}

// Match returns the route r reaches as "METHOD /path" relative to Prefix,
// or "" when none.
func (a *API) Match(r *http.Request) string {
	_, pat := a.mux.Handler(r)
	return strings.Replace(pat, Prefix, "", 1)
}

// accessRecord is one line of the access log.
type accessRecord struct {
	Time     time.Time          `json:"time"`
	Who      string             `json:"who"`
	Role     netscope.Role      `json:"role"`
	Networks *netscope.Networks `json:"networks,omitempty"`
	Method   string             `json:"method"`
	Path     string             `json:"path"`
	Query    string             `json:"query,omitempty"`
	Rows     int                `json:"rows"`
	Remote   string             `json:"remote"`
}

// access records a read of rows rows of IP-level data by p.
func (a *API) access(r *http.Request, p *Principal, rows int) error {
	a.log.Info("api access", "who", p.who(), "role", string(p.Role), "path", r.URL.Path, "query", r.URL.RawQuery, "rows", rows)
	if a.opt.AccessLog == nil {
		return nil
	}
	rec := accessRecord{Time: a.opt.Now().UTC(), Who: p.who(), Role: p.Role, Method: r.Method, Path: r.URL.Path,
		Query: r.URL.RawQuery, Rows: rows, Remote: r.RemoteAddr}
	if !p.Networks.Empty() {
		rec.Networks = &p.Networks
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	a.accessMu.Lock()
	defer a.accessMu.Unlock()
	if _, err := a.opt.AccessLog.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("access log: %w", err)
	}
	return nil
}
