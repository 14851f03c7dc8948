package registry

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Snapshot is the registry as a [Watcher] read it at one instant:
// immutable once published, shared by every reader.
type Snapshot struct {
	// At is when it was read.
	At time.Time
	// Set is what was in force at Set.At, with the registry's serial and
	// the next instant an entry starts or ends (Set.NextChange: an
	// expiry, a revocation's instant, a generated name's margin edge).
	Set *ActiveSet
	// Index answers which entry covers a name or an address (case lookup).
	Index *Index
}

// NewSnapshot indexes set, read at at.
func NewSnapshot(at time.Time, set *ActiveSet) *Snapshot {
	if set == nil {
		set = &ActiveSet{At: at}
	}
	return &Snapshot{At: at, Set: set, Index: NewIndex(set)}
}

// WatcherOptions configure a Watcher. Zero values take the defaults.
type WatcherOptions struct {
	Source Source        // required
	Poll   time.Duration // how often the serial is polled; default 1s
	Logger *slog.Logger  // nil discards
	// Now and After are the clock (test seams); nil: time.Now, time.After.
	Now   func() time.Time
	After func(time.Duration) <-chan time.Time
}

// Watcher is the one reader of the registry that serving roles share: it
// polls the serial (at once, too, when a [Notifier] source says the
// registry changed), reads the active set again when it changed or when
// the snapshot's next change is due (at its instant, not at the next
// poll), and publishes each new [Snapshot] through an atomic pointer and a
// notification to its subscribers. Readers never touch the Source.
//
// Lock: mu guards the subscribers and orders publications; the read path
// (Load) takes no lock.
type Watcher struct {
	src   Source
	log   *slog.Logger
	now   func() time.Time
	after func(time.Duration) <-chan time.Time
	poll  atomic.Int64 // nanoseconds
	cur   atomic.Pointer[Snapshot]
	wake  chan struct{} // a publication or a new poll interval: Run recomputes its wait

	readFailures atomic.Uint64 // polls and reads that failed

	mu   sync.Mutex
	subs map[chan struct{}]struct{}
}

// NewWatcher reads the registry once, so that Load has a snapshot before
// Run starts.
func NewWatcher(ctx context.Context, opts WatcherOptions) (*Watcher, error) {
	if opts.Source == nil {
		return nil, errors.New("registry watcher needs a source")
	}
	w := &Watcher{src: opts.Source, log: opts.Logger, now: opts.Now, after: opts.After,
		wake: make(chan struct{}, 1), subs: map[chan struct{}]struct{}{}}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if w.now == nil {
		w.now = time.Now
	}
	if w.after == nil {
		w.after = time.After
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	w.poll.Store(int64(opts.Poll))
	s, err := w.Read(ctx)
	if err != nil {
		return nil, err
	}
	w.cur.Store(s)
	return w, nil
}

// Load returns the snapshot in force; it never blocks.
func (w *Watcher) Load() *Snapshot { return w.cur.Load() }

// SetPoll changes the poll interval (a reload of registry.poll); zero or
// less is the default, one second.
func (w *Watcher) SetPoll(d time.Duration) {
	if d <= 0 {
		d = time.Second
	}
	w.poll.Store(int64(d))
	w.nudge()
}

// Subscribe returns a channel that receives after every publication
// (coalesced: a reader that is behind sees one notification and then
// Loads the latest snapshot), and the function that ends the subscription.
func (w *Watcher) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	w.subs[ch] = struct{}{}
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		delete(w.subs, ch)
		w.mu.Unlock()
	}
}

// Read reads the registry now and builds a snapshot without publishing it
// (a reload's prepare step).
func (w *Watcher) Read(ctx context.Context) (*Snapshot, error) {
	at := w.now()
	set, err := w.src.Active(ctx, at, "")
	if err != nil {
		return nil, err
	}
	return NewSnapshot(at, set), nil
}

// Publish puts s in force and notifies the subscribers, unless a snapshot
// read later is in force already (a reload's snapshot committed after the
// watcher published a newer one): then it keeps that one and returns
// false. It never blocks on a subscriber.
func (w *Watcher) Publish(s *Snapshot) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if cur := w.cur.Load(); cur != nil && s.At.Before(cur.At) {
		return false
	}
	w.cur.Store(s)
	for ch := range w.subs {
		select {
		case ch <- struct{}{}:
		default: // a notification is pending already
		}
	}
	w.nudge()
	w.log.Debug("registry snapshot published", "serial", s.Set.Serial, "entries", len(s.Set.Entries), "next_change", s.Set.NextChange)
	return true
}

// Refresh reads the registry now and publishes what it read.
func (w *Watcher) Refresh(ctx context.Context) error {
	s, err := w.Read(ctx)
	if err != nil {
		return err
	}
	w.Publish(s)
	return nil
}

func (w *Watcher) nudge() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run polls until ctx ends and returns nil. It reads the registry again
// when the serial changed, and at the snapshot's next change, at its
// instant; a failed read is logged and retried a poll interval later.
// When the source is a [Notifier], each of its values is a poll now: the
// serial is read at once, and the registry when it changed.
func (w *Watcher) Run(ctx context.Context) error {
	var changes <-chan struct{} // nil (never ready) unless the source notifies
	if n, ok := w.src.(Notifier); ok {
		changes = n.Changes(ctx)
	}
	var backoff bool // the last read failed: wait a whole poll interval
	for {
		poll := time.Duration(w.poll.Load())
		wait := poll
		if next, now := w.Load().Set.NextChange, w.now(); !backoff && !next.IsZero() {
			wait = min(wait, max(next.Sub(now), 0))
		}
		backoff = false
		select {
		case <-ctx.Done():
			return nil
		case <-w.wake:
			continue
		case _, ok := <-changes:
			if !ok {
				// Closed: ctx is ending, or the notifier gave up.
				// Either way, polling goes on without it.
				changes = nil
				continue
			}
		case <-w.after(wait):
		}
		cur := w.Load()
		due := !cur.Set.NextChange.IsZero() && !w.now().Before(cur.Set.NextChange)
		if !due {
			serial, err := w.src.Serial(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				w.readFailures.Add(1)
				w.log.Warn("registry poll failed", "err", err)
				continue
			}
			due = serial != cur.Set.Serial
		}
		if !due {
			continue
		}
		if err := w.Refresh(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// Do not spin on a next change that cannot be read.
			w.readFailures.Add(1)
			w.log.Warn("registry read failed; keeping the snapshot in force", "err", err)
			backoff = true
		}
		select {
		case <-w.wake: // its own publication: the next wait is computed anyway
		default:
		}
	}
}

// ReadFailures is the number of polls and reads of the registry that failed
// since the watcher started (the snapshot in force was kept each time).
func (w *Watcher) ReadFailures() uint64 { return w.readFailures.Load() }
