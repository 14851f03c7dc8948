package dnssink

import (
	"errors"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/proxyproto"
)

type snapshotPtr = atomic.Pointer[snapshot]

// internMax bounds a worker's cache of query names: bots ask the same names
// over and over, so most events reuse a string instead of allocating one.
const internMax = 1 << 16

// worker answers messages one at a time with its own buffers. A UDP socket
// has one; TCP messages borrow one from a pool.
type worker struct {
	s      *Server
	c      *counters
	q      query
	out    []byte // 65535 bytes + 2 for the TCP length prefix
	ev     event.Event
	intern map[string]string
	now    time.Time
}

func (s *Server) newWorker(c *counters) *worker {
	return &worker{s: s, c: c, out: make([]byte, 2+65535), intern: make(map[string]string)}
}

// handle answers msg from src (the peer; local is the address it was sent
// to) and returns the response, which aliases w.out, or nil for no answer.
// It records one event per query. transport is trUDP or trTCP; proxied
// tells that src came from a PROXY header already (TCP).
func (w *worker) handle(msg []byte, src netip.AddrPort, local netip.AddrPort, transport int, out []byte) []byte {
	s := w.s
	if transport == trUDP && s.trust.Load().Trusted(src.Addr()) {
		h, n, err := proxyproto.ParseV2(msg)
		switch {
		case err == nil:
			if h.Proxied() {
				src = netip.AddrPortFrom(h.Src.Addr().Unmap(), h.Src.Port())
			}
			msg = msg[n:]
		case !errors.Is(err, proxyproto.ErrNoHeader):
			w.c.proxyRejected.Add(1)
			return nil
		}
	}
	q := &w.q
	st := parseFast(q, msg)
	if st == general {
		st = parseGeneral(q, msg)
	}
	var (
		resp  []byte
		rcode int
		z     *zone
		tc    bool
	)
	switch st {
	case drop:
		w.c.malformed.Add(1)
		return nil
	case formErr:
		q.reset() // a partial name is not reported
		rcode = rcodeFormErr
		resp = headerOnly(out, msg, rcode)
	case notImp:
		q.reset()
		rcode = rcodeNotImp
		resp = headerOnly(out, msg, rcode)
	default:
		maxSize := 65535
		if transport == trUDP {
			maxSize = minUDPSize
			if q.edns {
				maxSize = int(max(minUDPSize, min(q.udpSize, s.opts.UDPSize)))
			}
		}
		resp, rcode, z, tc = s.snap.Load().answer(out, q, maxSize, w.now.UnixNano(), s.opts.UDPSize)
		if tc {
			w.c.truncated.Add(1)
		}
	}

	tag := ""
	if rrl := s.rrl.Load(); transport == trUDP && rrl != nil {
		answered := len(resp) >= headerLen && (resp[6] != 0 || resp[7] != 0) // ANCOUNT
		switch rrl.check(src.Addr(), rrlClass(rcode, z, q.qtype, answered), w.now.UnixNano()) {
		case rrlDrop:
			w.c.rrlDrop.Add(1)
			tag, resp = "rrl-drop", nil
		case rrlSlip:
			w.c.rrlSlip.Add(1)
			tag = "rrl-slip"
			resp = slipResponse(resp)
		}
	}
	w.c.queries[transport][rcode].Add(1)
	w.emit(src, local, transport, rcode, z, len(resp), tag)
	return resp
}

// slipResponse turns a response into its truncated form: header and
// question only, TC=1 (the OPT record is dropped too, which is allowed).
func slipResponse(resp []byte) []byte {
	if len(resp) < headerLen {
		return resp
	}
	n := headerLen
	if resp[5] == 1 { // one question: keep it
		i := headerLen
		for i < len(resp) && resp[i] != 0 {
			i += 1 + int(resp[i])
		}
		n = min(i+1+4, len(resp))
	}
	resp = resp[:n]
	resp[2] |= flagTC >> 8
	clear(resp[6:12])
	if n > headerLen {
		resp[5] = 1
	}
	return resp
}

// emit offers the query's event. It never blocks: a full queue counts it.
func (w *worker) emit(src, local netip.AddrPort, transport, rcode int, z *zone, size int, tag string) {
	if w.s.opts.Events == nil {
		return
	}
	q := &w.q
	ev := &w.ev
	*ev = event.Event{
		Timestamp:    w.now.UTC(),
		Sensor:       w.s.opts.Sensor,
		Protocol:     event.ProtoDNS,
		Transport:    transportNames[transport],
		SrcIP:        src.Addr().Unmap(),
		SrcPort:      src.Port(),
		DstPort:      local.Port(),
		RCode:        rcodeName(rcode),
		ResponseSize: size,
		Tag:          tag,
	}
	if a := local.Addr(); !a.IsUnspecified() {
		ev.DstIP = a.Unmap() // a wildcard listener does not know it
	}
	if len(q.wire) > 0 {
		ev.QName = w.internName(q.text)
		ev.QType = typeName(q.qtype)
	}
	if z != nil {
		ev.Matched, ev.Case, ev.Family = z.name, z.caseID, z.family
	}
	if q.ecs.IsValid() {
		ev.ECS = q.ecs.String()
	}
	if !w.s.opts.Events.Offer(ev) {
		w.c.eventsDropped.Add(1)
	}
}

// internName returns name as a string, reusing the last one made for the
// same bytes. An empty name is the root, ".".
func (w *worker) internName(name []byte) string {
	if len(name) == 0 {
		return "."
	}
	if s, ok := w.intern[string(name)]; ok {
		return s
	}
	if len(w.intern) >= internMax {
		clear(w.intern)
	}
	s := string(name)
	w.intern[s] = s
	return s
}
