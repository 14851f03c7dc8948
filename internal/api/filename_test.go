package api_test

import (
	"mime"
	"strings"
	"testing"

	"github.com/takedown/takedown/internal/notify"
)

// TestEventsCSVFileName: a CSV download is named as the report files are,
// in the form IntelMQ's file-name pattern takes, after the narrowest
// network asked for or the caller's scope.
func TestEventsCSVFileName(t *testing.T) {
	e := newEnv(t, nil)
	for _, c := range []struct{ query, tok, label string }{
		{"window=7d&format=csv", "network", "-as64501-2001-db8-1-0-0-0-0-0-48.csv"},
		{"window=7d&format=csv&cidr=198.51.100.0/24", "admin", "-198-51-100-0-24.csv"},
		{"window=7d&format=csv&cidr=2001:db8::/32", "admin", "-2001-db8-0-0-0-0-0-0-32.csv"},
		{"window=7d&format=csv", "admin", "-all.csv"},
	} {
		t.Run(c.query+" "+c.tok, func(t *testing.T) {
			code, body, h := e.do(t, "GET", "/api/v1/events?"+c.query, c.tok, "")
			if code != 200 {
				t.Fatalf("%d %s", code, body)
			}
			_, params, err := mime.ParseMediaType(h.Get("Content-Disposition"))
			if err != nil {
				t.Fatalf("Content-Disposition %q: %v", h.Get("Content-Disposition"), err)
			}
			name := params["filename"]
			if m := notify.IntelMQFileName.FindStringSubmatch(name); m == nil || m[1] != "takedown_events" || !strings.HasSuffix(name, c.label) {
				t.Fatalf("file name %q: want one IntelMQ's pattern takes, ending %s", name, c.label)
			}
		})
	}
}
