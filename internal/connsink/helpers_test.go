package connsink

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/proxyproto"
)

// sink is a listener started for a test, with its queue and registry.
type sink struct {
	*Listener
	q   *event.Queue
	reg *prometheus.Registry
}

// startSink starts a listener of kind on 127.0.0.1:0; change adjusts the
// options first. It stops when the test ends.
func startSink(tb testing.TB, kind Kind, change func(*Options)) *sink {
	tb.Helper()
	q := event.NewQueue(100000)
	reg := prometheus.NewRegistry()
	opts := Options{Kind: kind, Addr: "127.0.0.1:0", Sensor: "test", Handoff: q, Registerer: reg, DataDir: tb.TempDir()}
	if change != nil {
		change(&opts)
	}
	l, err := New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := l.Run(ctx); err != nil {
			tb.Errorf("Run: %v", err)
		}
	}()
	tb.Cleanup(func() { cancel(); wg.Wait() })
	return &sink{Listener: l, q: q, reg: reg}
}

// next waits for the next event (the test's own timeout bounds the wait).
func (s *sink) next(tb testing.TB) event.Event {
	tb.Helper()
	select {
	case ev := <-s.q.C():
		return ev
	case <-time.After(30 * time.Second):
		tb.Fatal("no event within 30s")
		return event.Event{}
	}
}

func (s *sink) port() int { return s.Addr().(*net.TCPAddr).Port }

// counter returns the value of a takedown_conn_* counter of this listener.
func (s *sink) counter(tb testing.TB, name string, extra ...string) float64 {
	tb.Helper()
	var m *metrics = s.m
	switch name {
	case "events":
		return value(m.events)
	case "dropped":
		return value(m.dropped)
	case "active":
		return value(m.active)
	case "bad":
		return value(m.badReq)
	case "tlsfail":
		return value(m.tlsFail)
	case "rejected":
		return value(m.rejected.WithLabelValues(s.name, extra[0]).(prometheus.Metric))
	}
	tb.Fatalf("unknown counter %s", name)
	return 0
}

func trustLoopback(tb testing.TB) *proxyproto.Trust {
	tb.Helper()
	t, err := proxyproto.ParseTrust([]string{"127.0.0.0/8", "::1/128"})
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

// dialFrom connects to addr from the loopback source address src.
func dialFrom(tb testing.TB, src, addr string) net.Conn {
	tb.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// value reads a counter or gauge.
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}
