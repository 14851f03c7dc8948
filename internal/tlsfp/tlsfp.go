// Package tlsfp parses a TLS ClientHello as captured off the wire and computes
// the client fingerprints the sinkhole records: JA3 (string and MD5) and the
// JA4 TLS-client fingerprint (FoxIO, BSD-3-Clause). It is not a TLS stack and
// implements none of the other JA4+ methods (JA4S, JA4H, JA4X …), whose
// licence differs.
//
// The parser is defensive: every length is checked against the bytes that
// are really there (golang.org/x/crypto/cryptobyte), input is bounded by
// [MaxHelloBytes], and nothing is retained from the input after a call
// returns.
package tlsfp

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/crypto/cryptobyte"
)

// MaxHelloBytes bounds the ClientHello handshake message this package will
// reassemble from records. Real ClientHellos are below 2 KiB, post-quantum
// key shares push them to about 1.8 KiB more; 16 KiB is one full record.
const MaxHelloBytes = 16 << 10

// Errors returned by the parsers.
var (
	// ErrIncomplete means the bytes end before the ClientHello does: read more.
	ErrIncomplete = errors.New("tlsfp: incomplete client hello")
	// ErrNotTLS means the bytes are not a TLS handshake record.
	ErrNotTLS = errors.New("tlsfp: not a tls handshake record")
)

// Extension type numbers this package interprets.
const (
	extServerName          = 0x0000
	extSupportedGroups     = 0x000a
	extECPointFormats      = 0x000b
	extSignatureAlgorithms = 0x000d
	extALPN                = 0x0010
	extSupportedVersions   = 0x002b
)

// ClientHello is the part of a ClientHello that fingerprints use. Lists keep
// wire order and include GREASE values; the fingerprint functions drop them.
type ClientHello struct {
	Version           uint16   // legacy_version
	Ciphers           []uint16 // cipher suites
	Extensions        []uint16 // extension types
	ServerName        string   // SNI host name, if any
	HasServerName     bool     // the server_name extension is present
	ALPN              []string // protocols offered
	SupportedVersions []uint16 // supported_versions extension
	SignatureAlgs     []uint16 // signature_algorithms extension
	Groups            []uint16 // supported_groups (elliptic curves)
	PointFormats      []uint8  // ec_point_formats
}

// IsGREASE reports whether v is a GREASE value (RFC 8701): 0x?a?a with both
// bytes equal.
func IsGREASE(v uint16) bool { return v&0x0f0f == 0x0a0a && v>>8 == v&0xff }

// ParseRecords reassembles the ClientHello from the start of a TLS byte
// stream (one or more handshake records, as a server reads them) and parses
// it. It returns [ErrIncomplete] if b ends too early and [ErrNotTLS] if b
// does not start with a handshake record.
func ParseRecords(b []byte) (*ClientHello, error) {
	var msg []byte
	need := -1 // handshake message length once known
	for {
		if len(b) < 5 {
			return nil, ErrIncomplete
		}
		if b[0] != 22 || b[1] != 3 {
			return nil, ErrNotTLS
		}
		n := int(binary.BigEndian.Uint16(b[3:5]))
		if n == 0 || n > 1<<14+2048 {
			return nil, fmt.Errorf("tlsfp: bad record length %d: %w", n, ErrNotTLS)
		}
		if len(b) < 5+n {
			// Use what there is: enough to know the hello's length helps
			// report incomplete versus too large.
			return nil, ErrIncomplete
		}
		msg = append(msg, b[5:5+n]...)
		b = b[5+n:]
		if need < 0 && len(msg) >= 4 {
			if msg[0] != 1 {
				return nil, fmt.Errorf("tlsfp: handshake type %d is not client_hello: %w", msg[0], ErrNotTLS)
			}
			need = 4 + (int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3]))
			if need > MaxHelloBytes {
				return nil, fmt.Errorf("tlsfp: client hello of %d bytes exceeds %d", need, MaxHelloBytes)
			}
		}
		if need >= 0 && len(msg) >= need {
			return Parse(msg[:need])
		}
	}
}

