package classify

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDefaultRustock(t *testing.T) {
	rules := Default()
	body := bytes.Repeat([]byte{0xa5}, 96)
	tests := []struct {
		name string
		in   Input
		want Result
	}{
		{"rustock beacon", Input{Protocol: "http", Method: "POST", URI: "/login.php", BodyLen: 96, Body: body},
			Result{Family: "rustock", Tag: "rustock-http-beacon", Confidence: 0.9, Rule: "rustock-login-beacon"}},
		{"rustock over https with query", Input{Protocol: "https", Method: "POST", URI: "/login.php?id=1", BodyLen: 96},
			Result{Family: "rustock", Tag: "rustock-http-beacon", Confidence: 0.9, Rule: "rustock-login-beacon"}},
		{"wrong length", Input{Protocol: "http", Method: "POST", URI: "/login.php", BodyLen: 95}, Result{Family: Unknown}},
		{"GET", Input{Protocol: "http", Method: "GET", URI: "/login.php", BodyLen: 96}, Result{Family: Unknown}},
		{"other path", Input{Protocol: "http", Method: "POST", URI: "/login.phpx", BodyLen: 96}, Result{Family: Unknown}},
		{"tcp", Input{Protocol: "tcp", BodyLen: 96}, Result{Family: Unknown}},
		{"unmatched keeps indicator family", Input{Protocol: "http", Method: "GET", URI: "/", IndicatorFamily: "rustock"},
			Result{Family: "rustock", Tag: "indicator", Confidence: 0.5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rules.Match(&tt.in); got != tt.want {
				t.Errorf("Match = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestEveryCondition(t *testing.T) {
	rules, err := Load(filepath.Join("testdata", "all.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	base := Input{Protocol: "https", DstPort: 8443, Host: "", SNI: "x.c2.example", IndicatorFamily: "zeus",
		Method: "POST", URI: "/gate.php", UserAgent: "Mozilla/4.0 (compatible; MSIE 6.0)", HeaderHash: "0123456789ab",
		JA4: "t13d1516h2_8daaf6152771_e5627efa2ab1", BodyLen: 100, Body: []byte("\x01\x02MAGIC rest")}
	if got := rules.Match(&base); got.Rule != "everything" {
		t.Fatalf("base input: got %+v, want rule everything", got)
	}
	tests := []struct {
		name   string
		change func(*Input)
	}{
		{"protocol", func(in *Input) { in.Protocol = "http" }},
		{"port", func(in *Input) { in.DstPort = 443 }},
		{"host", func(in *Input) { in.SNI = "c2.example.org" }},
		{"indicator family", func(in *Input) { in.IndicatorFamily = "rustock" }},
		{"method", func(in *Input) { in.Method = "GET" }},
		{"uri", func(in *Input) { in.URI = "/index.php" }},
		{"agent", func(in *Input) { in.UserAgent = "curl/8" }},
		{"header hash", func(in *Input) { in.HeaderHash = "ffffffffffff" }},
		{"ja4", func(in *Input) { in.JA4 = "t12d1516h2_8daaf6152771_e5627efa2ab1" }},
		{"body too short", func(in *Input) { in.BodyLen = 63 }},
		{"body too long", func(in *Input) { in.BodyLen = 129 }},
		{"prefix", func(in *Input) { in.Body = []byte("\x01\x03MAGIC") }},
		{"contains", func(in *Input) { in.Body = []byte("\x01\x02MAGE") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := base
			tt.change(&in)
			if got := rules.Match(&in); got.Rule == "everything" {
				t.Errorf("changing %s still matched: %+v", tt.name, got)
			}
		})
	}
	t.Run("apex host matches *.name", func(t *testing.T) {
		in := base
		in.SNI, in.Host = "", "C2.Example."
		if got := rules.Match(&in); got.Rule != "everything" {
			t.Errorf("got %+v", got)
		}
	})
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string // substrings, all of which must appear
	}{
		{"unknown key", "rules:\n  - name: a\n    family: f\n    colour: red\n", []string{"bad.yaml", "line 4", "colour"}},
		{"unknown match key", "rules:\n  - name: a\n    family: f\n    match:\n      hots: x\n", []string{"line 5", "hots"}},
		{"missing family and bad port", "rules:\n  - name: a\n    match:\n      dst_port: 70000\n", []string{"bad.yaml:2: rule has no family", "bad.yaml:2: dst_port \"70000\""}},
		{"second rule bad regexp", "rules:\n  - name: a\n    family: f\n  - name: b\n    family: g\n    match:\n      uri: '('\n", []string{"bad.yaml:4: uri"}},
		{"duplicate name", "rules:\n  - name: a\n    family: f\n  - name: a\n    family: g\n", []string{"bad.yaml:4", "already used at line 2"}},
		{"bad body length", "rules:\n  - name: a\n    family: f\n    match: {body_length: 9-3}\n", []string{"body_length"}},
		{"bad hex", "rules:\n  - name: a\n    family: f\n    match: {body_prefix_hex: zz}\n", []string{"body_prefix_hex"}},
		{"bad confidence", "rules:\n  - name: a\n    family: f\n    confidence: 2\n", []string{"confidence"}},
		{"bad protocol", "rules:\n  - name: a\n    family: f\n    match: {protocol: dns}\n", []string{"protocol \"dns\""}},
		{"bad host glob", "rules:\n  - name: a\n    family: f\n    match: {host: 'a*b'}\n", []string{"host"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("bad.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestReloadAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(path, DefaultYAML(), 0o644); err != nil {
		t.Fatal(err)
	}
	cur, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	// A file whose first rule is fine and second broken yields nothing.
	bad := "rules:\n  - name: ok\n    family: f\n  - name: broken\n"
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	next, err := Load(path)
	if err == nil || next != nil {
		t.Fatalf("Load of a half-bad file = %v, %v; want nil and an error", next, err)
	}
	if cur.Len() != 1 || cur.Match(&Input{Protocol: "http", Method: "POST", URI: "/login.php", BodyLen: 96}).Family != "rustock" {
		t.Error("old rules changed after failed reload")
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("Load of a missing file succeeded")
	}
}

func TestEmptyFile(t *testing.T) {
	r, err := Parse("empty.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Len() != 0 || r.Match(&Input{}).Family != Unknown {
		t.Errorf("empty rules: len %d", r.Len())
	}
}

// FuzzParse checks that no rules file makes Parse panic, and that a
// parsed one can be matched.
func FuzzParse(f *testing.F) {
	f.Add(DefaultYAML())
	if b, err := os.ReadFile(filepath.Join("testdata", "all.yaml")); err == nil {
		f.Add(b)
	}
	f.Add([]byte("rules: [{name: a, family: b, match: {body_length: '-5'}}]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Parse("fuzz.yaml", b)
		if err != nil {
			return
		}
		r.Match(&Input{Protocol: "http", Method: "POST", URI: "/", BodyLen: 5, Body: []byte("x")})
	})
}

func BenchmarkMatchDefault(b *testing.B) {
	rules := Default()
	in := &Input{Protocol: "http", DstPort: 80, Host: "c2.example", Method: "GET", URI: "/login.php", UserAgent: "x", BodyLen: 0}
	for b.Loop() {
		rules.Match(in)
	}
}

// TestDocExamplesParse parses every YAML block of docs/classify.md.
func TestDocExamplesParse(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "classify.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(doc), "```yaml\n")[1:]
	if len(blocks) < 2 {
		t.Fatalf("found %d yaml examples, want at least 2", len(blocks))
	}
	for i, b := range blocks {
		b, _, _ = strings.Cut(b, "```")
		r, err := Parse(fmt.Sprintf("docs/classify.md example %d", i+1), []byte(b))
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if r.Len() == 0 {
			t.Errorf("example %d has no rules", i+1)
		}
	}
	// The first example is the shipped default.
	first, _, _ := strings.Cut(blocks[0], "```")
	if !strings.Contains(string(DefaultYAML()), strings.TrimSpace(first[strings.Index(first, "  - name"):])) {
		t.Error("the doc's Rustock example differs from default.yaml")
	}
}

// verifies_source is a claim about a payload pattern: a rule without one
// cannot make it, and the file is refused with the rule's line.
func TestVerifiesSourceNeedsPayloadPattern(t *testing.T) {
	_, err := Parse("r.yaml", []byte("rules:\n  - name: ports\n    family: x\n    verifies_source: true\n    match:\n      protocol: udp\n      dst_port: 53\n"))
	if err == nil || !strings.Contains(err.Error(), "r.yaml:2") || !strings.Contains(err.Error(), "verifies_source needs a payload pattern") {
		t.Fatalf("err = %v; want r.yaml:2 naming the missing payload pattern", err)
	}
	r, err := Parse("r.yaml", []byte("rules:\n  - name: beacon\n    family: x\n    verifies_source: true\n    match:\n      protocol: udp\n      body_contains_hex: \"c0ffee\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if res := r.Match(&Input{Protocol: "udp", Body: []byte("\xc0\xff\xee")}); !res.VerifiesSource || res.Family != "x" {
		t.Errorf("match %+v; want family x with VerifiesSource", res)
	}
	if res := r.Match(&Input{Protocol: "udp", Body: []byte("other")}); res.VerifiesSource {
		t.Errorf("an unmatched datagram verifies its source: %+v", res)
	}
}
