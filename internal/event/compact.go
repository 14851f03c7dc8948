package event

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// The compact encoding is how a store keeps an event at rest: a few dozen
// bytes instead of the few hundred of its JSON-lines record. It is not an
// exchange format: the JSON-lines record stays the reference (evidence,
// exports, NATS), and a stored event is read back as exactly the record
// MarshalJSONL made of it.
//
// A compact record leaves out the ID and the timestamp, which the store
// keeps in its own columns (the ID packed by PackID, the timestamp as unix
// nanoseconds), and refers to repeated strings (sensor, organisation,
// family, user agent, URL…) by a number from the store's string table:
// the intern function the encoder is given, and the lookup the decoder is
// given, are the two sides of that table. A string the table does not
// take is written inline.
//
// Layout: the format byte CompactFormat (never '{', so that a reader tells
// a compact record from a JSON-lines one by its first byte); a uvarint
// bitmask of the fields present (bit i is compactFields[i]); then each
// present field in bit order. Numbers are uvarints (zigzag varints for
// the signed ones), addresses one length byte (4 or 16) and their bytes,
// confidence a uvarint 2k for k/1000 or 1 and its 8 IEEE-754 bytes,
// strings a uvarint v: v even is table reference v>>1; v odd is an inline
// string, followed by uvarint (n<<2 | form) and n bytes, form 0 the text,
// 1 lower-case and 3 upper-case hex written as its n bytes.

// CompactFormat is the first byte of a compact record that holds all its
// fields; CompactTemplated that of one whose shared fields are a template
// in the store's table (a reference to it follows the format byte).
const (
	CompactFormat    = 0x01
	CompactTemplated = 0x02
)

// templateMark starts the table string of a template.
const templateMark = "\x01"

// Field sets. A template holds what the sinkhole, the listener and the
// classifier give many events alike (protocol, sinkhole address, sensor,
// case, family, request line parts but the URL, TLS and DNS answer
// fields), so that most events store one reference for all of them; the
// fields of the source and of the contact itself stay in the record.
var (
	allFields      = uint64(1)<<len(compactFields) - 1
	templateFields = fieldSet("protocol", "transport", "dst_ip", "dst_port", "sensor", "listener", "case", "family", "tag",
		"confidence", "unverified", "http_method", "http_host", "http_agent", "http_referer", "header_names", "header_hash",
		"ssl_servername", "ssl_version", "ssl_cipher", "alpn", "ja4", "ja3", "qtype", "rcode", "matched")
	privateFields = allFields &^ templateFields
)

func fieldSet(names ...string) uint64 {
	var m uint64
	for _, n := range names {
		i := slices.IndexFunc(compactFields[:], func(f struct {
			kind int
			name string
		}) bool {
			return f.name == n
		})
		if i < 0 {
			panic("event: no compact field " + n)
		}
		m |= 1 << i
	}
	return m
}

// field kinds of the compact encoding.
const (
	kString   = iota // table reference or inline
	kInline          // always inline (values that rarely repeat)
	kUint            // uvarint
	kInt             // zigzag varint
	kAddr            // length byte and bytes
	kFloat           // 8 bytes
	kBool            // the bit alone
	kBytes           // uvarint length and bytes
	kProtocol        // a string kept as its index in protocols
)

// compactFields are the encoded fields, in bit order; appending is the
// only allowed change (an old record's bits must keep their meaning).
// Fields come roughly from the most to the least common, so that the
// bitmask of a usual event stays short. Values that are one per bot or per
// contact (bot ID, payload hash, query name, ECS) are always inline: in
// the table they would only crowd out the strings that repeat.
var compactFields = [...]struct {
	kind int
	name string
}{
	{kProtocol, "protocol"}, {kString, "transport"}, {kAddr, "src_ip"}, {kUint, "src_port"}, {kUint, "src_asn"},
	{kString, "src_org"}, {kString, "src_geo"}, {kAddr, "dst_ip"}, {kUint, "dst_port"}, {kString, "sensor"},
	{kString, "listener"}, {kString, "case"}, {kString, "family"}, {kString, "tag"}, {kFloat, "confidence"},
	{kInline, "bot_id"}, {kBool, "unverified"}, {kUint, "count"}, {kString, "http_method"}, {kString, "http_url"},
	{kString, "http_host"}, {kString, "http_agent"}, {kString, "http_referer"}, {kString, "header_names"}, {kString, "header_hash"},
	{kInt, "content_length"}, {kInt, "payload_size"}, {kInline, "payload_sha256"}, {kBytes, "payload_prefix"}, {kBool, "payload_sha256_of_prefix"},
	{kString, "ssl_servername"}, {kString, "ssl_version"}, {kString, "ssl_cipher"}, {kString, "alpn"}, {kString, "ja4"},
	{kString, "ja3"}, {kInline, "qname"}, {kString, "qtype"}, {kString, "rcode"}, {kString, "matched"},
	{kInline, "ecs"}, {kInt, "response_size"},
}

