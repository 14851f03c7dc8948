package selfcheck

import (
	"bytes"
	"cmp"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"math"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/takedown/takedown/internal/proxyproto"
	"github.com/takedown/takedown/internal/store"
)

//go:embed assets
var assets embed.FS

// APIPath is where the JSON answer is served.
const APIPath = "/api/v1/self"

// ContentSecurityPolicy is the page's policy: nothing but its own style
// sheet and icon; no scripts, no forms, no frames, no third party.
const ContentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Statuses of an answer.
const (
	StatusSeen         = "seen"          // a direct connection: very likely infected
	StatusResolverOnly = "resolver_only" // only DNS queries, as a resolver
	StatusNotSeen      = "not_seen"
)

// Answer is the result of one check, as /api/v1/self returns it.
type Answer struct {
	Address  string   `json:"address"`
	Status   string   `json:"status"`
	Infected bool     `json:"infected"` // Status == StatusSeen
	Window   Window   `json:"window"`
	Families []Family `json:"families"` // seen with a direct connection
	// ResolverFamilies were only looked up through DNS by this address,
	// acting as a resolver: not an infection of this address.
	ResolverFamilies []Family `json:"resolver_families"`
	Notes            []string `json:"notes"`    // the page's explanations, in Language
	Language         string   `json:"language"` // from Accept-Language
}

// Window is the checked period, in whole UTC days, both ends included.
type Window struct {
	From string `json:"from"` // YYYY-MM-DD
	To   string `json:"to"`
	Days int    `json:"days"`
}

// Family is one malware family seen from the address.
type Family struct {
	Family    string   `json:"family"`
	Name      string   `json:"name"`
	FirstSeen string   `json:"first_seen"` // UTC day
	LastSeen  string   `json:"last_seen"`
	DaysSeen  int      `json:"days_seen"`
	Cleanup   *Cleanup `json:"cleanup,omitempty"`
}

var pageTemplate = template.Must(template.New("page.html.tmpl").ParseFS(assets, "assets/page.html.tmpl"))

func (s *Server) routes() {
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("/{$}", s.check)
	s.mux.HandleFunc(APIPath, s.check)
	static := http.FileServerFS(assets)
	for _, f := range []string{"/selfcheck.css", "/favicon.svg"} {
		s.mux.HandleFunc(f, func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				s.fail(w, r, http.StatusMethodNotAllowed, "method_not_allowed")
				return
			}
			w.Header().Set("Cache-Control", "public, max-age=3600")
			r2 := r.Clone(r.Context())
			r2.URL.Path = "/assets" + f
			static.ServeHTTP(w, r2)
		})
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, http.StatusNotFound, "not_found")
	})
}

// ServeHTTP sets the security headers of every response and routes it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), interest-cohort=()")
	s.mux.ServeHTTP(w, r)
}

