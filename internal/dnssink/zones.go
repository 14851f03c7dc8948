package dnssink

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown/takedown/internal/registry"
)

// rrset is a prebuilt answer: RRs whose owner is a compression pointer to
// the question name (offset 12), so that one template serves every name of
// a zone, in the case the client used.
type rrset struct {
	n    uint16
	wire []byte
}

// zone is one seized name as the server answers for it.
type zone struct {
	id      uint32
	name    string // lower case, no final dot: the event's "matched"
	host    bool   // a host indicator: exactly this name, no subdomains
	caseID  string
	family  string
	expires int64 // unix nanoseconds; 0: none
	a, aaaa *rrset
}

// snapshot is everything the answer path reads, immutable once built and
// swapped whole on a registry change.
type snapshot struct {
	domains map[string]*zone
	hosts   map[string]*zone
	serial  uint32
	// soa is the SOA record after its owner name (type, class, TTL,
	// rdlength, rdata); the owner is a pointer to the apex in the question.
	soa   []byte
	ns    rrset // NS records at the apex, owner pointer to the question
	hinfo rrset // RFC 8482 answer to ANY when a zone has no addresses
	next  time.Time
	zones int
	// from is the registry snapshot it was built from (nil for the empty
	// set that checks a configuration).
	from *registry.Snapshot
}

// zoneConfig is what a snapshot is built from besides the registry.
type zoneConfig struct {
	ttl        uint32
	ns         []string // fully qualified
	contact    string   // fully qualified mailbox name
	sinkhole   Addrs
	perCase    map[string]Addrs
	udpSize    uint16
	negTTLSOA  uint32
	refresh    uint32
	retry      uint32
	expireSecs uint32
}

// appendRR appends one RR with an owner pointer to ptr.
func appendRR(dst []byte, ptr uint16, typ uint16, ttl uint32, rdata []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, 0xC000|ptr)
	dst = binary.BigEndian.AppendUint16(dst, typ)
	dst = binary.BigEndian.AppendUint16(dst, classIN)
	dst = binary.BigEndian.AppendUint32(dst, ttl)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(rdata)))
	return append(dst, rdata...)
}

func packName(name string) ([]byte, error) {
	buf := make([]byte, 256)
	n, err := dns.PackDomainName(dns.Fqdn(name), buf, 0, nil, false)
	if err != nil {
		return nil, fmt.Errorf("name %q: %w", name, err)
	}
	return buf[:n], nil
}

func addrSet(addrs []netip.Addr, ttl uint32, v6 bool) *rrset {
	rs := &rrset{}
	for _, a := range addrs {
		a = a.Unmap()
		if a.Is4() == v6 {
			continue
		}
		typ := uint16(typeA)
		if v6 {
			typ = typeAAAA
		}
		rs.wire = appendRR(rs.wire, headerLen, typ, ttl, a.AsSlice())
		rs.n++
	}
	return rs
}

// buildSnapshot indexes the active set's domain and host entries.
func buildSnapshot(set *registry.ActiveSet, c *zoneConfig) (*snapshot, error) {
	s := &snapshot{domains: map[string]*zone{}, hosts: map[string]*zone{}, serial: set.Serial, next: set.NextChange}
	// SOA rdata: MNAME, RNAME, serial, refresh, retry, expire, minimum.
	mname, err := packName(c.ns[0])
	if err != nil {
		return nil, err
	}
	rname, err := packName(c.contact)
	if err != nil {
		return nil, err
	}
	rdata := append(append([]byte{}, mname...), rname...)
	for _, v := range []uint32{set.Serial, c.refresh, c.retry, c.expireSecs, c.negTTLSOA} {
		rdata = binary.BigEndian.AppendUint32(rdata, v)
	}
	s.soa = binary.BigEndian.AppendUint16(nil, typeSOA)
	s.soa = binary.BigEndian.AppendUint16(s.soa, classIN)
	s.soa = binary.BigEndian.AppendUint32(s.soa, min(c.ttl, c.negTTLSOA))
	s.soa = binary.BigEndian.AppendUint16(s.soa, uint16(len(rdata)))
	s.soa = append(s.soa, rdata...)
	for _, n := range c.ns {
		w, err := packName(n)
		if err != nil {
			return nil, err
		}
		s.ns.wire = appendRR(s.ns.wire, headerLen, typeNS, c.ttl, w)
		s.ns.n++
	}
	s.hinfo.wire = appendRR(nil, headerLen, typeHINFO, c.ttl, []byte("\x07RFC8482\x00"))
	s.hinfo.n = 1

	global := [2]*rrset{addrSet(c.sinkhole.A, c.ttl, false), addrSet(c.sinkhole.AAAA, c.ttl, true)}
	perCase := map[string][2]*rrset{}
	for id, a := range c.perCase {
		perCase[id] = [2]*rrset{addrSet(a.A, c.ttl, false), addrSet(a.AAAA, c.ttl, true)}
	}
	for i := range set.Entries {
		e := &set.Entries[i]
		var m map[string]*zone
		switch e.Kind {
		case registry.KindDomain:
			m = s.domains
		case registry.KindHost:
			m = s.hosts
		default:
			continue
		}
		name := strings.ToLower(strings.TrimSuffix(e.Value, "."))
		if name == "" {
			continue
		}
		if _, dup := m[name]; dup {
			continue // the first in the set's order wins, as in registry.Index
		}
		rs, ok := perCase[e.Case]
		if !ok {
			rs = global
		}
		z := &zone{id: uint32(s.zones + 1), name: name, host: e.Kind == registry.KindHost,
			caseID: e.Case, family: e.Family, a: rs[0], aaaa: rs[1]}
		if !e.Expires.IsZero() {
			z.expires = e.Expires.UnixNano()
		}
		m[name] = z
		s.zones++
	}
	return s, nil
}

