package selfcheck

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/store"
)

// blockingStore holds every lookup until release is closed.
type blockingStore struct {
	started chan struct{}
	release chan struct{}
}

func (b *blockingStore) Lookup(ctx context.Context, _ netip.Addr, _, _ time.Time) ([]store.DayIP, error) {
	b.started <- struct{}{}
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	return nil, nil
}

// However many networks ask, each within its own rate limit, at most
// MaxConcurrent lookups run: the next visitor gets 503 with Retry-After at
// once (counted as busy), and is served again when a lookup ends.
func TestMaxConcurrentLookups(t *testing.T) {
	st := &blockingStore{started: make(chan struct{}, 8), release: make(chan struct{})}
	f := newFixture(t, func(o *Options) { o.Lookup = st; o.MaxConcurrent = 2 })
	done := make(chan int, 2)
	for _, remote := range []string{"192.0.2.1:1000", "192.0.2.2:1000"} {
		go func() {
			done <- f.do(t, httptest.NewRequest(http.MethodGet, APIPath, nil), remote).Code
		}()
	}
	for range 2 {
		select {
		case <-st.started:
		case <-time.After(10 * time.Second):
			t.Fatal("the first two lookups did not start")
		}
	}
	rec := f.do(t, httptest.NewRequest(http.MethodGet, APIPath, nil), "192.0.2.3:1000")
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("a third visitor while two lookups run: %d, Retry-After %q; want 503 and 1", rec.Code, rec.Header().Get("Retry-After"))
	}
	if got := f.srv.Stats(); got.Refused == 0 {
		t.Errorf("the busy refusal was not counted: %+v", got)
	}
	close(st.release)
	for range 2 {
		if code := <-done; code != http.StatusOK {
			t.Errorf("a lookup that ran: %d", code)
		}
	}
	if rec := f.do(t, httptest.NewRequest(http.MethodGet, APIPath, nil), "192.0.2.3:1000"); rec.Code != http.StatusOK {
		t.Errorf("after the lookups ended: %d; want 200", rec.Code)
	}
}
