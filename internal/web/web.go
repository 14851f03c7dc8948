// Package web is the operator dashboard: login for analysts and admins
// with server-side sessions (HttpOnly, SameSite=Strict cookies), CSRF
// protection on every state-changing request, secure headers (a CSP
// without inline scripts, frame-ancestors 'none'), the embedded assets
// built from npm packages by web/ (ECharts, world-atlas), and the mounting
// of the REST API and /metrics beside them.
//
// It is not the API (package api): the dashboard's pages fetch the API
// with the session cookie, and this package turns the session into the
// API's Principal. Sessions live in memory: a restart logs everyone out.
package web

import (
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/takedown/takedown/internal/api"
	"github.com/takedown/takedown/internal/api/token"
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
	// Metrics, when set, is mounted at /metrics (api.MetricsHandler).
	Metrics http.Handler
	// Users checks logins (OpenPasswordFile); nil refuses every login.
	Users Users
	// SecureCookies marks cookies Secure (set it when served over TLS).
	SecureCookies bool
	// SessionTTL is how long a session lasts without use (default 12h).
	SessionTTL time.Duration
	// MaxLoginFailures is how many wrong passwords a client address may
	// send in 15 minutes before its logins are refused until the 15
	// minutes end (default 10).
	MaxLoginFailures int
	Logger           *slog.Logger
	Now              func() time.Time
}

type session struct {
	user    string
	role    token.Role
	csrf    string
	expires time.Time
}

// Dashboard is the dashboard handler.
type Dashboard struct {
	opt   Options
	log   *slog.Logger
	mux   *http.ServeMux
	index *template.Template
	login *template.Template

	throttle *throttle

	mu       sync.Mutex // guards sessions
	sessions map[string]*session
}

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
	d := &Dashboard{opt: o, log: o.Logger, mux: http.NewServeMux(), sessions: map[string]*session{},
		throttle: newThrottle(o.MaxLoginFailures, 15*time.Minute, o.Now)}
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
		d.mux.Handle("GET /metrics", o.Metrics)
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
	d.mux.ServeHTTP(w, r)
}

func randomString() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// session returns the request's live session, extending it.
func (d *Dashboard) session(r *http.Request) (string, *session) {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return "", nil
	}
	now := d.opt.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.sessions[c.Value]
	if !ok {
		return "", nil
	}
	if !now.Before(s.expires) {
		delete(d.sessions, c.Value)
		return "", nil
	}
	s.expires = now.Add(d.opt.SessionTTL)
	cp := *s
	return c.Value, &cp
}

func (d *Dashboard) cookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true,
		Secure: d.opt.SecureCookies, SameSite: http.SameSiteStrictMode})
}

func (d *Dashboard) serveIndex(w http.ResponseWriter, r *http.Request) {
	_, s := d.session(r)
	if s == nil {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = d.index.Execute(w, map[string]string{"CSRF": s.csrf, "User": s.user, "Role": string(s.role)})
}

func (d *Dashboard) renderLogin(w http.ResponseWriter, status int, user, msg string) {
	csrf := randomString()
	d.cookie(w, loginCookie, csrf, 600)
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
	d.renderLogin(w, http.StatusOK, "", "")
}

// sameOrigin reports whether a state-changing request comes from this
// origin: Sec-Fetch-Site or Origin, when the browser sends them, must not
// name another site.
func sameOrigin(r *http.Request) bool {
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return false
		}
	}
	return true
}

func equal(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// doLogin checks the login form: a double-submit CSRF token (cookie and
// field), then the password.
func (d *Dashboard) doLogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		d.renderLogin(w, http.StatusBadRequest, "", "The form could not be read.")
		return
	}
	c, _ := r.Cookie(loginCookie)
	if c == nil || !equal(c.Value, r.PostFormValue("csrf")) || !sameOrigin(r) {
		d.renderLogin(w, http.StatusForbidden, "", "The form expired; please log in again.")
		return
	}
	user, password := r.PostFormValue("user"), r.PostFormValue("password")
	if d.throttle.blocked(r.RemoteAddr) {
		d.log.Warn("dashboard login throttled", "user", user, "remote", r.RemoteAddr)
		d.renderLogin(w, http.StatusTooManyRequests, user, "Too many failed logins from your address; try again in 15 minutes.")
		return
	}
	var role token.Role
	ok := false
	if d.opt.Users != nil && user != "" && password != "" {
		role, ok = d.opt.Users.Authenticate(user, password)
	}
	if !ok {
		d.throttle.fail(r.RemoteAddr)
		d.log.Warn("dashboard login refused", "user", user, "remote", r.RemoteAddr)
		d.renderLogin(w, http.StatusUnauthorized, user, "Wrong user name or password.")
		return
	}
	d.throttle.succeed(r.RemoteAddr)
	id := randomString()
	d.mu.Lock()
	now := d.opt.Now()
	for k, s := range d.sessions { // drop expired sessions
		if !now.Before(s.expires) {
			delete(d.sessions, k)
		}
	}
	d.sessions[id] = &session{user: user, role: role, csrf: randomString(), expires: now.Add(d.opt.SessionTTL)}
	d.mu.Unlock()
	d.log.Info("dashboard login", "user", user, "role", string(role), "remote", r.RemoteAddr)
	d.cookie(w, loginCookie, "", -1)
	d.cookie(w, SessionCookie, id, 0)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (d *Dashboard) doLogout(w http.ResponseWriter, r *http.Request) {
	id, s := d.session(r)
	if s == nil {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil || !equal(s.csrf, r.PostFormValue("csrf")) || !sameOrigin(r) {
		api.WriteError(w, api.CSRFError())
		return
	}
	d.mu.Lock()
	delete(d.sessions, id)
	d.mu.Unlock()
	d.cookie(w, SessionCookie, "", -1)
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
		if !equal(s.csrf, r.Header.Get("X-CSRF-Token")) || !sameOrigin(r) {
			api.WriteError(w, api.CSRFError())
			return
		}
	}
	p := &api.Principal{User: s.user, Role: s.role}
	d.opt.API.ServeHTTP(w, r.WithContext(api.WithPrincipal(r.Context(), p)))
}
