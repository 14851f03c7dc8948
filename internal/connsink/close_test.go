package connsink

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/event"
)

// Close releases a listener that never ran, twice without harm; a Run
// after it returns at once; the port can be bound again.
func TestCloseNeverRun(t *testing.T) {
	for _, kind := range []Kind{KindHTTP, KindTCP, KindUDP} {
		t.Run(string(kind), func(t *testing.T) {
			l, err := New(Options{Kind: kind, Addr: "127.0.0.1:0", Handoff: event.NewQueue(1)})
			if err != nil {
				t.Fatal(err)
			}
			addr := l.Addr().String()
			for range 2 {
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
			}
			done := make(chan error, 1)
			go func() { done <- l.Run(context.Background()) }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Run after Close: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Run after Close did not return")
			}
			if kind == KindUDP {
				pc, err := net.ListenPacket("udp", addr)
				if err != nil {
					t.Fatalf("udp %s still bound: %v", addr, err)
				}
				pc.Close()
				return
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatalf("tcp %s still bound: %v", addr, err)
			}
			ln.Close()
		})
	}
}
