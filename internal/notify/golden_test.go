package notify_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/takedown/takedown/internal/netscope"
	"github.com/takedown/takedown/internal/notify"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestGolden pins the report files, the X-ARF 0.2 digest, the summary and
// the whole mail of the seed data for one subscriber holding AS64500 and
// NL.
func TestGolden(t *testing.T) {
	db, ns := newStore(t)
	seed(t, db, seedEvents())
	sub := subscriber(t, "golden", "AS64500,NL", "abuse@golden.example")
	sub.Formats = []notify.Format{notify.FormatShadowserver, notify.FormatXARF4, notify.FormatXARF02}
	rows, err := notify.Collect(t.Context(), ns, day, []netscope.Networks{sub.Networks})
	if err != nil {
		t.Fatal(err)
	}
	o := notify.MessageOptions{From: "takedown@dcu.example", PublicSource: "Test DCU", APIURL: "https://takedown.example/api/v1", CompressAbove: -1}
	generated := day.AddDate(0, 0, 1)
	atts, err := notify.Attachments(&sub, day, rows[0], o, generated)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"summary.txt": []byte(notify.Summary(&sub, day, rows[0], atts, o))}
	for _, a := range atts {
		files[a.Name] = a.Data
	}
	if len(atts) != 5 {
		t.Errorf("%d attachments, want 3 Shadowserver files, XARF v4 and the X-ARF 0.2 digest", len(atts))
	}
	// The whole mail: its bytes depend on nothing but the input (the
	// boundaries derive from the Message-ID).
	msg, _, err := notify.Compose(&sub, day, rows[0], o, generated)
	if err != nil {
		t.Fatal(err)
	}
	files["2011-09-13-golden.eml"] = msg
	for name, got := range files {
		path := filepath.Join("testdata", "golden", name)
		if *update {
			os.MkdirAll(filepath.Dir(path), 0o755)
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -update)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s (go test -update rewrites it):\n%s", name, path, got)
		}
	}
}
