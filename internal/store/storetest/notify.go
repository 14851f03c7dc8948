package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/netscope"
	"github.com/takedown/takedown/internal/notify"
	"github.com/takedown/takedown/internal/store"
)

// NotifyStore is a backend's notification store: subscribers, the
// delivery ledger and the events the reports are built from.
type NotifyStore interface {
	notify.Store
	notify.Source
}

// OpenNotify returns, for one subtest, the notification store of a new,
// empty store and the event store on the same database (to write the
// events its Source reads); the backend closes them in tb.Cleanup.
type OpenNotify func(tb testing.TB) (NotifyStore, store.EventStore)

// RunNotify runs the notification store's suite against stores made by
// open: subscribers, the ledger's states, leases and requeues, and the
// Source reads. Times are passed explicitly (now, until): no test waits
// for a lease to run out.
func RunNotify(t *testing.T, open OpenNotify) {
	t.Run("Subscribers", func(t *testing.T) { testNotifySubscribers(t, open) })
	t.Run("AddSubscribersAllOrNone", func(t *testing.T) { testNotifyAddAllOrNone(t, open) })
	t.Run("CreateDelivery", func(t *testing.T) { testNotifyCreate(t, open) })
	t.Run("ClaimLease", func(t *testing.T) { testNotifyClaimLease(t, open) })
	t.Run("CreateRace", func(t *testing.T) { testNotifyCreateRace(t, open) })
	t.Run("ClaimRace", func(t *testing.T) { testNotifyClaimRace(t, open) })
	t.Run("RecordAttempt", func(t *testing.T) { testNotifyRecordAttempt(t, open) })
	t.Run("Committing", func(t *testing.T) { testNotifyCommitting(t, open) })
	t.Run("Requeue", func(t *testing.T) { testNotifyRequeue(t, open) })
	t.Run("DueAndDeliveries", func(t *testing.T) { testNotifyDueAndDeliveries(t, open) })
	t.Run("Source", func(t *testing.T) { testNotifySource(t, open) })
}

// notifyDay is the ledger's day; notifyT0 a moment in it, to the
// nanosecond, which every store must give back unchanged.
var (
	notifyDay = time.Date(2011, 9, 13, 0, 0, 0, 0, time.UTC)
	notifyT0  = notifyDay.Add(6*time.Hour + 123456789)
)

func notifySubscriber(tb testing.TB, id, nets string, contacts ...string) notify.Subscriber {
	tb.Helper()
	s := notify.Subscriber{ID: id, Org: "Org " + id, Contacts: contacts, Created: notifyT0, Formats: []notify.Format{notify.FormatXARF4, notify.FormatShadowserver}, TLP: "green"}
	if err := s.NormalizeWith(nets, ""); err != nil {
		tb.Fatal(err)
	}
	return s
}

func notifySubscribers(tb testing.TB, s NotifyStore) []notify.Subscriber {
	tb.Helper()
	subs, err := s.Subscribers(tb.Context())
	if err != nil {
		tb.Fatalf("Subscribers: %v", err)
	}
	return subs
}

func notifySubscriberIDs(tb testing.TB, s NotifyStore) []string {
	tb.Helper()
	var ids []string
	for _, sub := range notifySubscribers(tb, s) {
		ids = append(ids, sub.ID)
	}
	return ids
}

