// Package progress reports the progress of long command-line work (an
// import, a simulated history) on standard error: rows, rows per second,
// bytes of the total and the time left. On a terminal it is one line
// rewritten in place; otherwise (a log file, a pipe, CI) it is a line every
// few seconds, so that logs stay readable. It is not for servers, which
// have metrics.
package progress

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a Meter.
type Options struct {
	// Out receives the reports (normally os.Stderr); nil discards them.
	Out io.Writer
	// Label starts every report ("import").
	Label string
	// Unit names what is counted ("rows", the default).
	Unit string
	// Total is the number of bytes the work will read or write in all, 0
	// when unknown (no share, no time left).
	Total int64
	// Mode chooses a live line or log lines; Auto (the zero value) is
	// live when Out is a terminal.
	Mode Mode
	// Every is the interval of reports: default 5s for lines, 250ms live.
	Every time.Duration
	// Now is the clock (default time.Now), a test seam.
	Now func() time.Time
}

// Mode is how a Meter reports.
type Mode int

// Modes.
const (
	Auto  Mode = iota // Live on a terminal, Lines otherwise
	Live              // one line rewritten in place ("\r")
	Lines             // one line per report
)

// Meter counts the work done and reports it. Its methods are safe for
// concurrent use, and a nil *Meter does nothing (quiet).
type Meter struct {
	opts  Options
	live  bool
	start time.Time
	rows  atomic.Int64
	bytes atomic.Int64

	mu      sync.Mutex // serialises reports; guards width and reports
	width   int        // length of the live line last written
	reports int        // reports written
	stop    chan struct{}
	stopped chan struct{}
	once    sync.Once
}

// IsTerminal reports whether w is a character device (a terminal).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// New returns a Meter that reports only when Report is called; Start also
// reports on a ticker.
func New(opts Options) *Meter {
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	if opts.Unit == "" {
		opts.Unit = "rows"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	live := opts.Mode == Live || (opts.Mode == Auto && IsTerminal(opts.Out))
	if opts.Every <= 0 {
		opts.Every = 5 * time.Second
		if live {
			opts.Every = 250 * time.Millisecond
		}
	}
	return &Meter{opts: opts, live: live, start: opts.Now()}
}

// Start returns a Meter that reports every opts.Every until Stop.
func Start(opts Options) *Meter {
	m := New(opts)
	m.stop, m.stopped = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(m.stopped)
		t := time.NewTicker(m.opts.Every)
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-t.C:
				m.Report()
			}
		}
	}()
	return m
}

// Add counts rows more rows and n more bytes done.
func (m *Meter) Add(rows, n int64) {
	if m == nil {
		return
	}
	m.rows.Add(rows)
	m.bytes.Add(n)
}

// Rows returns the rows counted so far.
func (m *Meter) Rows() int64 {
	if m == nil {
		return 0
	}
	return m.rows.Load()
}

// Report writes one report now.
func (m *Meter) Report() {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	line := m.Line()
	m.reports++
	if m.live {
		pad := max(m.width-len(line), 0)
		fmt.Fprintf(m.opts.Out, "\r%s%s", line, strings.Repeat(" ", pad))
		m.width = len(line)
		return
	}
	fmt.Fprintln(m.opts.Out, line)
}

// Stop ends the ticker and, when a report was written before, writes the
// final one (ending the live line): work shorter than one interval stays
// silent. It is idempotent.
func (m *Meter) Stop() {
	if m == nil {
		return
	}
	m.once.Do(func() {
		if m.stop != nil {
			close(m.stop)
			<-m.stopped
		}
		m.mu.Lock()
		shown := m.reports > 0
		m.mu.Unlock()
		if !shown {
			return // work shorter than one interval needs no report
		}
		m.Report()
		if m.live {
			m.mu.Lock()
			fmt.Fprintln(m.opts.Out)
			m.mu.Unlock()
		}
	})
}

// Line is the text of a report: "import: 1,200,000 rows, 104,000 rows/s,
// 251.0 MiB of 1.1 GiB (22%), 41s left".
func (m *Meter) Line() string {
	rows, bytes := m.rows.Load(), m.bytes.Load()
	el := m.opts.Now().Sub(m.start).Seconds()
	var b strings.Builder
	if m.opts.Label != "" {
		b.WriteString(m.opts.Label)
		b.WriteString(": ")
	}
	fmt.Fprintf(&b, "%s %s", group(rows), m.opts.Unit)
	if el > 0 {
		fmt.Fprintf(&b, ", %s %s/s", group(int64(float64(rows)/el)), m.opts.Unit)
	}
	if total := m.opts.Total; total > 0 {
		fmt.Fprintf(&b, ", %s of %s (%d%%)", Bytes(bytes), Bytes(total), min(100, bytes*100/total))
		if el > 0 && bytes > 0 && bytes < total {
			left := time.Duration(float64(total-bytes) / (float64(bytes) / el) * float64(time.Second))
			fmt.Fprintf(&b, ", %s left", left.Round(time.Second))
		}
	} else if bytes > 0 {
		fmt.Fprintf(&b, ", %s", Bytes(bytes))
	}
	fmt.Fprintf(&b, ", %s elapsed", time.Duration(el*float64(time.Second)).Round(time.Second))
	return b.String()
}

// Bytes formats n bytes in binary units (KiB, MiB, GiB).
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, i := float64(n)/unit, 0
	for f >= unit && i < 3 {
		f /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", f, "KMGT"[i])
}

// group writes n with thousands separators.
func group(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// Writer counts the bytes and lines written through it into a Meter: the
// progress of a command that writes rows (one a line).
type Writer struct {
	W io.Writer
	M *Meter
}

func (w Writer) Write(p []byte) (int, error) {
	n, err := w.W.Write(p)
	w.M.Add(int64(bytes.Count(p[:n], []byte{'\n'})), int64(n))
	return n, err
}

// Reader counts the bytes read through it into a Meter (rows are counted
// by the caller, which knows what a row is).
type Reader struct {
	R io.Reader
	M *Meter
}

func (r Reader) Read(p []byte) (int, error) {
	n, err := r.R.Read(p)
	r.M.Add(0, int64(n))
	return n, err
}
