// Package proxyproto parses and writes HAProxy's PROXY protocol headers,
// version 1 (text) and version 2 (binary, over TCP and UDP), so that a
// sinkhole behind a load balancer learns the original client address, and
// decides which peers are trusted to send them.
//
// It is not a listener wrapper: the sinkholes call Parse or Read on what
// they received and decide themselves, with [Trust], whether to believe it.
// The v2 parser does not allocate. TLVs are skipped (counted in n), not
// interpreted.
//
// Reference: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
package proxyproto

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
)

// Commands of a header.
const (
	// CmdLocal: the connection was made by the proxy itself (health check);
	// the addresses are not meaningful and the receiver uses the real ones.
	CmdLocal byte = 0x0
	// CmdProxy: the connection was relayed for the client at Src.
	CmdProxy byte = 0x1
)

// Transports of a header.
const (
	TransportUnspec byte = 0x0
	TransportTCP    byte = 0x1 // SOCK_STREAM
	TransportUDP    byte = 0x2 // SOCK_DGRAM
)

// Size limits of headers.
const (
	// MaxV1 is the longest v1 header, CRLF included.
	MaxV1 = 107
	// MaxV2 is the longest v2 header: 16 fixed bytes and a 16-bit length.
	MaxV2 = 16 + 65535
	// v2HeaderLen is the fixed part of a v2 header.
	v2HeaderLen = 16
)

// Header is what a PROXY header says about the relayed connection.
type Header struct {
	Version   int  // 1 or 2
	Command   byte // CmdLocal or CmdProxy
	Transport byte // TransportUnspec, TransportTCP or TransportUDP
	// Src is the original client, Dst the address it connected to. Both are
	// zero for CmdLocal, for v1 "UNKNOWN" and for AF_UNIX or AF_UNSPEC.
	Src, Dst netip.AddrPort
}

// Proxied reports whether the header carries an original client address
// that replaces the connection's own.
func (h Header) Proxied() bool { return h.Command == CmdProxy && h.Src.IsValid() }

// Errors of the parsers. Malformed headers wrap ErrMalformed.
var (
	// ErrNoHeader means the bytes do not start with a PROXY signature.
	ErrNoHeader = errors.New("proxyproto: no PROXY header")
	// ErrIncomplete means the bytes are the start of a header, cut short.
	ErrIncomplete = errors.New("proxyproto: incomplete PROXY header")
	// ErrMalformed means the bytes start with a signature but are not a
	// valid header.
	ErrMalformed = errors.New("proxyproto: malformed PROXY header")
)

// sigV2 is the 12-byte v2 signature.
var sigV2 = [12]byte{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A}

const sigV1 = "PROXY "

// address families (high nibble of byte 13).
const (
	famUnspec = 0x0
	famInet   = 0x1
	famInet6  = 0x2
	famUnix   = 0x3
)

func malformed(what string) error { return fmt.Errorf("%w: %s", ErrMalformed, what) }

// Pre-built errors so that the v2 parser does not allocate on bad input.
var (
	errV2Version   = malformed("version is not 2")
	errV2Command   = malformed("unknown command")
	errV2Family    = malformed("unknown address family or transport")
	errV2ShortAddr = malformed("length too short for the address family")
)

// ParseV2 parses a v2 header at the start of b. n is the number of bytes the
// header occupies, TLVs included; the payload starts at b[n:]. It returns
// ErrNoHeader when b does not start with the v2 signature and ErrIncomplete
// when b is shorter than the header says. It does not allocate.
func ParseV2(b []byte) (h Header, n int, err error) {
	if len(b) < len(sigV2) {
		if bytes.HasPrefix(sigV2[:], b) && len(b) > 0 {
			return Header{}, 0, ErrIncomplete
		}
		return Header{}, 0, ErrNoHeader
	}
	if [12]byte(b[:12]) != sigV2 {
		return Header{}, 0, ErrNoHeader
	}
	if len(b) < v2HeaderLen {
		return Header{}, 0, ErrIncomplete
	}
	verCmd, famTr := b[12], b[13]
	if verCmd>>4 != 2 {
		return Header{}, 0, errV2Version
	}
	cmd := verCmd & 0x0F
	if cmd != CmdLocal && cmd != CmdProxy {
		return Header{}, 0, errV2Command
	}
	length := int(binary.BigEndian.Uint16(b[14:16]))
	n = v2HeaderLen + length
	if len(b) < n {
		return Header{}, 0, ErrIncomplete
	}
	fam, tr := famTr>>4, famTr&0x0F
	if fam > famUnix || tr > TransportUDP {
		return Header{}, 0, errV2Family
	}
	h = Header{Version: 2, Command: cmd, Transport: tr}
	if cmd == CmdLocal {
		// The receiver must ignore the address block, whatever it holds.
		return h, n, nil
	}
	body := b[v2HeaderLen:n]
	switch fam {
	case famInet:
		if len(body) < 12 {
			return Header{}, 0, errV2ShortAddr
		}
		src := netip.AddrFrom4([4]byte(body[0:4]))
		dst := netip.AddrFrom4([4]byte(body[4:8]))
		h.Src = netip.AddrPortFrom(src, binary.BigEndian.Uint16(body[8:10]))
		h.Dst = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(body[10:12]))
	case famInet6:
		if len(body) < 36 {
			return Header{}, 0, errV2ShortAddr
		}
		src := netip.AddrFrom16([16]byte(body[0:16]))
		dst := netip.AddrFrom16([16]byte(body[16:32]))
		h.Src = netip.AddrPortFrom(src, binary.BigEndian.Uint16(body[32:34]))
		h.Dst = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(body[34:36]))
	case famUnix:
		if len(body) < 216 {
			return Header{}, 0, errV2ShortAddr
		}
	}
	return h, n, nil
}