// Parse parses one ClientHello handshake message: the type byte (1), a
// 3-byte length and the body.
func Parse(msg []byte) (*ClientHello, error) {
	if len(msg) < 4 {
		return nil, ErrIncomplete
	}
	if msg[0] != 1 {
		return nil, fmt.Errorf("tlsfp: handshake type %d is not client_hello", msg[0])
	}
	n := int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3])
	if n > MaxHelloBytes {
		return nil, fmt.Errorf("tlsfp: client hello of %d bytes exceeds %d", n, MaxHelloBytes)
	}
	if len(msg) < 4+n {
		return nil, ErrIncomplete
	}
	r := cryptobyte.String(msg[4 : 4+n])
	ch := &ClientHello{}
	var sessionID, ciphers, compression cryptobyte.String
	if !r.ReadUint16(&ch.Version) || !r.Skip(32) || // random
		!r.ReadUint8LengthPrefixed(&sessionID) ||
		!r.ReadUint16LengthPrefixed(&ciphers) || len(ciphers)%2 != 0 {
		return nil, errors.New("tlsfp: bad cipher suite list")
	}
	ch.Ciphers = make([]uint16, 0, len(ciphers)/2)
	for c := uint16(0); ciphers.ReadUint16(&c); {
		ch.Ciphers = append(ch.Ciphers, c)
	}
	if !r.ReadUint8LengthPrefixed(&compression) {
		return nil, errors.New("tlsfp: truncated client hello")
	}
	if r.Empty() {
		return ch, nil // no extensions (SSL 3.0 style)
	}
	var exts cryptobyte.String
	if !r.ReadUint16LengthPrefixed(&exts) {
		return nil, errors.New("tlsfp: bad extensions block")
	}
	for !exts.Empty() {
		var typ uint16
		var data cryptobyte.String
		if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&data) {
			return nil, errors.New("tlsfp: truncated extension")
		}
		ch.Extensions = append(ch.Extensions, typ)
		ch.parseExtension(typ, data)
	}
	return ch, nil
}

// parseExtension reads the extensions fingerprints use. A malformed
// extension body is skipped, not an error: the fingerprint still records
// its type.
func (ch *ClientHello) parseExtension(typ uint16, d cryptobyte.String) {
	var list cryptobyte.String
	switch typ {
	case extServerName:
		ch.HasServerName = true
		if !d.ReadUint16LengthPrefixed(&list) {
			return
		}
		for !list.Empty() {
			var kind uint8
			var name cryptobyte.String
			if !list.ReadUint8(&kind) || !list.ReadUint16LengthPrefixed(&name) {
				return
			}
			if kind == 0 && ch.ServerName == "" {
				ch.ServerName = string(name)
			}
		}
	case extALPN:
		if !d.ReadUint16LengthPrefixed(&list) {
			return
		}
		for !list.Empty() {
			var proto cryptobyte.String
			if !list.ReadUint8LengthPrefixed(&proto) {
				return
			}
			if len(ch.ALPN) < 32 {
				ch.ALPN = append(ch.ALPN, string(proto))
			}
		}
	case extSupportedVersions:
		if d.ReadUint8LengthPrefixed(&list) {
			ch.SupportedVersions = appendU16s(ch.SupportedVersions, list)
		}
	case extSignatureAlgorithms:
		if d.ReadUint16LengthPrefixed(&list) {
			ch.SignatureAlgs = appendU16s(ch.SignatureAlgs, list)
		}
	case extSupportedGroups:
		if d.ReadUint16LengthPrefixed(&list) {
			ch.Groups = appendU16s(ch.Groups, list)
		}
	case extECPointFormats:
		if d.ReadUint8LengthPrefixed(&list) {
			ch.PointFormats = append(ch.PointFormats[:0], list...)
		}
	}
}

// appendU16s appends the whole of s as big-endian uint16s, up to 512 in
// dst; an odd-length s appends nothing.
func appendU16s(dst []uint16, s cryptobyte.String) []uint16 {
	if len(s)%2 != 0 {
		return dst
	}
	for v := uint16(0); len(dst) < 512 && s.ReadUint16(&v); {
		dst = append(dst, v)
	}
	return dst
}

// JA3 returns the JA3 string (SSLVersion,Ciphers,Extensions,EllipticCurves,
// EllipticCurvePointFormats, decimal, dash-separated, wire order, GREASE
// removed) and its MD5 in hex, as Salesforce's reference implementation
// computes them.
func JA3(ch *ClientHello) (s, hash string) {
	var b strings.Builder
	b.Grow(256)
	b.WriteString(strconv.Itoa(int(ch.Version)))
	b.WriteByte(',')
	writeDecList(&b, ch.Ciphers)
	b.WriteByte(',')
	writeDecList(&b, ch.Extensions)
	b.WriteByte(',')
	writeDecList(&b, ch.Groups)
	b.WriteByte(',')
	for i, f := range ch.PointFormats {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(strconv.Itoa(int(f)))
	}
	s = b.String()
	sum := md5.Sum([]byte(s))
	return s, hex.EncodeToString(sum[:])
}

func writeDecList(b *strings.Builder, vs []uint16) {
	first := true
	for _, v := range vs {
		if IsGREASE(v) {
			continue
		}
		if !first {
			b.WriteByte('-')
		}
		first = false
		b.WriteString(strconv.Itoa(int(v)))
	}
}