// strField returns the string field i of e (nil for other kinds).
func strField(e *Event, i int) *string {
	switch compactFields[i].name {
	case "protocol":
		return &e.Protocol
	case "transport":
		return &e.Transport
	case "src_org":
		return &e.SrcOrg
	case "src_geo":
		return &e.SrcGeo
	case "sensor":
		return &e.Sensor
	case "listener":
		return &e.Listener
	case "case":
		return &e.Case
	case "family":
		return &e.Family
	case "tag":
		return &e.Tag
	case "bot_id":
		return &e.BotID
	case "http_method":
		return &e.HTTPMethod
	case "http_url":
		return &e.HTTPURL
	case "http_host":
		return &e.HTTPHost
	case "http_agent":
		return &e.HTTPAgent
	case "http_referer":
		return &e.HTTPReferer
	case "header_names":
		return &e.HeaderNames
	case "header_hash":
		return &e.HeaderHash
	case "qname":
		return &e.QName
	case "qtype":
		return &e.QType
	case "rcode":
		return &e.RCode
	case "matched":
		return &e.Matched
	case "ecs":
		return &e.ECS
	case "ssl_servername":
		return &e.SSLServerName
	case "ssl_version":
		return &e.SSLVersion
	case "ssl_cipher":
		return &e.SSLCipher
	case "alpn":
		return &e.ALPN
	case "ja4":
		return &e.JA4
	case "ja3":
		return &e.JA3
	case "payload_sha256":
		return &e.PayloadSHA256
	}
	return nil
}

// Indexes of the non-string fields, checked against compactFields by the
// package's tests.
const (
	fSrcIP         = 2
	fSrcPort       = 3
	fSrcASN        = 4
	fDstIP         = 7
	fDstPort       = 8
	fConfidence    = 14
	fUnverified    = 16
	fCount         = 17
	fContentLength = 25
	fResponseSize  = 41
	fPayloadSize   = 26
	fPayloadPrefix = 28
	fPayloadSHA256 = 27
	// fSHAOfPrefix marks a payload_sha256 left out because it is the
	// SHA-256 of payload_prefix, which holds the whole payload (the usual
	// case for a bot's small POST): the decoder computes it again.
	fSHAOfPrefix = 29
)

// shaOfPrefix reports whether e's payload_sha256 is the SHA-256 of its
// payload_prefix, which holds the whole payload.
func shaOfPrefix(e *Event) bool {
	if e.PayloadSHA256 == "" || len(e.PayloadSHA256) != 64 || e.PayloadSize != len(e.PayloadPrefix) || len(e.PayloadPrefix) == 0 {
		return false
	}
	sum := sha256.Sum256(e.PayloadPrefix)
	var h [64]byte
	hex.Encode(h[:], sum[:])
	return string(h[:]) == e.PayloadSHA256
}

// dstRef is the length byte of a dst_ip written as a table reference to
// its text.
const dstRef = 0xff

// protocols are the protocol names a kProtocol field stores as a number
// (1 + index); any other name is stored as a string.
var protocols = [...]string{ProtoDNS, ProtoHTTP, ProtoHTTPS, ProtoTCP, ProtoUDP}

// Interner returns the table reference of s, or ok false when the table
// does not take it (then s is written inline).
type Interner func(s string) (ref uint64, ok bool)

// Lookup returns the string of a table reference, or ok false when the
// table has none.
type Lookup func(ref uint64) (s string, ok bool)

