package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"net/textproto"
	"time"
)

// Mailer hands one message to a mail server. A nil error means the server
// accepted it (250 to DATA).
//
// commit, when not nil, is called once the server has taken the envelope
// and the whole message, right before the message is committed (the final
// "." of DATA). If commit fails the message is not committed (the
// connection is dropped, so the server discards it) and Send returns the
// error as temporary. When the server's answer to the final "." never
// arrives, Send returns an *InDoubtError: the server may have accepted it.
type Mailer interface {
	Send(ctx context.Context, from string, to []string, msg []byte, commit func() error) error
}

// InDoubtError is returned when the connection broke after the whole
// message was committed and before the server answered: it may have been
// accepted, so sending it again could deliver it twice.
type InDoubtError struct{ Err error }

func (e *InDoubtError) Error() string { return "no answer to the end of DATA: " + e.Err.Error() }
func (e *InDoubtError) Unwrap() error { return e.Err }

// SendError is a failed delivery attempt. Temporary failures (4xx replies,
// lost connections, timeouts) are retried; permanent ones (5xx) are not.
type SendError struct {
	Temporary bool
	Code      int // the SMTP reply code, 0 if none (a network error)
	Err       error
}

func (e *SendError) Error() string {
	kind := "permanent"
	if e.Temporary {
		kind = "temporary"
	}
	return fmt.Sprintf("%s failure: %v", kind, e.Err)
}

func (e *SendError) Unwrap() error { return e.Err }

// classify turns an error from the SMTP conversation into a *SendError.
func classify(step string, err error) error {
	var se *SendError
	if errors.As(err, &se) {
		return err
	}
	var te *textproto.Error
	if errors.As(err, &te) {
		return &SendError{Temporary: te.Code < 500, Code: te.Code, Err: fmt.Errorf("%s: %w", step, err)}
	}
	return &SendError{Temporary: true, Err: fmt.Errorf("%s: %w", step, err)}
}

// StartTLS modes.
const (
	// StartTLSAuto upgrades when the server offers STARTTLS. With
	// credentials (a Username) it means StartTLSAlways: a server that does
	// not offer STARTTLS, or a man in the middle that strips it from the
	// EHLO reply, would otherwise get the password and the reports (they
	// name infected addresses) in clear. Without credentials it is
	// opportunistic (a relay on the same host, say).
	StartTLSAuto = "auto"
	// StartTLSAlways refuses to send without STARTTLS.
	StartTLSAlways = "always"
	// StartTLSNever never upgrades.
	StartTLSNever = "never"
)

// SMTP is a Mailer that speaks SMTP to one server (a relay or smarthost),
// one connection per message.
type SMTP struct {
	// Addr is host:port of the server.
	Addr string
	// HeloName is sent in EHLO; default "localhost".
	HeloName string
	// StartTLS is auto (default), always or never; auto with a Username
	// is always.
	StartTLS string
	// TLSConfig verifies the server's certificate; nil uses the system
	// roots and Addr's host name.
	TLSConfig *tls.Config
	// Username and Password enable AUTH PLAIN (only over TLS, or to
	// localhost, and only with StartTLS never when TLS is not used).
	Username, Password string
	// Timeout bounds one whole conversation; default 2 minutes.
	Timeout time.Duration
}

var _ Mailer = (*SMTP)(nil)

// Send implements Mailer.
func (m *SMTP) Send(ctx context.Context, from string, to []string, msg []byte, commit func() error) (err error) {
	timeout := m.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", m.Addr)
	if err != nil {
		return classify("connect", err)
	}
	dl, _ := ctx.Deadline()
	conn.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	host, _, _ := net.SplitHostPort(m.Addr)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return classify("greeting", err)
	}
	defer c.Close()
	helo := m.HeloName
	if helo == "" {
		helo = "localhost"
	}
	if err := c.Hello(helo); err != nil {
		return classify("EHLO", err)
	}
	mode := m.mode()
	if ok, _ := c.Extension("STARTTLS"); ok && mode != StartTLSNever {
		cfg := m.TLSConfig
		if cfg == nil {
			cfg = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		}
		if err := c.StartTLS(cfg); err != nil {
			return classify("STARTTLS", err)
		}
	} else if mode == StartTLSAlways {
		// Temporary: the report stays queued for a later attempt (the
		// stripping may be an attack that ends), and nothing was sent.
		why := "starttls is always"
		if m.StartTLS != StartTLSAlways {
			why = "starttls is auto and credentials are configured, which requires it (set starttls: never to send in clear)"
		}
		return &SendError{Temporary: true, Err: fmt.Errorf("server %s does not offer STARTTLS (or something on the way removed it); refusing to send in clear: %s", m.Addr, why)}
	}
	if m.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", m.Username, m.Password, host)); err != nil {
			return classify("AUTH", err)
		}
	}
	if err := c.Mail(from); err != nil {
		return classify("MAIL FROM", err)
	}
	var accepted int
	var rcptErr error
	for _, rcpt := range to {
		if err := c.Rcpt(rcpt); err != nil {
			rcptErr = errors.Join(rcptErr, classify("RCPT TO "+rcpt, err))
			var te *textproto.Error
			if !errors.As(err, &te) {
				return classify("RCPT TO "+rcpt, err)
			}
			continue
		}
		accepted++
	}
	if accepted == 0 {
		// Temporary if any recipient was only deferred.
		temp := false
		var se *SendError
		for _, e := range unwrapAll(rcptErr) {
			if errors.As(e, &se) && se.Temporary {
				temp = true
			}
		}
		code := 0
		if errors.As(rcptErr, &se) {
			code = se.Code
		}
		return &SendError{Temporary: temp, Code: code, Err: rcptErr}
	}
	w, err := c.Data()
	if err != nil {
		return classify("DATA", err)
	}
	if _, err := w.Write(msg); err != nil {
		return classify("DATA", err)
	}
	if commit != nil {
		if err := commit(); err != nil {
			// Not committed: the deferred Close drops the connection
			// before the final ".", and the server discards the message.
			return &SendError{Temporary: true, Err: fmt.Errorf("before the end of DATA: %w", err)}
		}
	}
	if err := w.Close(); err != nil {
		var te *textproto.Error
		if !errors.As(err, &te) {
			return &InDoubtError{Err: err}
		}
		return classify("end of DATA", err)
	}
	// Accepted. A failing QUIT changes nothing.
	_ = c.Quit()
	if rcptErr != nil {
		return &PartialError{Err: rcptErr}
	}
	return nil
}

// mode is the StartTLS mode in effect: auto with credentials is always.
func (m *SMTP) mode() string {
	switch {
	case m.StartTLS == StartTLSAlways, m.StartTLS == StartTLSNever:
		return m.StartTLS
	case m.Username != "":
		return StartTLSAlways
	default:
		return StartTLSAuto
	}
}

// PartialError is returned when the message was accepted for some
// recipients and refused for others: the delivery counts as sent.
type PartialError struct{ Err error }

func (e *PartialError) Error() string { return "accepted for some recipients only: " + e.Err.Error() }
func (e *PartialError) Unwrap() error { return e.Err }

func unwrapAll(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
