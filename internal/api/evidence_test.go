package api_test

import (
	"strings"
	"testing"

	"github.com/takedown/takedown/internal/api"
	"github.com/takedown/takedown/internal/api/apitest"
	"github.com/takedown/takedown/internal/evidence"
)

// TestEvidenceCheckpoint serves a real evidence log's latest checkpoint,
// which must verify with the key the API names.
func TestEvidenceCheckpoint(t *testing.T) {
	l, err := evidence.Open(t.Context(), t.TempDir(), evidence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	e := newEnv(t, func(o *api.Options, _ *apitest.Fixture) { o.Evidence = l })
	if code, body := e.get(t, "/api/v1/evidence/checkpoints/latest", "analyst"); code != 404 {
		t.Fatalf("before a checkpoint: %d %s", code, body)
	}
	if _, err := l.Append(t.Context(), [][]byte{[]byte("one"), []byte("two"), []byte("three")}); err != nil {
		t.Fatal(err)
	}
	cp, err := l.Checkpoint(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	code, body := e.get(t, "/api/v1/evidence/checkpoints/latest", "analyst")
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	d := decode[struct {
		Key struct {
			Fingerprint string `json:"fingerprint"`
		} `json:"key"`
		Checkpoint struct {
			Size uint64 `json:"size"`
			Note string `json:"note"`
		} `json:"checkpoint"`
	}](t, body)
	if d.Checkpoint.Size != 3 || d.Key.Fingerprint != l.Key().Fingerprint() || !strings.HasPrefix(d.Key.Fingerprint, "SHA256:") {
		t.Fatalf("got %+v", d)
	}
	got, err := evidence.OpenCheckpoint([]byte(d.Checkpoint.Note), l.Key().Public())
	if err != nil || got.Size != cp.Size || got.Root != cp.Root {
		t.Fatalf("served note does not verify: %v", err)
	}
	if code, _ := e.get(t, "/api/v1/health", ""); code != 200 {
		t.Fatal("health")
	}
	if _, body := e.get(t, "/api/v1/health", ""); !strings.Contains(string(body), `"evidence_enabled": true`) {
		t.Fatalf("health: %s", body)
	}
}