// CompactLossless reports whether AppendCompact can encode e so that the
// decoded event's JSON-lines record is byte for byte e's: its timestamp
// must be representable as unix nanoseconds and printed in UTC, and its
// addresses must carry no zone. A store keeps the JSON-lines record of
// any other event.
func CompactLossless(e *Event) bool {
	if _, off := e.Timestamp.Zone(); off != 0 {
		return false
	}
	if ns := e.Timestamp.UnixNano(); !time.Unix(0, ns).Equal(e.Timestamp) {
		return false
	}
	return e.SrcIP.Zone() == "" && e.DstIP.Zone() == ""
}

// AppendCompact appends the compact record of e (without its ID and
// timestamp) to dst. Call it only for an event CompactLossless accepts.
func AppendCompact(dst []byte, e *Event, intern Interner) []byte {
	return AppendCompactWith(dst, e, intern, CompactTemplate(e, intern))
}

// AppendCompactWith is AppendCompact with e's template already made
// (CompactTemplate with the same intern), or "" to store e without one.
func AppendCompactWith(dst []byte, e *Event, intern Interner, template string) []byte {
	if t := template; t != "" {
		if ref, ok := intern(t); ok {
			dst = append(dst, CompactTemplated)
			dst = binary.AppendUvarint(dst, ref)
			return appendFields(dst, e, intern, privateFields)
		}
	}
	dst = append(dst, CompactFormat)
	return appendFields(dst, e, intern, allFields)
}

// CompactTemplate returns e's template: the encoding of its fields that
// many events share (templateFields), as a string for the store's table
// (templateMark, then hex: a table may hold text only), or "" when e has
// none of them.
func CompactTemplate(e *Event, intern Interner) string {
	var buf [128]byte
	b := appendFields(buf[:0], e, intern, templateFields)
	if len(b) == 1 && b[0] == 0 {
		return ""
	}
	return templateMark + hex.EncodeToString(b)
}

// appendFields appends the bitmask of e's fields present in mask, then
// each of them.
func appendFields(dst []byte, e *Event, intern Interner, mask uint64) []byte {
	var bits uint64
	for i := range compactFields {
		if mask&(1<<i) != 0 && present(e, i) {
			bits |= 1 << i
		}
	}
	dst = binary.AppendUvarint(dst, bits)
	for i, f := range compactFields {
		if bits&(1<<i) == 0 {
			continue
		}
		switch f.kind {
		case kProtocol:
			n := 0
			for j, p := range protocols {
				if p == e.Protocol {
					n = j + 1
				}
			}
			dst = binary.AppendUvarint(dst, uint64(n))
			if n == 0 {
				dst = appendInline(dst, e.Protocol)
			}
		case kString:
			s := *strField(e, i)
			if ref, ok := intern(s); ok {
				dst = binary.AppendUvarint(dst, ref<<1)
			} else {
				dst = binary.AppendUvarint(dst, 1)
				dst = appendInline(dst, s)
			}
		case kInline:
			dst = appendInline(dst, *strField(e, i))
		case kAddr:
			a := e.SrcIP
			if i == fDstIP {
				a = e.DstIP
				// The sinkhole's own few addresses: a table reference
				// after the length byte dstRef.
				if ref, ok := intern(a.String()); ok {
					dst = append(dst, dstRef)
					dst = binary.AppendUvarint(dst, ref)
					continue
				}
			}
			b := a.AsSlice()
			dst = append(dst, byte(len(b)))
			dst = append(dst, b...)
		case kFloat:
			// Confidences are mostly a few decimals: k/1000 as a uvarint
			// 2k when that is exact, else 1 and the 8 IEEE-754 bytes.
			if k := math.Round(e.Confidence * 1000); k >= 0 && k < 1<<40 && k/1000 == e.Confidence {
				dst = binary.AppendUvarint(dst, uint64(k)<<1)
			} else {
				dst = binary.AppendUvarint(dst, 1)
				dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(e.Confidence))
			}
		case kBool:
		case kBytes:
			dst = binary.AppendUvarint(dst, uint64(len(e.PayloadPrefix)))
			dst = append(dst, e.PayloadPrefix...)
		case kUint:
			dst = binary.AppendUvarint(dst, uintField(e, i))
		case kInt:
			dst = binary.AppendVarint(dst, intField(e, i))
		}
	}
	return dst
}

