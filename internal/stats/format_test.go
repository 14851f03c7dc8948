package stats_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/stats"
	"github.com/takedown/takedown/internal/store"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs:\n got:\n%s\nwant:\n%s", name, got, want)
	}
}

func TestFormatHealthPerListener(t *testing.T) {
	r := &stats.Result{
		From: time.Date(2011, 9, 6, 0, 0, 0, 0, time.UTC), To: time.Date(2011, 9, 13, 0, 0, 0, 0, time.UTC),
		UniqueIPs: 421000, EstimatedHosts: 398000, ResolverIPsExcluded: 1234,
		Estimate: stats.Estimate{Method: "identifiers"},
		Health: store.Health{Received: 123456789, Stored: 123456700, Dropped: 89, Listeners: []store.ListenerHealth{
			{Name: "dns", Received: 100000000, Stored: 99999950, Dropped: 50},
			{Name: "http:127.0.0.1:8080", Received: 23456789, Stored: 23456750, Dropped: 39},
			{Name: "import:shadowserver\n", Received: 0, Stored: 0, Dropped: 0}, // a control character is not printed
		}},
	}
	tests := []struct {
		name  string
		write func(*bytes.Buffer) error
	}{
		{"health.table", func(b *bytes.Buffer) error { return stats.WriteTable(b, r) }},
		{"health.json", func(b *bytes.Buffer) error {
			e := json.NewEncoder(b)
			e.SetIndent("", " ")
			return e.Encode(r)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.write(&b); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name, b.Bytes())
		})
	}
	// Without listeners the table is as before, and JSON has no key.
	r.Health.Listeners = nil
	var b bytes.Buffer
	if err := stats.WriteTable(&b, r); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b.Bytes(), []byte("LISTENER")) {
		t.Fatalf("listener block without listeners:\n%s", b.Bytes())
	}
	j, err := json.Marshal(r)
	if err != nil || bytes.Contains(j, []byte(`"listeners"`)) {
		t.Fatalf("JSON without listeners: %s, %v", j, err)
	}
}
