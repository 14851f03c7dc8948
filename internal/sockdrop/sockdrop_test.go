package sockdrop

import (
	"runtime"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/testtool"
)

// A socket whose queue overflows reports the datagrams the kernel dropped;
// a fresh one reports none.
func TestDrops(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("sk_drops is read on Linux only")
	}
	rx := testtool.UDPSocket(t)
	if n, ok := Drops(rx); !ok || n != 0 {
		t.Fatalf("fresh socket: drops %d, %v; want 0, true", n, ok)
	}
	const sent = 500
	testtool.Overflow(t, rx, sent)
	n, ok := Drops(rx)
	if !ok || n == 0 || n > sent {
		t.Fatalf("after %d datagrams into a full queue: drops %d, %v", sent, n, ok)
	}
	// What was not dropped is queued: the two add up to what was sent.
	rx.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
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
	if err := SetReceiveBuffer(testtool.UDPSocket(t), ReceiveBuffer); err != nil {
		t.Fatal(err)
	}
}
