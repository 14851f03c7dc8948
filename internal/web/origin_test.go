package web

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/takedown/takedown/internal/api/apitest"
)

// TestCrossOriginRefused checks that a state-changing request a browser
// marks as coming from another site is refused even with the right CSRF
// token, and that a same-origin one, or one from a client that sends no
// browser headers, goes through.
func TestCrossOriginRefused(t *testing.T) {
	srv := newServer(t, apitest.New(t))
	u, _ := url.Parse(srv.URL)

	t.Run("login form", func(t *testing.T) {
		for name, tt := range map[string]struct {
			hdr  map[string]string
			want int
		}{
			"cross-site fetch":  {map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
			"same-site fetch":   {map[string]string{"Sec-Fetch-Site": "same-site"}, http.StatusForbidden},
			"foreign origin":    {map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
			"same origin":       {map[string]string{"Origin": srv.URL}, http.StatusSeeOther},
			"same-origin fetch": {map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": srv.URL}, http.StatusSeeOther},
			"typed in (none)":   {map[string]string{"Sec-Fetch-Site": "none"}, http.StatusSeeOther},
			"no browser header": {nil, http.StatusSeeOther},
		} {
			t.Run(name, func(t *testing.T) {
				c := client(t)
				resp, err := c.Get(srv.URL + "/login")
				if err != nil {
					t.Fatal(err)
				}
				m := csrfField.FindStringSubmatch(body(t, resp))
				if m == nil {
					t.Fatal("no csrf field on the login page")
				}
				form := url.Values{"csrf": {m[1]}, "user": {"admin"}, "password": {"s3cret-admin"}}
				req, _ := http.NewRequest("POST", srv.URL+"/login", strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				for k, v := range tt.hdr {
					req.Header.Set(k, v)
				}
				resp, err = c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body(t, resp)
				if resp.StatusCode != tt.want {
					t.Errorf("login with %v: %d, want %d", tt.hdr, resp.StatusCode, tt.want)
				}
			})
		}
	})

	t.Run("api with session", func(t *testing.T) {
		c := client(t)
		if resp := login(t, c, srv.URL, "admin", "s3cret-admin"); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("login: %d", resp.StatusCode)
		}
		resp, err := c.Get(srv.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`name="csrf-token" content="([^"]+)"`).FindStringSubmatch(body(t, resp))
		if m == nil {
			t.Fatal("no csrf token on the page")
		}
		post := func(hdr map[string]string) int {
			req, _ := http.NewRequest("POST", srv.URL+"/api/v1/tokens", strings.NewReader(`{"role":"analyst"}`))
			req.Header.Set("X-CSRF-Token", m[1])
			for k, v := range hdr {
				req.Header.Set(k, v)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body(t, resp)
			return resp.StatusCode
		}
		for _, tt := range []struct {
			hdr  map[string]string
			want int
		}{
			{map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
			{map[string]string{"Origin": "http://evil.example"}, http.StatusForbidden},
			{map[string]string{"Origin": "http://" + u.Hostname() + ":1"}, http.StatusForbidden}, // another port is another origin
			{map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": srv.URL}, http.StatusCreated},
			{map[string]string{"Origin": srv.URL}, http.StatusCreated},
			{nil, http.StatusCreated},
		} {
			if got := post(tt.hdr); got != tt.want {
				t.Errorf("POST with %v: %d, want %d", tt.hdr, got, tt.want)
			}
		}
		// Reads are never refused for their origin.
		req, _ := http.NewRequest("GET", srv.URL+"/api/v1/orders", nil)
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		resp, err = c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body(t, resp)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("cross-site GET: %d", resp.StatusCode)
		}
	})
}
