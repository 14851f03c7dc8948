// Package notify tells network owners about the infected addresses in their
// own networks: the subscribers (organisation, contacts, networks, formats,
// TLP), the daily per-network reports in the Shadowserver sinkhole layout
// (with XARF v4 and X-ARF 0.2 as alternatives), and their delivery by SMTP
// exactly once per (subscriber, day) through a delivery ledger.
//
// It is not the scoped REST API (package api) and it does not count or
// aggregate events (the pipeline and package stats do): it reads the
// per-day aggregates and raw events the store already holds.
package notify

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/netscope"
	"github.com/takedown/takedown/internal/store"
)

// Format is a report format a subscriber receives.
type Format string

// Formats.
const (
	// FormatShadowserver is the Shadowserver event4/event6_sinkhole(_http)
	// CSV layout, one row per (address, family): the default.
	FormatShadowserver Format = "shadowserver"
	// FormatXARF4 is a JSON array of XARF v4 infected_host reports.
	FormatXARF4 Format = "xarf4"
	// FormatXARF02 is one X-ARF 0.2 message per row, each a message/rfc822
	// part of a multipart/digest in the daily mail (up to a cap; the rest
	// in one YAML attachment).
	FormatXARF02 Format = "xarf02"
)

// ParseFormat returns the format named s (case-insensitive; "csv" is
// shadowserver, "xarf" is xarf4).
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "shadowserver", "csv", "shadowserver-csv":
		return FormatShadowserver, nil
	case "xarf4", "xarf", "xarf-v4":
		return FormatXARF4, nil
	case "xarf02", "x-arf", "x-arf-0.2", "xarf-0.2":
		return FormatXARF02, nil
	}
	return "", fmt.Errorf("unknown format %q (want shadowserver, xarf4 or xarf02)", s)
}

// Cadence is how often a subscriber is sent reports. Only daily exists.
const CadenceDaily = "daily"

// ParseTLP returns the TLP 2.0 label named s ("WHITE" is CLEAR); empty is
// AMBER.
func ParseTLP(s string) (string, error) {
	u := strings.ToUpper(strings.TrimSpace(strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(s)), "TLP:")))
	switch u {
	case "":
		return "AMBER", nil
	case "WHITE":
		return "CLEAR", nil
	case "CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED":
		return u, nil
	}
	return "", fmt.Errorf("unknown TLP %q (want CLEAR, GREEN, AMBER, AMBER+STRICT or RED)", s)
}

// Subscriber is a network owner who receives reports about its networks.
type Subscriber struct {
	// ID names the subscriber in commands and report file names:
	// lower-case letters, digits and '-', at most 63.
	ID string `json:"id"`
	// Org is the organisation's name, shown in the mail.
	Org string `json:"organisation"`
	// Contacts are the addresses the reports go to.
	Contacts []string `json:"contacts"`
	// Networks are the ASNs, CIDRs and country codes it holds.
	Networks netscope.Networks `json:"networks"`
	// Formats are the report formats it receives (default shadowserver).
	Formats []Format `json:"formats"`
	// Cadence is "daily".
	Cadence string `json:"cadence"`
	// TLP is the Traffic Light Protocol label of its reports.
	TLP string `json:"tlp"`
	// Created is when it was added.
	Created time.Time `json:"created"`
}

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Normalize fills defaults (formats, cadence, TLP) and checks s, reporting
// every problem at once.
func (s *Subscriber) Normalize() error {
	var errs []error
	if !idPattern.MatchString(s.ID) {
		errs = append(errs, fmt.Errorf("id %q: want lower-case letters, digits and '-', at most 63, not starting with '-'", s.ID))
	}
	s.Org = strings.TrimSpace(s.Org)
	if s.Org == "" {
		errs = append(errs, errors.New("no organisation"))
	} else if strings.ContainsAny(s.Org, "\r\n") {
		errs = append(errs, errors.New("organisation contains a line break"))
	}
	if len(s.Contacts) == 0 {
		errs = append(errs, errors.New("no contact address"))
	}
	for i, c := range s.Contacts {
		a, err := mail.ParseAddress(c)
		if err != nil || a.Name != "" {
			errs = append(errs, fmt.Errorf("contact %q is not a plain e-mail address", c))
			continue
		}
		s.Contacts[i] = a.Address
	}
	if s.Networks.Empty() {
		errs = append(errs, errors.New("no networks"))
	}
	if len(s.Formats) == 0 {
		s.Formats = []Format{FormatShadowserver}
	}
	for i, f := range s.Formats {
		v, err := ParseFormat(string(f))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.Formats[i] = v
	}
	slices.Sort(s.Formats)
	s.Formats = slices.Compact(s.Formats)
	switch strings.ToLower(s.Cadence) {
	case "", CadenceDaily:
		s.Cadence = CadenceDaily
	default:
		errs = append(errs, fmt.Errorf("cadence %q: only daily is supported", s.Cadence))
	}
	tlp, err := ParseTLP(s.TLP)
	if err != nil {
		errs = append(errs, err)
	}
	s.TLP = tlp
	return errors.Join(errs...)
}

// NormalizeWith parses networks (netscope.ParseNetworks syntax, as a person
// types them) into s.Networks and normalizes s, returning every problem
// at once, one per line. name, when not empty, prefixes the networks
// problems ("--networks" on the command line, "networks" in the API); a
// networks error makes the "no networks" complaint redundant, so it is
// left out.
func (s *Subscriber) NormalizeWith(networks, name string) error {
	var errs []error
	nets, err := netscope.ParseNetworks(networks)
	if err != nil && name != "" {
		err = fmt.Errorf("%s: %w", name, err)
	}
	if err != nil {
		errs = append(errs, err)
	}
	s.Networks = nets
	if err := s.Normalize(); err != nil {
		for m := range strings.SplitSeq(err.Error(), "\n") {
			if m != "no networks" || len(errs) == 0 {
				errs = append(errs, errors.New(m))
			}
		}
	}
	return errors.Join(errs...)
}

