package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/takedown/takedown/internal/api/token"
	"github.com/takedown/takedown/internal/export"
	"github.com/takedown/takedown/internal/netscope"
	"github.com/takedown/takedown/internal/registry"
	"github.com/takedown/takedown/internal/stats"
)

// parseTime parses RFC 3339 or a bare date (UTC midnight).
func parseTime(name, s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, errBadParameter.withf("%s=%q is not an RFC 3339 time or a date (2011-09-13)", name, s)
}

// parseSpan parses a window length: a Go duration ("24h") or days ("7d").
func parseSpan(name, s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		if v, err := strconv.Atoi(n); err == nil && v > 0 && v <= 3660 {
			return time.Duration(v) * 24 * time.Hour, nil
		}
	} else if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return d, nil
	}
	return 0, errBadParameter.withf("%s=%q is not a positive duration (24h) or number of days (7d)", name, s)
}

// window reads from, to and window: to defaults to now (to the second, so
// that the requests a dashboard sends at once ask for the same window and
// share its computation), from to to minus window (default 24h).
func (a *API) window(q url.Values) (time.Time, time.Time, error) {
	to := a.opt.Now().UTC().Truncate(time.Second)
	var err error
	if s := q.Get("to"); s != "" {
		if to, err = parseTime("to", s); err != nil {
			return time.Time{}, time.Time{}, err
		}
	}
	span := 24 * time.Hour
	if s := q.Get("window"); s != "" {
		if span, err = parseSpan("window", s); err != nil {
			return time.Time{}, time.Time{}, err
		}
	}
	from := to.Add(-span)
	if s := q.Get("from"); s != "" {
		if q.Get("window") != "" {
			return time.Time{}, time.Time{}, errBadParameter.withf("give from or window, not both")
		}
		if from, err = parseTime("from", s); err != nil {
			return time.Time{}, time.Time{}, err
		}
	}
	if !from.Before(to) {
		return time.Time{}, time.Time{}, errBadParameter.withf("window %s to %s is empty", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	return from, to, nil
}

func intParam(q url.Values, name string, def, lo, hi int) (int, error) {
	s := q.Get(name)
	if s == "" {
		return def, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < lo || v > hi {
		return 0, errBadParameter.withf("%s=%q: want a whole number from %d to %d", name, s, lo, hi)
	}
	return v, nil
}

// health is the liveness and pipeline counters.
func (a *API) health(w http.ResponseWriter, r *http.Request, _ *Principal) error {
	type doc struct {
		Status string `json:"status"`
		Time   string `json:"time"`
		Serial uint32 `json:"registry_serial"`
		Events any    `json:"events"`
		// Evidence says whether the evidence routes are served.
		Evidence bool `json:"evidence_enabled"`
	}
	d := doc{Status: "ok", Time: a.opt.Now().UTC().Format(time.RFC3339), Evidence: a.opt.Evidence != nil}
	var errs []string
	if s, err := a.opt.Registry.Serial(r.Context()); err != nil {
		errs = append(errs, "registry")
	} else {
		d.Serial = s
	}
	if h, err := a.opt.Events.Health(r.Context()); err != nil {
		errs = append(errs, "events")
	} else {
		d.Events = h
	}
	if len(errs) > 0 {
		d.Status = "degraded: " + strings.Join(errs, ", ")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	return writeJSON(w, d)
}

func (a *API) whoami(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if p == nil {
		return writeJSON(w, map[string]any{"role": "anonymous", "public_stats": a.opt.PublicStats})
	}
	return writeJSON(w, p)
}

func (a *API) orders(w http.ResponseWriter, r *http.Request, _ *Principal) error {
	os, err := a.opt.Registry.Orders(r.Context())
	if err != nil {
		return errInternal.wrap(err)
	}
	now := a.opt.Now().UTC()
	type row struct {
		registry.OrderSummary
		Active   bool `json:"active"`
		DaysLeft *int `json:"days_left,omitempty"`
		Expiring bool `json:"expiring_within_30_days"`
	}
	out := make([]row, 0, len(os))
	for _, o := range os {
		rw := row{OrderSummary: o, Active: o.ActiveAt(now)}
		if !o.Revoked && now.Before(o.Expires) {
			d := int(o.Expires.Sub(now).Hours() / 24)
			rw.DaysLeft = &d
			rw.Expiring = o.Expires.Sub(now) <= 30*24*time.Hour
		}
		out = append(out, rw)
	}
	return writeJSON(w, map[string]any{"at": now, "orders": out})
}

func (a *API) order(w http.ResponseWriter, r *http.Request, _ *Principal) error {
	o, inds, audit, err := a.opt.Registry.Order(r.Context(), r.PathValue("id"))
	if errors.Is(err, registry.ErrNotFound) {
		return errNotFound.withf("no order %q", r.PathValue("id"))
	}
	if err != nil {
		return errInternal.wrap(err)
	}
	if inds == nil {
		inds = []registry.Indicator{}
	}
	return writeJSON(w, map[string]any{"order": o, "indicators": inds, "audit": audit})
}

// activeSet reads at and case.
func (a *API) activeSet(r *http.Request) (*registry.ActiveSet, error) {
	q := r.URL.Query()
	at := a.opt.Now().UTC()
	if s := q.Get("at"); s != "" {
		var err error
		if at, err = parseTime("at", s); err != nil {
			return nil, err
		}
	}
	set, err := a.opt.Registry.Active(r.Context(), at, q.Get("case"))
	if err != nil {
		return nil, errInternal.wrap(err)
	}
	return set, nil
}

func (a *API) indicators(w http.ResponseWriter, r *http.Request, _ *Principal) error {
	set, err := a.activeSet(r)
	if err != nil {
		return err
	}
	kind := r.URL.Query().Get("kind")
	if kind != "" {
		if _, err := registry.ParseKind(kind); err != nil {
			return errBadParameter.withf("kind: %v", err)
		}
	}
	entries := make([]registry.Entry, 0, len(set.Entries))
	for _, e := range set.Entries {
		if kind == "" || string(e.Kind) == kind {
			entries = append(entries, e)
		}
	}
	var next *time.Time
	if !set.NextChange.IsZero() {
		next = &set.NextChange
	}
	return writeJSON(w, map[string]any{"at": set.At, "serial": set.Serial, "next_change": next, "indicators": entries})
}

func (a *API) exportList(w http.ResponseWriter, r *http.Request, _ *Principal) error {
	return writeJSON(w, map[string]any{"formats": export.Names()})
}

var exportTypes = map[string]string{
	"json": "application/json", "stix": "application/json", "csv": "text/csv; charset=utf-8",
}

func (a *API) export(w http.ResponseWriter, r *http.Request, _ *Principal) error {
	name := r.PathValue("format")
	ex, err := export.Lookup(name)
	if err != nil {
		return errUnknownFormat.withf("%v", err)
	}
	q := r.URL.Query()
	opt := export.Options{Origin: q.Get("origin"), Action: q.Get("action")}
	for _, p := range []struct {
		name string
		dst  *netip.Addr
	}{{"sinkhole_a", &opt.SinkholeA}, {"sinkhole_aaaa", &opt.SinkholeAAAA}} {
		if s := q.Get(p.name); s != "" {
			ad, err := netip.ParseAddr(s)
			if err != nil {
				return errBadParameter.withf("%s=%q is not an address", p.name, s)
			}
			*p.dst = ad
		}
	}
	set, err := a.activeSet(r)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := ex.Export(&buf, set, opt); err != nil {
		return errBadParameter.withf("export %s: %v", name, err)
	}
	ct := exportTypes[name]
	if ct == "" {
		ct = "text/plain; charset=utf-8"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Disposition", fmt.Sprintf("inline; filename=%q", "takedown-"+name+"."+exportExt(name)))
	_, err = w.Write(buf.Bytes())
	return err
}

func exportExt(name string) string {
	switch name {
	case "json", "stix":
		return "json"
	case "csv":
		return "csv"
	case "rpz":
		return "zone"
	case "nftables":
		return "nft"
	case "suricata":
		return "rules"
	case "unbound", "dnsmasq":
		return "conf"
	}
	return "txt"
}

// statsQuery reads a statistics query.
func (a *API) statsQuery(r *http.Request) (stats.Query, error) {
	q := r.URL.Query()
	from, to, err := a.window(q)
	if err != nil {
		return stats.Query{}, err
	}
	by, err := stats.ParseDim(q.Get("by"))
	if err != nil {
		return stats.Query{}, errBadParameter.withf("by: %v", err)
	}
	top, err := intParam(q, "top", 0, 0, 10000)
	if err != nil {
		return stats.Query{}, err
	}
	sq := stats.Query{From: from, To: to, By: by, Top: top}
	bf, bt := q.Get("baseline_from"), q.Get("baseline_to")
	switch {
	case q.Get("baseline") == "none":
	case bf != "" || bt != "":
		if bf == "" || bt == "" {
			return stats.Query{}, errBadParameter.withf("a baseline needs both baseline_from and baseline_to")
		}
		if sq.BaselineFrom, err = parseTime("baseline_from", bf); err != nil {
			return stats.Query{}, err
		}
		if sq.BaselineTo, err = parseTime("baseline_to", bt); err != nil {
			return stats.Query{}, err
		}
	case !a.opt.Baseline.From.IsZero():
		sq.BaselineFrom, sq.BaselineTo = a.opt.Baseline.From, a.opt.Baseline.To
	}
	if err := sq.Validate(); err != nil {
		return stats.Query{}, errBadParameter.withf("%v", err)
	}
	return sq, nil
}

func (a *API) stats(w http.ResponseWriter, r *http.Request, p *Principal) error {
	sq, err := a.statsQuery(r)
	if err != nil {
		return err
	}
	res, err := a.opt.Stats.Stats(r.Context(), sq)
	if err != nil {
		return tooLarge(err)
	}
	a.work.statsWork("stats", res.Work)
	res.NameASNs(a.opt.ASOrg)
	if !p.SeesAll() {
		a.coarsen(res)
	}
	return writeJSON(w, res)
}

func (a *API) series(w http.ResponseWriter, r *http.Request, p *Principal) error {
	q := r.URL.Query()
	if q.Get("window") == "" && q.Get("from") == "" {
		q.Set("window", "30d")
		r.URL.RawQuery = q.Encode()
	}
	sq, err := a.statsQuery(r)
	if err != nil {
		return err
	}
	every := stats.Daily
	if s := q.Get("every"); s != "" {
		if every, err = stats.ParseEvery(s); err != nil {
			return errBadParameter.withf("every: %v", err)
		}
	}
	// The engine ends the series with the stored history and refuses more
	// than stats.MaxSeriesPoints points (too_large).
	res, err := a.opt.Stats.Series(r.Context(), sq, every)
	if err != nil {
		return tooLarge(err)
	}
	a.work.statsWork("series", res.Work)
	res.NameASNs(a.opt.ASOrg)
	if !p.SeesAll() {
		for i := range res.Points {
			pt := &res.Points[i]
			pt.UniqueIPs, pt.EstimatedHosts, pt.ResolverIPsExcluded = a.round(pt.UniqueIPs), a.round(pt.EstimatedHosts), a.round(pt.ResolverIPsExcluded)
			pt.Rows = a.threshold(pt.Rows)
		}
	}
	return writeJSON(w, res)
}

// The threshold rule (docs/api.md, "Small counts"), for every caller who
// does not see everything (network tokens, anonymous public statistics),
// with k = MinCount:
//
//  1. primary suppression: a row whose count is below k is left out, and a
//     row's baseline figures when its baseline count is below k;
//  2. rounding to base k: every count published beside them (rows,
//     totals, baseline totals, estimated hosts, resolvers excluded) is
//     rounded down to a multiple of k, and every percentage is computed
//     from the rounded counts.
//
// Rounding the total as well as the rows is what keeps a hidden row from
// being the difference of the others: each published figure stands for
// an interval k wide, so the total minus the shown rows is an interval at
// least k wide, never one value (issue 17: total 15, DE 7, NL 7 published
// exactly made FR = 1; rounded they are 15, 5, 5, and FR is anything from
// 1 to 4, as its suppression already said).

// round rounds n down to a multiple of MinCount.
func (a *API) round(n uint64) uint64 { return n - n%a.opt.MinCount }

// coarsen applies the threshold rule to res.
func (a *API) coarsen(res *stats.Result) {
	res.UniqueIPs = a.round(res.UniqueIPs)
	res.EstimatedHosts = a.round(res.EstimatedHosts)
	res.ResolverIPsExcluded = a.round(res.ResolverIPsExcluded)
	if res.Baseline != nil {
		res.Baseline.UniqueIPs = a.round(res.Baseline.UniqueIPs)
		res.ReductionPct = stats.ReductionPct(res.Baseline.UniqueIPs, res.UniqueIPs)
	}
	res.Rows = a.threshold(res.Rows)
}

// threshold applies the threshold rule to rows: drops rows below MinCount,
// blanks baseline figures below it, rounds the rest down to a multiple of
// it.
func (a *API) threshold(rows []stats.Row) []stats.Row {
	out := rows[:0]
	for _, r := range rows {
		if r.UniqueIPs < a.opt.MinCount {
			continue
		}
		r.UniqueIPs = a.round(r.UniqueIPs)
		if r.BaselineUniqueIPs != nil {
			if *r.BaselineUniqueIPs < a.opt.MinCount {
				r.BaselineUniqueIPs, r.ReductionPct = nil, nil
			} else {
				b := a.round(*r.BaselineUniqueIPs)
				r.BaselineUniqueIPs = &b
				r.ReductionPct = stats.ReductionPct(b, r.UniqueIPs)
			}
		}
		out = append(out, r)
	}
	return out
}

func (a *API) checkpoints(w http.ResponseWriter, r *http.Request, _ *Principal) error {
	cps, key, err := a.evidence()
	if err != nil {
		return err
	}
	out := make([]checkpointDoc, 0, len(cps))
	for _, c := range cps {
		out = append(out, checkpointOf(c.Origin, c.Size, c.Root[:], c.Note))
	}
	return writeJSON(w, map[string]any{"key": key, "checkpoints": out})
}

func (a *API) latestCheckpoint(w http.ResponseWriter, r *http.Request, _ *Principal) error {
	cps, key, err := a.evidence()
	if err != nil {
		return err
	}
	if len(cps) == 0 {
		return errNotFound.withf("no checkpoint yet")
	}
	c := cps[len(cps)-1]
	return writeJSON(w, map[string]any{"key": key, "checkpoint": checkpointOf(c.Origin, c.Size, c.Root[:], c.Note)})
}

type keyDoc struct {
	Name        string `json:"name"`
	Fingerprint string `json:"fingerprint"`
	SSH         string `json:"ssh_public_key"`
	Verifier    string `json:"note_verifier_key"`
}

type checkpointDoc struct {
	Origin string `json:"origin"`
	Size   uint64 `json:"size"`
	Root   string `json:"root_hash"`
	Note   string `json:"note"`
}

func checkpointOf(origin string, size uint64, root, note []byte) checkpointDoc {
	return checkpointDoc{Origin: origin, Size: size, Root: base64.StdEncoding.EncodeToString(root), Note: string(note)}
}

func (a *API) evidence() ([]evidenceCheckpoint, keyDoc, error) {
	if a.opt.Evidence == nil {
		return nil, keyDoc{}, errNotConfigured.withf("the evidence log is not enabled")
	}
	cps, err := a.opt.Evidence.Checkpoints()
	if err != nil {
		return nil, keyDoc{}, errInternal.wrap(err)
	}
	k := a.opt.Evidence.Key()
	kd := keyDoc{Name: k.Name, Fingerprint: k.Fingerprint(), SSH: k.SSHPublicKey(), Verifier: k.VerifierKey()}
	out := make([]evidenceCheckpoint, len(cps))
	for i, c := range cps {
		out[i] = evidenceCheckpoint{Origin: c.Origin, Size: c.Size, Root: c.Root[:], Note: c.Note}
	}
	return out, kd, nil
}

type evidenceCheckpoint struct {
	Origin string
	Size   uint64
	Root   []byte
	Note   []byte
}

func (a *API) tokens(w http.ResponseWriter, r *http.Request, _ *Principal) error {
	if a.opt.Tokens == nil {
		return errNotConfigured.withf("no token store")
	}
	ts, err := a.opt.Tokens.Tokens(r.Context())
	if err != nil {
		return errInternal.wrap(err)
	}
	if ts == nil {
		ts = []token.Token{}
	}
	return writeJSON(w, map[string]any{"tokens": ts})
}

func (a *API) createToken(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if a.opt.Tokens == nil {
		return errNotConfigured.withf("no token store")
	}
	var in struct {
		Role     string `json:"role"`
		Networks string `json:"networks"`
		Note     string `json:"note"`
		Expires  string `json:"expires"`
	}
	dec := jsonDecoder(r)
	if err := dec.Decode(&in); err != nil {
		return errBadParameter.withf("body: %v", err)
	}
	role, err := netscope.ParseRole(in.Role)
	if err != nil {
		return errBadParameter.withf("role: %v", err)
	}
	nets, err := netscope.ParseNetworks(in.Networks)
	if err != nil {
		return errBadParameter.withf("networks: %v", err)
	}
	spec := token.Spec{Role: role, Networks: nets, Note: in.Note}
	if in.Expires != "" {
		if spec.Expires, err = parseTime("expires", in.Expires); err != nil {
			return err
		}
	}
	t, secret, err := token.Issue(r.Context(), a.opt.Tokens, spec, a.opt.Now())
	if err != nil {
		return errBadParameter.withf("%v", err)
	}
	a.log.Info("api token created", "id", t.ID, "role", t.Role, "by", p.who())
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	return writeJSON(w, map[string]any{"token": t, "secret": secret})
}

func (a *API) revokeToken(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if a.opt.Tokens == nil {
		return errNotConfigured.withf("no token store")
	}
	id := r.PathValue("id")
	err := a.opt.Tokens.RevokeToken(r.Context(), id, a.opt.Now())
	if errors.Is(err, token.ErrNotFound) {
		return errNotFound.withf("no token %q", id)
	}
	if err != nil {
		return errInternal.wrap(err)
	}
	a.log.Info("api token revoked", "id", id, "by", p.who())
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// jsonDecoder reads a request body of at most 64 KiB, refusing unknown
// fields.
func jsonDecoder(r *http.Request) *json.Decoder {
	d := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 64<<10))
	d.DisallowUnknownFields()
	return d
}