func uintField(e *Event, i int) uint64 {
	switch i {
	case fSrcPort:
		return uint64(e.SrcPort)
	case fSrcASN:
		return uint64(e.SrcASN)
	case fDstPort:
		return uint64(e.DstPort)
	case fCount:
		return e.Count
	}
	panic("event: not a uint field")
}

func intField(e *Event, i int) int64 {
	switch i {
	case fContentLength:
		return e.ContentLength
	case fResponseSize:
		return int64(e.ResponseSize)
	case fPayloadSize:
		return int64(e.PayloadSize)
	}
	panic("event: not an int field")
}

// present reports whether field i is set (an unset field is one that
// MarshalJSONL omits or writes as its zero value).
func present(e *Event, i int) bool {
	switch compactFields[i].kind {
	case kString, kInline, kProtocol:
		if i == fPayloadSHA256 && shaOfPrefix(e) {
			return false
		}
		return *strField(e, i) != ""
	case kAddr:
		if i == fDstIP {
			return e.DstIP.IsValid()
		}
		return e.SrcIP.IsValid()
	case kFloat:
		return e.Confidence != 0
	case kBool:
		if i == fSHAOfPrefix {
			return shaOfPrefix(e)
		}
		return e.Unverified
	case kBytes:
		return len(e.PayloadPrefix) > 0
	case kUint:
		return uintField(e, i) != 0
	case kInt:
		return intField(e, i) != 0
	}
	return false
}

func appendInline(dst []byte, s string) []byte {
	if len(s) >= 2 && len(s)%2 == 0 {
		if isLowerHex(s) {
			dst = binary.AppendUvarint(dst, uint64(len(s)/2)<<2|1)
			return appendHex(dst, s)
		}
		if isUpperHex(s) {
			dst = binary.AppendUvarint(dst, uint64(len(s)/2)<<2|3)
			return appendHex(dst, strings.ToLower(s))
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(s))<<2)
	return append(dst, s...)
}

func isUpperHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return true
}

// appendHex appends the bytes of s, which isLowerHex accepted.
func appendHex(dst []byte, s string) []byte {
	out, _ := hex.AppendDecode(dst, []byte(s)) // s is checked hex
	return out
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// errCompact is the error of a compact record that does not decode.
var errCompact = errors.New("bad compact event record")

// compactReader reads a compact record; the first error sticks.
type compactReader struct {
	b   []byte
	err error
}

func (r *compactReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errCompact
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *compactReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errCompact
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *compactReader) bytes(n uint64) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = errCompact
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *compactReader) inline() string {
	v := r.uvarint()
	b := r.bytes(v >> 2)
	switch v & 3 {
	case 1:
		return hex.EncodeToString(b)
	case 3:
		return strings.ToUpper(hex.EncodeToString(b))
	case 2:
		r.err = errCompact
	}
	return string(b)
}

// DecodeCompact returns the event of a compact record (AppendCompact's),
// with the ID and timestamp the store kept beside it. rec is not kept.
func DecodeCompact(rec []byte, id string, ts time.Time, lookup Lookup) (Event, error) {
	return DecodeCompactCached(rec, id, ts, lookup, nil)
}

// TemplateCache holds templates decoded once, by table reference (a
// reference always means the same string): reading many events of the
// same few templates then costs a copy each. It is safe for concurrent
// use; nil caches nothing.
type TemplateCache struct{ m sync.Map }

// DecodeCompactCached is DecodeCompact with templates from cache.
func DecodeCompactCached(rec []byte, id string, ts time.Time, lookup Lookup, cache *TemplateCache) (Event, error) {
	e := Event{ID: id, Timestamp: ts.UTC()}
	if err := decodeCompactInto(&e, rec, lookup, ^uint64(0), cache); err != nil {
		return Event{}, err
	}
	return e, nil
}