// Parse parses a v1 or v2 header at the start of b and returns it with the
// number of bytes it occupies. It returns ErrNoHeader when b starts with
// neither signature, ErrIncomplete when b is a header cut short, and an
// error wrapping ErrMalformed for anything else that is not a valid header.
func Parse(b []byte) (h Header, n int, err error) {
	if len(b) > 0 && b[0] == 'P' {
		return parseV1(b)
	}
	return ParseV2(b)
}

func parseV1(b []byte) (Header, int, error) {
	if len(b) < len(sigV1) {
		if bytes.HasPrefix([]byte(sigV1), b) {
			return Header{}, 0, ErrIncomplete
		}
		return Header{}, 0, ErrNoHeader
	}
	if string(b[:len(sigV1)]) != sigV1 {
		return Header{}, 0, ErrNoHeader
	}
	limit := min(len(b), MaxV1)
	end := bytes.IndexByte(b[:limit], '\n')
	if end < 0 {
		if len(b) >= MaxV1 {
			return Header{}, 0, malformed("v1 line longer than 107 bytes")
		}
		return Header{}, 0, ErrIncomplete
	}
	n := end + 1
	if end == 0 || b[end-1] != '\r' {
		return Header{}, 0, malformed("v1 line does not end in CRLF")
	}
	line := b[len(sigV1) : end-1]
	h := Header{Version: 1, Transport: TransportTCP}
	if bytes.HasPrefix(line, []byte("UNKNOWN")) {
		// "PROXY UNKNOWN" may be followed by anything: ignore it.
		h.Command = CmdLocal
		return h, n, nil
	}
	var f [5][]byte
	nf := 0
	for field := range bytes.SplitSeq(line, []byte(" ")) {
		if nf == len(f) {
			return Header{}, 0, malformed("v1 line has too many fields")
		}
		f[nf] = field
		nf++
	}
	if nf != 5 {
		return Header{}, 0, malformed("v1 line has too few fields")
	}
	var want6 bool
	switch string(f[0]) {
	case "TCP4":
	case "TCP6":
		want6 = true
	default:
		return Header{}, 0, malformed("v1 protocol is not TCP4, TCP6 or UNKNOWN")
	}
	src, err1 := parseV1Addr(f[1], want6)
	dst, err2 := parseV1Addr(f[2], want6)
	sport, err3 := parseV1Port(f[3])
	dport, err4 := parseV1Port(f[4])
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return Header{}, 0, err
	}
	h.Command = CmdProxy
	h.Src = netip.AddrPortFrom(src, sport)
	h.Dst = netip.AddrPortFrom(dst, dport)
	return h, n, nil
}

func parseV1Addr(b []byte, want6 bool) (netip.Addr, error) {
	a, err := netip.ParseAddr(string(b))
	if err != nil || a.Zone() != "" || a.Is4() == want6 || a.Is4In6() {
		return netip.Addr{}, malformed(fmt.Sprintf("v1 address %q", b))
	}
	return a, nil
}

func parseV1Port(b []byte) (uint16, error) {
	if len(b) == 0 || len(b) > 5 || (len(b) > 1 && b[0] == '0') {
		return 0, malformed(fmt.Sprintf("v1 port %q", b))
	}
	p, err := strconv.ParseUint(string(b), 10, 16)
	if err != nil {
		return 0, malformed(fmt.Sprintf("v1 port %q", b))
	}
	return uint16(p), nil
}

// Read reads a v1 or v2 header from the start of a stream and consumes it.
// When the stream does not start with a signature it returns ErrNoHeader and
// consumes nothing. It never reads past the header, and never reads more
// than MaxV1 bytes looking for the end of a v1 line.
func Read(r *bufio.Reader) (Header, error) {
	first, err := r.Peek(1)
	if err != nil {
		return Header{}, err
	}
	switch first[0] {
	case 'P':
		return readV1(r)
	case sigV2[0]:
		return readV2(r)
	}
	return Header{}, ErrNoHeader
}

