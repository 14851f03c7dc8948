package storetest

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/evidence"
)

// RunSharedEvidence is the conformance suite of evidence.SharedStore, the
// store of a deployment's one evidence log (internal/evidence/shared.go),
// run through real evidence.Log replicas. open returns a new store and a
// function returning another handle on it (another node).
//
// Concurrent: three nodes append at once (batches of records, and custody
// records, which retry when another node appended first). Every replica
// ends with the same entries, each record once, and every checkpoint any
// node signed, with the one key the store holds, is a prefix of the final
// log. A node whose directory holds another key is refused.
//
// Rotate: a node rotates the key while another appends and checkpoints;
// every checkpoint verifies under the resulting chain of keys, and a
// replica closed during the rotation, and a new one, take the rotation
// and the new key from the store.
//
// Seed: a log that existed before its store was shared gives the empty
// store its entries and key, and a second node replicates it; once the
// store holds a log, a directory with entries it lacks is refused.
func RunSharedEvidence(t *testing.T, open func(tb testing.TB) (evidence.SharedStore, func(tb testing.TB) evidence.SharedStore)) {
	t.Run("Concurrent", func(t *testing.T) {
		first, again := open(t)
		ctx := t.Context()
		dir := t.TempDir()
		open := func(name string, s evidence.SharedStore) *evidence.Log {
			t.Helper()
			l, err := evidence.Open(ctx, filepath.Join(dir, name), evidence.Options{Shared: s})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			return l
		}
		nodes := []*evidence.Log{open("a", first), open("b", again(t)), open("c", again(t))}
		for _, l := range nodes[1:] {
			if l.Key().Fingerprint() != nodes[0].Key().Fingerprint() {
				t.Fatalf("replicas have keys %s and %s", nodes[0].Key().Fingerprint(), l.Key().Fingerprint())
			}
		}

		const batches, per, custody = 20, 7, 10
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			cps    []evidence.Checkpoint
			errs   []error
			taken  int
			record = map[string]bool{}
		)
		for i, l := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				fail := func(err error) {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
				for b := range batches {
					var recs [][]byte
					for r := range per {
						rec := fmt.Sprintf(`{"node":%d,"batch":%d,"rec":%d}`, i, b, r)
						recs = append(recs, []byte(rec))
						mu.Lock()
						record[rec] = true
						mu.Unlock()
					}
					// Records of their own (not events): appending them
					// again after a refusal is right.
					for {
						_, err := l.Append(ctx, recs)
						if !errors.Is(err, evidence.ErrEntriesTaken) {
							if err != nil {
								fail(err)
								return
							}
							break
						}
						mu.Lock()
						taken++
						mu.Unlock()
					}
					if b < custody {
						if _, _, err := l.AppendCustody(ctx, &evidence.CustodyRecord{Action: "test", Detail: fmt.Sprintf("node %d custody %d", i, b)}); err != nil {
							fail(err)
							return
						}
					}
					cp, err := l.Checkpoint(ctx)
					if err != nil {
						fail(err)
						return
					}
					mu.Lock()
					cps = append(cps, cp)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(errs) > 0 {
			t.Fatal(errors.Join(errs...))
		}
		t.Logf("%d appends refused because another node appended first", taken)

		want := uint64(len(nodes) * (batches*per + custody))
		var final evidence.Checkpoint
		for i, l := range nodes {
			if err := l.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			if l.Size() != want {
				t.Fatalf("replica %d has %d entries, want %d", i, l.Size(), want)
			}
			cp, err := l.Checkpoint(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				final = cp
			} else if cp.Root != final.Root {
				t.Fatalf("replica %d's root differs from replica 0's at size %d", i, want)
			}
		}
		if n, err := again(t).EvidenceSize(ctx); err != nil || n != want {
			t.Fatalf("the store holds %d entries (%v), want %d", n, err, want)
		}
		seen := map[string]int{}
		custodies := 0
		if err := nodes[2].Entries(ctx, 0, want, func(_ uint64, _, rec []byte) error {
			if strings.Contains(string(rec), `"custody"`) {
				custodies++
			} else {
				seen[string(rec)]++
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if custodies != len(nodes)*custody || len(seen) != len(record) {
			t.Fatalf("%d custody records and %d distinct records, want %d and %d", custodies, len(seen), len(nodes)*custody, len(record))
		}
		for rec, n := range seen {
			if n != 1 || !record[rec] {
				t.Fatalf("record %s: %d times in the log (appended: %v)", rec, n, record[rec])
			}
		}
		// Every node's checkpoint is one of the final log: the final log
		// proves it consistent.
		for _, cp := range cps {
			if cp.Size == 0 {
				continue
			}
			if _, err := evidence.OpenCheckpoint(cp.Note, nodes[0].Key().Public()); err != nil {
				t.Fatalf("checkpoint at %d: %v", cp.Size, err)
			}
			p, err := nodes[1].ProveConsistency(cp.Size, final.Size)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Verify(cp.Root, final.Root); err != nil {
				t.Fatalf("a checkpoint at %d is not a prefix of the final log: %v", cp.Size, err)
			}
		}

		// A directory with a key of its own, or entries of its own, is refused.
		solo := filepath.Join(dir, "solo")
		l, err := evidence.Open(ctx, solo, evidence.Options{})
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		if _, err := evidence.Open(ctx, solo, evidence.Options{Shared: again(t)}); err == nil || !strings.Contains(err.Error(), "move the directory aside") {
			t.Fatalf("a replica with another key: %v", err)
		}
	})

	t.Run("Seed", func(t *testing.T) {
		_, again := open(t)
		ctx := t.Context()
		dir := t.TempDir()
		l, err := evidence.Open(ctx, filepath.Join(dir, "old"), evidence.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 600 {
			if _, err := l.Append(ctx, [][]byte{fmt.Appendf(nil, `{"old":%d}`, i)}); err != nil {
				t.Fatal(err)
			}
		}
		before, err := l.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		a, err := evidence.Open(ctx, filepath.Join(dir, "old"), evidence.Options{Shared: again(t)})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		b, err := evidence.Open(ctx, filepath.Join(dir, "new"), evidence.Options{Shared: again(t)})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if b.Size() != 600 || b.Key().Fingerprint() != a.Key().Fingerprint() {
			t.Fatalf("the new replica has %d entries and key %s, want 600 and %s", b.Size(), b.Key().Fingerprint(), a.Key().Fingerprint())
		}
		cp, err := b.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if cp.Root != before.Root {
			t.Fatal("the new replica's root differs from the old log's")
		}
		// Once the store holds a log, a directory with entries it lacks is
		// refused: here the replica's, appended to without the store.
		b.Close()
		solo, err := evidence.Open(ctx, filepath.Join(dir, "new"), evidence.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := solo.Append(ctx, [][]byte{[]byte(`{"apart":1}`)}); err != nil {
			t.Fatal(err)
		}
		solo.Close()
		if _, err := evidence.Open(ctx, filepath.Join(dir, "new"), evidence.Options{Shared: again(t)}); err == nil || !strings.Contains(err.Error(), "written apart from the shared store") {
			t.Fatalf("a replica with entries the store lacks: %v", err)
		}
	})

	t.Run("Rotate", func(t *testing.T) {
		first, again := open(t)
		ctx := t.Context()
		dir := t.TempDir()
		openAt := func(name string, s evidence.SharedStore) *evidence.Log {
			t.Helper()
			l, err := evidence.Open(ctx, filepath.Join(dir, name), evidence.Options{Shared: s})
			if err != nil {
				t.Fatal(err)
			}
			return l
		}
		a, b := openAt("a", first), openAt("b", again(t))
		defer a.Close()
		defer b.Close()
		late := openAt("late", again(t)) // a replica that is closed during the rotation
		oldKey := a.Key()
		for i := range 300 {
			if _, err := a.Append(ctx, [][]byte{fmt.Appendf(nil, `{"before":%d}`, i)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := late.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		late.Close()

		// b appends and checkpoints all along while a rotates: every
		// checkpoint b signs must verify under the chain the rotation
		// makes (the old key signs nothing past the rotation's record).
		stop := make(chan struct{})
		var cps []evidence.Checkpoint
		var bErr error
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				_, err := b.Append(ctx, [][]byte{fmt.Appendf(nil, `{"during":%d}`, i)})
				if err != nil && !errors.Is(err, evidence.ErrEntriesTaken) {
					bErr = err
					return
				}
				cp, err := b.Checkpoint(ctx)
				if errors.Is(err, evidence.ErrOldKeySize) {
					continue // b stands at the rotation's record: the old key's size
				}
				if err != nil {
					bErr = err
					return
				}
				cps = append(cps, cp)
			}
		}()
		var res evidence.RotationResult
		var err error
		for try := 0; try < 20; try++ {
			if res, err = a.RotateKey(ctx, "test"); !errors.Is(err, evidence.ErrEntriesTaken) {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
		close(stop)
		<-done
		if err != nil {
			t.Fatalf("rotating the shared log's key: %v", err)
		}
		if bErr != nil {
			t.Fatal(bErr)
		}
		if _, err := b.Append(ctx, [][]byte{[]byte(`{"after":1}`)}); err != nil {
			t.Fatal(err)
		}
		bcp, err := b.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cps = append(cps, bcp)
		if b.Key().Fingerprint() != res.New.Fingerprint() || a.Key().Fingerprint() != res.New.Fingerprint() {
			t.Fatalf("after the rotation: a's key %s, b's %s, the new one %s", a.Key().Fingerprint(), b.Key().Fingerprint(), res.New.Fingerprint())
		}
		_, chain, rots := b.Keys()
		if len(rots) != 1 || !chain.First().Equal(oldKey.Public()) || !chain.Current().Equal(res.New.Public()) {
			t.Fatalf("b's chain: %d rotations, first %v, current %v", len(rots), chain.First(), chain.Current())
		}
		for _, cp := range cps {
			if cp.Size == 0 {
				continue
			}
			if _, err := chain.OpenCheckpoint(cp.Note); err != nil {
				t.Fatalf("b's checkpoint at %d (the rotation's record makes size %d) does not verify under the chain: %v", cp.Size, res.LastOldSize, err)
			}
		}
		// A replica closed during the rotation, and a new one, take the
		// new key and the rotation from the store.
		for _, name := range []string{"late", "new"} {
			l := openAt(name, again(t))
			k, chain, rots := l.Keys()
			if k.Fingerprint() != res.New.Fingerprint() || len(rots) != 1 || !chain.First().Equal(oldKey.Public()) {
				t.Fatalf("%s: key %s, %d rotations", name, k.Fingerprint(), len(rots))
			}
			cp, err := l.Checkpoint(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if cp.Root != bcp.Root || cp.Size != bcp.Size {
				t.Fatalf("%s's checkpoint at %d differs from b's at %d", name, cp.Size, bcp.Size)
			}
			l.Close()
		}
	})
}
