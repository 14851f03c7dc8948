package api_test

import (
	"strings"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/api"
	"github.com/takedown/takedown/internal/api/apitest"
	"github.com/takedown/takedown/internal/notify"
)

type subscribersDoc struct {
	Subscribers []notify.Subscriber `json:"subscribers"`
}

type problemsDoc struct {
	Error struct {
		Code     string   `json:"code"`
		Message  string   `json:"message"`
		Problems []string `json:"problems"`
	} `json:"error"`
}

func newEnvNotify(t *testing.T) *env {
	return newEnv(t, func(o *api.Options, f *apitest.Fixture) {
		o.Notify = f.Notify
		o.NotifySchedule = api.NotifySchedule{Enabled: true, At: "06:00"}
	})
}

func (e *env) subscriberIDs(t *testing.T) []string {
	t.Helper()
	code, body := e.get(t, "/api/v1/subscribers", "analyst")
	if code != 200 {
		t.Fatalf("list: %d %s", code, body)
	}
	var ids []string
	for _, s := range decode[subscribersDoc](t, body).Subscribers {
		ids = append(ids, s.ID)
	}
	return ids
}

func TestSubscribersAPI(t *testing.T) {
	e := newEnvNotify(t)

	// Who may do what.
	for _, c := range []struct {
		method, path, tok string
		want              int
	}{
		{"GET", "/api/v1/subscribers", "", 401},
		{"GET", "/api/v1/subscribers", "network", 403},
		{"GET", "/api/v1/notifications", "network", 403},
		{"POST", "/api/v1/subscribers", "analyst", 403},
		{"DELETE", "/api/v1/subscribers/x", "analyst", 403},
		{"GET", "/api/v1/subscribers", "analyst", 200},
		{"GET", "/api/v1/notifications", "analyst", 200},
	} {
		if code, body, _ := e.do(t, c.method, c.path, c.tok, `{}`); code != c.want {
			t.Errorf("%s %s as %q: %d, want %d: %s", c.method, c.path, c.tok, code, c.want, body)
		}
	}

	// One subscriber as JSON.
	code, body, _ := e.do(t, "POST", "/api/v1/subscribers", "admin",
		`{"id":"isp-de","organisation":"ISP DE","contacts":["abuse@isp.example"],"networks":["AS64501","2001:db8:1::/48"],"formats":["csv","xarf"],"tlp":"green"}`)
	if code != 201 {
		t.Fatalf("add: %d %s", code, body)
	}
	got := decode[subscribersDoc](t, body).Subscribers
	if len(got) != 1 || got[0].TLP != "GREEN" || len(got[0].Networks.ASNs) != 1 || got[0].Networks.ASNs[0] != 64501 ||
		len(got[0].Formats) != 2 || got[0].Cadence != "daily" || !got[0].Created.Equal(apitest.Now) {
		t.Fatalf("added %+v", got)
	}

	// The same ID again: a conflict, nothing changes.
	code, body, _ = e.do(t, "POST", "/api/v1/subscribers", "admin",
		`{"id":"isp-de","organisation":"Other","contacts":["a@b.example"],"networks":["DE"]}`)
	if code != 409 || decode[errDoc](t, body).Error.Code != "conflict" {
		t.Fatalf("duplicate: %d %s", code, body)
	}

	// A batch with bad entries: every problem named, nothing added.
	code, body, _ = e.do(t, "POST", "/api/v1/subscribers", "admin", `[
		{"id":"good","organisation":"Good","contacts":["g@good.example"],"networks":["NL"]},
		{"id":"Bad ID","organisation":"","contacts":["not an address"],"networks":["AS-x"]},
		{"id":"good","organisation":"Twice","contacts":["t@good.example"],"networks":["BE"]}]`)
	pd := decode[problemsDoc](t, body)
	joined := strings.Join(pd.Error.Problems, "\n")
	if code != 400 || pd.Error.Code != "bad_parameter" || !strings.Contains(joined, "body[1]: id \"Bad ID\"") ||
		!strings.Contains(joined, "body[1]: networks:") || !strings.Contains(joined, "body[1]: no organisation") ||
		!strings.Contains(joined, `body[2]: id "good" repeats body[0]`) {
		t.Fatalf("bad batch: %d %s", code, body)
	}
	if ids := e.subscriberIDs(t); strings.Join(ids, ",") != "isp-de" {
		t.Fatalf("after the refused batch: %v", ids)
	}

	// Unknown fields and trailing data are refused.
	for _, b := range []string{`{"id":"x","organisation":"X","contacts":["x@x.example"],"networks":["NL"],"admin":true}`, `{"id":"x"} {"id":"y"}`, `[]`} {
		if code, body, _ := e.do(t, "POST", "/api/v1/subscribers", "admin", b); code != 400 {
			t.Errorf("body %s: %d %s", b, code, body)
		}
	}

	// CSV: a bad line names its line; nothing added.
	csvReq := func(body string) (int, []byte) {
		t.Helper()
		code, b, _ := e.doCT(t, "POST", "/api/v1/subscribers", "admin", "text/csv", body)
		return code, b
	}
	code, body = csvReq("id,organisation,contacts,networks\ncert-nl,CERT NL,cert@cert-nl.example,NL\ncert-x,CERT X,nobody,XX-1\n")
	pd = decode[problemsDoc](t, body)
	if code != 400 || len(pd.Error.Problems) == 0 || !strings.HasPrefix(pd.Error.Problems[0], "body:3:") {
		t.Fatalf("bad CSV: %d %s", code, body)
	}
	code, body = csvReq("id,organisation,contacts,networks,formats\ncert-nl,CERT NL,cert@cert-nl.example,NL,xarf02\ncert-fr,CERT FR,cert@cert-fr.example,FR 100.64.0.0/10,\n")
	if code != 201 {
		t.Fatalf("CSV: %d %s", code, body)
	}
	if ids := e.subscriberIDs(t); strings.Join(ids, ",") != "cert-fr,cert-nl,isp-de" {
		t.Fatalf("after the CSV: %v", ids)
	}

	// One subscriber, then removal.
	if code, body := e.get(t, "/api/v1/subscribers/cert-nl", "analyst"); code != 200 || !strings.Contains(string(body), `"xarf02"`) {
		t.Fatalf("get: %d %s", code, body)
	}
	if code, body := e.get(t, "/api/v1/subscribers/nobody", "analyst"); code != 404 {
		t.Fatalf("unknown: %d %s", code, body)
	}
	if code, body, _ := e.do(t, "DELETE", "/api/v1/subscribers/cert-nl", "admin", ""); code != 204 {
		t.Fatalf("remove: %d %s", code, body)
	}
	if code, _, _ := e.do(t, "DELETE", "/api/v1/subscribers/cert-nl", "admin", ""); code != 404 {
		t.Fatalf("second remove: %d", code)
	}
	if ids := e.subscriberIDs(t); strings.Join(ids, ",") != "cert-fr,isp-de" {
		t.Fatalf("after removal: %v", ids)
	}
}

