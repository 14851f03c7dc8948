package simulate

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/takedown/takedown/internal/event"
)

// appendJSONL appends ev as one JSON-lines record, byte for byte what
// event.MarshalJSONL writes for the fields the simulator sets (a test
// holds it to that), about ten times faster: the history of a 20,000-host,
// 180-day population is millions of events. Fields the simulator never
// sets must be zero, and strings must need no escaping; WriteHistory falls
// back to event.MarshalJSONL otherwise.
func appendJSONL(b []byte, ev *event.Event) []byte {
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, event.SchemaVersion, 10)
	b = appendStr(b, `,"id":`, ev.ID)
	b = append(b, `,"timestamp":"`...)
	b = ev.Timestamp.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	b = appendOpt(b, `,"sensor":`, ev.Sensor)
	b = appendStr(b, `,"protocol":`, ev.Protocol)
	b = appendOpt(b, `,"transport":`, ev.Transport)
	b = append(b, `,"src_ip":"`...)
	b = ev.SrcIP.AppendTo(b)
	b = append(b, '"')
	b = appendUint(b, `,"src_port":`, uint64(ev.SrcPort))
	b = appendOpt(b, `,"src_geo":`, ev.SrcGeo)
	if ev.DstIP.IsValid() {
		b = append(b, `,"dst_ip":"`...)
		b = ev.DstIP.AppendTo(b)
		b = append(b, '"')
	}
	b = appendUint(b, `,"dst_port":`, uint64(ev.DstPort))
	b = appendOpt(b, `,"case":`, ev.Case)
	b = appendOpt(b, `,"family":`, ev.Family)
	b = appendOpt(b, `,"tag":`, ev.Tag)
	if ev.Confidence != 0 {
		b = append(b, `,"confidence":`...)
		b = strconv.AppendFloat(b, ev.Confidence, 'f', -1, 64)
	}
	b = appendOpt(b, `,"bot_id":`, ev.BotID)
	b = appendOpt(b, `,"qname":`, ev.QName)
	b = appendOpt(b, `,"qtype":`, ev.QType)
	b = appendOpt(b, `,"rcode":`, ev.RCode)
	b = appendOpt(b, `,"matched":`, ev.Matched)
	b = appendOpt(b, `,"http_method":`, ev.HTTPMethod)
	b = appendOpt(b, `,"http_url":`, ev.HTTPURL)
	b = appendOpt(b, `,"http_host":`, ev.HTTPHost)
	b = appendOpt(b, `,"http_agent":`, ev.HTTPAgent)
	b = appendUint(b, `,"content_length":`, uint64(ev.ContentLength))
	b = appendOpt(b, `,"ssl_servername":`, ev.SSLServerName)
	b = appendUint(b, `,"payload_size":`, uint64(ev.PayloadSize))
	b = appendOpt(b, `,"payload_sha256":`, ev.PayloadSHA256)
	return append(b, '}')
}

// plain reports whether encoding/json writes s as is between quotes.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func appendStr(b []byte, key, v string) []byte {
	b = append(b, key...)
	b = append(b, '"')
	b = append(b, v...)
	return append(b, '"')
}

func appendOpt(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	return appendStr(b, key, v)
}

func appendUint(b []byte, key string, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = append(b, key...)
	return strconv.AppendUint(b, v, 10)
}