// check answers / and /api/v1/self. The only input it reads to choose the
// address is r.RemoteAddr (the TCP peer, or the relayed client from a
// trusted PROXY header) and, from configured forwarders only,
// X-Forwarded-For. It does not parse the query, the body or cookies.
func (s *Server) check(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Vary", "Accept-Language")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		s.fail(w, r, http.StatusMethodNotAllowed, "method_not_allowed")
		return
	}
	addr, err := clientAddr(r, s.trust.Load().forwarders)
	if err != nil {
		s.m.refuse(reasonAddress)
		s.fail(w, r, http.StatusBadRequest, "error")
		return
	}
	now := s.opts.Now()
	// The bucket is that of the address answered for: the TCP peer, the
	// source a trusted proxy's PROXY header named, or the client a
	// configured forwarder wrote into X-Forwarded-For (keying on the
	// forwarder itself would put every visitor behind it in one bucket).
	// None of them is a value the visitor picks, so rotating claimed
	// addresses rotates nothing.
	if ok, wait := s.lim.allow(addr, now); !ok {
		s.m.refuse(reasonRateLimited)
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(max(wait.Seconds(), 1)))))
		s.fail(w, r, http.StatusTooManyRequests, "rate_limited")
		return
	}
	// However many networks ask, at most MaxConcurrent lookups run; the
	// rest are told to come back at once rather than queue.
	select {
	case s.busy <- struct{}{}:
		defer func() { <-s.busy }()
	default:
		s.m.refuse(reasonBusy)
		w.Header().Set("Retry-After", "1")
		s.fail(w, r, http.StatusServiceUnavailable, "error")
		return
	}
	lang := s.cat.Match(r.Header.Get("Accept-Language"))
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	today := now.UTC().Truncate(24 * time.Hour)
	from := today.AddDate(0, 0, -(int(s.days.Load()) - 1))
	rows, err := s.opts.Lookup.Lookup(ctx, addr, from, today.Add(24*time.Hour))
	if err != nil {
		s.m.refuse(reasonStore)
		if !errors.Is(err, context.Canceled) {
			s.log.Error("self-check lookup failed", "err", err) // the error names no visitor
		}
		s.fail(w, r, http.StatusServiceUnavailable, "error")
		return
	}
	a := s.answer(addr, lang, from, today, rows)
	s.m.check()
	switch a.Status {
	case StatusSeen:
		for _, f := range a.Families {
			s.m.positive(f.Family)
		}
	case StatusResolverOnly:
		s.m.resolverOnly()
	}
	if r.URL.Path == APIPath {
		writeJSON(w, http.StatusOK, a)
		return
	}
	s.render(w, http.StatusOK, s.pageData(lang, &a, ""))
}

// unknownFamily names aggregates stored without a family.
const unknownFamily = "unknown"

// answer folds the address's aggregates into per-family sightings.
// A family with any direct connection (HTTP, HTTPS, TCP, UDP) is an
// infection; one seen only through DNS is a resolver's lookup.
func (s *Server) answer(addr netip.Addr, lang string, from, today time.Time, rows []store.DayIP) Answer {
	type acc struct {
		direct, dns   map[int64]bool // days seen each way
		dFirst, dLast time.Time
		rFirst, rLast time.Time
	}
	fams := map[string]*acc{}
	for i := range rows {
		d := &rows[i]
		fam := d.Family
		if fam == "" {
			fam = unknownFamily
		}
		x := fams[fam]
		if x == nil {
			x = &acc{direct: map[int64]bool{}, dns: map[int64]bool{}}
			fams[fam] = x
		}
		day := d.Day.Unix()
		if d.Protocols&store.Direct != 0 {
			x.direct[day] = true
			x.dFirst, x.dLast = earliest(x.dFirst, d.FirstSeen), latest(x.dLast, d.LastSeen)
		} else if d.Protocols&store.ProtoDNS != 0 {
			x.dns[day] = true
			x.rFirst, x.rLast = earliest(x.rFirst, d.FirstSeen), latest(x.rLast, d.LastSeen)
		}
	}
	a := Answer{
		Address:          addr.String(),
		Window:           Window{From: day(from), To: day(today), Days: int(s.days.Load())},
		Families:         []Family{},
		ResolverFamilies: []Family{},
		Language:         lang,
	}
	for fam, x := range fams {
		switch {
		case len(x.direct) > 0:
			a.Families = append(a.Families, s.family(lang, fam, x.dFirst, x.dLast, len(x.direct), true))
		case len(x.dns) > 0:
			a.ResolverFamilies = append(a.ResolverFamilies, s.family(lang, fam, x.rFirst, x.rLast, len(x.dns), false))
		}
	}
	for _, l := range []*[]Family{&a.Families, &a.ResolverFamilies} {
		slices.SortFunc(*l, func(x, y Family) int {
			return cmp.Or(-strings.Compare(x.LastSeen, y.LastSeen), strings.Compare(x.Family, y.Family))
		})
	}
	t := func(k string) string {
		return s.cat.Text(lang, k, "days", strconv.Itoa(int(s.days.Load())))
	}
	switch {
	case len(a.Families) > 0:
		a.Status, a.Infected = StatusSeen, true
		a.Notes = []string{t("seen_lead"), t("nat_note")}
	case len(a.ResolverFamilies) > 0:
		a.Status = StatusResolverOnly
		a.Notes = []string{t("resolver_lead")}
	default:
		a.Status = StatusNotSeen
		a.Notes = []string{t("not_seen_lead"), t("not_seen_proves"), t("not_seen_not_proves")}
	}
	return a
}

