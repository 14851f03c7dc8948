// Package event defines what every sinkhole observation becomes: the Event
// type, its versioned JSON-lines codec and the bounded, never-blocking
// hand-off from the listeners to the pipeline. It is not the pipeline.
package event

import (
	"net/netip"
	"time"
)

// SchemaVersion is the version of the event schema written in every
// JSON-lines record as "v". docs/events.md documents each version.
const SchemaVersion = 1

// Protocols of events.
const (
	ProtoDNS   = "dns"
	ProtoHTTP  = "http"
	ProtoHTTPS = "https"
	ProtoTCP   = "tcp"
	ProtoUDP   = "udp"
)

// Event is one sinkhole observation: a DNS query or a connection/request.
// Field names follow the Shadowserver sinkhole reports where one exists.
//
// For protocol "dns" the source is a recursive resolver, never an infected
// host: analytics never count it as infected.
type Event struct {
	ID        string    `json:"id"`        // unique, for idempotent delivery
	Timestamp time.Time `json:"timestamp"` // UTC
	Sensor    string    `json:"sensor,omitempty"`
	// Listener names the input that took the event in: the Producer's
	// name ("dns", "http:127.0.0.1:8080") or, for imports,
	// "import:<format>". Health figures are counted per listener.
	Listener  string `json:"listener,omitempty"`
	Protocol  string `json:"protocol"`            // dns, http, https, tcp, udp
	Transport string `json:"transport,omitempty"` // udp or tcp

	SrcIP   netip.Addr `json:"src_ip"`
	SrcPort uint16     `json:"src_port,omitempty"`
	SrcASN  uint32     `json:"src_asn,omitempty"`
	SrcOrg  string     `json:"src_org,omitempty"`
	SrcGeo  string     `json:"src_geo,omitempty"` // ISO 3166 alpha-2
	DstIP   netip.Addr `json:"dst_ip,omitzero"`
	DstPort uint16     `json:"dst_port,omitempty"`

	Case       string  `json:"case,omitempty"`
	Family     string  `json:"family,omitempty"` // Shadowserver "infection"
	Tag        string  `json:"tag,omitempty"`
	Confidence float64 `json:"confidence,omitempty"`
	BotID      string  `json:"bot_id,omitempty"`

	// Unverified marks an event whose source address the sinkhole could
	// not verify: a UDP datagram that no payload-testing classification
	// rule matched (anyone can forge a datagram's source). It is stored
	// and kept as evidence, but its source is never counted as infected,
	// reported to a network owner or shown on the self-check.
	Unverified bool `json:"unverified,omitempty"`
	// Count is the number of sinkhole contacts this record stands for: 0
	// or 1 for one contact; more for a summary record, written for a
	// source over its budget (the pipeline's per-source budget), whose
	// other fields are those of the first contact it summarises.
	Count uint64 `json:"count,omitempty"`

	// DNS.
	QName        string `json:"qname,omitempty"` // as received, case preserved
	QType        string `json:"qtype,omitempty"`
	RCode        string `json:"rcode,omitempty"`
	Matched      string `json:"matched,omitempty"` // the seized name that matched
	ECS          string `json:"ecs,omitempty"`     // EDNS Client Subnet, as a prefix
	ResponseSize int    `json:"response_size,omitempty"`

	// HTTP.
	HTTPMethod    string `json:"http_method,omitempty"`
	HTTPURL       string `json:"http_url,omitempty"`
	HTTPHost      string `json:"http_host,omitempty"`
	HTTPAgent     string `json:"http_agent,omitempty"`
	HTTPReferer   string `json:"http_referer,omitempty"`
	HeaderNames   string `json:"header_names,omitempty"` // in order, comma separated
	HeaderHash    string `json:"header_hash,omitempty"`
	ContentLength int64  `json:"content_length,omitempty"`

	// TLS.
	SSLServerName string `json:"ssl_servername,omitempty"`
	SSLVersion    string `json:"ssl_version,omitempty"`
	SSLCipher     string `json:"ssl_cipher,omitempty"`
	ALPN          string `json:"alpn,omitempty"`
	JA4           string `json:"ja4,omitempty"`
	JA3           string `json:"ja3,omitempty"`

	// Payload (HTTP body, TCP first bytes, UDP datagram).
	PayloadSize   int    `json:"payload_size,omitempty"`
	PayloadSHA256 string `json:"payload_sha256,omitempty"`
	PayloadPrefix []byte `json:"payload_prefix,omitempty"` // base64 in JSON, bounded
}

// Resolver reports whether the event's source is a recursive resolver (a DNS
// query) rather than an infected host.
func (e *Event) Resolver() bool { return e.Protocol == ProtoDNS }

// Contacts returns the number of contacts e stands for (Count, at least 1).
func (e *Event) Contacts() uint64 { return max(e.Count, 1) }
