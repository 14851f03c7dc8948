// Package demo holds the bundled sample court order of `takedown demo`
// (case demo-b107): synthetic names under .example and addresses in
// documentation ranges, so the demo seizes nothing real.
package demo

import (
	_ "embed"
	"time"

	"github.com/takedown/takedown/internal/registry"
)

//go:embed sample-order.txt
var sampleOrder []byte

// SampleOrderFile is the name problems in the sample order are reported under.
const SampleOrderFile = "sample-order.txt"

// Case is the demo's case ID.
const Case = "demo-b107"

// SampleOrder returns the sample order's text.
func SampleOrder() []byte { return sampleOrder }

// Order returns the demo order: in force since days of history before now,
// for two years, like the Rustock orders.
func Order(now time.Time, historyDays int) registry.Order {
	eff := now.UTC().Truncate(24*time.Hour).AddDate(0, 0, -historyDays)
	return registry.Order{
		Case:      Case,
		Court:     "U.S. District Court for the Western District of Washington (demo)",
		Title:     "Microsoft v. John Does 1-11 (demo re-enactment)",
		Family:    "rustock",
		Effective: eff,
		Expires:   eff.AddDate(2, 0, 0),
	}
}