// lookup returns the zone that covers q and the index of the label where
// its apex starts in the question name: an exact host entry, else the
// closest enclosing domain entry. Entries past their expiry are skipped, so
// that an expiry takes effect at its instant even before the rebuild.
func (s *snapshot) lookup(q *query, now int64) (*zone, int) {
	if q.nlabels == 0 {
		return nil, 0
	}
	if z := s.hosts[string(q.lower)]; z != nil && (z.expires == 0 || now < z.expires) {
		return z, 0
	}
	for k := 0; k < q.nlabels; k++ {
		if z := s.domains[string(q.lower[q.labelOff[k]:])]; z != nil && (z.expires == 0 || now < z.expires) {
			return z, k
		}
	}
	return nil, 0
}

// answer writes the response to q into out (which must hold 65535 bytes)
// and returns it with its rcode and the zone that matched. maxSize is the
// most the transport carries; a larger answer is sent truncated (TC=1).
func (s *snapshot) answer(out []byte, q *query, maxSize int, now int64, udpSize uint16) ([]byte, int, *zone, bool) {
	rcode := rcodeNoError
	var z *zone
	var apex int
	var ans *rrset
	var soaPtr int = -1 // question offset of the owner of an SOA
	var soaInAnswer bool
	aa := false
	switch {
	case q.edns && q.ednsVersion != 0:
		rcode = rcodeBadVers
	case q.qclass != classIN:
		rcode = rcodeRefused
	default:
		z, apex = s.lookup(q, now)
		if z == nil || q.qtype == typeAXFR || q.qtype == typeIXFR {
			rcode = rcodeRefused
			break
		}
		aa = true
		switch q.qtype {
		case typeA:
			ans = z.a
		case typeAAAA:
			ans = z.aaaa
		case typeANY: // RFC 8482: one RRset, not everything
			switch {
			case z.a.n > 0:
				ans = z.a
			case z.aaaa.n > 0:
				ans = z.aaaa
			default:
				ans = &s.hinfo
			}
		case typeSOA:
			if apex == 0 {
				soaInAnswer = true
			}
		case typeNS:
			if apex == 0 {
				ans = &s.ns
			}
		}
		if ans != nil && ans.n == 0 {
			ans = nil
		}
		if ans == nil {
			soaPtr = headerLen + int(q.wireOff[apex])
		}
	}

	size := headerLen + len(q.wire) + 4
	if ans != nil {
		size += len(ans.wire)
	}
	if soaPtr >= 0 {
		size += 2 + len(s.soa)
	}
	if q.edns {
		size += 11
	}
	tc := size > maxSize
	if tc {
		ans, soaPtr = nil, -1
	}

	fl := uint16(flagQR) | q.flags&(flagRD|flagCD) | uint16(rcode&0xF)
	if aa {
		fl |= flagAA
	}
	if tc {
		fl |= flagTC
	}
	var an, ns, ar uint16
	if ans != nil {
		an = ans.n
	}
	if soaPtr >= 0 {
		if soaInAnswer {
			an = 1
		} else {
			ns = 1
		}
	}
	if q.edns {
		ar = 1
	}
	out = out[:0]
	out = binary.BigEndian.AppendUint16(out, q.id)
	out = binary.BigEndian.AppendUint16(out, fl)
	out = binary.BigEndian.AppendUint16(out, 1)
	out = binary.BigEndian.AppendUint16(out, an)
	out = binary.BigEndian.AppendUint16(out, ns)
	out = binary.BigEndian.AppendUint16(out, ar)
	out = append(out, q.wire...)
	out = binary.BigEndian.AppendUint16(out, q.qtype)
	out = binary.BigEndian.AppendUint16(out, q.qclass)
	if ans != nil {
		out = append(out, ans.wire...)
	}
	if soaPtr >= 0 {
		out = binary.BigEndian.AppendUint16(out, 0xC000|uint16(soaPtr))
		out = append(out, s.soa...)
	}
	if q.edns {
		var do byte
		if q.do {
			do = 0x80
		}
		out = append(out, 0, 0, typeOPT, byte(udpSize>>8), byte(udpSize), byte(rcode>>4), 0, do, 0, 0, 0)
	}
	return out, rcode, z, tc
}
