package connsink

import (
	"bytes"
	"errors"
)

// The HTTP/1.1 request-head parser of the plain-HTTP sinkhole. It works in
// place on the bytes read so far and records only what the event needs:
// slices into the buffer, valid until the buffer is advanced. It accepts
// what RFC 9112 requires a server to accept (bare LF line ends, leading
// empty lines) and rejects what would make framing ambiguous (obs-fold,
// conflicting Content-Length, unknown transfer codings, whitespace before
// the colon).

var (
	errIncomplete  = errors.New("incomplete request head")
	errBadRequest  = errors.New("malformed request")
	errTooManyHdrs = errors.New("too many header fields")
)

// maxHeaderFields bounds the header fields of one request.
const maxHeaderFields = 128

// request is one parsed request head.
type request struct {
	method, target, host, agent, referer []byte
	names                                []byte // header names as sent, comma separated (reused)
	contentLength                        int64  // -1 if absent
	chunked                              bool
	close                                bool // the client asked to close, or HTTP/1.0 without keep-alive
	http10                               bool
	expect100                            bool
}

func (r *request) reset() {
	names := r.names[:0]
	*r = request{names: names, contentLength: -1}
}

// findHeadEnd returns the length of the request head (through the empty
// line) in b, searching from offset from (where an earlier call stopped),
// or -1 if b does not hold it yet.
func findHeadEnd(b []byte, from int) int {
	i := max(from-3, 0)
	for {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		// The line that ended here is empty if the byte before its \n is
		// \n, or \r preceded by \n; a head that starts with an empty line
		// is skipped by the parser, so only count an empty line after
		// something.
		if i >= 2 && b[i-2] == '\n' && nonEmptyBefore(b, i-2) {
			return i
		}
		if i >= 3 && b[i-2] == '\r' && b[i-3] == '\n' && nonEmptyBefore(b, i-3) {
			return i
		}
	}
}

// nonEmptyBefore reports whether b[:end] holds more than line breaks (the
// leading empty lines a client may send between requests).
func nonEmptyBefore(b []byte, end int) bool {
	for _, c := range b[:end] {
		if c != '\r' && c != '\n' {
			return true
		}
	}
	return false
}

// parseHead parses the request head head (as delimited by findHeadEnd)
// into r.
func parseHead(head []byte, r *request) error {
	r.reset()
	// Leading empty lines are ignored (RFC 9112 §2.2).
	for len(head) > 0 && (head[0] == '\r' || head[0] == '\n') {
		head = head[1:]
	}
	line, rest, ok := cutLine(head)
	if !ok {
		return errBadRequest
	}
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return errBadRequest
	}
	r.method = line[:sp1]
	line = line[sp1+1:]
	sp2 := bytes.LastIndexByte(line, ' ')
	if sp2 <= 0 {
		return errBadRequest
	}
	r.target, line = line[:sp2], line[sp2+1:]
	if !isToken(r.method) || bytes.IndexByte(r.target, ' ') >= 0 || !validTarget(r.target) {
		return errBadRequest
	}
	switch string(line) {
	case "HTTP/1.1":
	case "HTTP/1.0":
		r.http10, r.close = true, true
	default:
		return errBadRequest
	}
	nfields := 0
	haveCL := false
	for {
		line, rest, ok = cutLine(rest)
		if !ok {
			return errBadRequest
		}
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return errBadRequest // obs-fold
		}
		nfields++
		if nfields > maxHeaderFields {
			return errTooManyHdrs
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return errBadRequest
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		if !isToken(name) {
			return errBadRequest
		}
		if len(r.names) > 0 {
			r.names = append(r.names, ',')
		}
		r.names = append(r.names, name...)
		switch {
		case eqFold(name, "host"):
			if r.host != nil {
				return errBadRequest // two Host fields (RFC 9112 §3.2)
			}
			r.host = value
		case eqFold(name, "user-agent"):
			r.agent = value
		case eqFold(name, "referer"):
			r.referer = value
		case eqFold(name, "content-length"):
			n, ok := parseContentLength(value)
			if !ok || (haveCL && n != r.contentLength) {
				return errBadRequest
			}
			haveCL, r.contentLength = true, n
		case eqFold(name, "transfer-encoding"):
			if !lastTokenIs(value, "chunked") {
				return errBadRequest // we cannot frame other codings
			}
			r.chunked = true
		case eqFold(name, "connection"):
			if hasToken(value, "close") {
				r.close = true
			} else if r.http10 && hasToken(value, "keep-alive") {
				r.close = false
			}
		case eqFold(name, "expect"):
			r.expect100 = eqFold(value, "100-continue")
		}
	}
	if r.chunked {
		r.contentLength = -1 // Transfer-Encoding overrides (RFC 9112 §6.3)
		if r.http10 {
			return errBadRequest
		}
	}
	return nil
}

// cutLine returns the first line of b without its line break, and the rest.
func cutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, nil, false
	}
	line, rest = b[:i], b[i+1:]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, rest, true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// tchar per RFC 9110 §5.6.2.
var tokenTable = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tokenTable[c] {
			return false
		}
	}
	return true
}

// validTarget rejects control characters in the request target.
func validTarget(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < 0x21 || c == 0x7f {
			return false
		}
	}
	return true
}

// eqFold compares ASCII case-insensitively.
func eqFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

func parseContentLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// hasToken reports whether the comma-separated list v contains tok.
func hasToken(v []byte, tok string) bool {
	for len(v) > 0 {
		var item []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			item, v = v[:i], v[i+1:]
		} else {
			item, v = v, nil
		}
		if eqFold(trimOWS(item), tok) {
			return true
		}
	}
	return false
}

func lastTokenIs(v []byte, tok string) bool {
	if i := bytes.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return eqFold(trimOWS(v), tok)
}

// parseChunkSize parses a chunk-size line (hex, optional extensions).
func parseChunkSize(line []byte) (int64, bool) {
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	line = trimOWS(line)
	if len(line) == 0 || len(line) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range line {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		n = n<<4 | int64(d)
	}
	return n, true
}