// JA4 returns the JA4 TLS-client fingerprint of ch seen over TCP, e.g.
// "t13d1516h2_8daaf6152771_e5627efa2ab1".
func JA4(ch *ClientHello) string {
	a, b, c := ja4Parts(ch, 't')
	return a + "_" + hash12(b) + "_" + hash12(c)
}

// JA4Raw returns JA4's raw form (JA4_r): the same prefix followed by the
// sorted cipher list and the sorted extension list with signature
// algorithms, unhashed. It is what the hashes of [JA4] are computed over.
func JA4Raw(ch *ClientHello) string {
	a, b, c := ja4Parts(ch, 't')
	return a + "_" + b + "_" + c
}

func hash12(s string) string {
	if s == "" {
		return "000000000000"
	}
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:6])
}

// ja4Parts follows the FoxIO JA4 technical details: GREASE values are
// ignored everywhere; ciphers and extensions are counted (counts capped at
// 99) and sorted as 4-digit lower-case hex; SNI (0000) and ALPN (0010) count
// but are left out of the sorted extension list; signature algorithms
// follow in wire order after an underscore.
func ja4Parts(ch *ClientHello, transport byte) (a, b, c string) {
	var pre [10]byte
	pre[0] = transport
	ver := VersionCode(ch.MaxVersion())
	pre[1], pre[2] = ver[0], ver[1]
	pre[3] = 'i'
	if ch.HasServerName {
		pre[3] = 'd'
	}
	ciphers := nonGREASE(ch.Ciphers)
	exts := nonGREASE(ch.Extensions)
	twoDigits(pre[4:6], len(ciphers))
	twoDigits(pre[6:8], len(exts))
	pre[8], pre[9] = alpnCode(ch.ALPN)
	a = string(pre[:])

	slices.Sort(ciphers)
	b = hexList(ciphers)

	sorted := exts[:0]
	for _, e := range exts {
		if e != extServerName && e != extALPN {
			sorted = append(sorted, e)
		}
	}
	slices.Sort(sorted)
	c = hexList(sorted)
	if sigs := nonGREASE(ch.SignatureAlgs); len(sigs) > 0 {
		c += "_" + hexList(sigs)
	}
	return a, b, c
}

// VersionCode is JA4's two-character code for a TLS version number
// ("13", "12", "11", "10", "s3", "s2", "d1", "d2", "d3"; "00" if unknown).
func VersionCode(v uint16) string {
	switch v {
	case 0x0304:
		return "13"
	case 0x0303:
		return "12"
	case 0x0302:
		return "11"
	case 0x0301:
		return "10"
	case 0x0300:
		return "s3"
	case 0x0002:
		return "s2"
	case 0xfeff:
		return "d1"
	case 0xfefd:
		return "d2"
	case 0xfefc:
		return "d3"
	}
	return "00"
}

// MaxVersion is the highest version ch offers: from supported_versions when
// present (GREASE ignored), else the legacy version.
func (ch *ClientHello) MaxVersion() uint16 {
	if len(ch.SupportedVersions) == 0 {
		return ch.Version
	}
	var v uint16
	for _, sv := range ch.SupportedVersions {
		if !IsGREASE(sv) && sv > v {
			v = sv
		}
	}
	return v
}

func nonGREASE(vs []uint16) []uint16 {
	out := make([]uint16, 0, len(vs))
	for _, v := range vs {
		if !IsGREASE(v) {
			out = append(out, v)
		}
	}
	return out
}

func twoDigits(dst []byte, n int) {
	n = min(n, 99)
	dst[0] = byte('0' + n/10)
	dst[1] = byte('0' + n%10)
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// alpnCode is the first and last character of the first ALPN value; "00"
// without ALPN or with an empty value; when either end is not alphanumeric,
// the first hex digit of the first byte and the last hex digit of the last
// byte (the spec's rule for non-printable values).
func alpnCode(alpn []string) (byte, byte) {
	if len(alpn) == 0 || alpn[0] == "" {
		return '0', '0'
	}
	p := alpn[0]
	first, last := p[0], p[len(p)-1]
	if isAlnum(first) && isAlnum(last) {
		return first, last
	}
	const digits = "0123456789abcdef"
	return digits[first>>4], digits[last&0x0f]
}

func hexList(vs []uint16) string {
	if len(vs) == 0 {
		return ""
	}
	b := make([]byte, 0, len(vs)*5)
	const digits = "0123456789abcdef"
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, digits[v>>12], digits[v>>8&0xf], digits[v>>4&0xf], digits[v&0xf])
	}
	return string(b)
}
