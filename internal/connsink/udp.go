package connsink

import (
	"errors"
	"net"
	"net/netip"

	"github.com/takedown/takedown/internal/classify"
	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/proxyproto"
)

// serveUDP records every datagram. It answers only when UDPReply is set,
// and then only datagrams at least as long as the reply: the sinkhole never
// amplifies. A PROXY v2 header is taken from trusted peers only, and the
// reply, if any, goes back to the peer that sent the datagram.
func (l *Listener) serveUDP() error {
	up := l.pc.(*net.UDPConn)
	buf := make([]byte, 64<<10)
	for {
		n, peer, err := up.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			l.log.Warn("udp read failed", "err", err)
			continue
		}
		l.m.accepted.Inc()
		payload := buf[:n]
		src, dst := peer, l.local
		if l.opts.TrustedProxies.Trusted(peer.Addr()) {
			h, hn, err := proxyproto.ParseV2(payload)
			switch {
			case err == nil:
				if h.Proxied() {
					src = h.Src
					if h.Dst.IsValid() {
						dst = h.Dst
					}
				}
				payload = payload[hn:]
			case errors.Is(err, proxyproto.ErrNoHeader):
			default:
				l.m.rejected.WithLabelValues(l.name, "proxy_header").Inc()
				continue
			}
		}
		l.recordDatagram(src, dst, payload)
		if r := l.opts.UDPReply; len(r) > 0 && len(r) <= len(payload) {
			up.WriteToUDPAddrPort(r, peer)
		}
	}
}

func (l *Listener) recordDatagram(src, dst netip.AddrPort, payload []byte) {
	ev := l.newEvent(event.ProtoUDP, src, dst)
	var in classify.Input
	recordPayload(&ev, &in, payload)
	l.emit(&ev, &in)
}
