package notify_test

import (
	"testing"
	"time"

	"github.com/takedown/takedown/internal/netscope"
	"github.com/takedown/takedown/internal/notify"
)

// TestReportFileNames: every report file name the code can produce, for
// networks of every kind and every report type, matches IntelMQ's
// Shadowserver file-name pattern, and names the network recognisably.
func TestReportFileNames(t *testing.T) {
	day := time.Date(2011, 9, 12, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		networks string
		want     string // the label
	}{
		{"198.51.100.0/24", "198-51-100-0-24"},
		{"0.0.0.0/0", "0-0-0-0-0"},
		{"192.0.2.1", "192-0-2-1-32"},
		{"10.0.0.0/8", "10-0-0-0-8"},
		{"2001:db8::/32", "2001-db8-0-0-0-0-0-0-32"},
		{"::/0", "0-0-0-0-0-0-0-0-0"},
		{"::1", "0-0-0-0-0-0-0-1-128"},
		{"2001:db8:0:1::/64", "2001-db8-0-1-0-0-0-0-64"},
		{"fe80::/10", "fe80-0-0-0-0-0-0-0-10"},
		{"::ffff:192.0.2.0/120", "192-0-2-0-24"}, // unmapped by ParseNetworks
		{"AS64500", "as64500"},
		{"AS4294967295", "as4294967295"},
		{"US", "us"},
		{"de", "de"},
		{"AS64500,192.0.2.0/24,2001:db8::/32,de", "as64500-192-0-2-0-24-2001-db8-0-0-0-0-0-0-32-de"},
	}
	for _, c := range cases {
		t.Run(c.networks, func(t *testing.T) {
			n, err := netscope.ParseNetworks(c.networks)
			if err != nil {
				t.Fatal(err)
			}
			label := notify.NetworksLabel(n)
			if label != c.want {
				t.Errorf("label %q, want %q", label, c.want)
			}
			for _, typ := range notify.ReportTypes {
				name := notify.ReportFileName(day, typ, label, "csv")
				m := notify.IntelMQFileName.FindStringSubmatch(name)
				if m == nil {
					t.Fatalf("%q does not match IntelMQ's pattern", name)
				}
				if m[1] != typ {
					t.Errorf("%q: IntelMQ reads report type %q, want %q", name, m[1], typ)
				}
			}
		})
	}
	// The name the issue reports refused, and what it is now.
	if notify.IntelMQFileName.MatchString("2011-09-12-event4_sinkhole_http-0.0.0.0_0.csv") {
		t.Fatal("the pattern accepts the dotted CIDR name IntelMQ refuses: the test checks nothing")
	}
}

// TestFileLabel: any subscriber ID (or other text) becomes a label that
// keeps the pattern, with nothing empty between dashes.
func TestFileLabel(t *testing.T) {
	for in, want := range map[string]string{
		"isp-a": "isp-a", "isp--a": "isp-a", "isp-": "isp", "-isp": "isp", "cert.example": "cert-example",
		"a b/c:d": "a-b-c-d", "": "x", "---": "x", "ünï": "n", "x_y": "x_y",
	} {
		got := notify.FileLabel(in)
		if got != want {
			t.Errorf("FileLabel(%q) = %q, want %q", in, got, want)
		}
		if name := notify.ReportFileName(time.Time{}, "event4_sinkhole", in, "csv"); !notify.IntelMQFileName.MatchString(name) {
			t.Errorf("subscriber %q: %q does not match", in, name)
		}
	}
}

// FuzzFileLabel: whatever the label, the report file name matches.
func FuzzFileLabel(f *testing.F) {
	for _, s := range []string{"isp-a", "198.51.100.0/24", "2001:db8::/32", "--", "a\x00b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if name := notify.ReportFileName(time.Time{}, "event6_sinkhole_http", s, "csv"); !notify.IntelMQFileName.MatchString(name) {
			t.Fatalf("%q: %q does not match", s, name)
		}
	})
}
