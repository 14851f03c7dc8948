package dnssink

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func testSource() *fakeSource {
	return newFakeSource(
		domain("c2.example", "case-a"),
		domain("other.test", "case-b"),
		host("beacon.cdn.example.net", "case-a"),
	)
}

func TestAnswers(t *testing.T) {
	s := startSink(t, testSource(), Options{
		PerCase:    map[string]Addrs{"case-b": {A: []netip.Addr{netip.MustParseAddr("198.51.100.9")}}},
		NS:         []string{"ns1.sink.test", "ns2.sink.test"},
		SOAContact: "abuse@sink.test",
	})
	type want struct {
		rcode  int
		aa     bool
		answer []string // RR strings, TTL and all
		ns     []string // authority section types
		tc     bool
	}
	tests := []struct {
		name  string
		qname string
		qtype uint16
		want  want
	}{
		{"A at apex", "c2.example.", dns.TypeA, want{rcode: dns.RcodeSuccess, aa: true, answer: []string{"c2.example.\t300\tIN\tA\t192.0.2.1"}}},
		{"A at subdomain, 0x20 case kept", "WwW.C2.eXample.", dns.TypeA, want{rcode: dns.RcodeSuccess, aa: true, answer: []string{"WwW.C2.eXample.\t300\tIN\tA\t192.0.2.1"}}},
		{"AAAA deep", "a.b.c.c2.example.", dns.TypeAAAA, want{rcode: dns.RcodeSuccess, aa: true, answer: []string{"a.b.c.c2.example.\t300\tIN\tAAAA\t2001:db8::1"}}},
		{"per-case address", "x.other.test.", dns.TypeA, want{rcode: dns.RcodeSuccess, aa: true, answer: []string{"x.other.test.\t300\tIN\tA\t198.51.100.9"}}},
		{"per-case without AAAA is NODATA", "x.other.test.", dns.TypeAAAA, want{rcode: dns.RcodeSuccess, aa: true, ns: []string{"SOA"}}},
		{"SOA at apex", "C2.example.", dns.TypeSOA, want{rcode: dns.RcodeSuccess, aa: true, answer: []string{"C2.example.\t300\tIN\tSOA\tns1.sink.test. abuse.sink.test. 1 3600 600 1209600 300"}}},
		{"NS at apex", "c2.example.", dns.TypeNS, want{rcode: dns.RcodeSuccess, aa: true, answer: []string{"c2.example.\t300\tIN\tNS\tns1.sink.test.", "c2.example.\t300\tIN\tNS\tns2.sink.test."}}},
		{"SOA below apex is NODATA", "www.c2.example.", dns.TypeSOA, want{rcode: dns.RcodeSuccess, aa: true, ns: []string{"SOA"}}},
		{"MX is NODATA with SOA", "mail.c2.example.", dns.TypeMX, want{rcode: dns.RcodeSuccess, aa: true, ns: []string{"SOA"}}},
		{"TXT is NODATA", "c2.example.", dns.TypeTXT, want{rcode: dns.RcodeSuccess, aa: true, ns: []string{"SOA"}}},
		{"ANY is minimal", "c2.example.", dns.TypeANY, want{rcode: dns.RcodeSuccess, aa: true, answer: []string{"c2.example.\t300\tIN\tA\t192.0.2.1"}}},
		{"host exact", "beacon.cdn.example.net.", dns.TypeA, want{rcode: dns.RcodeSuccess, aa: true, answer: []string{"beacon.cdn.example.net.\t300\tIN\tA\t192.0.2.1"}}},
		{"below a host is refused", "x.beacon.cdn.example.net.", dns.TypeA, want{rcode: dns.RcodeRefused}},
		{"parent of a host is refused", "cdn.example.net.", dns.TypeA, want{rcode: dns.RcodeRefused}},
		{"outside is refused", "example.org.", dns.TypeA, want{rcode: dns.RcodeRefused}},
		{"suffix that is not a label boundary", "xc2.example.", dns.TypeA, want{rcode: dns.RcodeRefused}},
		{"root is refused", ".", dns.TypeNS, want{rcode: dns.RcodeRefused}},
		{"AXFR is refused", "c2.example.", dns.TypeAXFR, want{rcode: dns.RcodeRefused}},
	}
	for _, tt := range tests {
		for _, network := range []string{"udp", "tcp"} {
			if tt.qtype == dns.TypeAXFR && network == "udp" {
				continue
			}
			t.Run(tt.name+"/"+network, func(t *testing.T) {
				m := question(tt.qname, tt.qtype)
				m.RecursionDesired = true
				r := s.exchange(t, network, m)
				if r.Rcode != tt.want.rcode || r.Authoritative != tt.want.aa || r.Truncated != tt.want.tc {
					t.Errorf("rcode %s aa %v tc %v; want %s aa %v tc %v", dns.RcodeToString[r.Rcode], r.Authoritative, r.Truncated,
						dns.RcodeToString[tt.want.rcode], tt.want.aa, tt.want.tc)
				}
				if !r.RecursionDesired || r.RecursionAvailable {
					t.Errorf("RD %v RA %v: want RD copied, RA never", r.RecursionDesired, r.RecursionAvailable)
				}
				if len(r.Question) != 1 || r.Question[0].Name != tt.qname {
					t.Errorf("question %v, want %s as sent", r.Question, tt.qname)
				}
				var got []string
				for _, rr := range r.Answer {
					got = append(got, rr.String())
				}
				if strings.Join(got, "\n") != strings.Join(tt.want.answer, "\n") {
					t.Errorf("answer:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want.answer, "\n"))
				}
				var auth []string
				for _, rr := range r.Ns {
					auth = append(auth, dns.TypeToString[rr.Header().Rrtype])
					if soa, ok := rr.(*dns.SOA); ok {
						// The SOA owner is the apex of the zone, in the question's case.
						if !strings.HasSuffix(strings.ToLower(tt.qname), strings.ToLower(soa.Hdr.Name)) || soa.Hdr.Name == "." {
							t.Errorf("SOA owner %s is not an apex of %s", soa.Hdr.Name, tt.qname)
						}
					}
				}
				if strings.Join(auth, ",") != strings.Join(tt.want.ns, ",") {
					t.Errorf("authority %v, want %v", auth, tt.want.ns)
				}
			})
		}
	}
}

func TestEDNS(t *testing.T) {
	s := startSink(t, testSource(), Options{})
	t.Run("OPT in answer with our size and DO copied", func(t *testing.T) {
		m := question("c2.example.", dns.TypeA)
		m.SetEdns0(4096, true)
		r := s.exchange(t, "udp", m)
		opt := r.IsEdns0()
		if opt == nil || opt.UDPSize() != 1232 || !opt.Do() || opt.Version() != 0 {
			t.Fatalf("OPT %v, want version 0, size 1232, DO", opt)
		}
		if len(r.Answer) != 1 {
			t.Errorf("answer %v", r.Answer)
		}
	})
	t.Run("no OPT without EDNS", func(t *testing.T) {
		if r := s.exchange(t, "udp", question("c2.example.", dns.TypeA)); r.IsEdns0() != nil {
			t.Errorf("OPT in answer to a query without EDNS")
		}
	})
	t.Run("BADVERS", func(t *testing.T) {
		m := question("c2.example.", dns.TypeA)
		m.SetEdns0(1232, false)
		m.IsEdns0().SetVersion(1)
		r := s.exchange(t, "udp", m)
		if r.Rcode != dns.RcodeBadVers || r.IsEdns0() == nil || len(r.Answer) != 0 {
			t.Errorf("rcode %s, opt %v, %d answers; want BADVERS with OPT, no answer", dns.RcodeToString[r.Rcode], r.IsEdns0(), len(r.Answer))
		}
	})
	t.Run("ECS reaches the event", func(t *testing.T) {
		s.drainEvents()
		m := question("www.c2.example.", dns.TypeA)
		m.SetEdns0(1232, false)
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: netip.MustParseAddr("203.0.113.0").AsSlice()})
		r := s.exchange(t, "udp", m)
		if len(r.Answer) != 1 {
			t.Fatalf("answer %v", r.Answer)
		}
		if e := s.nextEvent(t); e.ECS != "203.0.113.0/24" {
			t.Errorf("event ECS %q, want 203.0.113.0/24", e.ECS)
		}
	})
	t.Run("CH class refused", func(t *testing.T) {
		m := question("version.bind.", dns.TypeTXT)
		m.Question[0].Qclass = dns.ClassCHAOS
		if r := s.exchange(t, "udp", m); r.Rcode != dns.RcodeRefused {
			t.Errorf("rcode %s, want REFUSED", dns.RcodeToString[r.Rcode])
		}
	})
}

func TestTruncation(t *testing.T) {
	var many []netip.Addr
	for i := range 40 { // 40 × 16 bytes: more than 512
		many = append(many, netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}))
	}
	s := startSink(t, testSource(), Options{Sinkhole: Addrs{A: many}})
	r := s.exchange(t, "udp", question("c2.example.", dns.TypeA))
	if !r.Truncated || len(r.Answer) != 0 {
		t.Errorf("UDP without EDNS: TC %v, %d answers; want TC and none", r.Truncated, len(r.Answer))
	}
	m := question("c2.example.", dns.TypeA)
	m.SetEdns0(1232, false)
	if r := s.exchange(t, "udp", m); r.Truncated || len(r.Answer) != 40 {
		t.Errorf("UDP with EDNS 1232: TC %v, %d answers; want all 40", r.Truncated, len(r.Answer))
	}
	if r := s.exchange(t, "tcp", question("c2.example.", dns.TypeA)); r.Truncated || len(r.Answer) != 40 {
		t.Errorf("TCP: TC %v, %d answers; want all 40", r.Truncated, len(r.Answer))
	}
	if got := s.counter(t, "takedown_dns_truncated_total"); got != 1 {
		t.Errorf("truncated_total = %v, want 1", got)
	}
}