// decodeCompactInto decodes the fields of rec that want selects (a
// bitmask of compactFields) into e; the others are skipped.
func decodeCompactInto(e *Event, rec []byte, lookup Lookup, want uint64, cache *TemplateCache) error {
	if len(rec) == 0 || (rec[0] != CompactFormat && rec[0] != CompactTemplated) {
		return fmt.Errorf("%w: format byte", errCompact)
	}
	r := compactReader{b: rec[1:]}
	if rec[0] == CompactFormat {
		return decodeFields(e, &r, lookup, want, allFields)
	}
	ref := r.uvarint()
	if r.err != nil {
		return r.err
	}
	if cache != nil {
		if v, ok := cache.m.Load(ref); ok {
			id, ts := e.ID, e.Timestamp
			*e = *v.(*Event)
			e.ID, e.Timestamp = id, ts
			return decodeFields(e, &r, lookup, want, privateFields)
		}
	}
	t, ok := lookup(ref)
	if !ok {
		return fmt.Errorf("%w: template %d is not in the store's string table", errCompact, ref)
	}
	tb, err := hex.DecodeString(strings.TrimPrefix(t, templateMark))
	if err != nil || !strings.HasPrefix(t, templateMark) {
		return fmt.Errorf("%w: string %d is not a template", errCompact, ref)
	}
	if cache != nil {
		var tmpl Event
		if err := decodeFields(&tmpl, &compactReader{b: tb}, lookup, ^uint64(0), templateFields); err != nil {
			return fmt.Errorf("template %d: %w", ref, err)
		}
		cache.m.Store(ref, &tmpl)
		id, ts := e.ID, e.Timestamp
		*e = tmpl
		e.ID, e.Timestamp = id, ts
	} else if err := decodeFields(e, &compactReader{b: tb}, lookup, want, templateFields); err != nil {
		return fmt.Errorf("template %d: %w", ref, err)
	}
	return decodeFields(e, &r, lookup, want, privateFields)
}

// decodeFields decodes the fields of r (a bitmask, then the fields, to
// the end of r) that want selects into e; fields outside allowed are an
// error.
func decodeFields(e *Event, r *compactReader, lookup Lookup, want, allowed uint64) error {
	bits := r.uvarint()
	shaDerived := false
	if bits&^allowed != 0 || bits>>len(compactFields) != 0 {
		return fmt.Errorf("%w: unexpected fields %#x (written by a newer version?)", errCompact, bits&^allowed)
	}
	for i, f := range compactFields {
		if bits&(1<<i) == 0 {
			continue
		}
		keep := want&(1<<i) != 0
		switch f.kind {
		case kProtocol:
			n := r.uvarint()
			var s string
			switch {
			case n == 0:
				s = r.inline()
			case n <= uint64(len(protocols)):
				s = protocols[n-1]
			default:
				r.err = errCompact
			}
			if keep {
				e.Protocol = s
			}
		case kString:
			v := r.uvarint()
			if v&1 == 1 {
				s := r.inline()
				if keep {
					*strField(e, i) = s
				}
				continue
			}
			if !keep || r.err != nil {
				continue
			}
			s, ok := lookup(v >> 1)
			if !ok {
				return fmt.Errorf("%w: string %d is not in the store's string table", errCompact, v>>1)
			}
			*strField(e, i) = s
		case kInline:
			s := r.inline()
			if keep {
				*strField(e, i) = s
			}
		case kAddr:
			n := uint64(0)
			if len(r.b) > 0 {
				n = uint64(r.b[0])
				r.b = r.b[1:]
			}
			if n == dstRef && i == fDstIP {
				ref := r.uvarint()
				if !keep || r.err != nil {
					continue
				}
				s, ok := lookup(ref)
				if !ok {
					return fmt.Errorf("%w: string %d is not in the store's string table", errCompact, ref)
				}
				a, err := netip.ParseAddr(s)
				if err != nil {
					return fmt.Errorf("%w: dst_ip %q", errCompact, s)
				}
				e.DstIP = a
				continue
			}
			b := r.bytes(n)
			if r.err != nil {
				break
			}
			a, ok := netip.AddrFromSlice(b)
			if !ok {
				r.err = errCompact
				break
			}
			if !keep {
				continue
			}
			if i == fDstIP {
				e.DstIP = a
			} else {
				e.SrcIP = a
			}
		case kFloat:
			v := r.uvarint()
			c := float64(v>>1) / 1000
			if v == 1 {
				if b := r.bytes(8); r.err == nil {
					c = math.Float64frombits(binary.LittleEndian.Uint64(b))
				}
			} else if v&1 == 1 {
				r.err = errCompact
			}
			if keep && r.err == nil {
				e.Confidence = c
			}
		case kBool:
			if i == fSHAOfPrefix {
				if bits&(1<<fPayloadSHA256) != 0 || bits&(1<<fPayloadPrefix) == 0 {
					r.err = errCompact
				}
				shaDerived = keep
			} else if keep {
				e.Unverified = true
			}
		case kBytes:
			b := r.bytes(r.uvarint())
			if keep && r.err == nil {
				e.PayloadPrefix = append([]byte(nil), b...)
			}
		case kUint:
			v := r.uvarint()
			if !keep {
				continue
			}
			switch i {
			case fSrcPort:
				e.SrcPort = uint16(v)
			case fSrcASN:
				e.SrcASN = uint32(v)
			case fDstPort:
				e.DstPort = uint16(v)
			case fCount:
				e.Count = v
			}
		case kInt:
			v := r.varint()
			if !keep {
				continue
			}
			switch i {
			case fContentLength:
				e.ContentLength = v
			case fResponseSize:
				e.ResponseSize = int(v)
			case fPayloadSize:
				e.PayloadSize = int(v)
			}
		}
		if r.err != nil {
			return r.err
		}
	}
	if r.err != nil {
		return r.err
	}
	if len(r.b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", errCompact, len(r.b))
	}
	if shaDerived {
		sum := sha256.Sum256(e.PayloadPrefix)
		e.PayloadSHA256 = hex.EncodeToString(sum[:])
	}
	return nil
}

