package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/takedown/takedown/internal/config"
	"github.com/takedown/takedown/internal/notify"
)

// NotifyStores are what the daily reports read and record.
type NotifyStores struct {
	Store  notify.Store
	Source notify.Source
}

// newNotifyScheduler builds the daily reports' scheduler when notify is
// enabled.
func (a *App) newNotifyScheduler(c *config.Config, st *NotifyStores) (*notify.Scheduler, error) {
	if !c.Notify.Enabled || st == nil {
		return nil, nil
	}
	at, err := time.Parse("15:04", c.Notify.At)
	if err != nil {
		return nil, fmt.Errorf("notify.at: %w", err)
	}
	n, err := NewNotifier(c, st, a.opts.Events.Flush, a.log.With("role", "notify"))
	if err != nil {
		return nil, err
	}
	return &notify.Scheduler{Notifier: n, At: time.Duration(at.Hour())*time.Hour + time.Duration(at.Minute())*time.Minute,
		RetryEvery: 5 * time.Minute, Logger: a.log.With("role", "notify")}, nil
}

// NewNotifier builds the daily reports' notifier of configuration c, with
// NotifyMailer's mailer and NotifyMessage's message options.
func NewNotifier(c *config.Config, st *NotifyStores, flush func(context.Context) error, log *slog.Logger) (*notify.Notifier, error) {
	m, err := NotifyMailer(c)
	if err != nil {
		return nil, err
	}
	n, err := notify.New(notify.Options{
		Store: st.Store, Source: st.Source, Mailer: m, Message: NotifyMessage(c),
		Flush: flush, Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("notify: %w", err)
	}
	return n, nil
}

// NotifyMailer is the reports' mailer of configuration c: notify.maildir
// when set, else the SMTP relay notify.smtp (its password read from
// notify.smtp.password_file).
func NotifyMailer(c *config.Config) (notify.Mailer, error) {
	if c.Notify.Maildir != "" {
		return &notify.Maildir{Dir: c.Notify.Maildir}, nil
	}
	s := &notify.SMTP{Addr: c.Notify.SMTP.Addr, StartTLS: c.Notify.SMTP.StartTLS, Username: c.Notify.SMTP.Username, HeloName: c.Notify.SMTP.Helo}
	if c.Notify.SMTP.PasswordFile != "" {
		b, err := os.ReadFile(c.Notify.SMTP.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("notify.smtp.password_file: %w", err)
		}
		s.Password = strings.TrimSpace(string(b))
	}
	return s, nil
}

// NotifyMessage is the reports' message options of configuration c.
func NotifyMessage(c *config.Config) notify.MessageOptions {
	return notify.MessageOptions{From: c.Notify.From, PublicSource: c.Notify.PublicSource, APIURL: c.Notify.APIURL, CleanupURL: c.Notify.CleanupURL,
		CompressAbove: c.Notify.CompressAbove, XARF02Max: c.Notify.XARF02Max}
}

// runNotify adapts the scheduler to the run group.
func runNotify(s *notify.Scheduler) func(context.Context) error {
	return func(ctx context.Context) error { return s.Run(ctx) }
}
