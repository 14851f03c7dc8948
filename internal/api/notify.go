package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/takedown/takedown/internal/netscope"
	"github.com/takedown/takedown/internal/notify"
	"github.com/takedown/takedown/internal/registry"
)

// NotifySchedule says when the daily reports run, for the notifications
// route and the dashboard.
type NotifySchedule struct {
	Enabled bool `json:"enabled"`
	// At is the UTC time of day the reports are sent ("06:00").
	At string `json:"at,omitempty"`
	// Note, when set, says how reports are sent instead (the demo).
	Note string `json:"note,omitempty"`
}

// subscriberIn is a subscriber as the API takes it: networks and formats
// as strings, like the CLI's flags and the CSV import's cells.
type subscriberIn struct {
	ID       string   `json:"id"`
	Org      string   `json:"organisation"`
	Contacts []string `json:"contacts"`
	Networks []string `json:"networks"`
	Formats  []string `json:"formats"`
	TLP      string   `json:"tlp"`
	Cadence  string   `json:"cadence"`
}

func (in subscriberIn) subscriber() (notify.Subscriber, error) {
	s := notify.Subscriber{ID: in.ID, Org: in.Org, Contacts: slices.Clone(in.Contacts), TLP: in.TLP, Cadence: in.Cadence}
	for _, f := range in.Formats {
		s.Formats = append(s.Formats, notify.Format(f))
	}
	err := s.NormalizeWith(strings.Join(in.Networks, ","), "networks")
	return s, err
}

// maxSubscriberBody bounds a subscriber upload (CSV or JSON).
const maxSubscriberBody = 4 << 20

// readSubscribers reads the subscribers of a POST body: text/csv in the
// import layout, or JSON (one object or an array). Every problem is
// reported at once, with the line of a CSV or the index of a JSON entry.
func readSubscribers(r *http.Request) ([]notify.Subscriber, error) {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxSubscriberBody))
	if err != nil {
		return nil, errBadParameter.withf("body: %v", err)
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "text/csv" {
		subs, err := notify.ParseSubscribersCSV("body", bytes.NewReader(body))
		var probs registry.Problems
		if errors.As(err, &probs) {
			return nil, problemsError(probs)
		}
		if err != nil {
			return nil, errBadParameter.withf("%v", err)
		}
		return subs, nil
	}
	if ct != "" && ct != "application/json" {
		return nil, errBadParameter.withf("Content-Type %q: want application/json or text/csv", ct)
	}
	var ins []subscriberIn
	trimmed := bytes.TrimSpace(body)
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if len(trimmed) > 0 && trimmed[0] == '[' {
		err = dec.Decode(&ins)
	} else {
		var one subscriberIn
		err = dec.Decode(&one)
		ins = []subscriberIn{one}
	}
	if err == nil && dec.More() {
		err = errors.New("trailing data after the JSON value")
	}
	if err != nil {
		return nil, errBadParameter.withf("body: %v", err)
	}
	if len(ins) == 0 {
		return nil, errBadParameter.withf("body: no subscriber")
	}
	var probs registry.Problems
	subs := make([]notify.Subscriber, 0, len(ins))
	seen := map[string]int{}
	for i, in := range ins {
		s, err := in.subscriber()
		where := fmt.Sprintf("body[%d]", i)
		if err != nil {
			for m := range strings.SplitSeq(err.Error(), "\n") {
				probs = append(probs, registry.Problem{File: where, Msg: m})
			}
			continue
		}
		if j, dup := seen[s.ID]; dup {
			probs = append(probs, registry.Problem{File: where, Msg: fmt.Sprintf("id %q repeats body[%d]", s.ID, j)})
			continue
		}
		seen[s.ID] = i
		subs = append(subs, s)
	}
	if len(probs) > 0 {
		return nil, problemsError(probs)
	}
	return subs, nil
}

// problemsError is a bad_parameter error listing every problem.
func problemsError(probs registry.Problems) *Error {
	e := errBadParameter.withf("%d problem(s); nothing was added", len(probs))
	for _, p := range probs {
		e.Problems = append(e.Problems, p.String())
	}
	return e
}

func (a *API) notifyStore() (notify.Store, error) {
	if a.opt.Notify == nil {
		return nil, errNotConfigured.withf("no notification store")
	}
	return a.opt.Notify, nil
}

func (a *API) subscribers(w http.ResponseWriter, r *http.Request, _ *Principal) error {
	ns, err := a.notifyStore()
	if err != nil {
		return err
	}
	subs, err := ns.Subscribers(r.Context())
	if err != nil {
		return errInternal.wrap(err)
	}
	if subs == nil {
		subs = []notify.Subscriber{}
	}
	return writeJSON(w, map[string]any{"subscribers": subs})
}

