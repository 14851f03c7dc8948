// Package web is the operator dashboard: login for analysts and admins
// with server-side sessions (HttpOnly, SameSite=Strict cookies), CSRF
// protection on every state-changing request, secure headers (a CSP
// without inline scripts, frame-ancestors 'none'), the embedded assets
// built from npm packages by web/ (ECharts, world-atlas), and the mounting
// of the REST API and /metrics beside them. /metrics needs an admin or
// analyst: a bearer token or a dashboard session.
//
// Logins are bounded: failures are counted per client network before the
// password is hashed (throttle.go), and at most LoginConcurrency hashes
// run at once; a login beyond that is refused at once (503), not queued.
//
// It is not the API (package api): the dashboard's pages fetch the API
// with the session cookie, and this package turns the session into the
// API's Principal. Sessions are kept in a session.Store: the data folder's
// SQLite store in serve and the demo (they survive a restart), in memory
// otherwise.
package web

import (
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown/takedown/internal/api"
	"github.com/takedown/takedown/internal/api/token"
	"github.com/takedown/takedown/internal/netscope"
	"github.com/takedown/takedown/internal/web/session"
)

//go:embed assets
var assets embed.FS

// Cookie names.
const (
	SessionCookie = "takedown_session"
	loginCookie   = "takedown_login_csrf"
)

// ContentSecurityPolicy is sent with every response. Scripts come only
// from this origin; inline styles are allowed because ECharts' tooltips
// use them.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Options configures the dashboard.
type Options struct {
	// API is the REST API handler, mounted at /api/v1/.
	API http.Handler
	// Metrics, when set, is mounted at /metrics (api.MetricsHandler) for
	// admins and analysts: a dashboard session or a bearer token.
	Metrics http.Handler
	// Tokens checks the bearer tokens presented to /metrics; nil: only
	// dashboard sessions may scrape.
	Tokens token.Store
	// Users checks logins (OpenPasswordFile); nil refuses every login.
	Users Users
	// SecureCookies says when cookies carry the Secure attribute; empty
	// is SecureAuto.
	SecureCookies SecureCookies
	// TrustedProxies are the reverse proxies in front of the dashboard:
	// from them, and only from them, X-Forwarded-For names the client (for
	// the login throttle and the log) and X-Forwarded-Proto: https marks
	// the request as made over TLS.
	TrustedProxies []netip.Prefix
	// LoginConcurrency is how many password hashes may run at once
	// (default: half the CPUs, 1 to 4; each hash is about 0.3
	// CPU-seconds); a login beyond that is refused with 503 at once.
	LoginConcurrency int
	// Registerer receives the login metrics; nil: not exported.
	Registerer prometheus.Registerer
	// Sessions keeps the login sessions; nil keeps them in memory.
	Sessions session.Store
	// SessionTTL is how long a session lasts without use (default 12h).
	SessionTTL time.Duration
	// MaxLoginFailures is how many wrong passwords a client address may
	// send in 15 minutes before its logins are refused until the 15
	// minutes end (default 10).
	MaxLoginFailures int
	Logger           *slog.Logger
	Now              func() time.Time
}

// Dashboard is the dashboard handler.
type Dashboard struct {
	opt   Options
	log   *slog.Logger
	mux   *http.ServeMux
	index *template.Template
	login *template.Template

	throttle *throttle
	hashing  chan struct{} // a slot per password hash running
	metrics  *metrics
	sessions session.Store
	// origin refuses state-changing requests a browser says come from
	// another origin (Sec-Fetch-Site, or Origin against Host).
	origin *http.CrossOriginProtection
}

// SecureCookies says when the dashboard's cookies carry Secure.
type SecureCookies string

// The SecureCookies policies.
const (
	// SecureAuto marks cookies Secure on requests made over TLS: served
	// with a certificate, or from a trusted proxy that says
	// X-Forwarded-Proto: https.
	SecureAuto SecureCookies = "auto"
	// SecureAlways marks every cookie Secure (browsers then keep no
	// session over plain HTTP).
	SecureAlways SecureCookies = "always"
	// SecureNever never does (plain HTTP on loopback).
	SecureNever SecureCookies = "never"
)

