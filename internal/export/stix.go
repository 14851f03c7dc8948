package export

import (
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/takedown/takedown/internal/registry"
)

// stixNamespace is the UUIDv5 namespace of this product's STIX ids.
var stixNamespace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://github.com/takedown/takedown/stix"))

// stixExporter writes a STIX 2.1 bundle of Indicator objects, one per
// (case, kind, value), one object per line.
//
// The id is indicator--UUIDv5(case, kind, value), so a re-export keeps it.
// created is the entry's effective time (the earliest, if the same
// indicator is in force through several orders of one case): stable across
// exports. modified is the set's instant (set.At), so each export is a new
// version of the same objects and a consumer that keeps the newest version
// picks up an extended or shortened valid_until; a re-export at the same
// instant gives the same bytes. valid_from and valid_until are the entry's
// effective and expiry times.
//
// Patterns follow the STIX patterning grammar with the plain comparison
// ([domain-name:value = 'c2.example']); since that does not say that a
// seized domain covers its subdomains, the custom property x_takedown_kind
// carries the registry kind (domain, host, ip, cidr), and the description
// says it in words.
type stixExporter struct{}

var _ Exporter = stixExporter{}

func (stixExporter) Name() string { return "stix" }

type stixIndicator struct {
	Type           string   `json:"type"`
	SpecVersion    string   `json:"spec_version"`
	ID             string   `json:"id"`
	Created        string   `json:"created"`
	Modified       string   `json:"modified"`
	Name           string   `json:"name"`
	Description    string   `json:"description"`
	IndicatorTypes []string `json:"indicator_types"`
	Pattern        string   `json:"pattern"`
	PatternType    string   `json:"pattern_type"`
	PatternVersion string   `json:"pattern_version"`
	ValidFrom      string   `json:"valid_from"`
	ValidUntil     string   `json:"valid_until,omitempty"`
	Labels         []string `json:"labels,omitempty"`
	Kind           string   `json:"x_takedown_kind"`
	Case           string   `json:"x_takedown_case"`
	Court          string   `json:"x_takedown_court,omitempty"`

	from, until time.Time
}

func (stixExporter) Export(w io.Writer, set *registry.ActiveSet, opt Options) error {
	var objs []*stixIndicator
	byID := map[string]*stixIndicator{}
	for i := range set.Entries {
		e := &set.Entries[i]
		id := "indicator--" + uuid.NewSHA1(stixNamespace, []byte(e.Case+"\x00"+string(e.Kind)+"\x00"+e.Value)).String()
		if o := byID[id]; o != nil { // the same indicator through another order of the case
			if e.Effective.Before(o.from) {
				o.from = e.Effective
			}
			if o.until.IsZero() || e.Expires.IsZero() || e.Expires.After(o.until) {
				o.until = e.Expires
			}
			continue
		}
		o := &stixIndicator{
			Type: "indicator", SpecVersion: "2.1", ID: id,
			Name:           stixName(e),
			Description:    stixDescription(e),
			IndicatorTypes: []string{"malicious-activity"},
			Pattern:        stixPattern(e),
			PatternType:    "stix", PatternVersion: "2.1",
			Kind: string(e.Kind), Case: e.Case, Court: e.Court,
			from: e.Effective, until: e.Expires,
		}
		if e.Family != "" {
			o.Labels = []string{e.Family}
		}
		byID[id] = o
		objs = append(objs, o)
	}

	bw := buffered(w)
	bundle := uuid.NewSHA1(stixNamespace, []byte("bundle\x00"+timestamp(set.At)+"\x00"+strconv.FormatUint(uint64(set.Serial), 10)))
	bw.WriteString("{\"type\":\"bundle\",\"id\":\"bundle--" + bundle.String() + "\"")
	if len(objs) > 0 { // the schema wants one or more objects, or none at all
		bw.WriteString(",\"objects\":[\n")
	}
	for i, o := range objs {
		o.Created, o.ValidFrom = timestamp(o.from), timestamp(o.from)
		modified := set.At
		if modified.Before(o.from) {
			modified = o.from
		}
		o.Modified = timestamp(modified)
		if !o.until.IsZero() {
			o.ValidUntil = timestamp(o.until)
		}
		b, err := json.Marshal(o)
		if err != nil {
			return err
		}
		bw.Write(b)
		if i < len(objs)-1 {
			bw.WriteByte(',')
		}
		bw.WriteByte('\n')
	}
	if len(objs) > 0 {
		bw.WriteString("]")
	}
	bw.WriteString("}\n")
	return bw.Flush()
}

func stixName(e *registry.Entry) string {
	switch e.Kind {
	case registry.KindDomain:
		return "Seized domain " + e.Value
	case registry.KindHost:
		return "Seized host " + e.Value
	case registry.KindIP:
		return "Seized address " + e.Value
	default:
		return "Seized network " + e.Value
	}
}

func stixDescription(e *registry.Entry) string {
	var sb strings.Builder
	switch e.Kind {
	case registry.KindDomain:
		sb.WriteString("The domain " + e.Value + " and every subdomain")
	case registry.KindHost:
		sb.WriteString("Exactly the host name " + e.Value + " (not its subdomains)")
	case registry.KindIP:
		sb.WriteString("The address " + e.Value)
	default:
		sb.WriteString("The network " + e.Value)
	}
	sb.WriteString(", seized by court order in case " + e.Case)
	if e.Court != "" {
		sb.WriteString(" (" + e.Court + ")")
	}
	if e.Family != "" {
		sb.WriteString("; malware family " + e.Family)
	}
	sb.WriteString(".")
	return sb.String()
}

// stixQuote escapes a string for a single-quoted STIX pattern literal.
var stixQuote = strings.NewReplacer("\\", "\\\\", "'", "\\'")

// stixPattern is the indicator's STIX pattern; addresses are written as
// prefixes (/32, /128 for a single address), as FORMATS.md shows.
func stixPattern(e *registry.Entry) string {
	quote := stixQuote
	switch e.Kind {
	case registry.KindDomain, registry.KindHost:
		return "[domain-name:value = '" + quote.Replace(e.Value) + "']"
	}
	p, ok := entryPrefix(e)
	if !ok {
		return "[x-takedown-unparsed:value = '" + quote.Replace(e.Value) + "']"
	}
	if p.Addr().Is4() {
		return "[ipv4-addr:value = '" + p.String() + "']"
	}
	return "[ipv6-addr:value = '" + p.String() + "']"
}