func testNotifySubscribers(t *testing.T, open OpenNotify) {
	s, _ := open(t)
	if subs := notifySubscribers(t, s); len(subs) != 0 {
		t.Fatalf("a new store has subscribers: %+v", subs)
	}
	b := notifySubscriber(t, "isp-b", "AS64500, 198.51.100.0/24, 2001:db8::/32, nl", "abuse@isp-b.example", "noc@isp-b.example")
	a := notifySubscriber(t, "isp-a", "AS64501", "abuse@isp-a.example")
	a.Formats = []notify.Format{notify.FormatXARF02}
	if err := s.AddSubscribers(t.Context(), []notify.Subscriber{b, a}); err != nil {
		t.Fatal(err)
	}
	// Every field back as it went in, ordered by ID.
	if got, want := notifySubscribers(t, s), []notify.Subscriber{a, b}; !reflect.DeepEqual(got, want) {
		t.Fatalf("subscribers\n got %+v\nwant %+v", got, want)
	}
	if err := s.RemoveSubscriber(t.Context(), "isp-a"); err != nil {
		t.Fatal(err)
	}
	if got := notifySubscriberIDs(t, s); !slices.Equal(got, []string{"isp-b"}) {
		t.Fatalf("after removing isp-a: %v", got)
	}
	for _, id := range []string{"isp-a", "nobody"} {
		if err := s.RemoveSubscriber(t.Context(), id); !errors.Is(err, notify.ErrNotFound) {
			t.Errorf("RemoveSubscriber(%s) = %v, want ErrNotFound", id, err)
		}
	}
	// A removed ID can be added again.
	if err := s.AddSubscribers(t.Context(), []notify.Subscriber{a}); err != nil {
		t.Fatalf("re-adding a removed subscriber: %v", err)
	}
}

// An ID already taken, in the store or earlier in the same list, fails the
// whole list with ErrExists.
func testNotifyAddAllOrNone(t *testing.T, open OpenNotify) {
	s, _ := open(t)
	a := notifySubscriber(t, "isp-a", "AS64500", "abuse@isp-a.example")
	if err := s.AddSubscribers(t.Context(), []notify.Subscriber{a}); err != nil {
		t.Fatal(err)
	}
	c := notifySubscriber(t, "isp-c", "AS64502", "abuse@isp-c.example")
	d := notifySubscriber(t, "isp-d", "AS64503", "abuse@isp-d.example")
	taken := a
	taken.Org = "Someone else"
	for name, list := range map[string][]notify.Subscriber{
		"taken in the store": {c, taken},
		"taken in the list":  {c, d, d},
	} {
		if err := s.AddSubscribers(t.Context(), list); !errors.Is(err, notify.ErrExists) {
			t.Errorf("%s: AddSubscribers = %v, want ErrExists", name, err)
		}
		if got, want := notifySubscribers(t, s), []notify.Subscriber{a}; !reflect.DeepEqual(got, want) {
			t.Errorf("%s: after a refused list the store holds %+v, want only isp-a unchanged", name, got)
		}
	}
}

// notifyDelivery is a composed delivery of sub for day.
func notifyDelivery(sub string, day time.Time) notify.Delivery {
	return notify.Delivery{
		Subscriber: sub, Day: day, MessageID: fmt.Sprintf("<%s.%s@takedown.example>", day.Format("20060102"), sub),
		State: notify.StatePending, Created: notifyT0, Rows: 3, Recipients: []string{"abuse@" + sub + ".example", "noc@" + sub + ".example"},
		Message: []byte("Subject: report for " + sub + "\r\n\r\nbody\x00\xff\r\n"),
	}
}

func notifyCreate(tb testing.TB, s NotifyStore, d notify.Delivery) notify.Delivery {
	tb.Helper()
	got, created, err := s.CreateDelivery(tb.Context(), &d)
	if err != nil {
		tb.Fatalf("CreateDelivery(%s): %v", d.Subscriber, err)
	}
	if !created {
		tb.Fatalf("CreateDelivery(%s): not created", d.Subscriber)
	}
	return got
}

func notifyClaim(tb testing.TB, s NotifyStore, sub string, day, now, until time.Time) (notify.Delivery, bool) {
	tb.Helper()
	d, ok, err := s.ClaimDelivery(tb.Context(), sub, day, now, until)
	if err != nil {
		tb.Fatalf("ClaimDelivery(%s): %v", sub, err)
	}
	return d, ok
}

// notifyOne returns the ledger entry of (sub, day), without its message.
func notifyOne(tb testing.TB, s NotifyStore, sub string, day time.Time) notify.Delivery {
	tb.Helper()
	ds, err := s.Deliveries(tb.Context(), day, day.Add(24*time.Hour))
	if err != nil {
		tb.Fatalf("Deliveries: %v", err)
	}
	for _, d := range ds {
		if d.Subscriber == sub {
			return d
		}
	}
	tb.Fatalf("no delivery of %s on %s", sub, day.Format(time.DateOnly))
	return notify.Delivery{}
}

