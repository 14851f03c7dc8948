package progress

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
)

// clock is a fake clock that moves only when told.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestLines(t *testing.T) {
	c := &clock{time.Date(2011, 3, 17, 0, 0, 0, 0, time.UTC)}
	var out bytes.Buffer
	m := New(Options{Out: &out, Label: "import", Total: 4 << 20, Now: c.now})
	c.t = c.t.Add(2 * time.Second)
	m.Add(250_000, 1<<20)
	m.Report()
	c.t = c.t.Add(2 * time.Second)
	m.Add(250_000, 1<<20)
	m.Report()
	m.Stop()
	m.Stop() // idempotent
	want := "import: 250,000 rows, 125,000 rows/s, 1.0 MiB of 4.0 MiB (25%), 6s left, 2s elapsed\n" +
		"import: 500,000 rows, 125,000 rows/s, 2.0 MiB of 4.0 MiB (50%), 4s left, 4s elapsed\n" +
		"import: 500,000 rows, 125,000 rows/s, 2.0 MiB of 4.0 MiB (50%), 4s left, 4s elapsed\n"
	if out.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", out.String(), want)
	}
}

func TestLive(t *testing.T) {
	c := &clock{time.Date(2011, 3, 17, 0, 0, 0, 0, time.UTC)}
	var out bytes.Buffer
	m := New(Options{Out: &out, Unit: "events", Mode: Live, Now: c.now})
	c.t = c.t.Add(time.Second)
	m.Add(1_234_567, 10)
	m.Report()
	m.Add(-1_234_567+5, 0) // a shorter line pads out the longer one
	m.Report()
	m.Stop()
	got := out.String()
	if strings.Count(got, "\n") != 1 || !strings.HasSuffix(got, "\n") {
		t.Fatalf("live output %q: want one line rewritten with \\r, ended once", got)
	}
	parts := strings.Split(strings.TrimSuffix(got, "\n"), "\r")
	if len(parts) != 4 || parts[0] != "" || !strings.HasPrefix(parts[1], "1,234,567 events, 1,234,567 events/s, 10 B") {
		t.Fatalf("live output %q", got)
	}
	if len(parts[2]) != len(parts[1]) || !strings.HasPrefix(parts[2], "5 events, 5 events/s") {
		t.Fatalf("shorter line not padded over the longer: %q", got)
	}
}

func TestNilIsQuiet(t *testing.T) {
	var m *Meter
	m.Add(1, 1)
	m.Report()
	m.Stop()
	if m.Rows() != 0 {
		t.Fatal("nil meter counted")
	}
	w := Writer{W: io.Discard, M: m}
	if _, err := w.Write([]byte("a\nb\n")); err != nil {
		t.Fatal(err)
	}
}

func TestWriterAndReader(t *testing.T) {
	m := New(Options{Out: io.Discard})
	var buf bytes.Buffer
	w := Writer{W: &buf, M: m}
	io.WriteString(w, "one\ntwo\nthree")
	if m.Rows() != 2 || m.bytes.Load() != 13 {
		t.Fatalf("writer counted %d rows, %d bytes; want 2, 13", m.Rows(), m.bytes.Load())
	}
	r := Reader{R: strings.NewReader("abcdef"), M: m}
	io.ReadAll(r)
	if m.bytes.Load() != 19 {
		t.Fatalf("reader counted %d bytes in all, want 19", m.bytes.Load())
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536 << 20: "1.5 GiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// Work shorter than one interval writes nothing, not even at Stop.
func TestShortWorkIsSilent(t *testing.T) {
	var out bytes.Buffer
	m := New(Options{Out: &out, Mode: Lines})
	m.Add(10, 10)
	m.Stop()
	if out.Len() != 0 {
		t.Fatalf("short work reported %q", out.String())
	}
}
