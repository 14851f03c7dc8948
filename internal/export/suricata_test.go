package export

import (
	"fmt"
	"hash/fnv"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/registry"
)

var sidRE = regexp.MustCompile(`; sid:(\d+); rev:1;\)$`)

// ruleSIDs maps each rule (its text without the SID) to its SID, and checks
// that SIDs are distinct and in the local range.
func ruleSIDs(tb testing.TB, out string) map[string]int {
	tb.Helper()
	sids := map[string]int{}
	seen := map[int]string{}
	for _, line := range strings.Split(out, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := sidRE.FindStringSubmatch(line)
		if m == nil {
			tb.Fatalf("rule without sid: %s", line)
		}
		sid, _ := strconv.Atoi(m[1])
		if sid < sidMin || sid >= sidMin+sidCount {
			tb.Errorf("sid %d outside %d–%d", sid, sidMin, sidMin+sidCount-1)
		}
		if prev, dup := seen[sid]; dup {
			tb.Fatalf("sid %d used twice:\n%s\n%s", sid, prev, line)
		}
		seen[sid] = line
		sids[sidRE.ReplaceAllString(line, "")] = sid
	}
	return sids
}

func TestSuricataSIDsStable(t *testing.T) {
	base := fixture(t)
	want := ruleSIDs(t, exportString(t, "suricata", base, Options{}))
	if len(want) != 16 {
		t.Fatalf("%d rules, want 16 (5 names × 2, 6 prefixes)", len(want))
	}

	// Grow the set by thousands of other domains, none of which hashes near
	// a fixture rule's SID: every fixture rule must keep its SID, while the
	// new rules collide among themselves (40,000 in a million) and must
	// still get distinct ones.
	near := func(key string) bool {
		s := sidOf(key)
		for _, w := range want {
			if s >= w-64 && s <= w+64 {
				return true
			}
		}
		return false
	}
	grown := fixture(t)
	collisions := map[int]int{}
	for i := 0; len(grown.Entries) < len(base.Entries)+20_000; i++ {
		name := fmt.Sprintf("grow%d.example", i)
		if near("domain/dns/"+name) || near("domain/tls/"+name) {
			continue
		}
		collisions[sidOf("domain/dns/"+name)]++
		collisions[sidOf("domain/tls/"+name)]++
		grown.Entries = append(grown.Entries, entry(t, registry.KindDomain, name, "rustock-2011", longExpiry))
	}
	n := 0
	for _, c := range collisions {
		if c > 1 {
			n++
		}
	}
	if n == 0 {
		t.Fatal("the grown set has no SID collision: the test would not exercise probing")
	}
	got := ruleSIDs(t, exportString(t, "suricata", newSet(grown.At, grown.Serial+1, grown.Entries), Options{}))
	for rule, sid := range want {
		if got[rule] != sid {
			t.Errorf("SID of %q changed from %d to %d when unrelated indicators were added", rule, sid, got[rule])
		}
	}
}

func TestSuricataSIDCollision(t *testing.T) {
	// Find two domains whose DNS rules hash to the same SID.
	bySID := map[int]string{}
	var a, b string
	for i := 0; a == ""; i++ {
		name := fmt.Sprintf("c%d.example", i)
		s := sidOf("domain/dns/" + name)
		if other, ok := bySID[s]; ok {
			a, b = min(other, name), max(other, name)
		}
		bySID[s] = name
	}
	hashed := sidOf("domain/dns/" + a)
	at := time.Date(2011, 9, 13, 0, 0, 0, 0, time.UTC)
	sids := func(names ...string) map[string]int {
		var es []registry.Entry
		for _, n := range names {
			es = append(es, entry(t, registry.KindDomain, n, "rustock-2011", longExpiry))
		}
		out := map[string]int{}
		for rule, sid := range ruleSIDs(t, exportString(t, "suricata", newSet(at, 1, es), Options{})) {
			if strings.HasPrefix(rule, "alert dns") {
				for _, n := range names {
					if strings.Contains(rule, "content:\"."+n+"\"") {
						out[n] = sid
					}
				}
			}
		}
		return out
	}
	for _, order := range [][]string{{a, b}, {b, a}} {
		got := sids(order...)
		// The key that sorts first keeps the hashed SID; the other probes on.
		if got[a] != hashed || got[b] == hashed || got[b] < sidMin {
			t.Errorf("entries %v: SIDs %v, want %s=%d and %s elsewhere", order, got, a, hashed, b)
		}
	}
	// Documented limit: with a gone, b takes the hashed SID.
	if got := sids(b); got[b] != hashed {
		t.Errorf("alone, %s has SID %d, want %d", b, got[b], hashed)
	}
}

func TestAssignSIDsWraps(t *testing.T) {
	// Probing past the top of the range wraps to its bottom.
	top := []string{"k1071529", "k2285668"} // found by search: both hash to the top SID
	for _, k := range top {
		if sidOf(k) != sidMin+sidCount-1 {
			t.Fatalf("sidOf(%q) = %d, not the top of the range", k, sidOf(k))
		}
	}
	rules := []suricataRule{{key: top[0]}, {key: top[1]}}
	assignSIDs(rules)
	got := []int{rules[0].sid, rules[1].sid}
	slices.Sort(got)
	if got[0] != sidMin || got[1] != sidMin+sidCount-1 {
		t.Errorf("SIDs %v, want [%d %d]", got, sidMin, sidMin+sidCount-1)
	}
}

func TestSIDOfIsFNV1a(t *testing.T) {
	for _, key := range []string{"", "domain/dns/c2.example", "addr/198.51.100.0/24", "host/tls/xn--80ak6aa92e.com"} {
		h := fnv.New64a()
		h.Write([]byte(key))
		if want := sidMin + int(h.Sum64()%sidCount); sidOf(key) != want {
			t.Errorf("sidOf(%q) = %d, want %d", key, sidOf(key), want)
		}
	}
}
