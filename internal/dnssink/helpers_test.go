package dnssink

import (
	"context"
	"io"
	"net"
	"net/netip"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/registry"
)

// fakeSource is an in-memory registry.Source: entries with their own
// windows, and a serial bumped by every change.
type fakeSource struct {
	mu      sync.Mutex
	serial  uint32
	entries []registry.Entry
}

var _ registry.Source = (*fakeSource)(nil)

func newFakeSource(entries ...registry.Entry) *fakeSource {
	return &fakeSource{serial: 1, entries: entries}
}

func (f *fakeSource) set(entries ...registry.Entry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = entries
	f.serial++
}

func (f *fakeSource) Active(_ context.Context, at time.Time, caseID string) (*registry.ActiveSet, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	set := &registry.ActiveSet{At: at, Serial: f.serial}
	for _, e := range f.entries {
		if caseID != "" && e.Case != caseID {
			continue
		}
		for _, t := range []time.Time{e.Effective, e.Expires} {
			if t.After(at) && (set.NextChange.IsZero() || t.Before(set.NextChange)) {
				set.NextChange = t
			}
		}
		if at.Before(e.Effective) || (!e.Expires.IsZero() && !at.Before(e.Expires)) {
			continue
		}
		set.Entries = append(set.Entries, e)
	}
	sort.SliceStable(set.Entries, func(i, j int) bool { return set.Entries[i].Value < set.Entries[j].Value })
	return set, nil
}

func (f *fakeSource) Serial(context.Context) (uint32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.serial, nil
}

func domain(name, caseID string) registry.Entry {
	return registry.Entry{Kind: registry.KindDomain, Value: name, Case: caseID, Family: "rustock",
		Effective: time.Date(2011, 3, 16, 0, 0, 0, 0, time.UTC), Expires: time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func host(name, caseID string) registry.Entry {
	e := domain(name, caseID)
	e.Kind = registry.KindHost
	return e
}

// sink is a server under test with its event queue and metrics.
type sink struct {
	*Server
	src    *fakeSource
	events *event.Queue
	reg    *prometheus.Registry
	addr   string // host:port for UDP and TCP
}

// startSink starts a server on a free loopback port with src and opts
// (Listen, Source, Events and Registerer are filled in), and stops it when
// the test ends.
func startSink(tb testing.TB, src *fakeSource, opts Options) *sink {
	tb.Helper()
	s := startSourceSink(tb, src, opts)
	s.src = src
	return s
}

// startSourceSink is startSink for any registry.Source.
func startSourceSink(tb testing.TB, src registry.Source, opts Options) *sink {
	tb.Helper()
	q := event.NewQueue(1 << 16)
	reg := prometheus.NewRegistry()
	if opts.Listen == nil {
		opts.Listen = []string{"127.0.0.1:0"}
	}
	opts.Source, opts.Events, opts.Registerer = src, q, reg
	if opts.Sinkhole.A == nil && opts.Sinkhole.AAAA == nil {
		opts.Sinkhole = Addrs{A: []netip.Addr{netip.MustParseAddr("192.0.2.1")}, AAAA: []netip.Addr{netip.MustParseAddr("2001:db8::1")}}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := New(ctx, opts)
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Run: %v", err)
		}
	})
	return &sink{Server: s, events: q, reg: reg, addr: s.Addr().String()}
}

// exchange sends m over network ("udp" or "tcp") and returns the answer.
func (s *sink) exchange(tb testing.TB, network string, m *dns.Msg) *dns.Msg {
	tb.Helper()
	c := &dns.Client{Net: network, Timeout: 5 * time.Second, UDPSize: 65535}
	r, _, err := c.Exchange(m, s.addr)
	if err != nil {
		tb.Fatalf("%s exchange of %s: %v", network, m.Question[0].String(), err)
	}
	return r
}

// raw sends b as one datagram and returns the answer, or nil when none came
// before a generous deadline.
func (s *sink) raw(tb testing.TB, b []byte) []byte {
	tb.Helper()
	c, err := net.Dial("udp", s.addr)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(b); err != nil {
		tb.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

// nextEvent returns the next queued event.
func (s *sink) nextEvent(tb testing.TB) event.Event {
	tb.Helper()
	select {
	case e := <-s.events.C():
		return e
	case <-time.After(5 * time.Second):
		tb.Fatal("no event")
		return event.Event{}
	}
}

// drainEvents discards queued events.
func (s *sink) drainEvents() {
	for s.events.Len() > 0 {
		<-s.events.C()
	}
}

// counter returns the value of the metric name with labels (name=value
// pairs), 0 if absent.
func (s *sink) counter(tb testing.TB, name string, labels ...string) float64 {
	tb.Helper()
	mfs, err := s.reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue metric
				}
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	return 0
}

func question(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = false
	return m
}

// eventFiller fills event queues in tests.
var eventFiller = event.Event{Protocol: event.ProtoDNS}

// rawTCP sends b with a length prefix on a new TCP connection and returns
// the framed answer, or nil when the server closed the connection.
func (s *sink) rawTCP(tb testing.TB, b []byte) []byte {
	tb.Helper()
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(append([]byte{byte(len(b) >> 8), byte(len(b))}, b...)); err != nil {
		tb.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	return readFramed(c)
}

// readFramed reads one length-prefixed message, nil on error.
func readFramed(c net.Conn) []byte {
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		return nil
	}
	buf := make([]byte, int(l[0])<<8|int(l[1]))
	if _, err := io.ReadFull(c, buf); err != nil {
		return nil
	}
	return buf
}
