package sockdrop

import (
	"net"
	"runtime"
	"testing"
	"time"
)

// A socket whose queue overflows reports the datagrams the kernel dropped;
// a fresh one reports none.
func TestDrops(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("sk_drops is read on Linux only")
	}
	rx, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	if n, ok := Drops(rx); !ok || n != 0 {
		t.Fatalf("fresh socket: drops %d, %v; want 0, true", n, ok)
	}
	if err := rx.SetReadBuffer(1); err != nil { // the kernel's minimum
		t.Fatal(err)
	}
	tx, err := net.DialUDP("udp", nil, rx.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	p := make([]byte, 1000)
	const sent = 500
	for range sent {
		if _, err := tx.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	n, ok := Drops(rx)
	if !ok || n == 0 || n > sent {
		t.Fatalf("after %d datagrams into a full queue: drops %d, %v", sent, n, ok)
	}
	// What was not dropped is queued: the two add up to what was sent.
	rx.SetReadDeadline(deadline())
	queued := 0
	buf := make([]byte, 2000)
	for {
		if _, err := rx.Read(buf); err != nil {
			break
		}
		queued++
	}
	if got := uint64(queued) + n; got != sent {
		t.Errorf("queued %d + dropped %d = %d, want %d", queued, n, got, sent)
	}
}

func TestSetReceiveBuffer(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("linux only")
	}
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := SetReceiveBuffer(c, ReceiveBuffer); err != nil {
		t.Fatal(err)
	}
}

func deadline() (t time.Time) { return time.Now().Add(200 * time.Millisecond) }