// CompactSource decodes only what a scan of sources needs from a compact
// record (protocol, source address, family, unverified), without looking
// up any other string: the fast path of reports and raw scans.
func CompactSource(rec []byte, lookup Lookup) (Event, error) {
	var e Event
	err := decodeCompactInto(&e, rec, lookup, 1<<0|1<<fSrcIP|1<<12|1<<fUnverified, nil)
	return e, err
}

// ID packing. A stored ID is bytes: the event IDs this product makes are
// hex in fixed shapes and take half the space as bytes.
const (
	idText    = 0 // any other ID, as its text
	idCounter = 1 // IDGen's <16 hex>-<16 hex>: the prefix's 8 bytes, the counter's without leading zero bytes
	idSS      = 2 // ingest's ss-<32 hex>: 16 bytes
	idJL      = 3 // ingest's jl-<32 hex>: 16 bytes
)

// PackID returns the stored form of an event ID: one kind byte and the
// ID's bytes (UnpackID reverses it).
func PackID(id string) []byte {
	switch {
	case len(id) == 33 && id[16] == '-' && isLowerHex(id[:16]) && isLowerHex(id[17:]):
		b := make([]byte, 1, 17)
		b[0] = idCounter
		b = appendHex(b, id[:16])
		n := len(b)
		b = appendHex(b, id[17:])
		// The counter of a process rarely needs all 8 bytes: its leading
		// zero bytes go (the length says how many).
		z := 0
		for z < 8 && b[n+z] == 0 {
			z++
		}
		return append(b[:n], b[n+z:]...)
	case len(id) == 35 && (id[:3] == "ss-" || id[:3] == "jl-") && isLowerHex(id[3:]):
		k := byte(idSS)
		if id[:3] == "jl-" {
			k = idJL
		}
		return appendHex([]byte{k}, id[3:])
	}
	return append([]byte{idText}, id...)
}

// UnpackID returns the ID of its stored form (PackID's).
func UnpackID(b []byte) (string, error) {
	if len(b) == 0 {
		return "", fmt.Errorf("bad stored event id: empty")
	}
	switch b[0] {
	case idText:
		return string(b[1:]), nil
	case idCounter:
		if len(b) >= 9 && len(b) <= 17 {
			var c [8]byte
			copy(c[8-(len(b)-9):], b[9:])
			return hex.EncodeToString(b[1:9]) + "-" + hex.EncodeToString(c[:]), nil
		}
	case idSS, idJL:
		if len(b) == 17 {
			p := "ss-"
			if b[0] == idJL {
				p = "jl-"
			}
			return p + hex.EncodeToString(b[1:]), nil
		}
	}
	return "", fmt.Errorf("bad stored event id %x", b)
}

// CompactStrings calls fn with every string of e that AppendCompact would
// write as a table reference if the table held it.
func CompactStrings(e *Event, fn func(string)) {
	if e.DstIP.IsValid() {
		fn(e.DstIP.String())
	}
	for i, f := range compactFields {
		if f.kind == kString {
			if s := *strField(e, i); s != "" {
				fn(s)
			}
		}
	}
}