var _ http.Handler = (*Dashboard)(nil)

// New returns the dashboard handler serving /, /login, /logout,
// /assets/, /api/v1/ and (if set) /metrics.
func New(o Options) *Dashboard {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SessionTTL == 0 {
		o.SessionTTL = 12 * time.Hour
	}
	if o.MaxLoginFailures == 0 {
		o.MaxLoginFailures = 10
	}
	if o.LoginConcurrency < 1 {
		o.LoginConcurrency = min(max(runtime.GOMAXPROCS(0)/2, 1), 4)
	}
	if o.Sessions == nil {
		o.Sessions = session.NewMemory()
	}
	d := &Dashboard{opt: o, log: o.Logger, mux: http.NewServeMux(), sessions: o.Sessions,
		throttle: newThrottle(o.MaxLoginFailures, loginWindow, o.Now), hashing: make(chan struct{}, o.LoginConcurrency),
		origin: http.NewCrossOriginProtection()}
	d.metrics = newMetrics(o.Registerer, d.throttle, d.log)
	d.index = template.Must(template.ParseFS(assets, "assets/index.html"))
	d.login = template.Must(template.ParseFS(assets, "assets/login.html"))
	static, _ := fs.Sub(assets, "assets")
	files := http.FileServerFS(static)
	d.mux.Handle("GET /assets/", http.StripPrefix("/assets/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".html") { // templates, not assets
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})))
	d.mux.HandleFunc("GET /{$}", d.serveIndex)
	d.mux.HandleFunc("GET /login", d.serveLogin)
	d.mux.HandleFunc("POST /login", d.doLogin)
	d.mux.HandleFunc("POST /logout", d.doLogout)
	if o.API != nil {
		d.mux.HandleFunc(api.Prefix+"/", d.serveAPI)
	}
	if o.Metrics != nil {
		d.mux.HandleFunc("GET /metrics", d.serveMetrics)
	}
	return d
}

// ServeHTTP serves the dashboard with its security headers.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	if d.overTLS(r) {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
	d.mux.ServeHTTP(w, r)
}

func randomString() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// extendAfter is how much of its lifetime a session must have used before
// a request extends it: the store is written at most once a minute per
// session, not on every request.
const extendAfter = time.Minute

// session returns the request's live session and its key, extending it.
// A session whose user is gone or has another role now is deleted.
func (d *Dashboard) session(r *http.Request) (session.Key, *session.Session) {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return session.Key{}, nil
	}
	k := session.KeyOf(c.Value)
	ctx := r.Context()
	s, ok, err := d.sessions.Session(ctx, k)
	if err != nil {
		d.log.Error("dashboard session lookup failed", "err", err)
		return k, nil
	}
	if !ok {
		return k, nil
	}
	now := d.opt.Now()
	var role netscope.Role
	known := false
	if d.opt.Users != nil {
		role, known = d.opt.Users.Role(s.User)
	}
	if !now.Before(s.Expires) || !known || role != s.Role {
		if err := d.sessions.DeleteSession(ctx, k); err != nil {
			d.log.Error("dashboard session not deleted", "err", err)
		}
		return k, nil
	}
	if next := now.Add(d.opt.SessionTTL); next.Sub(s.Expires) >= extendAfter {
		if err := d.sessions.ExtendSession(ctx, k, next); err != nil {
			d.log.Error("dashboard session not extended", "err", err)
		} else {
			s.Expires = next
		}
	}
	return k, &s
}

func (d *Dashboard) cookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true,
		Secure: d.secureCookies(r), SameSite: http.SameSiteStrictMode})
}

// secureCookies reports whether r's cookies are marked Secure.
func (d *Dashboard) secureCookies(r *http.Request) bool {
	switch d.opt.SecureCookies {
	case SecureAlways:
		return true
	case SecureNever:
		return false
	}
	return d.overTLS(r)
}

