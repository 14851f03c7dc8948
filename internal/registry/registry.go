// Package registry holds court orders and the indicators they seize: their
// validity windows, normalisation, the collateral-damage guard and the audit
// trail. It is not a DNS server or an exporter: those read an [ActiveSet]
// taken from it.
//
// Case classification lives here, on the [Index]: [Index.CaseOf] says
// which seized indicator (family, case) a name or address belongs to, and
// [Index.FillCase] is the pipeline's stage that fills an event's case from
// it ([HistoricCases] for imported events, by each event's day). Naming
// the family from the traffic itself is the family rules' job,
// classify.Rules; nothing else is called "classify".
package registry

import (
	"fmt"
	"net/netip"
	"time"
)

// Kind is what an indicator seizes.
type Kind string

// The indicator kinds.
const (
	KindDomain Kind = "domain" // the name and every subdomain
	KindHost   Kind = "host"   // exactly that name
	KindIP     Kind = "ip"     // one IPv4 or IPv6 address
	KindCIDR   Kind = "cidr"   // an IPv4 or IPv6 prefix
	// KindDGA is a domain generation algorithm: Value is its canonical
	// spec (internal/dga), and it seizes the names it generates for each
	// day of the order's window, with a margin ([GeneratedNames]).
	KindDGA Kind = "dga"
)

// ParseKind returns the kind named s.
func ParseKind(s string) (Kind, error) {
	switch k := Kind(s); k {
	case KindDomain, KindHost, KindIP, KindCIDR, KindDGA:
		return k, nil
	}
	return "", fmt.Errorf("unknown indicator kind %q (want domain, host, ip, cidr or dga)", s)
}

// Order is a court order: a case, its window and whether it was revoked.
type Order struct {
	ID        int64     `json:"id"`
	Case      string    `json:"case"`
	Court     string    `json:"court"`
	Title     string    `json:"title,omitempty"`
	Family    string    `json:"family,omitempty"`
	Notes     string    `json:"notes,omitempty"`
	Effective time.Time `json:"effective"`
	Expires   time.Time `json:"expires"`
	Revoked   bool      `json:"revoked"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	Created   time.Time `json:"created"`
}

// ActiveAt reports whether the order is in force at t: effective ≤ t < expiry
// and not revoked.
func (o *Order) ActiveAt(t time.Time) bool {
	return !o.Revoked && !t.Before(o.Effective) && t.Before(o.Expires)
}

// Indicator is one seized name or address of an order.
type Indicator struct {
	Kind  Kind   `json:"kind"`
	Value string `json:"value"` // normalised: A-label name without trailing dot, or canonical address/prefix
	// Prefix is set for ip (a full-length prefix) and cidr indicators.
	Prefix netip.Prefix `json:"-"`
	Family string       `json:"family,omitempty"`
	Note   string       `json:"note,omitempty"`
	Source string       `json:"source,omitempty"` // file:line it was imported from
	// From and Until narrow the order's window for this indicator (STIX
	// valid_from/valid_until); zero means the order's own.
	From  time.Time `json:"from,omitzero"`
	Until time.Time `json:"until,omitzero"`
	// Skipped are, for a dga indicator, the generated names the
	// collateral-damage guard refused at import (see [CheckGenerated]).
	Skipped []Skip `json:"skipped,omitempty"`
}

// Entry is an indicator in force, with what its consumers need of its order.
type Entry struct {
	Kind      Kind         `json:"kind"`
	Value     string       `json:"value"`
	Prefix    netip.Prefix `json:"-"`
	Family    string       `json:"family,omitempty"`
	Case      string       `json:"case"`
	Court     string       `json:"court"`
	OrderID   int64        `json:"order_id"`
	Effective time.Time    `json:"effective"` // the later of the order's and the indicator's start
	Expires   time.Time    `json:"expires"`   // the earlier of the order's and the indicator's end
	// Day is, for a name a generator yields, the first UTC day of the
	// range it is generated for ([ActiveRange] sets it; the per-registry
	// export reads it); zero for a fixed indicator. Not part of any export.
	Day time.Time `json:"-"`
}

// ActiveSet is the indicators in force at one instant, in a deterministic
// order (kind, then value, then case).
type ActiveSet struct {
	At time.Time
	// Serial increases with every change to the registry; RPZ and the DNS
	// sinkhole use it as the SOA serial.
	Serial  uint32
	Entries []Entry
	// NextChange is the earliest instant after At at which an entry starts
	// or ends (zero if none): consumers that hold a set rebuild it then.
	NextChange time.Time
}
