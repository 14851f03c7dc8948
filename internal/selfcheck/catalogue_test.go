package selfcheck

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestShippedCatalogue(t *testing.T) {
	c, err := LoadCatalogue(shipped, "catalogue")
	if err != nil {
		t.Fatal(err)
	}
	r := c.Cleanup("en", "rustock")
	if r == nil || r.Name != "Rustock" {
		t.Fatalf("rustock: %+v", r)
	}
	var names []string
	for _, tl := range r.Tools {
		names = append(names, tl.Name)
	}
	for _, want := range []string{"Microsoft Safety Scanner", "Microsoft Defender Offline"} {
		if !strings.Contains(strings.Join(names, "|"), want) {
			t.Errorf("rustock tools %v lack %s", names, want)
		}
	}
	if g := c.Cleanup("en", "no-such-family"); g == nil || g.Family != "*" {
		t.Fatalf("fallback: %+v", g)
	}
}

func TestLoadCatalogue(t *testing.T) {
	en := fstest.MapFile{Data: []byte("title: Hello\nbye: Bye {name}\n")}
	cleanEN := fstest.MapFile{Data: []byte("families:\n  - {family: '*', name: Any, description: d, steps: [s], tools: [{name: T, url: 'https://example.org/t'}]}\n  - {family: x, name: X, description: d, steps: [s]}\n")}
	tests := []struct {
		name    string
		files   fstest.MapFS
		wantErr string
	}{
		{"ok", fstest.MapFS{"c/messages.en.yaml": &en, "c/cleanup.en.yaml": &cleanEN,
			"c/messages.de.yaml": {Data: []byte("title: Hallo\nbye: Tschüss {name}\n")},
			"c/cleanup.de.yaml":  {Data: []byte("families:\n  - {family: x, name: X-de, description: d, steps: [s]}\n")}}, ""},
		{"missing key", fstest.MapFS{"c/messages.en.yaml": &en, "c/cleanup.en.yaml": &cleanEN,
			"c/messages.de.yaml": {Data: []byte("title: Hallo\n")}}, `messages.de.yaml: key "bye" is missing`},
		{"extra key", fstest.MapFS{"c/messages.en.yaml": &en, "c/cleanup.en.yaml": &cleanEN,
			"c/messages.de.yaml": {Data: []byte("title: Hallo\nbye: b\nextra: e\n")}}, `key "extra" is not in`},
		{"no english", fstest.MapFS{"c/messages.de.yaml": {Data: []byte("title: Hallo\n")}}, "messages.en.yaml is missing"},
		{"no fallback family", fstest.MapFS{"c/messages.en.yaml": &en, "c/cleanup.en.yaml": {Data: []byte("families:\n  - {family: x, name: X, description: d, steps: [s]}\n")}}, `no family "*"`},
		{"http tool", fstest.MapFS{"c/messages.en.yaml": &en, "c/cleanup.en.yaml": {Data: []byte("families:\n  - {family: '*', name: A, description: d, steps: [s], tools: [{name: T, url: 'http://example.org/'}]}\n")}}, "https URL"},
		{"unknown field", fstest.MapFS{"c/messages.en.yaml": &en, "c/cleanup.en.yaml": {Data: []byte("families:\n  - {family: '*', name: A, description: d, steps: [s], link: x}\n")}}, "link"},
		{"bad file name", fstest.MapFS{"c/messages.en.yaml": &en, "c/cleanup.en.yaml": &cleanEN, "c/messages.yaml": {Data: []byte("a: b\n")}}, "not messages.<lang>.yaml"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := LoadCatalogue(tc.files, "c")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range []struct{ header, want string }{
				{"", "en"}, {"de-DE,de;q=0.9,en;q=0.5", "de"}, {"de-AT", "de"}, {"fr, en;q=0.1", "en"},
				{"en-GB;q=0.9, de;q=0.2", "en"}, {"*", "en"}, {";;;,,q=", "en"}, {strings.Repeat("de,", 400), "en"},
			} {
				if got := c.Match(m.header); got != m.want {
					t.Errorf("Match(%.40q) = %s, want %s", m.header, got, m.want)
				}
			}
			if got := c.Text("de", "bye", "name", "Ada"); got != "Tschüss Ada" {
				t.Errorf("Text = %q", got)
			}
			if got := c.Cleanup("de", "x").Name; got != "X-de" {
				t.Errorf("German x: %s", got)
			}
			if got := c.Cleanup("de", "y").Name; got != "Any" {
				t.Errorf("German fallback: %s", got)
			}
			if got := c.Text("de", "nope"); got != "⟦nope⟧" {
				t.Errorf("missing key: %q", got)
			}
		})
	}
}
