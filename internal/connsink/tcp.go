package connsink

import (
	"time"

	"github.com/takedown/takedown/internal/classify"
	"github.com/takedown/takedown/internal/event"
)

// serveTCP is the catch-all: read the first bytes (at most MaxFirstBytes,
// waiting at most FirstBytesTimeout, and stopping after QuietTimeout of
// silence once something came), record them, close. It never writes.
func (l *Listener) serveTCP(cc *conn) {
	buf := make([]byte, 0, min(l.lim.MaxFirstBytes, 64<<10))
	if cc.br != nil && cc.br.Buffered() > 0 { // bytes after a PROXY header
		n := min(cc.br.Buffered(), l.lim.MaxFirstBytes)
		p, _ := cc.br.Peek(n)
		buf = append(buf, p...)
	}
	cc.putReader()
	start := l.now()
	hardStop := start.Add(l.lim.FirstBytesTimeout)
	var chunk [2048]byte
	for len(buf) < l.lim.MaxFirstBytes {
		deadline := hardStop
		if len(buf) > 0 {
			deadline = minTime(hardStop, l.now().Add(l.lim.QuietTimeout))
		}
		cc.Conn.SetReadDeadline(deadline)
		n, err := cc.Conn.Read(chunk[:min(len(chunk), l.lim.MaxFirstBytes-len(buf))])
		buf = append(buf, chunk[:n]...)
		if err != nil {
			break
		}
	}
	if l.stopping.Load() && len(buf) == 0 {
		return
	}
	ev := l.newEvent(event.ProtoTCP, cc.src, cc.dst)
	var in classify.Input
	recordPayload(&ev, &in, buf)
	l.emit(&ev, &in)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