// overTLS reports whether r came over TLS: to this server, or to a trusted
// proxy that says so in the last X-Forwarded-Proto it added.
func (d *Dashboard) overTLS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	if !d.trusted(peerAddr(r)) {
		return false
	}
	v := r.Header.Values("X-Forwarded-Proto")
	if len(v) == 0 {
		return false
	}
	last := v[len(v)-1]
	if i := strings.LastIndexByte(last, ','); i >= 0 {
		last = last[i+1:]
	}
	return strings.EqualFold(strings.TrimSpace(last), "https")
}

func peerAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func (d *Dashboard) trusted(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range d.opt.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientAddr is the address r came from: the peer, or, when the peer is
// a trusted proxy, the last address in X-Forwarded-For that is not a
// trusted proxy (the ones before it are the client's own claims).
func (d *Dashboard) clientAddr(r *http.Request) string {
	peer := peerAddr(r)
	if !d.trusted(peer) {
		return r.RemoteAddr
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		if a = a.Unmap(); !d.trusted(a) {
			return a.String()
		}
	}
	return r.RemoteAddr
}

func (d *Dashboard) serveIndex(w http.ResponseWriter, r *http.Request) {
	_, s := d.session(r)
	if s == nil {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = d.index.Execute(w, map[string]string{"CSRF": s.CSRF, "User": s.User, "Role": string(s.Role)})
}

func (d *Dashboard) renderLogin(w http.ResponseWriter, r *http.Request, status int, user, msg string) {
	csrf := randomString()
	d.cookie(w, r, loginCookie, csrf, 600)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = d.login.Execute(w, map[string]string{"CSRF": csrf, "User": user, "Error": msg})
}

func (d *Dashboard) serveLogin(w http.ResponseWriter, r *http.Request) {
	if _, s := d.session(r); s != nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	d.renderLogin(w, r, http.StatusOK, "", "")
}

// sameOrigin reports whether a state-changing request comes from this
// origin: Sec-Fetch-Site or else Origin, when the browser sends them, must
// not name another origin (net/http.CrossOriginProtection). A request with
// neither is not from a browser and passes; the CSRF token still guards it.
func (d *Dashboard) sameOrigin(r *http.Request) bool {
	return d.origin.Check(r) == nil
}

func equal(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// doLogin checks the login form: a double-submit CSRF token (cookie and
// field), then the password.
func (d *Dashboard) doLogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		d.metrics.invalid.Inc()
		d.renderLogin(w, r, http.StatusBadRequest, "", "The form could not be read.")
		return
	}
	c, _ := r.Cookie(loginCookie)
	if c == nil || !equal(c.Value, r.PostFormValue("csrf")) || !d.sameOrigin(r) {
		d.metrics.invalid.Inc()
		d.renderLogin(w, r, http.StatusForbidden, "", "The form expired; please log in again.")
		return
	}
	user, password := r.PostFormValue("user"), r.PostFormValue("password")
	remote := d.clientAddr(r)
	if d.opt.Users == nil || user == "" || password == "" {
		// Nothing to hash: refused without a hash or a throttle entry.
		d.metrics.wrong.Inc()
		d.renderLogin(w, r, http.StatusUnauthorized, user, "Wrong user name or password.")
		return
	}
	// The failure is counted before the hash: parallel guesses cannot all
	// pass a check made before any of them failed.
	key := clientKey(remote)
	if ok, wait := d.throttle.reserve(key); !ok {
		d.metrics.throttled.Inc()
		d.log.Warn("dashboard login throttled", "user", user, "remote", remote, "peer", r.RemoteAddr)
		w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)+1))
		d.renderLogin(w, r, http.StatusTooManyRequests, user, "Too many failed logins from your network; try again later.")
		return
	}
	select {
	case d.hashing <- struct{}{}:
	default:
		// Every hash slot is taken: refuse now rather than queue, so a
		// flood costs no more CPU than LoginConcurrency hashes at a time.
		d.throttle.release(key)
		d.metrics.busy.Inc()
		d.log.Warn("dashboard login refused: busy", "user", user, "remote", remote)
		w.Header().Set("Retry-After", "1")
		d.renderLogin(w, r, http.StatusServiceUnavailable, user, "The server is busy checking other logins; try again in a moment.")
		return
	}
	d.metrics.hashes.Inc()
	role, ok := d.opt.Users.Authenticate(user, password)
	<-d.hashing
	if !ok {
		d.metrics.wrong.Inc()
		d.log.Warn("dashboard login refused", "user", user, "remote", remote, "peer", r.RemoteAddr)
		d.renderLogin(w, r, http.StatusUnauthorized, user, "Wrong user name or password.")
		return
	}
	d.throttle.succeed(key)
	d.metrics.ok.Inc()
	id := randomString()
	now := d.opt.Now()
	ctx := r.Context()
	if err := d.sessions.PurgeSessions(ctx, now); err != nil {
		d.log.Warn("expired dashboard sessions not purged", "err", err)
	}
	if err := d.sessions.CreateSession(ctx, session.KeyOf(id), session.Session{User: user, Role: role, CSRF: randomString(), Expires: now.Add(d.opt.SessionTTL)}); err != nil {
		d.log.Error("dashboard session not stored", "user", user, "err", err)
		d.renderLogin(w, r, http.StatusInternalServerError, user, "The session could not be stored; see the server log.")
		return
	}
	d.log.Info("dashboard login", "user", user, "role", string(role), "remote", remote, "peer", r.RemoteAddr)
	d.cookie(w, r, loginCookie, "", -1)
	d.cookie(w, r, SessionCookie, id, 0)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (d *Dashboard) doLogout(w http.ResponseWriter, r *http.Request) {
	k, s := d.session(r)
	if s == nil {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil || !equal(s.CSRF, r.PostFormValue("csrf")) || !d.sameOrigin(r) {
		api.WriteError(w, api.CSRFError())
		return
	}
	if err := d.sessions.DeleteSession(r.Context(), k); err != nil {
		d.log.Error("dashboard session not deleted at logout", "user", s.User, "err", err)
		api.WriteError(w, err)
		return
	}
	d.cookie(w, r, SessionCookie, "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// serveAPI passes API requests on: with a session, as the session's user,
// and state-changing ones only with the session's CSRF token in the
// X-CSRF-Token header; without one, as they come (bearer tokens).
func (d *Dashboard) serveAPI(w http.ResponseWriter, r *http.Request) {
	_, s := d.session(r)
	if s == nil {
		if _, err := r.Cookie(SessionCookie); err == nil && r.Header.Get("Authorization") == "" {
			api.WriteError(w, api.UnauthorizedError("the dashboard session expired; log in again"))
			return
		}
		d.opt.API.ServeHTTP(w, r)
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		if !equal(s.CSRF, r.Header.Get("X-CSRF-Token")) || !d.sameOrigin(r) {
			api.WriteError(w, api.CSRFError())
			return
		}
	}
	p := &api.Principal{User: s.User, Role: s.Role}
	d.opt.API.ServeHTTP(w, r.WithContext(api.WithPrincipal(r.Context(), p)))
}

// serveMetrics serves /metrics to admins and analysts: a dashboard
// session, or a bearer token of either role.
func (d *Dashboard) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if !d.mayScrape(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="takedown metrics"`)
		api.WriteError(w, api.UnauthorizedError("/metrics needs an admin or analyst token (Authorization: Bearer …) or a dashboard session"))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	d.opt.Metrics.ServeHTTP(w, r)
}

func (d *Dashboard) mayScrape(r *http.Request) bool {
	if _, s := d.session(r); s != nil {
		return s.Role.SeesAll()
	}
	scheme, secret, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	secret = strings.TrimSpace(secret)
	if !ok || !strings.EqualFold(scheme, "Bearer") || d.opt.Tokens == nil || !strings.HasPrefix(secret, token.Prefix) {
		return false
	}
	t, err := d.opt.Tokens.TokenByHash(r.Context(), token.HashSecret(secret))
	if err != nil {
		if !errors.Is(err, token.ErrNotFound) {
			d.log.Error("metrics token lookup failed", "err", err)
		}
		return false
	}
	return t.ValidAt(d.opt.Now()) && t.Role.SeesAll()
}