func readV1(r *bufio.Reader) (Header, error) {
	want := len(sigV1)
	for {
		b, err := r.Peek(want)
		if err != nil {
			if err == io.EOF && len(b) > 0 {
				err = io.ErrUnexpectedEOF
			}
			if _, _, perr := parseV1(b); perr == ErrNoHeader {
				return Header{}, ErrNoHeader
			}
			return Header{}, err
		}
		h, n, perr := parseV1(b)
		switch {
		case perr == nil:
			_, _ = r.Discard(n)
			return h, nil
		case perr != ErrIncomplete:
			return Header{}, perr
		}
		// Ask for what is already buffered, or one byte more: never block
		// for bytes a client may not send.
		want = min(max(want+1, r.Buffered()), MaxV1)
	}
}

func readV2(r *bufio.Reader) (Header, error) {
	b, err := r.Peek(v2HeaderLen)
	if err != nil {
		if _, _, perr := ParseV2(b); perr == ErrNoHeader {
			return Header{}, ErrNoHeader
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Header{}, err
	}
	if [12]byte(b[:12]) != sigV2 {
		return Header{}, ErrNoHeader
	}
	total := v2HeaderLen + int(binary.BigEndian.Uint16(b[14:16]))
	var full []byte
	if total <= r.Size() {
		full, err = r.Peek(total)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return Header{}, err
		}
	} else {
		full = make([]byte, total)
		if _, err := io.ReadFull(r, full); err != nil {
			return Header{}, fmt.Errorf("proxyproto: reading v2 header: %w", err)
		}
		h, _, err := ParseV2(full)
		return h, err
	}
	h, n, err := ParseV2(full)
	if err != nil {
		return Header{}, err
	}
	_, _ = r.Discard(n)
	return h, nil
}

// AppendV2 appends h as a v2 header (without TLVs). A CmdProxy header whose
// Src is invalid is written as AF_UNSPEC. Src's family (IPv4 or IPv6, an
// IPv4-mapped address being IPv6) chooses AF_INET or AF_INET6; Dst is
// converted to it (to the unspecified address when it cannot be).
func AppendV2(dst []byte, h Header) []byte {
	dst = append(dst, sigV2[:]...)
	cmd := h.Command & 0x0F
	dst = append(dst, 0x20|cmd)
	if cmd != CmdProxy || !h.Src.IsValid() {
		return append(dst, famUnspec<<4|h.Transport&0x0F, 0, 0)
	}
	src, d := h.Src.Addr(), h.Dst.Addr()
	if src.Is4() {
		if d = d.Unmap(); !d.Is4() {
			d = netip.IPv4Unspecified()
		}
		dst = append(dst, famInet<<4|h.Transport&0x0F, 0, 12)
		s4, d4 := src.As4(), d.As4()
		dst = append(dst, s4[:]...)
		dst = append(dst, d4[:]...)
	} else {
		if !d.IsValid() {
			d = netip.IPv6Unspecified()
		}
		// As16 maps an IPv4 Dst into IPv6.
		dst = append(dst, famInet6<<4|h.Transport&0x0F, 0, 36)
		s16, d16 := src.As16(), d.As16()
		dst = append(dst, s16[:]...)
		dst = append(dst, d16[:]...)
	}
	dst = binary.BigEndian.AppendUint16(dst, h.Src.Port())
	return binary.BigEndian.AppendUint16(dst, h.Dst.Port())
}

// AppendV1 appends h as a v1 text header. A header that is not CmdProxy with
// a valid Src is written as "PROXY UNKNOWN".
func AppendV1(dst []byte, h Header) []byte {
	dst = append(dst, sigV1...)
	if h.Command != CmdProxy || !h.Src.IsValid() {
		return append(dst, "UNKNOWN\r\n"...)
	}
	src := h.Src.Addr().Unmap()
	d := h.Dst.Addr().Unmap()
	if src.Is4() {
		if !d.Is4() {
			d = netip.IPv4Unspecified()
		}
		dst = append(dst, "TCP4 "...)
	} else {
		if !d.Is6() {
			d = netip.IPv6Unspecified()
		}
		dst = append(dst, "TCP6 "...)
	}
	dst = src.WithZone("").AppendTo(dst)
	dst = append(dst, ' ')
	dst = d.WithZone("").AppendTo(dst)
	dst = append(dst, ' ')
	dst = strconv.AppendUint(dst, uint64(h.Src.Port()), 10)
	dst = append(dst, ' ')
	dst = strconv.AppendUint(dst, uint64(h.Dst.Port()), 10)
	return append(dst, "\r\n"...)
}
