package notify

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/mail"
	"os"
	"path/filepath"
	"time"

	"github.com/takedown/takedown/internal/netscope"
	"github.com/takedown/takedown/internal/store"
)

// Options configure a Notifier.
type Options struct {
	// Store holds subscribers and the ledger (required).
	Store Store
	// Source holds the events (required).
	Source Source
	// Mailer sends messages (required except for DryRun).
	Mailer Mailer
	// Message is what every message says about its sender; From is
	// required.
	Message MessageOptions
	// Flush, if set, is called before a day is collected so that the
	// aggregates reflect every stored event (the pipeline's
	// EventStore.Flush in serve).
	Flush func(context.Context) error
	// Tries is how many attempts one Send or Retry call makes per
	// delivery before leaving it pending for later; default 3.
	Tries int
	// MaxAttempts is how many temporary failures in all make a delivery
	// failed; default 20.
	MaxAttempts int
	// Backoff is the wait after the n-th failed attempt (n from 1);
	// default one minute doubling up to an hour.
	Backoff func(n int) time.Duration
	// Lease is how long a claimed delivery is reserved for one process;
	// default 10 minutes (longer than one SMTP conversation).
	Lease time.Duration
	// Logger; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// DefaultBackoff waits one minute after the first failure, doubling up to
// an hour.
func DefaultBackoff(n int) time.Duration {
	d := time.Minute
	for i := 1; i < n && d < time.Hour; i++ {
		d *= 2
	}
	return min(d, time.Hour)
}

// Notifier composes and delivers the daily reports.
type Notifier struct {
	o    Options
	from string // envelope sender
}

// New returns a Notifier.
func New(o Options) (*Notifier, error) {
	if o.Store == nil || o.Source == nil {
		return nil, errors.New("notify: a store and an event source are required")
	}
	a, err := mail.ParseAddress(o.Message.From)
	if err != nil {
		return nil, fmt.Errorf("notify: sender %q: %w", o.Message.From, err)
	}
	o.Tries = cmp.Or(o.Tries, 3)
	o.MaxAttempts = cmp.Or(o.MaxAttempts, 20)
	o.Lease = cmp.Or(o.Lease, 10*time.Minute)
	if o.Backoff == nil {
		o.Backoff = DefaultBackoff
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Notifier{o: o, from: a.Address}, nil
}

// Outcome is what happened to one (subscriber, day) report.
type Outcome struct {
	Subscriber string    `json:"subscriber"`
	Day        time.Time `json:"day"`
	Rows       int       `json:"rows"`
	MessageID  string    `json:"message_id,omitempty"`
	State      State     `json:"state"`
	Attempts   int       `json:"attempts"`
	Error      string    `json:"error,omitempty"`
	// Busy is set when another process held the delivery's lease or its
	// next attempt was not due.
	Busy bool `json:"busy,omitempty"`
}

// Prepared is one composed report.
type Prepared struct {
	Subscriber Subscriber
	Rows       int
	MessageID  string
	Message    []byte
}

// Prepare composes the report of every subscriber with data on day
// (subscribers without data get none), without touching the ledger. skip
// lists subscribers to leave out.
func (n *Notifier) Prepare(ctx context.Context, day time.Time, skip map[string]bool) ([]Prepared, error) {
	day = time.Unix(store.DayOf(day), 0).UTC()
	subs, err := n.o.Store.Subscribers(ctx)
	if err != nil {
		return nil, err
	}
	var todo []Subscriber
	for _, s := range subs {
		if !skip[s.ID] {
			todo = append(todo, s)
		}
	}
	if len(todo) == 0 {
		return nil, nil
	}
	if n.o.Flush != nil {
		if err := n.o.Flush(ctx); err != nil {
			return nil, fmt.Errorf("flush aggregates: %w", err)
		}
	}
	sets := make([]netscope.Networks, len(todo))
	for i := range todo {
		sets[i] = todo[i].Networks
	}
	rows, err := Collect(ctx, n.o.Source, day, sets)
	if err != nil {
		return nil, err
	}
	now := n.o.Now().UTC()
	var out []Prepared
	for i := range todo {
		if len(rows[i]) == 0 {
			continue
		}
		msg, id, err := Compose(&todo[i], day, rows[i], n.o.Message, now)
		if err != nil {
			return nil, err
		}
		out = append(out, Prepared{Subscriber: todo[i], Rows: len(rows[i]), MessageID: id, Message: msg})
	}
	return out, nil
}

// DryRun composes day's reports and writes each message to dir as
// <day>-<subscriber>.eml, without sending or touching the ledger. It
// returns the files written.
func (n *Notifier) DryRun(ctx context.Context, day time.Time, dir string) ([]string, error) {
	ps, err := n.Prepare(ctx, day, nil)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	var files []string
	for _, p := range ps {
		f := filepath.Join(dir, fmt.Sprintf("%s-%s.eml", day.UTC().Format(time.DateOnly), p.Subscriber.ID))
		if err := os.WriteFile(f, p.Message, 0o640); err != nil {
			return files, err
		}
		files = append(files, f)
	}
	return files, nil
}

// Send delivers day's reports: it composes a report for every subscriber
// with data that has none in the ledger for day, records it as pending
// with its Message-ID, then sends every pending delivery of day. A
// (subscriber, day) is composed once and sent until the server accepts it
// once; running Send again for the same day sends nothing new.
func (n *Notifier) Send(ctx context.Context, day time.Time) ([]Outcome, error) {
	day = time.Unix(store.DayOf(day), 0).UTC()
	if err := n.expireCommitting(ctx); err != nil {
		return nil, err
	}
	have, err := n.o.Store.Deliveries(ctx, day, day.Add(24*time.Hour))
	if err != nil {
		return nil, err
	}
	skip := map[string]bool{}
	for _, d := range have {
		skip[d.Subscriber] = true
	}
	ps, err := n.Prepare(ctx, day, skip)
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		d := Delivery{Subscriber: p.Subscriber.ID, Day: day, MessageID: p.MessageID, State: StatePending, Created: n.o.Now().UTC(),
			Rows: p.Rows, Recipients: p.Subscriber.Contacts, Message: p.Message}
		stored, created, err := n.o.Store.CreateDelivery(ctx, &d)
		if err != nil {
			return nil, err
		}
		if created {
			n.o.Logger.Info("report composed", "subscriber", d.Subscriber, "day", day.Format(time.DateOnly), "rows", d.Rows, "message_id", d.MessageID)
		}
		have = append(have, stored)
	}
	return n.deliverAll(ctx, have)
}

// RetryDue sends every pending delivery whose next attempt is due, of any
// day.
func (n *Notifier) RetryDue(ctx context.Context) ([]Outcome, error) {
	if err := n.expireCommitting(ctx); err != nil {
		return nil, err
	}
	due, err := n.o.Store.Due(ctx, n.o.Now())
	if err != nil {
		return nil, err
	}
	return n.deliverAll(ctx, due)
}

// deliverAll delivers the pending ones of ds and returns the outcome of
// each, in order; the others are reported as they stand.
func (n *Notifier) deliverAll(ctx context.Context, ds []Delivery) ([]Outcome, error) {
	var out []Outcome
	for _, d := range ds {
		if d.State != StatePending {
			out = append(out, outcome(&d, false))
			continue
		}
		o, err := n.deliver(ctx, d)
		if err != nil {
			return out, err
		}
		out = append(out, o)
	}
	return out, nil
}

// expireCommitting turns the deliveries whose sender stopped between the
// end of DATA and recording the answer into StateInDoubt.
func (n *Notifier) expireCommitting(ctx context.Context) error {
	k, err := n.o.Store.ExpireCommitting(ctx, n.o.Now(), InDoubtReason)
	if err != nil {
		return err
	}
	if k > 0 {
		n.o.Logger.Warn("reports in doubt: a sender stopped between the end of DATA and recording the answer; not re-sent by themselves",
			"reports", k, "see", "takedown notify status")
	}
	return nil
}

func outcome(d *Delivery, busy bool) Outcome {
	return Outcome{Subscriber: d.Subscriber, Day: d.Day, Rows: d.Rows, MessageID: d.MessageID, State: d.State, Attempts: d.Attempts, Error: d.LastError, Busy: busy}
}

// deliver makes up to Tries attempts at one pending delivery. The outcome
// of an attempt is recorded even if ctx is cancelled meanwhile: a message
// the server accepted must be recorded as sent.
func (n *Notifier) deliver(ctx context.Context, d Delivery) (Outcome, error) {
	if n.o.Mailer == nil {
		return Outcome{}, errors.New("notify: no mailer configured")
	}
	rec := context.WithoutCancel(ctx)
	for try := 0; ; try++ {
		now := n.o.Now()
		cd, ok, err := n.o.Store.ClaimDelivery(ctx, d.Subscriber, d.Day, now, now.Add(n.o.Lease))
		if err != nil {
			return Outcome{}, err
		}
		if !ok {
			return outcome(&d, true), nil
		}
		log := n.o.Logger.With("subscriber", cd.Subscriber, "day", cd.Day.Format(time.DateOnly), "message_id", cd.MessageID)
		commit := func() error { return n.o.Store.MarkCommitting(rec, cd.Subscriber, cd.Day) }
		serr := n.o.Mailer.Send(ctx, n.from, cd.Recipients, cd.Message, commit)
		cd.Attempts++
		cd.NextAttempt = time.Time{}
		var pe *PartialError
		var se *SendError
		var de *InDoubtError
		switch {
		case errors.As(serr, &de):
			cd.State, cd.LastError = StateInDoubt, "in doubt: "+serr.Error()+"; check the relay's log for the Message-ID, then re-send with --resend-in-doubt if it is not there"
			log.Warn("report in doubt: not re-sent by itself", "err", serr)
		case serr == nil || errors.As(serr, &pe):
			cd.State, cd.Sent, cd.LastError = StateSent, n.o.Now().UTC(), ""
			if pe != nil {
				cd.LastError = pe.Error()
			}
			log.Info("report sent", "attempts", cd.Attempts)
		case errors.As(serr, &se) && !se.Temporary:
			cd.State, cd.LastError = StateFailed, serr.Error()
			log.Warn("report refused", "err", serr)
		case cd.Attempts >= n.o.MaxAttempts:
			cd.State, cd.LastError = StateFailed, fmt.Sprintf("gave up after %d attempts: %v", cd.Attempts, serr)
			log.Warn("report given up", "err", serr, "attempts", cd.Attempts)
		default:
			cd.State, cd.LastError = StatePending, serr.Error()
			cd.NextAttempt = n.o.Now().Add(n.o.Backoff(cd.Attempts)).UTC()
			log.Info("report deferred", "err", serr, "attempts", cd.Attempts, "next_attempt", cd.NextAttempt)
		}
		if err := n.o.Store.RecordAttempt(rec, &cd); err != nil {
			return Outcome{}, fmt.Errorf("record delivery %s %s: %w", cd.Subscriber, cd.Day.Format(time.DateOnly), err)
		}
		if cd.State != StatePending || try+1 >= n.o.Tries || ctx.Err() != nil {
			return outcome(&cd, false), nil
		}
		t := time.NewTimer(time.Until(cd.NextAttempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return outcome(&cd, false), nil
		case <-t.C:
		}
		d = cd
	}
}

// WriteStatus writes ledger rows as a table.
func WriteStatus(w io.Writer, ds []Delivery) error {
	if _, err := fmt.Fprintf(w, "%-10s  %-24s  %-7s  %5s  %8s  %s\n", "DAY", "SUBSCRIBER", "STATE", "ROWS", "ATTEMPTS", "DETAIL"); err != nil {
		return err
	}
	for _, d := range ds {
		detail := d.LastError
		switch {
		case d.State == StateSent && detail == "":
			detail = "sent " + d.Sent.Format(time.RFC3339)
		case d.State == StatePending && !d.NextAttempt.IsZero():
			detail = "next attempt " + d.NextAttempt.Format(time.RFC3339) + ": " + detail
		}
		if _, err := fmt.Fprintf(w, "%-10s  %-24s  %-7s  %5d  %8d  %s\n", d.Day.Format(time.DateOnly), d.Subscriber, d.State, d.Rows, d.Attempts, detail); err != nil {
			return err
		}
	}
	return nil
}
