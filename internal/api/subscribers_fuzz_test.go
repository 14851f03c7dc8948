package api

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzReadSubscribers feeds arbitrary bodies, as JSON and as CSV, to the
// subscriber upload: it never panics, and what it accepts is a set of
// valid subscribers with distinct IDs.
func FuzzReadSubscribers(f *testing.F) {
	f.Add(`{"id":"isp-de","organisation":"ISP DE","contacts":["abuse@isp.example"],"networks":["AS64501","2001:db8::/32"]}`, false)
	f.Add(`[{"id":"a","organisation":"A","contacts":["a@a.example"],"networks":["NL"],"formats":["xarf02"],"tlp":"red"}]`, false)
	f.Add("id,organisation,contacts,networks\ncert-nl,CERT NL,cert@cert-nl.example,NL\n", true)
	f.Add("id,organisation,contacts,networks\n\"x,y\",\"\"\"\",a@b,AS1 AS2\n", true)
	f.Fuzz(func(t *testing.T, body string, csv bool) {
		r := httptest.NewRequest("POST", "/api/v1/subscribers", strings.NewReader(body))
		if csv {
			r.Header.Set("Content-Type", "text/csv")
		}
		subs, err := readSubscribers(r)
		if err != nil {
			if subs != nil {
				t.Fatalf("error %v with subscribers %v", err, subs)
			}
			return
		}
		seen := map[string]bool{}
		for _, s := range subs {
			c := s
			if err := c.Normalize(); err != nil {
				t.Fatalf("accepted an invalid subscriber %+v: %v", s, err)
			}
			if seen[s.ID] {
				t.Fatalf("accepted ID %q twice", s.ID)
			}
			seen[s.ID] = true
		}
	})
}
