package dnssink

import (
	"context"
	"net/netip"
	"testing"

	"github.com/miekg/dns"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/proxyproto"
)

// FuzzHandle feeds arbitrary bytes to the wire handler as UDP and TCP
// messages: it must not panic, and whatever it answers must be a valid DNS
// response to the same ID.
func FuzzHandle(f *testing.F) {
	for _, m := range []*dns.Msg{question("www.c2.example.", dns.TypeA), question("c2.example.", dns.TypeANY), question("x.org.", dns.TypeMX)} {
		b, _ := m.Pack()
		f.Add(b)
		m.SetEdns0(4096, true)
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: []byte{203, 0, 113, 0}})
		b, _ = m.Pack()
		f.Add(b)
	}
	f.Add(append(hdr(1, 0, 1, 0, 0, 0), 0xC0, 12, 0, 1, 0, 1))
	f.Add(append(proxyproto.AppendV2(nil, proxyproto.Header{Version: 2, Command: proxyproto.CmdProxy, Transport: proxyproto.TransportUDP,
		Src: netip.MustParseAddrPort("203.0.113.1:1"), Dst: netip.MustParseAddrPort("127.0.0.1:53")}), hdr(1, 0, 0, 0, 0, 0)...))

	trust, _ := proxyproto.ParseTrust([]string{"127.0.0.1"})
	s, err := New(context.Background(), Options{Listen: []string{"127.0.0.1:0"}, Source: testSource(), Events: event.NewQueue(1),
		TrustedProxies: trust, UDPWorkers: 1, Sinkhole: Addrs{A: []netip.Addr{netip.MustParseAddr("192.0.2.1")}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	w := s.newWorker(s.tcpCounters)
	src, local := netip.MustParseAddrPort("127.0.0.1:5000"), netip.MustParseAddrPort("127.0.0.1:53")
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, tr := range []int{trUDP, trTCP} {
			resp := w.handle(b, src, local, tr, w.out)
			if resp == nil {
				continue
			}
			var m dns.Msg
			if err := m.Unpack(resp); err != nil {
				t.Fatalf("answer does not parse: %v\nquery %x\nanswer %x", err, b, resp)
			}
			if !m.Response || m.RecursionAvailable || len(m.Answer) > 0 && m.Rcode != dns.RcodeSuccess {
				t.Fatalf("bad answer %v", &m)
			}
			if tr == trUDP && len(resp) > 1232 {
				t.Fatalf("UDP answer of %d bytes", len(resp))
			}
		}
	})
}