func (a *API) addSubscribers(w http.ResponseWriter, r *http.Request, p *Principal) error {
	ns, err := a.notifyStore()
	if err != nil {
		return err
	}
	subs, err := readSubscribers(r)
	if err != nil {
		return err
	}
	now := a.opt.Now().UTC()
	for i := range subs {
		subs[i].Created = now
	}
	if err := ns.AddSubscribers(r.Context(), subs); err != nil {
		if errors.Is(err, notify.ErrExists) {
			return errConflict.withf("%v; nothing was added", err)
		}
		return errInternal.wrap(err)
	}
	ids := make([]string, len(subs))
	for i, s := range subs {
		ids[i] = s.ID
	}
	a.log.Info("subscribers added", "ids", ids, "by", p.who())
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	return writeJSON(w, map[string]any{"subscribers": subs})
}

// subscriber is one subscriber and its ledger entries of the last 90 days.
func (a *API) subscriber(w http.ResponseWriter, r *http.Request, _ *Principal) error {
	ns, err := a.notifyStore()
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	subs, err := ns.Subscribers(r.Context())
	if err != nil {
		return errInternal.wrap(err)
	}
	i := slices.IndexFunc(subs, func(s notify.Subscriber) bool { return s.ID == id })
	if i < 0 {
		return errNotFound.withf("no subscriber %q", id)
	}
	to := a.opt.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, 1)
	ds, err := ns.Deliveries(r.Context(), to.AddDate(0, 0, -90), to)
	if err != nil {
		return errInternal.wrap(err)
	}
	out := []notify.Delivery{}
	for _, d := range ds {
		if d.Subscriber == id {
			out = append(out, d)
		}
	}
	return writeJSON(w, map[string]any{"subscriber": subs[i], "deliveries": out})
}

func (a *API) removeSubscriber(w http.ResponseWriter, r *http.Request, p *Principal) error {
	ns, err := a.notifyStore()
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	err = ns.RemoveSubscriber(r.Context(), id)
	if errors.Is(err, notify.ErrNotFound) {
		return errNotFound.withf("no subscriber %q", id)
	}
	if err != nil {
		return errInternal.wrap(err)
	}
	a.log.Info("subscriber removed", "id", id, "by", p.who())
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// subscriberStatus is a subscriber with its latest report.
type subscriberStatus struct {
	ID       string            `json:"id"`
	Org      string            `json:"organisation"`
	Networks netscope.Networks `json:"networks"`
	Formats  []notify.Format   `json:"formats"`
	TLP      string            `json:"tlp"`
	Last     *notify.Delivery  `json:"last"`
	// Failed counts the failed reports among the listed days.
	Failed int `json:"failed"`
}

// notifications is the delivery ledger of days in [from, to) (default:
// the last 30 days) and, per subscriber, the latest report in it.
func (a *API) notifications(w http.ResponseWriter, r *http.Request, _ *Principal) error {
	ns, err := a.notifyStore()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	to := a.opt.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, 1)
	if s := q.Get("to"); s != "" {
		if to, err = parseTime("to", s); err != nil {
			return err
		}
	}
	from := to.AddDate(0, 0, -30)
	if s := q.Get("from"); s != "" {
		if from, err = parseTime("from", s); err != nil {
			return err
		}
	}
	if !from.Before(to) {
		return errBadParameter.withf("window %s to %s is empty", from.Format(time.DateOnly), to.Format(time.DateOnly))
	}
	subs, err := ns.Subscribers(r.Context())
	if err != nil {
		return errInternal.wrap(err)
	}
	ds, err := ns.Deliveries(r.Context(), from, to)
	if err != nil {
		return errInternal.wrap(err)
	}
	if ds == nil {
		ds = []notify.Delivery{}
	}
	status := make([]subscriberStatus, len(subs))
	idx := make(map[string]int, len(subs))
	for i, s := range subs {
		status[i] = subscriberStatus{ID: s.ID, Org: s.Org, Networks: s.Networks, Formats: s.Formats, TLP: s.TLP}
		idx[s.ID] = i
	}
	counts := map[notify.State]int{}
	for i := range ds {
		d := &ds[i]
		counts[d.State]++
		j, ok := idx[d.Subscriber]
		if !ok {
			continue // removed since; its ledger entries stay listed
		}
		// Deliveries are ordered by day: the last one seen is the latest.
		status[j].Last = d
		if d.State == notify.StateFailed {
			status[j].Failed++
		}
	}
	return writeJSON(w, map[string]any{
		"from": from, "to": to, "schedule": a.opt.NotifySchedule,
		"counts": counts, "subscribers": status, "deliveries": ds,
	})
}