func testNotifyCreate(t *testing.T, open OpenNotify) {
	s, _ := open(t)
	d := notifyDelivery("isp-a", notifyDay.Add(13*time.Hour)) // any moment of the day names it
	want := d
	want.Day = notifyDay
	if got := notifyCreate(t, s, d); !reflect.DeepEqual(got, want) {
		t.Fatalf("created\n got %+v\nwant %+v", got, want)
	}
	// A second composition of the same (subscriber, day) is not stored:
	// the first one is returned, message and Message-ID included.
	again := notifyDelivery("isp-a", notifyDay)
	again.MessageID, again.Message, again.Rows = "<other@takedown.example>", []byte("another message"), 9
	got, created, err := s.CreateDelivery(t.Context(), &again)
	if err != nil || created {
		t.Fatalf("second CreateDelivery: created %v, %v", created, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("second CreateDelivery returned\n got %+v\nwant the first %+v", got, want)
	}
	// A Message-ID names one delivery only.
	dup := notifyDelivery("isp-b", notifyDay)
	dup.MessageID = d.MessageID
	if _, _, err := s.CreateDelivery(t.Context(), &dup); err == nil {
		t.Error("a second delivery with the same Message-ID was stored")
	}
	// Listing leaves messages out.
	want.Message = nil
	if got := notifyOne(t, s, "isp-a", notifyDay); !reflect.DeepEqual(got, want) {
		t.Fatalf("listed\n got %+v\nwant %+v", got, want)
	}
}

// A claim leases a pending, due delivery until until; nobody else gets it
// before then, anybody may after.
func testNotifyClaimLease(t *testing.T, open OpenNotify) {
	s, _ := open(t)
	d := notifyCreate(t, s, notifyDelivery("isp-a", notifyDay))
	now, lease := notifyT0.Add(time.Hour), 10*time.Minute
	got, ok := notifyClaim(t, s, "isp-a", notifyDay, now, now.Add(lease))
	if !ok {
		t.Fatal("a pending, due delivery was not claimed")
	}
	if !reflect.DeepEqual(got, d) {
		t.Fatalf("claimed\n got %+v\nwant %+v", got, d)
	}
	if _, ok := notifyClaim(t, s, "isp-a", notifyDay, now, now.Add(lease)); ok {
		t.Fatal("claimed twice at the same moment")
	}
	if _, ok := notifyClaim(t, s, "isp-a", notifyDay, now.Add(lease-1), now.Add(2*lease)); ok {
		t.Fatal("claimed a nanosecond before the lease ran out")
	}
	// The lease runs out at until: a claim then succeeds, and leases it
	// anew.
	if _, ok := notifyClaim(t, s, "isp-a", notifyDay, now.Add(lease), now.Add(2*lease)); !ok {
		t.Fatal("not claimed once the lease ran out")
	}
	if _, ok := notifyClaim(t, s, "isp-a", notifyDay, now.Add(2*lease-1), now.Add(3*lease)); ok {
		t.Fatal("claimed during the second lease")
	}
	// Unknown deliveries are not claimed, without an error.
	if _, ok := notifyClaim(t, s, "isp-b", notifyDay, now, now.Add(lease)); ok {
		t.Error("claimed an unknown subscriber's delivery")
	}
	if _, ok := notifyClaim(t, s, "isp-a", notifyDay.AddDate(0, 0, 1), now, now.Add(lease)); ok {
		t.Error("claimed a delivery of another day")
	}
}

// Of many concurrent creations of one delivery, the same composition
// (Message-ID included) from every sender, exactly one creates it and
// none fails.
func testNotifyCreateRace(t *testing.T, open OpenNotify) {
	s, _ := open(t)
	if n := NotifyCreateAll(t, []NotifyStore{s}, 16, notifyDelivery("isp-a", notifyDay)); n != 1 {
		t.Fatalf("%d concurrent creations succeeded, want 1", n)
	}
}

// NotifyCreateAll creates d from per goroutines on each of stores, all let
// go at once, and returns how many created it; each must get the stored
// delivery back without an error.
func NotifyCreateAll(tb testing.TB, stores []NotifyStore, per int, d notify.Delivery) int {
	tb.Helper()
	return raceAll(tb, "CreateDelivery", stores, per, func(s NotifyStore) (bool, error) {
		d := d
		got, ok, err := s.CreateDelivery(tb.Context(), &d)
		if err != nil {
			return false, err
		}
		if got.MessageID != d.MessageID || !bytes.Equal(got.Message, d.Message) {
			return ok, fmt.Errorf("CreateDelivery returned %+v", got)
		}
		return ok, nil
	})
}

// Of many concurrent claims of one delivery at one moment, exactly one
// succeeds.
func testNotifyClaimRace(t *testing.T, open OpenNotify) {
	s, _ := open(t)
	notifyCreate(t, s, notifyDelivery("isp-a", notifyDay))
	now := notifyT0.Add(time.Hour)
	if n := NotifyClaimAll(t, []NotifyStore{s}, 16, "isp-a", notifyDay, now, now.Add(time.Minute)); n != 1 {
		t.Fatalf("%d concurrent claims succeeded, want 1", n)
	}
}

// NotifyClaimAll claims (sub, day) at now until until from per goroutines
// on each of stores, all let go at once, and returns how many claims
// succeeded: a backend's test of claims from several nodes uses it too.
func NotifyClaimAll(tb testing.TB, stores []NotifyStore, per int, sub string, day, now, until time.Time) int {
	tb.Helper()
	return raceAll(tb, "ClaimDelivery", stores, per, func(s NotifyStore) (bool, error) {
		_, ok, err := s.ClaimDelivery(tb.Context(), sub, day, now, until)
		return ok, err
	})
}

// raceAll runs try per times on each of handles (nodes of one store), all
// let go at once, reports every error as what's, and returns how many
// tries succeeded: the scaffold of the suites' races between nodes.
func raceAll[S any](tb testing.TB, what string, handles []S, per int, try func(S) (bool, error)) int {
	tb.Helper()
	var (
		wg    sync.WaitGroup
		won   atomic.Int32
		start = make(chan struct{})
		errs  = make(chan error, len(handles)*per)
	)
	for _, h := range handles {
		for range per {
			wg.Go(func() {
				<-start
				ok, err := try(h)
				if err != nil {
					errs <- err
				}
				if ok {
					won.Add(1)
				}
			})
		}
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Errorf("%s: %v", what, err)
	}
	return int(won.Load())
}

// RecordAttempt stores an attempt's outcome and releases the lease; only
// a pending delivery takes one.
func testNotifyRecordAttempt(t *testing.T, open OpenNotify) {
	s, _ := open(t)
	notifyCreate(t, s, notifyDelivery("isp-a", notifyDay))
	now, lease := notifyT0.Add(time.Hour), 10*time.Minute
	cd, ok := notifyClaim(t, s, "isp-a", notifyDay, now, now.Add(lease))
	if !ok {
		t.Fatal("not claimed")
	}
	// A temporary failure: still pending, due later, the lease released.
	cd.Attempts, cd.LastError, cd.NextAttempt = 1, "451 try again later", now.Add(5*time.Minute+7)
	if err := s.RecordAttempt(t.Context(), &cd); err != nil {
		t.Fatal(err)
	}
	want := cd
	want.Message = nil
	if got := notifyOne(t, s, "isp-a", notifyDay); !reflect.DeepEqual(got, want) {
		t.Fatalf("after a deferred attempt\n got %+v\nwant %+v", got, want)
	}
	if _, ok := notifyClaim(t, s, "isp-a", notifyDay, cd.NextAttempt.Add(-1), cd.NextAttempt.Add(lease)); ok {
		t.Fatal("claimed before its next attempt was due")
	}
	// Due at NextAttempt, although the first lease has not run out: the
	// attempt released it.
	if cd.NextAttempt.After(now.Add(lease)) {
		t.Fatal("test: the next attempt must fall in the first lease")
	}
	cd, ok = notifyClaim(t, s, "isp-a", notifyDay, cd.NextAttempt, cd.NextAttempt.Add(lease))
	if !ok {
		t.Fatal("not claimed when due, inside the released lease")
	}
	if cd.Attempts != 1 || cd.LastError != "451 try again later" {
		t.Fatalf("claimed %+v", cd)
	}
	cd.State, cd.Attempts, cd.LastError, cd.NextAttempt, cd.Sent = notify.StateSent, 2, "", time.Time{}, now.Add(6*time.Minute+9)
	if err := s.RecordAttempt(t.Context(), &cd); err != nil {
		t.Fatal(err)
	}
	want = cd
	want.Message = nil
	if got := notifyOne(t, s, "isp-a", notifyDay); !reflect.DeepEqual(got, want) {
		t.Fatalf("after sending\n got %+v\nwant %+v", got, want)
	}
	// Sent is final: no claim, no further attempt.
	if _, ok := notifyClaim(t, s, "isp-a", notifyDay, now.Add(24*time.Hour), now.Add(25*time.Hour)); ok {
		t.Fatal("claimed a sent delivery")
	}
	if err := s.RecordAttempt(t.Context(), &cd); !errors.Is(err, notify.ErrNotFound) {
		t.Fatalf("RecordAttempt on a sent delivery = %v, want ErrNotFound", err)
	}
	unknown := notifyDelivery("isp-b", notifyDay)
	if err := s.RecordAttempt(t.Context(), &unknown); !errors.Is(err, notify.ErrNotFound) {
		t.Fatalf("RecordAttempt on an unknown delivery = %v, want ErrNotFound", err)
	}
}

// A delivery marked committing is never claimed again; once its lease has
// run out it turns in doubt, and only an operator's requeue sends it
// again.
func testNotifyCommitting(t *testing.T, open OpenNotify) {
	s, _ := open(t)
	notifyCreate(t, s, notifyDelivery("isp-a", notifyDay))
	notifyCreate(t, s, notifyDelivery("isp-b", notifyDay))
	now, lease := notifyT0.Add(time.Hour), 10*time.Minute
	until := now.Add(lease)
	for _, sub := range []string{"isp-a", "isp-b"} {
		if _, ok := notifyClaim(t, s, sub, notifyDay, now, until); !ok {
			t.Fatalf("%s not claimed", sub)
		}
		if err := s.MarkCommitting(t.Context(), sub, notifyDay); err != nil {
			t.Fatal(err)
		}
	}
	// isp-b's answer is recorded: committing is cleared with the lease.
	b := notifyOne(t, s, "isp-b", notifyDay)
	b.Attempts, b.LastError, b.NextAttempt = 1, "421 closing", now.Add(time.Minute)
	if err := s.RecordAttempt(t.Context(), &b); err != nil {
		t.Fatal(err)
	}
	// isp-a's sender stopped: not claimed even after its lease.
	if _, ok := notifyClaim(t, s, "isp-a", notifyDay, until, until.Add(lease)); ok {
		t.Fatal("claimed a committing delivery")
	}
	if n, err := s.ExpireCommitting(t.Context(), until.Add(-1), "stopped"); err != nil || n != 0 {
		t.Fatalf("ExpireCommitting inside the lease = %d, %v; want 0", n, err)
	}
	if n, err := s.ExpireCommitting(t.Context(), until, notify.InDoubtReason); err != nil || n != 1 {
		t.Fatalf("ExpireCommitting when the lease ran out = %d, %v; want 1", n, err)
	}
	a := notifyOne(t, s, "isp-a", notifyDay)
	if a.State != notify.StateInDoubt || a.LastError != notify.InDoubtReason {
		t.Fatalf("expired delivery: %+v", a)
	}
	if b := notifyOne(t, s, "isp-b", notifyDay); b.State != notify.StatePending {
		t.Fatalf("a recorded delivery was expired: %+v", b)
	}
	if n, err := s.ExpireCommitting(t.Context(), until.Add(time.Hour), "again"); err != nil || n != 0 {
		t.Fatalf("second ExpireCommitting = %d, %v; want 0", n, err)
	}
	// In doubt is not pending: no claim, no mark, no attempt.
	if _, ok := notifyClaim(t, s, "isp-a", notifyDay, until.Add(time.Hour), until.Add(2*time.Hour)); ok {
		t.Fatal("claimed an in-doubt delivery")
	}
	if err := s.MarkCommitting(t.Context(), "isp-a", notifyDay); !errors.Is(err, notify.ErrNotFound) {
		t.Fatalf("MarkCommitting on an in-doubt delivery = %v, want ErrNotFound", err)
	}
	if err := s.MarkCommitting(t.Context(), "nobody", notifyDay); !errors.Is(err, notify.ErrNotFound) {
		t.Fatalf("MarkCommitting on an unknown delivery = %v, want ErrNotFound", err)
	}
	if err := s.RecordAttempt(t.Context(), &a); !errors.Is(err, notify.ErrNotFound) {
		t.Fatalf("RecordAttempt on an in-doubt delivery = %v, want ErrNotFound", err)
	}
	// Requeued, it is pending, due at once, with its message, Message-ID
	// and attempts, and neither committing nor leased.
	if n, err := s.Requeue(t.Context(), notifyDay, notify.StateInDoubt); err != nil || n != 1 {
		t.Fatalf("Requeue = %d, %v; want 1", n, err)
	}
	later := until.Add(time.Hour)
	got, ok := notifyClaim(t, s, "isp-a", notifyDay, later, later.Add(lease))
	if !ok {
		t.Fatal("a requeued delivery was not claimed")
	}
	want := notifyDelivery("isp-a", notifyDay)
	want.LastError = notify.InDoubtReason
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("requeued\n got %+v\nwant %+v", got, want)
	}
}

