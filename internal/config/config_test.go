package config

import (
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// exampleKeys are the keys the shipped example sets, written as Keys
// writes them; the fields of a map of records may be shown in a comment.
func exampleKeys(t testing.TB) (set map[string]bool, text string) {
	t.Helper()
	var root yaml.Node
	if err := yaml.Unmarshal(Example(), &root); err != nil {
		t.Fatal(err)
	}
	idx := regexp.MustCompile(`\[\d+\]`)
	set = map[string]bool{}
	for k := range keyLines(&root) {
		// A list item is known when its list is.
		set[strings.TrimSuffix(idx.ReplaceAllString(k, "[]"), "[]")] = true
	}
	return set, string(Example())
}

// The example is the reference: every key in it is known, and every known
// key is in it.
func TestExampleHasEveryKey(t *testing.T) {
	keys := Keys()
	known := map[string]bool{}
	for _, k := range keys {
		known[k] = true
		for p := k; strings.ContainsAny(p, ".["); {
			p = p[:strings.LastIndexAny(p, ".[")]
			known[p] = true
		}
	}
	ex, text := exampleKeys(t)
	for k := range ex {
		if !known[k] {
			t.Errorf("example.yaml sets %s, which the schema does not know", k)
		}
	}
	for _, k := range keys {
		if ex[k] {
			continue
		}
		if parent, field, ok := strings.Cut(k, ".*."); ok && ex[parent] {
			// A map of records: its fields are shown in a comment.
			if regexp.MustCompile(`(?m)^\s*#.*[{ ]` + regexp.QuoteMeta(field) + `:`).MatchString(text) {
				continue
			}
		}
		t.Errorf("example.yaml does not show %s", k)
	}
	if len(keys) < 60 {
		t.Fatalf("Keys found only %d keys: %v", len(keys), keys)
	}
}

func TestProblemsCarryLines(t *testing.T) {
	doc := "log:\n  level: loud\ndns:\n  ttl: 0\n  colour: blue\n  listen: [\"127.0.0.1:53\", \"nope\"]\nregistry:\n  poll: 3x\nnotify:\n  enabled: true\n"
	_, err := Parse("t.yaml", []byte(doc))
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("Parse: %v, want Problems", err)
	}
	want := []string{
		`t.yaml:2: log.level: "loud" is not debug, info, warn or error`,
		`t.yaml:4: dns.ttl: 0 is not between 1 and 86400`,
		`t.yaml:5: dns.colour: unknown key`,
		`t.yaml:6: dns.listen[1]: "nope" is not address:port`,
		`t.yaml:8: registry.poll: "3x" is not a duration like 15s or 720h`,
		`t.yaml:9: notify.from: the sender address is required`,
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.String())
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, tc := range []struct{ name, doc, want string }{
		{"syntax", "dns:\n ttl: [\n", "s.yaml:2: "},
		{"per case", "sinkhole:\n  per_case:\n    x:\n      a: [\"::1\"]\n", `s.yaml:4: sinkhole.per_case.x.a: "::1" is not an IPv4 address`},
		{"listener", "listeners:\n  - {kind: http, listen: \"127.0.0.1:1\"}\n  - {kind: gopher, listen: \"127.0.0.1:2\"}\n", `s.yaml:3: listeners[1].kind: "gopher" is not http, https, tcp or udp`},
		{"not in file", "web:\n  tls_cert: a.pem\n", "s.yaml:2: web.tls_cert: give both"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("s.yaml", []byte(tc.doc))
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("got %v, want a problem starting %q", err, tc.want)
			}
		})
	}
	if _, err := Parse("ok.yaml", Example()); err != nil {
		t.Errorf("the example does not load: %v", err)
	}
}

func TestChanged(t *testing.T) {
	a, b := Default(), Default()
	b.DNS.TTL = 60
	b.Sinkhole.PerCase = map[string]SinkholeAddrs{"x": {A: []string{"127.0.0.9"}}}
	b.Listeners = append(b.Listeners, Listener{Kind: "tcp", Listen: "127.0.0.1:1"})
	b.Registry.NeverSeize = []string{} // empty and absent are the same
	got := b.Changed(a)
	want := []string{"dns.ttl", "listeners", "sinkhole.per_case"}
	if !slices.Equal(got, want) {
		t.Errorf("Changed = %v, want %v", got, want)
	}
	for k := range a.Settings() {
		if !slices.ContainsFunc(Keys(), func(s string) bool { return s == k || strings.HasPrefix(s, k+".") || strings.HasPrefix(s, k+"[") }) {
			t.Errorf("setting %s is no key", k)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(Example())
	f.Add([]byte("dns:\n  ttl: 0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := Parse("f.yaml", b)
		var ps Problems
		if err != nil && errors.As(err, &ps) {
			for _, p := range ps {
				if p.Line < 0 || p.File != "f.yaml" {
					t.Fatalf("bad problem %+v", p)
				}
			}
		}
	})
}