func TestNotificationsAPI(t *testing.T) {
	e := newEnvNotify(t)
	if code, body, _ := e.do(t, "POST", "/api/v1/subscribers", "admin", `[
		{"id":"isp-de","organisation":"ISP DE","contacts":["abuse@isp.example"],"networks":["AS64501"]},
		{"id":"cert-fr","organisation":"CERT FR","contacts":["cert@cert-fr.example"],"networks":["FR"]},
		{"id":"quiet","organisation":"Quiet","contacts":["q@quiet.example"],"networks":["NZ"]}]`); code != 201 {
		t.Fatalf("add: %d %s", code, body)
	}
	today := apitest.Now.Truncate(24 * time.Hour)
	record := func(sub string, day time.Time, st notify.State, errText string) {
		t.Helper()
		e.f.RecordDelivery(t, sub, day, 3, st, errText)
	}
	record("isp-de", today.AddDate(0, 0, -2), notify.StateSent, "")
	record("isp-de", today.AddDate(0, 0, -1), notify.StateFailed, "550 no such user")
	record("cert-fr", today.AddDate(0, 0, -1), notify.StateSent, "")
	record("cert-fr", today.AddDate(0, 0, -60), notify.StateFailed, "550 old")

	code, body := e.get(t, "/api/v1/notifications", "analyst")
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	type doc struct {
		Schedule    api.NotifySchedule   `json:"schedule"`
		Counts      map[notify.State]int `json:"counts"`
		Deliveries  []notify.Delivery    `json:"deliveries"`
		Subscribers []struct {
			ID     string           `json:"id"`
			Last   *notify.Delivery `json:"last"`
			Failed int              `json:"failed"`
		} `json:"subscribers"`
	}
	d := decode[doc](t, body)
	if !d.Schedule.Enabled || d.Schedule.At != "06:00" || len(d.Deliveries) != 3 || d.Counts[notify.StateSent] != 2 || d.Counts[notify.StateFailed] != 1 {
		t.Fatalf("notifications %s", body)
	}
	last := map[string]*notify.Delivery{}
	failed := map[string]int{}
	for _, s := range d.Subscribers {
		last[s.ID], failed[s.ID] = s.Last, s.Failed
	}
	if l := last["isp-de"]; l == nil || l.State != notify.StateFailed || l.LastError != "550 no such user" || !l.Day.Equal(today.AddDate(0, 0, -1)) || failed["isp-de"] != 1 {
		t.Fatalf("isp-de: %+v", l)
	}
	if l := last["cert-fr"]; l == nil || l.State != notify.StateSent || failed["cert-fr"] != 0 {
		t.Fatalf("cert-fr: %+v (the 60-day-old failure is outside the default 30 days)", l)
	}
	if last["quiet"] != nil {
		t.Fatalf("quiet has no report: %+v", last["quiet"])
	}
	// A wider window finds the old failure.
	_, body = e.get(t, "/api/v1/notifications?from="+today.AddDate(0, 0, -90).Format(time.DateOnly), "analyst")
	if d := decode[doc](t, body); len(d.Deliveries) != 4 {
		t.Fatalf("90 days: %s", body)
	}
	if code, _ := e.get(t, "/api/v1/notifications?from=2026-11-28&to=2026-11-01", "analyst"); code != 400 {
		t.Fatalf("empty window: %d", code)
	}
	// The subscriber's own page lists its ledger; the message is never shown.
	_, body = e.get(t, "/api/v1/subscribers/isp-de", "analyst")
	if strings.Count(string(body), `"message_id"`) != 2 || strings.Contains(string(body), `"message":`) {
		t.Fatalf("subscriber page %s", body)
	}
}

func TestNotifyNotConfigured(t *testing.T) {
	e := newEnv(t, nil)
	for _, p := range []string{"/api/v1/subscribers", "/api/v1/notifications", "/api/v1/subscribers/x"} {
		if code, body := e.get(t, p, "admin"); code != 501 || decode[errDoc](t, body).Error.Code != "not_configured" {
			t.Errorf("%s: %d %s", p, code, body)
		}
	}
}
