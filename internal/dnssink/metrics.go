package dnssink

import (
	"net"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown/takedown/internal/sockdrop"
)

// counters are one worker's counts. Each UDP worker owns one (no cache line
// shared between cores on the answer path); TCP connections share one.
// The collector sums them at scrape time.
type counters struct {
	queries       [2][24]atomic.Uint64 // [transport][rcode]
	malformed     atomic.Uint64        // dropped without an answer
	truncated     atomic.Uint64
	rrlDrop       atomic.Uint64
	rrlSlip       atomic.Uint64
	eventsDropped atomic.Uint64
	proxyRejected atomic.Uint64
	_             [64]byte
}

const (
	trUDP = 0
	trTCP = 1
)

var transportNames = [2]string{"udp", "tcp"}

// metrics is the server's Prometheus collector, reading atomics at scrape
// time so that the answer path never touches a metric vector.
type metrics struct {
	mu     sync.Mutex
	shards []*counters

	tcpOpen              atomic.Int64
	tcpRejected          atomic.Uint64
	tcpPerSourceRejected atomic.Uint64
	tcpTimeouts          atomic.Uint64
	tcpOversized         atomic.Uint64
	reloads              atomic.Uint64
	reloadFails          atomic.Uint64
	lastReloadOK         atomic.Bool
	zones                atomic.Int64
	serial               atomic.Uint32
	registryError        atomic.Uint64
	rrl                  *atomic.Pointer[limiter]       // nil inside when rate limiting is off
	rrlEvictedBefore     atomic.Uint64                  // evictions of limiters a reload replaced
	udpConns             atomic.Pointer[[]*net.UDPConn] // the sockets whose kernel drops count
	udpDropsClosed       atomic.Uint64                  // their drops when they were closed

	dQueries, dMalformed, dTruncated, dRRL, dEventsDropped, dProxy *prometheus.Desc
	dTCPOpen, dTCPRejected, dTCPTimeouts, dTCPOversized            *prometheus.Desc
	dTCPPerSource, dRRLEvicted, dSocketDrops                       *prometheus.Desc
	dReloads, dReloadFails, dLastReload, dZones, dSerial           *prometheus.Desc
}

var _ prometheus.Collector = (*metrics)(nil)

func newMetrics() *metrics {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("takedown_dns_"+name, help, labels, nil)
	}
	return &metrics{
		dQueries:       d("queries_total", "DNS queries answered or dropped, by transport and response code.", "transport", "rcode"),
		dMalformed:     d("malformed_total", "Datagrams and messages dropped without an answer (short, a response, a bad PROXY header)."),
		dTruncated:     d("truncated_total", "Answers sent truncated (TC=1) because they did not fit."),
		dRRL:           d("rrl_limited_total", "Responses limited by response rate limiting, by action (drop or slip).", "action"),
		dEventsDropped: d("events_dropped_total", "Query events refused by the full event queue."),
		dProxy:         d("proxy_rejected_total", "Messages from trusted proxies with a malformed PROXY header."),
		dSocketDrops:   d("udp_socket_drops_total", "Datagrams the kernel dropped before the sinkhole read them (a UDP socket's receive queue was full)."),
		dTCPOpen:       d("tcp_connections", "Open TCP connections."),
		dTCPRejected:   d("tcp_rejected_total", "TCP connections closed at once because the connection cap was reached."),
		dTCPPerSource:  d("tcp_per_source_rejected_total", "TCP connections closed at once because their source already had its maximum open."),
		dRRLEvicted:    d("rrl_table_evictions_total", "Rate-limiting buckets replaced because the table was full (the least useful of its oldest)."),
		dTCPTimeouts:   d("tcp_idle_closed_total", "TCP connections closed after the idle timeout."),
		dTCPOversized:  d("tcp_oversized_total", "TCP connections closed for a length prefix out of bounds."),
		dReloads:       d("reloads_total", "Rebuilds of the answer data from the registry."),
		dReloadFails:   d("reload_failures_total", "Rebuilds that failed and kept the previous data."),
		dLastReload:    d("last_reload_successful", "1 if the last rebuild from the registry succeeded."),
		dZones:         d("zones", "Seized names (domains and hosts) being answered."),
		dSerial:        d("serial", "Registry serial of the answer data (the SOA serial)."),
	}
}

func (m *metrics) newShard() *counters {
	c := &counters{}
	m.mu.Lock()
	m.shards = append(m.shards, c)
	m.mu.Unlock()
	return c
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.dQueries, m.dMalformed, m.dTruncated, m.dRRL, m.dEventsDropped, m.dProxy,
		m.dSocketDrops, m.dTCPOpen, m.dTCPRejected, m.dTCPPerSource, m.dRRLEvicted, m.dTCPTimeouts, m.dTCPOversized, m.dReloads, m.dReloadFails, m.dLastReload, m.dZones, m.dSerial} {
		ch <- d
	}
}

