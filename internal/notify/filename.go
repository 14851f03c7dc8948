package notify

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/takedown/takedown/internal/netscope"
)

// IntelMQFileName is the file-name pattern of IntelMQ's Shadowserver
// parser, which takes the report type from the name and refuses a file
// that does not match it before reading any row. Every report file this
// product names (report network -o, mail attachments, the dry-run outbox,
// API downloads) matches it.
var IntelMQFileName = regexp.MustCompile(`^(?:\d{4}-\d{2}-\d{2}-)?(\w+)(-\w+)*\.csv$`)

// ReportFileName is the name of one report file: YYYY-MM-DD-<type>-<label>.<ext>,
// with label made safe by FileLabel (the Shadowserver convention, in the
// form IntelMQ accepts).
func ReportFileName(day time.Time, reportType, label, ext string) string {
	return fmt.Sprintf("%s-%s-%s.%s", day.UTC().Format(time.DateOnly), FileLabel(reportType), FileLabel(label), ext)
}

// FileLabel maps s to letters, digits and '_' in groups joined by single
// '-' (the `\w+(-\w+)*` of IntelMQFileName): every other character, and
// runs of them, become one '-', and none is left at either end. An empty
// result is "x".
func FileLabel(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range s {
		if r < 0x80 && (r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			b.WriteRune(r)
			dash = false
			continue
		}
		dash = true
	}
	if b.Len() == 0 {
		return "x"
	}
	return b.String()
}

// NetworksLabel names networks in a file name, lower case, parts joined by
// '-': an ASN as "as64500", a country as "us", an IPv4 prefix with '-' for
// '.' and '/' ("198-51-100-0-24"), an IPv6 prefix with all eight groups
// written out (no "::", whose empty group IntelMQ's pattern refuses) and
// the length ("2001-db8-0-0-0-0-0-0-32").
func NetworksLabel(n netscope.Networks) string {
	var parts []string
	for _, a := range n.ASNs {
		parts = append(parts, "as"+strconv.FormatUint(uint64(a), 10))
	}
	for _, p := range n.Prefixes {
		parts = append(parts, prefixLabel(p))
	}
	for _, c := range n.Countries {
		parts = append(parts, strings.ToLower(c))
	}
	return FileLabel(strings.Join(parts, "-"))
}

func prefixLabel(p netip.Prefix) string {
	a := p.Addr()
	bits := strconv.Itoa(p.Bits())
	if a.Is4() {
		return strings.ReplaceAll(a.String(), ".", "-") + "-" + bits
	}
	b := a.As16()
	groups := make([]string, 8)
	for i := range groups {
		groups[i] = strconv.FormatUint(uint64(b[2*i])<<8|uint64(b[2*i+1]), 16)
	}
	return strings.Join(groups, "-") + "-" + bits
}
