package export

import (
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/takedown/takedown/internal/registry"
)

// FuzzExport feeds every format an entry whose value, case, court and
// family come from outside (an imported order). No export may fail; text
// in case, court or family must never change the line structure of a line
// format (it could otherwise inject a record or a rule); CSV, JSON and STIX
// must parse back.
func FuzzExport(f *testing.F) {
	f.Add(uint8(0), "c2.example", "case-1", "court", "rustock")
	f.Add(uint8(1), "www.example.org", "a\nb", "c\"; d", "x\r\ny")
	f.Add(uint8(2), "198.51.100.7", "\x00\x85\u2028", "; injected", "")
	f.Add(uint8(3), "2001:db8::/32", "'\\'", "}", "#")
	f.Add(uint8(0), "bad name\n.example", "c", "c", "f")
	f.Add(uint8(3), "::ffff:1.2.3.0/120", "c", "c", "f")
	kinds := []registry.Kind{registry.KindDomain, registry.KindHost, registry.KindIP, registry.KindCIDR}
	f.Fuzz(func(t *testing.T, kind uint8, value, caseID, court, family string) {
		build := func(caseID, court, family string) *registry.ActiveSet {
			set := fixture(t)
			set.Entries = append(set.Entries, registry.Entry{
				Kind: kinds[int(kind)%len(kinds)], Value: value, Case: caseID, Court: court, Family: family,
				Effective: effective, Expires: longExpiry,
			})
			return newSet(set.At, set.Serial, set.Entries)
		}
		set := build(caseID, court, family)
		plain := build("plain", "plain", "plain")
		for _, name := range Names() {
			out := exportString(t, name, set, sinkholeOpts(ActionLocal))
			switch name {
			case "csv":
				recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
				if err != nil {
					t.Fatalf("csv does not parse back: %v", err)
				}
				if len(recs) != len(set.Entries)+1 {
					t.Fatalf("csv has %d records, want %d", len(recs), len(set.Entries)+1)
				}
			case "json":
				var doc struct{ Entries []registry.Entry }
				if err := json.Unmarshal([]byte(out), &doc); err != nil {
					t.Fatalf("json does not parse back: %v", err)
				}
				if len(doc.Entries) != len(set.Entries) {
					t.Fatalf("json has %d entries, want %d", len(doc.Entries), len(set.Entries))
				}
				if utf8.ValidString(caseID) && !containsCase(doc.Entries, caseID) {
					t.Fatalf("json lost case %q", caseID)
				}
			case "stix":
				var doc map[string]any
				if err := json.Unmarshal([]byte(out), &doc); err != nil {
					t.Fatalf("stix does not parse back: %v", err)
				}
			default:
				want := strings.Count(exportString(t, name, plain, sinkholeOpts(ActionLocal)), "\n")
				if got := strings.Count(out, "\n"); got != want {
					t.Fatalf("%s: case/court/family text changed the line count from %d to %d:\n%s", name, want, got, out)
				}
			}
		}
	})
}

func containsCase(es []registry.Entry, c string) bool {
	for _, e := range es {
		if e.Case == c {
			return true
		}
	}
	return false
}
