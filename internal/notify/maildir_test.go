package notify_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/takedown/takedown/internal/notify"
)

func TestMaildir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mailbox")
	m := &notify.Maildir{Dir: dir}
	count := func(sub string) int {
		t.Helper()
		es, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			t.Fatal(err)
		}
		return len(es)
	}
	// The commit hook runs while the message is in tmp/, before new/.
	msg := []byte("Subject: one\r\n\r\nbody\r\n")
	err := m.Send(t.Context(), "a@b.example", []string{"c@d.example"}, msg, func() error {
		if count("tmp") != 1 || count("new") != 0 {
			t.Errorf("at commit: tmp %d, new %d", count("tmp"), count("new"))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	es, _ := os.ReadDir(filepath.Join(dir, "new"))
	if len(es) != 1 || count("tmp") != 0 {
		t.Fatalf("after delivery: new %d, tmp %d", len(es), count("tmp"))
	}
	if b, err := os.ReadFile(filepath.Join(dir, "new", es[0].Name())); err != nil || string(b) != string(msg) {
		t.Fatalf("delivered %q, %v", b, err)
	}
	// A failing commit delivers nothing and leaves nothing behind.
	err = m.Send(t.Context(), "a@b.example", nil, []byte("Subject: two\r\n\r\n"), func() error { return errors.New("ledger down") })
	var se *notify.SendError
	if !errors.As(err, &se) || !se.Temporary || count("new") != 1 || count("tmp") != 0 {
		t.Fatalf("failed commit: %v; new %d, tmp %d", err, count("new"), count("tmp"))
	}
}
