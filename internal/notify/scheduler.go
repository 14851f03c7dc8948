package notify

import (
	"cmp"
	"context"
	"log/slog"
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
		if !t.Before(today.Add(s.At)) && !done.Equal(yesterday) {
			outs, err := s.Notifier.Send(ctx, yesterday)
			if err != nil {
				log.Error("daily reports failed", "day", yesterday.Format(time.DateOnly), "err", err)
			} else {
				done = yesterday
				log.Info("daily reports done", "day", yesterday.Format(time.DateOnly), "reports", len(outs))
			}
		}
		if _, err := s.Notifier.RetryDue(ctx); err != nil {
			log.Error("report retries failed", "err", err)
		}
		next := t.Add(every)
		if at := today.Add(s.At); at.After(t) && at.Before(next) {
			next = at
		} else if at := today.AddDate(0, 0, 1).Add(s.At); at.Before(next) {
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
