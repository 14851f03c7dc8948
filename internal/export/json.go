package export

import (
	"encoding/json"
	"io"
	"strconv"
	"time"

	"github.com/takedown/takedown/internal/registry"
)

// jsonExporter writes the set as one JSON object: at, serial, next_change
// (omitted when none) and entries (the registry's Entry objects, one per
// line, in the set's order; an empty set gives "entries":[]).
type jsonExporter struct{}

var _ Exporter = jsonExporter{}

func (jsonExporter) Name() string { return "json" }

func (jsonExporter) Export(w io.Writer, set *registry.ActiveSet, opt Options) error {
	bw := buffered(w)
	bw.WriteString("{\"at\":\"" + rfc3339(set.At) + "\",\"serial\":" + strconv.FormatUint(uint64(set.Serial), 10))
	if !set.NextChange.IsZero() {
		bw.WriteString(",\"next_change\":\"" + rfc3339(set.NextChange) + "\"")
	}
	bw.WriteString(",\"entries\":[")
	for i := range set.Entries {
		e := set.Entries[i]
		e.Effective, e.Expires = e.Effective.UTC(), e.Expires.UTC()
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.WriteString("\n")
		bw.Write(b)
	}
	if len(set.Entries) > 0 {
		bw.WriteByte('\n')
	}
	bw.WriteString("]}\n")
	return bw.Flush()
}

// rfc3339 formats t in UTC to the second, or "" when zero.
func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