func (s *Server) family(lang, fam string, first, last time.Time, days int, cleanup bool) Family {
	f := Family{Family: fam, Name: fam, FirstSeen: day(first), LastSeen: day(last), DaysSeen: days}
	if c := s.cat.Cleanup(lang, fam); c != nil {
		if c.Family == fam {
			f.Name = c.Name
		}
		if cleanup {
			f.Cleanup = c
		}
	}
	return f
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func day(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// maxForwardHops bounds the X-Forwarded-For entries looked at.
const maxForwardHops = 32

var errForwarded = errors.New("malformed X-Forwarded-For from a trusted forwarder")

// clientAddr is the address a request comes from: the connection's remote
// address (already the relayed client when a trusted proxy sent a PROXY
// header) or, when that is a trusted forwarder, the right-most
// X-Forwarded-For entry that is not itself a trusted forwarder.
func clientAddr(r *http.Request, fwd *proxyproto.Trust) (netip.Addr, error) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, err
	}
	a := ap.Addr().Unmap().WithZone("")
	if !fwd.Trusted(a) {
		return a, nil
	}
	values := r.Header.Values("X-Forwarded-For")
	if len(values) == 0 {
		return a, nil
	}
	return forwardedFor(strings.Join(values, ","), a, fwd)
}

// forwardedFor walks an X-Forwarded-For list from the right: each hop was
// added by the one after it, so only entries added by trusted forwarders
// can be believed. peer is the trusted forwarder that sent the header.
func forwardedFor(list string, peer netip.Addr, fwd *proxyproto.Trust) (netip.Addr, error) {
	client := peer
	for hops := 0; list != "" && hops < maxForwardHops; hops++ {
		var item string
		if i := strings.LastIndexByte(list, ','); i >= 0 {
			list, item = list[:i], list[i+1:]
		} else {
			list, item = "", list
		}
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		a, err := parseHop(item)
		if err != nil {
			return netip.Addr{}, errForwarded
		}
		client = a
		if !fwd.Trusted(a) {
			return a, nil
		}
	}
	return client, nil
}

// parseHop parses one X-Forwarded-For entry: an address, or an address
// with a port ("192.0.2.1:1234", "[2001:db8::1]:1234").
func parseHop(s string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return a.Unmap(), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Addr().Zone() != "" {
		return netip.Addr{}, errForwarded
	}
	return ap.Addr().Unmap(), nil
}

// fail answers an error in the client's format: JSON for the API, the page
// otherwise.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, key string) {
	w.Header().Set("Cache-Control", "no-store")
	lang := s.cat.Match(r.Header.Get("Accept-Language"))
	msg := s.cat.Text(lang, key)
	if strings.HasPrefix(r.URL.Path, "/api/") {
		writeJSON(w, status, map[string]string{"error": key, "message": msg})
		return
	}
	s.render(w, status, s.pageData(lang, nil, msg))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func (s *Server) render(w http.ResponseWriter, status int, d *pageData) {
	var buf bytes.Buffer
	if err := s.page.Execute(&buf, d); err != nil {
		s.log.Error("self-check page failed to render", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// pageData is what the template sees.
type pageData struct {
	Lang    string
	Answer  *Answer // nil on an error page
	Message string  // the error message
	cat     *Catalogue
}

func (s *Server) pageData(lang string, a *Answer, msg string) *pageData {
	return &pageData{Lang: lang, Answer: a, Message: msg, cat: s.cat}
}

// T is a message in the page's language; args are placeholder name, value
// pairs.
func (d *pageData) T(key string, args ...any) string {
	kv := make([]string, len(args))
	for i, v := range args {
		switch v := v.(type) {
		case string:
			kv[i] = v
		case int:
			kv[i] = strconv.Itoa(v)
		default:
			kv[i] = "?"
		}
	}
	return d.cat.Text(d.Lang, key, kv...)
}

// APIPath is the JSON twin of the page (for the template).
func (d *pageData) APIPath() string { return APIPath }