// Stats is a snapshot of the DNS sinkhole's answer-path counters since it
// started: the values its metrics export, typed, for readers that are not
// Prometheus (the dashboard).
type Stats struct {
	Queries       uint64 // answered or dropped, every transport and response code
	Malformed     uint64 // dropped without an answer
	Truncated     uint64 // answered with TC=1
	RRLDropped    uint64 // responses dropped by rate limiting
	RRLSlipped    uint64 // responses slipped (truncated) by rate limiting
	EventsDropped uint64 // query events refused by the full queue
	ProxyRejected uint64 // messages with a malformed PROXY header from a trusted proxy
	SocketDrops   uint64 // datagrams the kernel dropped before they were read
	TCPOpen       int64  // TCP connections open now
}

// sum adds up every shard: queries by transport and response code, and the
// totals.
func (m *metrics) sum() (queries [2][24]uint64, st Stats) {
	m.mu.Lock()
	for _, c := range m.shards {
		for t := range c.queries {
			for r := range c.queries[t] {
				v := c.queries[t][r].Load()
				queries[t][r] += v
				st.Queries += v
			}
		}
		st.Malformed += c.malformed.Load()
		st.Truncated += c.truncated.Load()
		st.RRLDropped += c.rrlDrop.Load()
		st.RRLSlipped += c.rrlSlip.Load()
		st.EventsDropped += c.eventsDropped.Load()
		st.ProxyRejected += c.proxyRejected.Load()
	}
	m.mu.Unlock()
	st.SocketDrops = m.udpDropsClosed.Load()
	if cs := m.udpConns.Load(); cs != nil {
		st.SocketDrops += sockdrop.Sum(*cs)
	}
	st.TCPOpen = m.tcpOpen.Load()
	return queries, st
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	queries, sum := m.sum()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	for t := range queries {
		for r, v := range queries[t] {
			if v > 0 {
				counter(m.dQueries, v, transportNames[t], rcodeName(r))
			}
		}
	}
	counter(m.dMalformed, sum.Malformed)
	counter(m.dTruncated, sum.Truncated)
	counter(m.dRRL, sum.RRLDropped, "drop")
	counter(m.dRRL, sum.RRLSlipped, "slip")
	counter(m.dEventsDropped, sum.EventsDropped)
	counter(m.dProxy, sum.ProxyRejected)
	counter(m.dSocketDrops, sum.SocketDrops)
	gauge(m.dTCPOpen, float64(sum.TCPOpen))
	counter(m.dTCPRejected, m.tcpRejected.Load())
	counter(m.dTCPPerSource, m.tcpPerSourceRejected.Load())
	if l := m.rrl.Load(); l != nil || m.rrlEvictedBefore.Load() > 0 {
		v := m.rrlEvictedBefore.Load()
		if l != nil {
			v += l.evicted.Load()
		}
		counter(m.dRRLEvicted, v)
	}
	counter(m.dTCPTimeouts, m.tcpTimeouts.Load())
	counter(m.dTCPOversized, m.tcpOversized.Load())
	counter(m.dReloads, m.reloads.Load())
	counter(m.dReloadFails, m.reloadFails.Load())
	ok := 0.0
	if m.lastReloadOK.Load() {
		ok = 1
	}
	gauge(m.dLastReload, ok)
	gauge(m.dZones, float64(m.zones.Load()))
	gauge(m.dSerial, float64(m.serial.Load()))
}

// rcodeName is the mnemonic of rcode (NOERROR, REFUSED, BADVERS …), without
// allocating for the known ones.
func rcodeName(r int) string {
	if r == rcodeBadVers {
		return "BADVERS"
	}
	if s, ok := dns.RcodeToString[r]; ok {
		return s
	}
	return "RCODE" + strconv.Itoa(r)
}

// typeNames are the mnemonics of types 0–255, an immutable table built once
// so that naming the type of a query is an index, not a map lookup.
var typeNames = func() (t [256]string) {
	for i := range t {
		t[i] = dns.TypeToString[uint16(i)]
	}
	return t
}()

// typeName is the mnemonic of qtype, without allocating for known types.
func typeName(t uint16) string {
	if t < 256 && typeNames[t] != "" {
		return typeNames[t]
	}
	if s, ok := dns.TypeToString[t]; ok {
		return s
	}
	return "TYPE" + strconv.Itoa(int(t))
}
