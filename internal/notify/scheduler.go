package notify

import (
	"cmp"
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/takedown/takedown/internal/store"
)

// Scheduler runs the notifier inside serve: once a day, at a UTC time of
// day, it sends the previous day's reports, and every RetryEvery it
// retries the deferred deliveries of any day.
type Scheduler struct {
	// Notifier does the work (required).
	Notifier *Notifier
	// At is the time after UTC midnight the previous day's reports are
	// sent, e.g. 6h.
	At time.Duration
	// RetryEvery is how often deferred deliveries are retried; default 5
	// minutes.
	RetryEvery time.Duration
	// Logger; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time

	mu sync.Mutex // guards Notifier and At once Run started (Set)
}

// Set replaces the notifier and the time of day for every later run (a
// configuration reload); a run in progress finishes with the old ones.
func (s *Scheduler) Set(n *Notifier, at time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Notifier, s.At = n, at
}

func (s *Scheduler) current() (*Notifier, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Notifier, s.At
}

// Run sends reports until ctx is done; it returns nil then. Failures are
// logged and retried at the next tick: the ledger makes every run
// idempotent, so a restart at any time sends nothing twice (docs/notifications.md).
func (s *Scheduler) Run(ctx context.Context) error {
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := s.Now
	if now == nil {
		now = time.Now
	}
	every := cmp.Or(s.RetryEvery, 5*time.Minute)
	var done time.Time // the last day whose reports were sent
	for {
		t := now().UTC()
		today := time.Unix(store.DayOf(t), 0).UTC()
		yesterday := today.AddDate(0, 0, -1)
		notifier, sendAt := s.current()
		if !t.Before(today.Add(sendAt)) && !done.Equal(yesterday) {
			outs, err := notifier.Send(ctx, yesterday)
			if err != nil {
				log.Error("daily reports failed", "day", yesterday.Format(time.DateOnly), "err", err)
			} else {
				done = yesterday
				log.Info("daily reports done", "day", yesterday.Format(time.DateOnly), "reports", len(outs))
			}
		}
		if _, err := notifier.RetryDue(ctx); err != nil {
			log.Error("report retries failed", "err", err)
		}
		next := t.Add(every)
		if at := today.Add(sendAt); at.After(t) && at.Before(next) {
			next = at
		} else if at := today.AddDate(0, 0, 1).Add(sendAt); at.Before(next) {
			next = at
		}
		timer := time.NewTimer(next.Sub(t))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		}
	}
}
