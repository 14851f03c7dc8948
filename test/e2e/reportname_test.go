package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/takedown/takedown/internal/notify"
)

// report network -o names every file so that IntelMQ's Shadowserver
// parser takes it (the refused example was
// 2011-09-12-event4_sinkhole_http-0.0.0.0_0.csv), with the report type
// where IntelMQ reads it.
func TestReportNetworkFileNames(t *testing.T) {
	data, _, _ := evidenceData(t)
	for _, tc := range []struct{ flag, value, label string }{
		{"--cidr", "0.0.0.0/0", "0-0-0-0-0"},
		{"--cidr", "::/0", "0-0-0-0-0-0-0-0-0"},
		{"--country", "IN", "in"},
	} {
		t.Run(tc.value, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "reports")
			r := mustRun(t, nil, "--data", data, "report", "network", tc.flag, tc.value, "--date", "2011-09-07", "-o", out)
			ents, err := os.ReadDir(out)
			if err != nil {
				t.Fatal(err)
			}
			if tc.value != "::/0" && len(ents) == 0 {
				t.Fatalf("no report written:\n%s", r.stdout)
			}
			for _, e := range ents {
				m := notify.IntelMQFileName.FindStringSubmatch(e.Name())
				if m == nil || !strings.HasPrefix(m[1], "event") || !strings.HasSuffix(e.Name(), "-"+tc.label+".csv") {
					t.Errorf("%s: not a name IntelMQ takes with the report type and network %s (%q)", e.Name(), tc.label, m)
				}
			}
		})
	}
}