func testNotifyRequeue(t *testing.T, open OpenNotify) {
	s, _ := open(t)
	day2 := notifyDay.AddDate(0, 0, 1)
	now := day2.Add(time.Hour)
	final := map[string]notify.State{"a-failed": notify.StateFailed, "b-failed": notify.StateFailed, "c-sent": notify.StateSent, "d-pending": notify.StatePending}
	for _, day := range []time.Time{notifyDay, day2} {
		for _, sub := range []string{"a-failed", "b-failed", "c-sent", "d-pending"} {
			notifyCreate(t, s, notifyDelivery(sub, day))
			cd, ok := notifyClaim(t, s, sub, day, now, now.Add(time.Minute))
			if !ok {
				t.Fatalf("%s not claimed", sub)
			}
			cd.State, cd.Attempts, cd.LastError = final[sub], 3, "550 no"
			if cd.State == notify.StatePending {
				cd.NextAttempt = now.Add(time.Hour)
			}
			if err := s.RecordAttempt(t.Context(), &cd); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, st := range []notify.State{notify.StatePending, notify.StateSent, "bogus"} {
		if n, err := s.Requeue(t.Context(), notifyDay, st); err == nil {
			t.Errorf("Requeue(%s) = %d, nil; want an error", st, n)
		}
	}
	if n, err := s.Requeue(t.Context(), notifyDay, notify.StateInDoubt); err != nil || n != 0 {
		t.Fatalf("Requeue(in_doubt) with none = %d, %v", n, err)
	}
	if n, err := s.Requeue(t.Context(), notifyDay.Add(5*time.Hour), notify.StateFailed); err != nil || n != 2 {
		t.Fatalf("Requeue(failed) = %d, %v; want 2", n, err)
	}
	for _, day := range []time.Time{notifyDay, day2} {
		for sub, st := range final {
			d := notifyOne(t, s, sub, day)
			want := st
			if day.Equal(notifyDay) && st == notify.StateFailed {
				want = notify.StatePending
				if !d.NextAttempt.IsZero() || d.Attempts != 3 || d.MessageID != notifyDelivery(sub, day).MessageID {
					t.Errorf("requeued %s: %+v", sub, d)
				}
			}
			if d.State != want {
				t.Errorf("%s on %s is %s, want %s", sub, day.Format(time.DateOnly), d.State, want)
			}
		}
	}
}

// Due lists the pending deliveries whose next attempt has come, of any
// day; Deliveries a window of days, both ordered by day then subscriber.
func testNotifyDueAndDeliveries(t *testing.T, open OpenNotify) {
	s, _ := open(t)
	days := []time.Time{notifyDay.AddDate(0, 0, -1), notifyDay, notifyDay.AddDate(0, 0, 1)}
	now := days[2].Add(time.Hour)
	// Created in an order that is not the listing's.
	for _, sub := range []string{"isp-c", "isp-a", "isp-b"} {
		for _, day := range slices.Backward(days) {
			notifyCreate(t, s, notifyDelivery(sub, day))
		}
	}
	// isp-b's deliveries are sent; isp-c's are deferred to now+1h.
	for _, day := range days {
		for sub, st := range map[string]notify.State{"isp-b": notify.StateSent, "isp-c": notify.StatePending} {
			cd, ok := notifyClaim(t, s, sub, day, now, now.Add(time.Minute))
			if !ok {
				t.Fatalf("%s not claimed", sub)
			}
			cd.State, cd.Attempts = st, 1
			if st == notify.StatePending {
				cd.NextAttempt = now.Add(time.Hour)
			} else {
				cd.Sent = now
			}
			if err := s.RecordAttempt(t.Context(), &cd); err != nil {
				t.Fatal(err)
			}
		}
	}
	keys := func(ds []notify.Delivery) []string {
		var out []string
		for _, d := range ds {
			if d.Message != nil {
				t.Errorf("%s listed with its message", d.Subscriber)
			}
			out = append(out, d.Day.Format(time.DateOnly)+" "+d.Subscriber)
		}
		return out
	}
	due := func(at time.Time) []string {
		ds, err := s.Due(t.Context(), at)
		if err != nil {
			t.Fatal(err)
		}
		return keys(ds)
	}
	if got, want := due(now), []string{"2011-09-12 isp-a", "2011-09-13 isp-a", "2011-09-14 isp-a"}; !slices.Equal(got, want) {
		t.Errorf("Due(now) = %v, want %v", got, want)
	}
	if got, want := due(now.Add(time.Hour)), []string{
		"2011-09-12 isp-a", "2011-09-12 isp-c", "2011-09-13 isp-a", "2011-09-13 isp-c", "2011-09-14 isp-a", "2011-09-14 isp-c",
	}; !slices.Equal(got, want) {
		t.Errorf("Due(now+1h) = %v, want %v", got, want)
	}
	list := func(from, to time.Time) []string {
		ds, err := s.Deliveries(t.Context(), from, to)
		if err != nil {
			t.Fatal(err)
		}
		return keys(ds)
	}
	all := []string{
		"2011-09-12 isp-a", "2011-09-12 isp-b", "2011-09-12 isp-c",
		"2011-09-13 isp-a", "2011-09-13 isp-b", "2011-09-13 isp-c",
		"2011-09-14 isp-a", "2011-09-14 isp-b", "2011-09-14 isp-c",
	}
	for _, tc := range []struct {
		name     string
		from, to time.Time
		want     []string
	}{
		{"unbounded", time.Time{}, time.Time{}, all},
		{"one day", days[1], days[2], all[3:6]},
		{"from", days[1], time.Time{}, all[3:]},
		{"to", time.Time{}, days[1], all[:3]},
		{"empty", days[1], days[1], nil},
	} {
		if got := list(tc.from, tc.to); !slices.Equal(got, tc.want) {
			t.Errorf("Deliveries %s = %v, want %v", tc.name, got, tc.want)
		}
	}
	// Removing a subscriber keeps its ledger.
	if err := s.AddSubscribers(t.Context(), []notify.Subscriber{notifySubscriber(t, "isp-a", "AS64500", "abuse@isp-a.example")}); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveSubscriber(t.Context(), "isp-a"); err != nil {
		t.Fatal(err)
	}
	if got := list(time.Time{}, time.Time{}); !slices.Equal(got, all) {
		t.Errorf("after removing isp-a: %v", got)
	}
}

// The Source reads are the event store's: the same aggregates, the raw
// events of one day (all, or those of some prefixes), and the selected
// aggregates when the store offers them.
func testNotifySource(t *testing.T, open OpenNotify) {
	s, es := open(t)
	var evs []event.Event
	add := func(ts time.Time, src string, asn uint32, cc, family string) {
		evs = append(evs, event.Event{ID: fmt.Sprintf("notify-%d", len(evs)), Timestamp: ts, Protocol: event.ProtoHTTP, SrcIP: netip.MustParseAddr(src),
			SrcASN: asn, SrcGeo: cc, SrcOrg: "Org " + cc, DstIP: netip.MustParseAddr("192.0.2.250"), DstPort: 80, Family: family, Case: "rustock", HTTPURL: "/" + src})
	}
	add(notifyDay.Add(-time.Hour), "198.51.100.9", 64500, "US", "rustock") // the day before
	add(notifyDay.Add(1*time.Hour), "198.51.100.1", 64500, "US", "rustock")
	add(notifyDay.Add(2*time.Hour), "198.51.100.1", 64500, "US", "kelihos")
	add(notifyDay.Add(3*time.Hour), "198.51.100.200", 64500, "US", "rustock")
	add(notifyDay.Add(4*time.Hour), "2001:db8::5", 64501, "NL", "rustock")
	add(notifyDay.Add(5*time.Hour), "::ffff:100.64.1.2", 64502, "DE", "rustock")
	add(notifyDay.Add(25*time.Hour), "198.51.100.2", 64500, "US", "rustock") // the day after
	write(t, es, &store.Batch{Events: evs})
	from, to := notifyDay, notifyDay.Add(24*time.Hour)
	want := dayIPs(t, es, from, to)
	if len(want) != 5 {
		t.Fatalf("test: %d aggregates on the day, want 5", len(want))
	}
	var got []store.DayIP
	if err := s.ScanDayIPs(t.Context(), from, to, func(a *store.DayIP) error { c := *a; c.Detail = 0; got = append(got, c); return nil }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ScanDayIPs\n got %+v\nwant the event store's %+v", got, want)
	}
	scan := func(prefixes []netip.Prefix) map[string][]byte {
		out := map[string][]byte{}
		err := s.ScanDayEvents(t.Context(), notifyDay.Add(7*time.Hour), prefixes, func(e *event.Event) error {
			rec, err := event.MarshalJSONL(e)
			if err != nil {
				return err
			}
			out[e.ID] = rec
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	all := scan(nil)
	if ids := slices.Sorted(maps.Keys(all)); !slices.Equal(ids, []string{"notify-1", "notify-2", "notify-3", "notify-4", "notify-5"}) {
		t.Fatalf("ScanDayEvents of the day: %v", ids)
	}
	for i := 1; i <= 5; i++ {
		want, _ := event.MarshalJSONL(&evs[i])
		if !bytes.Equal(all[evs[i].ID], want) {
			t.Errorf("ScanDayEvents changed %s\n got %s\nwant %s", evs[i].ID, all[evs[i].ID], want)
		}
	}
	// A scoped scan returns at least the events of its prefixes (it may
	// return others).
	for _, tc := range []struct {
		prefixes []string
		want     []string
	}{
		{[]string{"198.51.100.0/25"}, []string{"notify-1", "notify-2"}},
		{[]string{"2001:db8::/32", "100.64.0.0/10"}, []string{"notify-4", "notify-5"}},
		{[]string{"203.0.113.0/24"}, nil},
	} {
		var ps []netip.Prefix
		for _, p := range tc.prefixes {
			ps = append(ps, netip.MustParsePrefix(p))
		}
		got := scan(ps)
		for _, id := range tc.want {
			if _, ok := got[id]; !ok {
				t.Errorf("ScanDayEvents(%v) left out %s", tc.prefixes, id)
			}
		}
	}
	ss, ok := s.(notify.SelectSource)
	if !ok {
		return
	}
	nets, err := netscope.ParseNetworks("198.51.100.0/25, NL")
	if err != nil {
		t.Fatal(err)
	}
	sel := &store.Selection{Prefixes: nets.Prefixes, Countries: nets.Countries}
	var sgot, swant []store.DayIP
	for _, a := range want {
		if sel.Selects(&a) {
			swant = append(swant, a)
		}
	}
	if err := ss.ScanDayIPsSelect(t.Context(), from, to, sel, func(a *store.DayIP) error { c := *a; c.Detail = 0; sgot = append(sgot, c); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(swant) != 3 || !reflect.DeepEqual(sgot, swant) {
		t.Fatalf("ScanDayIPsSelect\n got %+v\nwant %+v", sgot, swant)
	}
}
