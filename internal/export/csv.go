package export

import (
	"encoding/csv"
	"io"

	"github.com/takedown/takedown/internal/registry"
)

// csvExporter writes every entry of the set, in its order, as CSV with the
// header kind,value,case,court,family,effective,expires (times RFC 3339
// UTC). It is the registry's own CSV import layout, so it round-trips.
type csvExporter struct{}

var _ Exporter = csvExporter{}

func (csvExporter) Name() string { return "csv" }

func (csvExporter) Export(w io.Writer, set *registry.ActiveSet, opt Options) error {
	bw := buffered(w)
	cw := csv.NewWriter(bw)
	cw.Write([]string{"kind", "value", "case", "court", "family", "effective", "expires"})
	for i := range set.Entries {
		e := &set.Entries[i]
		cw.Write([]string{string(e.Kind), e.Value, e.Case, e.Court, e.Family, rfc3339(e.Effective), rfc3339(e.Expires)})
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	return bw.Flush()
}