// State is where a delivery is in the ledger.
type State string

// Delivery states: pending → sent, pending → failed, or pending →
// in_doubt.
const (
	// StatePending is composed and not yet accepted by the mail server.
	StatePending State = "pending"
	// StateSent was accepted (250 to DATA) by the mail server.
	StateSent State = "sent"
	// StateFailed was refused permanently (5xx) or retried too often.
	StateFailed State = "failed"
	// StateInDoubt may have been accepted: the whole message had been
	// handed over (the final "." of DATA was about to be sent or was sent)
	// when the process stopped or the connection broke, before the
	// server's answer was recorded. It is never re-sent by itself, since
	// that could deliver it twice; an operator who has checked the relay's
	// log re-sends it (the same bytes and Message-ID) with
	// `takedown notify send --resend-in-doubt`.
	StateInDoubt State = "in_doubt"
)

// InDoubtReason is the last error recorded for a delivery found in doubt
// after a crash.
const InDoubtReason = "in doubt: the process stopped after handing the whole message to the server and before recording its answer; check the relay's log for the Message-ID, then re-send with --resend-in-doubt if it is not there"

// Delivery is one (subscriber, day) report in the ledger. The message is
// composed once, stored with its Message-ID, and every attempt sends
// exactly those bytes.
type Delivery struct {
	Subscriber  string    `json:"subscriber"`
	Day         time.Time `json:"day"` // UTC midnight
	MessageID   string    `json:"message_id"`
	State       State     `json:"state"`
	Attempts    int       `json:"attempts"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	Created     time.Time `json:"created"`
	Sent        time.Time `json:"sent,omitzero"`
	Rows        int       `json:"rows"`
	Recipients  []string  `json:"recipients"`
	Message     []byte    `json:"-"`
}

// ErrNotFound is returned (wrapped) for an unknown subscriber or delivery.
var ErrNotFound = errors.New("not found")

// ErrExists is returned (wrapped) when adding a subscriber whose ID is
// taken.
var ErrExists = errors.New("already exists")

// Store keeps subscribers and the delivery ledger.
type Store interface {
	// AddSubscribers adds all of subs in one transaction, or none
	// (ErrExists if an ID is taken).
	AddSubscribers(ctx context.Context, subs []Subscriber) error
	// Subscribers lists every subscriber ordered by ID.
	Subscribers(ctx context.Context) ([]Subscriber, error)
	// RemoveSubscriber removes one (ErrNotFound if unknown). Its ledger
	// entries are kept.
	RemoveSubscriber(ctx context.Context, id string) error

	// CreateDelivery inserts d as pending unless (d.Subscriber, d.Day) is
	// in the ledger already; it returns the stored delivery and whether
	// it was created.
	CreateDelivery(ctx context.Context, d *Delivery) (Delivery, bool, error)
	// ClaimDelivery leases a pending delivery whose next attempt is due at
	// now until until, so that no other process sends it meanwhile; ok is
	// false if it is not pending, not due, committing or leased by someone
	// else.
	ClaimDelivery(ctx context.Context, sub string, day, now, until time.Time) (d Delivery, ok bool, err error)
	// MarkCommitting records, durably, that the whole message of a claimed
	// delivery has been handed to the server and its final "." is about
	// to be sent: from then on, until RecordAttempt, the outcome is
	// unknown if the process stops.
	MarkCommitting(ctx context.Context, sub string, day time.Time) error
	// ExpireCommitting turns every delivery that is still committing with
	// a lease run out at now (its sender stopped between the end of DATA
	// and recording the answer) into StateInDoubt with reason; it returns
	// how many.
	ExpireCommitting(ctx context.Context, now time.Time, reason string) (int, error)
	// RecordAttempt stores the outcome of an attempt (state, attempts,
	// next attempt, last error, sent time), clears committing and
	// releases the lease.
	RecordAttempt(ctx context.Context, d *Delivery) error
	// Deliveries lists ledger entries of days in [from, to) (zero times:
	// unbounded), ordered by day then subscriber, without messages.
	Deliveries(ctx context.Context, from, to time.Time) ([]Delivery, error)
	// Due lists pending deliveries whose next attempt is at or before now.
	Due(ctx context.Context, now time.Time) ([]Delivery, error)
	// Requeue turns the deliveries of day in state from (failed or
	// in_doubt) back into pending, due now, with the same message and
	// Message-ID.
	Requeue(ctx context.Context, day time.Time, from State) (int, error)
}

// Source is what reports are built from: the store's per-day aggregates
// and the raw events of one UTC day.
type Source interface {
	ScanDayIPs(ctx context.Context, from, to time.Time, fn func(*store.DayIP) error) error
	// ScanDayEvents calls fn with the raw events of the UTC day starting
	// at day whose source address lies in one of prefixes, or with every
	// raw event of the day when prefixes is nil (it may call fn with
	// others too). fn must not keep the event.
	ScanDayEvents(ctx context.Context, day time.Time, prefixes []netip.Prefix, fn func(*event.Event) error) error
}

// SelectSource is optional for a Source: it reads only the aggregates a
// selection selects, through the store's keys and indexes, instead of a
// whole day's (see store.Selection).
type SelectSource interface {
	ScanDayIPsSelect(ctx context.Context, from, to time.Time, sel *store.Selection, fn func(*store.DayIP) error) error
}
