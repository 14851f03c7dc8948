package stats

import (
	"strings"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/registry"
)

// TestStatusReportRegistries: the court status report carries one row per
// domain registry (suffix, names, first and last day), and no section when
// the order seizes nothing a registry acts on.
func TestStatusReportRegistries(t *testing.T) {
	day := func(s string) time.Time { t, _ := time.Parse(time.DateOnly, s); return t }
	o := registry.OrderSummary{Order: registry.Order{Case: "necurs-2020", Court: "E.D.N.Y.", Effective: day("2020-03-10"), Expires: day("2022-04-10")},
		Counts: map[registry.Kind]int{registry.KindDGA: 1, registry.KindDomain: 2}}
	for _, tc := range []struct {
		name string
		rows []RegistryRow
		want []string
		not  []string
	}{
		{"with registries", []RegistryRow{
			{Suffix: "com", Names: 1234567, First: day("2020-03-06"), Last: day("2022-04-09")},
			{Suffix: "co.uk", Names: 3, First: day("2020-03-10"), Last: day("2020-03-12")},
		}, []string{
			"<h2>Domain registries</h2>",
			`<tr><td>.com</td><td class="n">1,234,567</td><td>6 March 2020</td><td>9 April 2022</td></tr>`,
			`<tr><td>.co.uk</td><td class="n">3</td><td>10 March 2020</td><td>12 March 2020</td></tr>`,
			"1 domain generators (DGA)",
		}, nil},
		{"without", nil, []string{"1 domain generators (DGA)"}, []string{"Domain registries"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			r := &StatusReport{Order: o, At: day("2020-06-01"), Generated: day("2020-06-02"), Registries: tc.rows}
			if err := WriteStatusHTML(&b, r); err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("the report lacks %q", w)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(b.String(), w) {
					t.Errorf("the report has %q", w)
				}
			}
		})
	}
}
