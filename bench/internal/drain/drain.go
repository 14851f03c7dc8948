// Package drain stands in for the pipeline in the sinkhole benchmarks: it
// empties an event queue in one goroutine and counts the events, so that a
// benchmark measures the listener and its handoff, not the store. It is not
// for use outside bench/.
package drain

import (
	"context"
	"fmt"
	"io"

	"github.com/takedown/takedown/internal/event"
)

// Counter drains one queue.
type Counter struct {
	q    *event.Queue
	n    uint64
	done chan struct{}
}

// Start drains q until ctx ends, then takes what is left in it.
func Start(ctx context.Context, q *event.Queue) *Counter {
	c := &Counter{q: q, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			select {
			case <-q.C():
				c.n++
			case <-ctx.Done():
				for len(q.C()) > 0 {
					<-q.C()
					c.n++
				}
				return
			}
		}
	}()
	return c
}

// Wait waits until the queue is drained (after ctx ended) and returns the
// number of events taken.
func (c *Counter) Wait() uint64 {
	<-c.done
	return c.n
}

// Report waits, then prints "events=N dropped=M", the line the run.sh
// scripts read.
func (c *Counter) Report(w io.Writer) {
	fmt.Fprintf(w, "events=%d dropped=%d\n", c.Wait(), c.q.Dropped())
}
