package event

import (
	"encoding/base64"
	"math"
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"
)

// The JSON-lines encoder, written by hand: every live event and every
// imported row becomes a record for the evidence log, and encoding/json's
// reflection over Event's 43 fields took an eighth of serve's CPU under
// the DNS benchmark (bench/dns_serve); the simulator writes its histories
// with it too (AppendJSONL). Its output is encoding/json's byte
// for byte (record and Event's tags, omitempty and omitzero, HTML-safe
// string escapes, time.Time's and netip.Addr's own forms, the float
// format): the evidence log's leaves of earlier versions must come out
// the same when a record is made again. TestMarshalJSONLAsEncodingJSON and
// FuzzMarshalJSONL check that against encoding/json; whatever encoding/json
// would refuse (a time outside RFC 3339, NaN) goes through it, for its
// error.

// appendJSONL appends e's record to dst; false when encoding/json must
// make it (its error).
func appendJSONL(dst []byte, e *Event) ([]byte, bool) {
	dst = append(dst, `{"v":`...)
	dst = strconv.AppendInt(dst, SchemaVersion, 10)
	dst = append(dst, `,"id":`...)
	dst = appendJSONString(dst, e.ID)
	dst = append(dst, `,"timestamp":`...)
	var ok bool
	if dst, ok = appendJSONTime(dst, e.Timestamp); !ok {
		return dst, false
	}
	dst = optString(dst, `,"sensor":`, e.Sensor)
	dst = optString(dst, `,"listener":`, e.Listener)
	dst = append(dst, `,"protocol":`...)
	dst = appendJSONString(dst, e.Protocol)
	dst = optString(dst, `,"transport":`, e.Transport)
	dst = append(dst, `,"src_ip":`...)
	dst = appendJSONAddr(dst, e.SrcIP)
	dst = optUint(dst, `,"src_port":`, uint64(e.SrcPort))
	dst = optUint(dst, `,"src_asn":`, uint64(e.SrcASN))
	dst = optString(dst, `,"src_org":`, e.SrcOrg)
	dst = optString(dst, `,"src_geo":`, e.SrcGeo)
	if e.DstIP.IsValid() { // omitzero: the zero Addr is the invalid one
		dst = append(dst, `,"dst_ip":`...)
		dst = appendJSONAddr(dst, e.DstIP)
	}
	dst = optUint(dst, `,"dst_port":`, uint64(e.DstPort))
	dst = optString(dst, `,"case":`, e.Case)
	dst = optString(dst, `,"family":`, e.Family)
	dst = optString(dst, `,"tag":`, e.Tag)
	if e.Confidence != 0 {
		dst = append(dst, `,"confidence":`...)
		if dst, ok = appendJSONFloat(dst, e.Confidence); !ok {
			return dst, false
		}
	}
	dst = optString(dst, `,"bot_id":`, e.BotID)
	if e.Unverified {
		dst = append(dst, `,"unverified":true`...)
	}
	dst = optUint(dst, `,"count":`, e.Count)
	dst = optString(dst, `,"qname":`, e.QName)
	dst = optString(dst, `,"qtype":`, e.QType)
	dst = optString(dst, `,"rcode":`, e.RCode)
	dst = optString(dst, `,"matched":`, e.Matched)
	dst = optString(dst, `,"ecs":`, e.ECS)
	dst = optInt(dst, `,"response_size":`, int64(e.ResponseSize))
	dst = optString(dst, `,"http_method":`, e.HTTPMethod)
	dst = optString(dst, `,"http_url":`, e.HTTPURL)
	dst = optString(dst, `,"http_host":`, e.HTTPHost)
	dst = optString(dst, `,"http_agent":`, e.HTTPAgent)
	dst = optString(dst, `,"http_referer":`, e.HTTPReferer)
	dst = optString(dst, `,"header_names":`, e.HeaderNames)
	dst = optString(dst, `,"header_hash":`, e.HeaderHash)
	dst = optInt(dst, `,"content_length":`, e.ContentLength)
	dst = optString(dst, `,"ssl_servername":`, e.SSLServerName)
	dst = optString(dst, `,"ssl_version":`, e.SSLVersion)
	dst = optString(dst, `,"ssl_cipher":`, e.SSLCipher)
	dst = optString(dst, `,"alpn":`, e.ALPN)
	dst = optString(dst, `,"ja4":`, e.JA4)
	dst = optString(dst, `,"ja3":`, e.JA3)
	dst = optInt(dst, `,"payload_size":`, int64(e.PayloadSize))
	dst = optString(dst, `,"payload_sha256":`, e.PayloadSHA256)
	if len(e.PayloadPrefix) > 0 {
		dst = append(dst, `,"payload_prefix":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, e.PayloadPrefix)
		dst = append(dst, '"')
	}
	return append(dst, '}'), true
}

func optString(dst []byte, key, s string) []byte {
	if s == "" {
		return dst
	}
	return appendJSONString(append(dst, key...), s)
}

func optUint(dst []byte, key string, v uint64) []byte {
	if v == 0 {
		return dst
	}
	return strconv.AppendUint(append(dst, key...), v, 10)
}

func optInt(dst []byte, key string, v int64) []byte {
	if v == 0 {
		return dst
	}
	return strconv.AppendInt(append(dst, key...), v, 10)
}

// appendJSONAddr is netip.Addr's MarshalText as a JSON string ("" for the
// zero Addr). Only an IPv6 zone can hold a character to escape.
func appendJSONAddr(dst []byte, a netip.Addr) []byte {
	if a.Zone() != "" {
		return appendJSONString(dst, a.String())
	}
	dst = append(dst, '"')
	dst = a.AppendTo(dst)
	return append(dst, '"')
}

// appendJSONTime is time.Time's MarshalJSON: RFC 3339 with nanoseconds,
// refused (false) where that is not strict RFC 3339.
func appendJSONTime(dst []byte, t time.Time) ([]byte, bool) {
	dst = append(dst, '"')
	n0 := len(dst)
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	switch {
	case len(dst)-n0 < len("9999-") || dst[n0+len("9999")] != '-': // a year of four digits
		return dst, false
	case dst[len(dst)-1] != 'Z':
		c := dst[len(dst)-len("Z07:00")]
		h := dst[len(dst)-len("07:00"):]
		if ('0' <= c && c <= '9') || 10*(h[0]-'0')+(h[1]-'0') >= 24 {
			return dst, false
		}
	}
	return append(dst, '"'), true
}

// appendJSONFloat is encoding/json's float64 form (ES6's number to
// string); NaN and infinities are refused.
func appendJSONFloat(dst []byte, f float64) ([]byte, bool) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return dst, false
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// e-09 to e-9
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst, true
}

const hexDigits = "0123456789abcdef"

// appendJSONString is encoding/json's string form with HTML escaping (as
// json.Marshal makes it): ", \ and control characters escaped, <, > and
// & as \u003c, \u003e and \u0026, invalid UTF-8 as \ufffd, U+2028 and
// U+2029 escaped.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
