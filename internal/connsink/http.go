package connsink

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/takedown/takedown/internal/classify"
	"github.com/takedown/takedown/internal/event"
)

// prefixLen is how many payload bytes an event keeps (the rest is hashed).
const prefixLen = 512

// responses are the fixed answers, built once.
type responses struct {
	keep, close         []byte // benign response, keep-alive and closing
	headKeep, headClose []byte // the same without body, for HEAD
}

var (
	respContinue   = []byte("HTTP/1.1 100 Continue\r\n\r\n")
	respBadRequest = []byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	respTooLarge   = []byte("HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
)

func buildResponses(r Response) (responses, error) {
	status := r.Status
	if status == 0 {
		status = http.StatusOK
	}
	// Never redirect, never ask for anything: only 2xx and 4xx are benign.
	if !(status >= 200 && status < 300 || status >= 400 && status < 500) || status == http.StatusNoContent && len(r.Body) > 0 {
		return responses{}, fmt.Errorf("connsink: response status %d not allowed (want 2xx or 4xx)", status)
	}
	head := func(closing bool) string {
		var b strings.Builder
		fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", status, http.StatusText(status))
		if status != http.StatusNoContent {
			fmt.Fprintf(&b, "Content-Length: %d\r\n", len(r.Body))
		}
		if len(r.Body) > 0 {
			b.WriteString("Content-Type: text/plain; charset=utf-8\r\n")
		}
		if closing {
			b.WriteString("Connection: close\r\n")
		}
		b.WriteString("\r\n")
		return b.String()
	}
	return responses{
		keep:      append([]byte(head(false)), r.Body...),
		close:     append([]byte(head(true)), r.Body...),
		headKeep:  []byte(head(false)),
		headClose: []byte(head(true)),
	}, nil
}

// bufioReader is a pooled reader sized to the header limit.
type bufioReader struct{ *bufio.Reader }

var readerPools sync.Map // size → *sync.Pool

func readerPool(size int) *sync.Pool {
	if p, ok := readerPools.Load(size); ok {
		return p.(*sync.Pool)
	}
	p, _ := readerPools.LoadOrStore(size, &sync.Pool{New: func() any {
		return &bufioReader{bufio.NewReaderSize(nil, size)}
	}})
	return p.(*sync.Pool)
}

func (c *conn) getReaderFrom(r io.Reader) {
	if c.br == nil {
		c.br = readerPool(c.l.lim.MaxHeaderBytes).Get().(*bufioReader)
	}
	c.br.Reset(r)
}

func (c *conn) getReader() { c.getReaderFrom(c) }

// buffered is the number of bytes received and not yet parsed.
func (c *conn) buffered() int {
	n := len(c.pending)
	if c.br != nil {
		n += c.br.Buffered()
	}
	return n
}

// chunkPool holds the buffers readReady reads into.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, 4096); return &b }}

// readFirst waits for the next bytes without holding a buffer; they are
// handed out by Read.
func (c *conn) readFirst() error {
	chunk, n, ok, err := readReady(c.Conn)
	if !ok || err != nil {
		return err
	}
	c.chunk, c.pending = chunk, (*chunk)[:n]
	return nil
}

// Read returns the bytes readFirst got, then reads from the connection.
func (c *conn) Read(p []byte) (int, error) {
	if c.chunk == nil {
		return c.Conn.Read(p)
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	if len(c.pending) == 0 {
		chunkPool.Put(c.chunk)
		c.chunk, c.pending = nil, nil
	}
	return n, nil
}

func (c *conn) putReader() {
	if c.chunk != nil {
		chunkPool.Put(c.chunk)
		c.chunk, c.pending = nil, nil
	}
	if c.br != nil {
		c.br.Reset(nil)
		readerPool(c.l.lim.MaxHeaderBytes).Put(c.br)
		c.br = nil
	}
}

// tlsMeta is what the TLS handshake told about an https client.
type tlsMeta struct {
	sni, version, cipher, alpn, ja4, ja3 string
}

func (m *tlsMeta) fill(ev *event.Event, in *classify.Input) {
	if m == nil {
		return
	}
	ev.SSLServerName, ev.SSLVersion, ev.SSLCipher = m.sni, m.version, m.cipher
	ev.ALPN, ev.JA4, ev.JA3 = m.alpn, m.ja4, m.ja3
	in.SNI, in.JA4 = m.sni, m.ja4
}

// httpState is the per-connection scratch of the HTTP loop.
type httpState struct {
	req    request
	wbuf   []byte
	body   hash.Hash
	prefix []byte
	sum    [sha256.Size]byte
}

var httpStates = sync.Pool{New: func() any {
	return &httpState{wbuf: make([]byte, 0, 1024), body: sha256.New(), prefix: make([]byte, 0, prefixLen)}
}}

// serveHTTP answers the requests on one connection (plain, or inside TLS
// when rd is the TLS connection) and returns how many events it emitted.
func (l *Listener) serveHTTP(cc *conn, proto string, tm *tlsMeta) int {
	st := httpStates.Get().(*httpState)
	defer func() { httpStates.Put(st) }()
	st.wbuf = st.wbuf[:0]
	var rd io.Reader = cc // plain: through conn.Read, which hands out the first chunk
	plain := tm == nil
	if !plain {
		rd = cc.tls
	}
	emitted := 0
	// The first request has ReadHeaderTimeout from accept (or from the
	// end of the TLS handshake) to arrive; later ones IdleTimeout to start
	// and ReadHeaderTimeout from then.
	cc.Conn.SetReadDeadline(l.now().Add(l.lim.ReadHeaderTimeout))
	for n := 0; n < l.lim.MaxRequestsPerConn; n++ {
		if cc.buffered() == 0 {
			if len(st.wbuf) > 0 && !l.flush(cc, st) {
				return emitted
			}
			if n > 0 {
				cc.Conn.SetReadDeadline(l.now().Add(l.lim.IdleTimeout))
			}
			if plain {
				// Idle: hold no buffers while waiting.
				cc.putReader()
				httpStates.Put(st)
				err := cc.readFirst()
				st = httpStates.Get().(*httpState)
				st.wbuf = st.wbuf[:0]
				if err != nil {
					return emitted
				}
			}
		}
		if n > 0 {
			cc.Conn.SetReadDeadline(l.now().Add(l.lim.ReadHeaderTimeout))
		}
		if cc.br == nil {
			cc.getReaderFrom(rd)
		}
		more, ok := l.oneRequest(cc, st, proto, tm, n+1 == l.lim.MaxRequestsPerConn)
		if ok {
			emitted++
		}
		if !more {
			if len(st.wbuf) > 0 {
				l.flush(cc, st)
			}
			return emitted
		}
		if len(st.wbuf) > 32<<10 && !l.flush(cc, st) {
			return emitted
		}
	}
	return emitted
}

func (l *Listener) flush(cc *conn, st *httpState) bool {
	cc.Conn.SetWriteDeadline(l.now().Add(l.lim.WriteTimeout))
	var err error
	if cc.tls != nil {
		_, err = cc.tls.Write(st.wbuf)
	} else {
		_, err = cc.Conn.Write(st.wbuf)
	}
	st.wbuf = st.wbuf[:0]
	return err == nil
}

// oneRequest reads one request, records it and queues the response. more
// reports whether the connection stays open; emitted whether an event was
// recorded.
func (l *Listener) oneRequest(cc *conn, st *httpState, proto string, tm *tlsMeta, last bool) (more, emitted bool) {
	br := cc.br
	headLen, err := l.readHead(br)
	if err != nil {
		// Nothing at all: the client went away or idled out between
		// requests; that is not a request.
		if br.Buffered() == 0 {
			return false, false
		}
		raw, _ := br.Peek(br.Buffered())
		var resp []byte // a timeout or a closed connection: no answer
		if errors.Is(err, bufio.ErrBufferFull) {
			resp = respTooLarge
		}
		l.badRequest(cc, st, proto, tm, raw, resp)
		return false, true
	}
	head, _ := br.Peek(headLen)
	req := &st.req
	if err := parseHead(head, req); err != nil {
		resp := respBadRequest
		if errors.Is(err, errTooManyHdrs) {
			resp = respTooLarge
		}
		l.badRequest(cc, st, proto, tm, head, resp)
		return false, true
	}
	ev := l.newEvent(proto, cc.src, cc.dst)
	in := classify.Input{}
	tm.fill(&ev, &in)
	ev.HTTPMethod = internMethod(req.method)
	ev.HTTPURL = string(req.target)
	ev.HTTPHost = string(req.host)
	ev.HTTPAgent = string(req.agent)
	ev.HTTPReferer = string(req.referer)
	ev.HeaderNames = string(req.names)
	ev.HeaderHash = HeaderHash(req.names)
	in.Method, in.URI, in.UserAgent, in.HeaderHash = ev.HTTPMethod, ev.HTTPURL, ev.HTTPAgent, ev.HeaderHash
	in.Host = hostOnly(ev.HTTPHost)
	isHead := ev.HTTPMethod == "HEAD"
	closing := req.close || last
	hasBody := req.chunked || req.contentLength > 0
	expect := req.expect100 && !req.http10
	declared := req.contentLength
	chunked := req.chunked
	br.Discard(headLen)

	if hasBody {
		if expect {
			st.wbuf = append(st.wbuf, respContinue...)
			if !l.flush(cc, st) {
				return false, false
			}
		}
		cc.Conn.SetReadDeadline(l.now().Add(l.lim.ReadTimeout))
		st.body.Reset()
		st.prefix = st.prefix[:0]
		var total int64
		var complete bool
		if chunked {
			total, complete = l.readChunked(br, st)
		} else {
			total, complete = l.readBody(br, st, declared)
		}
		if !complete {
			closing = true
		}
		ev.ContentLength = total
		if declared >= 0 {
			ev.ContentLength = declared
		}
		ev.PayloadSize = int(total)
		if total > 0 {
			st.body.Sum(st.sum[:0])
			ev.PayloadSHA256 = hex.EncodeToString(st.sum[:])
			ev.PayloadPrefix = append([]byte(nil), st.prefix...)
		}
		in.BodyLen = ev.ContentLength
		in.Body = ev.PayloadPrefix
	}
	l.emit(&ev, &in)
	switch {
	case closing && isHead:
		st.wbuf = append(st.wbuf, l.resp.headClose...)
	case closing:
		st.wbuf = append(st.wbuf, l.resp.close...)
	case isHead:
		st.wbuf = append(st.wbuf, l.resp.headKeep...)
	default:
		st.wbuf = append(st.wbuf, l.resp.keep...)
	}
	return !closing, true
}

// badRequest records raw, the bytes that did not make a request, counts
// it and queues resp (nil: no answer); the connection is then closed.
func (l *Listener) badRequest(cc *conn, st *httpState, proto string, tm *tlsMeta, raw, resp []byte) {
	ev := l.newEvent(proto, cc.src, cc.dst)
	var in classify.Input
	tm.fill(&ev, &in)
	recordPayload(&ev, &in, raw)
	l.m.badReq.Inc()
	st.wbuf = append(st.wbuf, resp...)
	l.emit(&ev, &in)
}

// readHead waits until br holds a whole request head and returns its
// length. bufio.ErrBufferFull means the head exceeds MaxHeaderBytes.
func (l *Listener) readHead(br *bufioReader) (int, error) {
	scanned := 0
	for {
		buf, _ := br.Peek(br.Buffered())
		if n := findHeadEnd(buf, scanned); n > 0 {
			return n, nil
		}
		scanned = len(buf)
		if br.Buffered() >= br.Size() {
			return 0, bufio.ErrBufferFull
		}
		if _, err := br.Peek(br.Buffered() + 1); err != nil {
			return 0, err
		}
	}
}

// readBody reads a Content-Length body up to MaxBodyBytes into the hash
// and prefix; complete is false when the body was cut or the read failed.
func (l *Listener) readBody(br *bufioReader, st *httpState, n int64) (read int64, complete bool) {
	limit := min(n, int64(l.lim.MaxBodyBytes))
	read, err := consume(br, st, limit)
	return read, err == nil && read == n
}

// consume feeds up to n bytes from br to the body hash and prefix.
func consume(br *bufioReader, st *httpState, n int64) (int64, error) {
	var read int64
	for read < n {
		if br.Buffered() == 0 {
			if _, err := br.Peek(1); err != nil {
				return read, err
			}
		}
		k := int(min(n-read, int64(br.Buffered())))
		p, _ := br.Peek(k)
		st.body.Write(p)
		if room := prefixLen - len(st.prefix); room > 0 {
			st.prefix = append(st.prefix, p[:min(room, len(p))]...)
		}
		br.Discard(k)
		read += int64(k)
	}
	return read, nil
}

// readChunked decodes a chunked body up to MaxBodyBytes.
func (l *Listener) readChunked(br *bufioReader, st *httpState) (int64, bool) {
	var total int64
	budget := int64(l.lim.MaxBodyBytes)
	for {
		line, err := readLine(br)
		if err != nil {
			return total, false
		}
		size, ok := parseChunkSize(line)
		if !ok {
			return total, false
		}
		if size == 0 {
			// Trailer fields, then the empty line.
			for range maxHeaderFields {
				line, err := readLine(br)
				if err != nil {
					return total, false
				}
				if len(line) == 0 {
					return total, true
				}
			}
			return total, false
		}
		if total+size > budget {
			n, _ := consume(br, st, budget-total)
			return total + n, false
		}
		n, err := consume(br, st, size)
		total += n
		if err != nil {
			return total, false
		}
		if line, err := readLine(br); err != nil || len(line) != 0 {
			return total, false
		}
	}
}

// readLine reads one line (without its line break) of at most the buffer
// size; the slice is valid until the next read.
func readLine(br *bufioReader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	line = line[:len(line)-1]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, nil
}

// recordPayload puts raw bytes received (a datagram, a TCP stream's first
// bytes, or bytes that did not make a request) into the event: their size
// and, when there are any, their SHA-256 and first prefixLen bytes.
func recordPayload(ev *event.Event, in *classify.Input, raw []byte) {
	ev.PayloadSize = len(raw)
	in.BodyLen = int64(len(raw))
	if len(raw) == 0 {
		return
	}
	sum := sha256.Sum256(raw)
	ev.PayloadSHA256 = hex.EncodeToString(sum[:])
	ev.PayloadPrefix = append([]byte(nil), raw[:min(len(raw), prefixLen)]...)
	in.Body = ev.PayloadPrefix
}

// HeaderHash is the header-order fingerprint of an HTTP request: the first
// 12 hex digits of the SHA-256 of its header names as sent (case kept),
// comma separated, in order; empty without headers.
func HeaderHash(names []byte) string {
	if len(names) == 0 {
		return ""
	}
	sum := sha256.Sum256(names)
	return hex.EncodeToString(sum[:6])
}

// internMethod avoids an allocation for the common methods.
func internMethod(m []byte) string {
	switch string(m) {
	case "GET":
		return "GET"
	case "POST":
		return "POST"
	case "HEAD":
		return "HEAD"
	case "PUT":
		return "PUT"
	case "OPTIONS":
		return "OPTIONS"
	case "CONNECT":
		return "CONNECT"
	}
	return string(m)
}

// hostOnly lower-cases a Host header and strips its port.
func hostOnly(h string) string {
	if h == "" {
		return ""
	}
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	} else if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	return strings.TrimSuffix(strings.ToLower(h), ".")
}
