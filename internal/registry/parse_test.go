package registry

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func testGuard(t testing.TB) *Guard {
	t.Helper()
	g, err := NewGuard([]string{"operator-protected.net"})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestParse(t *testing.T) {
	tests := []struct {
		in        string
		kind      Kind
		wantKind  Kind
		wantValue string
		wantErr   string
	}{
		{in: "Evil-C2.COM.", wantKind: KindDomain, wantValue: "evil-c2.com"},
		{in: "*.evil.com", wantKind: KindDomain, wantValue: "evil.com"},
		{in: "host:www.evil.com", wantKind: KindHost, wantValue: "www.evil.com"},
		{in: "bücher.de", wantKind: KindDomain, wantValue: "xn--bcher-kva.de"},
		{in: "93.184.216.34", wantKind: KindIP, wantValue: "93.184.216.34"},
		{in: "::ffff:93.184.216.34", wantKind: KindIP, wantValue: "93.184.216.34"},
		{in: "2a00:1450:4001:0000::1", wantKind: KindIP, wantValue: "2a00:1450:4001::1"},
		{in: "93.184.216.77/24", wantKind: KindCIDR, wantValue: "93.184.216.0/24"},
		{in: "93.184.216.34/32", wantKind: KindIP, wantValue: "93.184.216.34"},
		{in: "2a00:1450:4001:12::/48", wantKind: KindCIDR, wantValue: "2a00:1450:4001::/48"},
		{in: "evil.com", kind: KindHost, wantKind: KindHost, wantValue: "evil.com"},
		{in: "bad-.com", wantErr: "not a valid domain"},
		{in: "com", wantErr: "single label"},
		{in: "a..b", wantErr: "not a valid domain"},
		{in: "93.184.216.34/33", wantErr: "not a valid CIDR"},
		{in: "host:1.2.3.4", wantErr: "write it as ip:1.2.3.4"},
		{in: "domain:1.2.3.4", wantErr: "is an address, not a domain"},
		// All-numeric top-level labels: an address, mistyped or not.
		{in: "999.1.1.300", wantErr: `the top-level label "300" is all-numeric`},
		{in: "host:999.1.1.300", wantErr: "all-numeric"},
		{in: "*.10.1", wantErr: "all-numeric"},
		{in: "001.2.3.4", wantErr: "all-numeric"},
		{in: "evil.123", wantErr: "all-numeric"},
		{in: "123.evil.com", wantKind: KindDomain, wantValue: "123.evil.com"},
		{in: "evil.c0m", wantKind: KindDomain, wantValue: "evil.c0m"},
		{in: "ev il.com", wantErr: "not a valid domain"},
		{in: strings.Repeat("a", 64) + ".com", wantErr: "63"},
		{in: "", wantErr: "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in, tt.kind)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse(%q) = %+v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got.Kind != tt.wantKind || got.Value != tt.wantValue {
				t.Fatalf("Parse(%q) = %s %s; want %s %s", tt.in, got.Kind, got.Value, tt.wantKind, tt.wantValue)
			}
		})
	}
}

func TestGuard(t *testing.T) {
	g := testGuard(t)
	tests := []struct {
		in      string
		wantErr string
	}{
		{"evil-c2.com", ""},
		{"co.uk", "public suffix"},
		{"com.au", "public suffix"},
		{"blogspot.com", "public suffix"},
		{"evil.co.uk", ""},
		{"google.com", "never-seize"},
		{"drive.google.com", "under google.com"},
		{"operator-protected.net", "never-seize"},
		{"c2.example", "special-use"},
		{"x.localhost", "special-use"},
		{"10.1.2.3", "reserved"},
		{"127.0.0.1", "reserved"},
		{"192.0.2.5", "reserved"},
		{"fe80::1", "reserved"},
		{"2001:db8::1", "reserved"},
		{"93.184.0.0/15", "wider than"},
		{"93.184.0.0/16", ""},
		{"2a00::/31", "wider than"},
		{"10.0.0.0/7", "reserved"}, // overlaps 10/8
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			ind, err := Parse(tt.in, "")
			if err != nil {
				t.Fatal(err)
			}
			err = g.Check(ind)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Check(%s) = %v; want nil", tt.in, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Check(%s) = %v; want error containing %q", tt.in, err, tt.wantErr)
			}
		})
	}
	lax := testGuard(t)
	lax.AllowReserved, lax.AllowWide = true, true
	for _, s := range []string{"c2.example", "10.1.2.3", "93.184.0.0/15"} {
		ind, _ := Parse(s, "")
		if err := lax.Check(ind); err != nil {
			t.Errorf("with allow flags, Check(%s) = %v", s, err)
		}
	}
	if ind, _ := Parse("google.com", ""); lax.Check(ind) == nil {
		t.Error("allow flags must not lift the never-seize list")
	}
}

func TestParseFileText(t *testing.T) {
	in := "# seized\nevil-c2.com\n\nEVIL-C2.com.  # again\nhost:www.bad.net\n93.184.216.34\n"
	res, err := ParseFile("order.txt", strings.NewReader(in), testGuard(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Indicators) != 3 || res.Duplicates != 1 {
		t.Fatalf("got %d indicators, %d duplicates; want 3, 1: %+v", len(res.Indicators), res.Duplicates, res.Indicators)
	}
	if res.Indicators[0].Source != "order.txt:2" || res.Indicators[2].Source != "order.txt:6" {
		t.Fatalf("sources %q %q", res.Indicators[0].Source, res.Indicators[2].Source)
	}
}

func TestParseFileReportsEveryBadLine(t *testing.T) {
	var b strings.Builder
	bad := map[int]bool{}
	for i := 1; i <= 1003; i++ {
		switch i {
		case 17:
			b.WriteString("not a name!\n")
			bad[i] = true
		case 500:
			b.WriteString("google.com\n")
			bad[i] = true
		case 999:
			b.WriteString("10.0.0.1\n")
			bad[i] = true
		default:
			fmt.Fprintf(&b, "c2-%d.evil.com\n", i)
		}
	}
	_, err := ParseFile("big.txt", strings.NewReader(b.String()), testGuard(t))
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("err = %v; want Problems", err)
	}
	if len(ps) != 3 {
		t.Fatalf("%d problems; want 3:\n%v", len(ps), ps)
	}
	for _, p := range ps {
		if !bad[p.Line] || p.File != "big.txt" {
			t.Errorf("unexpected problem %s", p)
		}
	}
	if !strings.Contains(ps.Error(), "big.txt:500: google.com is on the never-seize list") {
		t.Errorf("message: %s", ps.Error())
	}
}

func TestParseFileCSV(t *testing.T) {
	in := "indicator,kind,family,note\nevil-c2.com,,Rustock,seized\nwww.bad.net,host,,\n93.184.216.34,,,\n\"93.184.216.0/24\",cidr,rustock,\"a, b\"\n"
	res, err := ParseFile("order.csv", strings.NewReader(in), testGuard(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"domain evil-c2.com rustock", "host www.bad.net ", "ip 93.184.216.34 ", "cidr 93.184.216.0/24 rustock"}
	if len(res.Indicators) != len(want) {
		t.Fatalf("got %+v", res.Indicators)
	}
	for i, ind := range res.Indicators {
		if got := fmt.Sprintf("%s %s %s", ind.Kind, ind.Value, ind.Family); got != want[i] {
			t.Errorf("row %d = %q; want %q", i, got, want[i])
		}
	}
	if res.Indicators[3].Note != "a, b" || res.Indicators[3].Source != "order.csv:5" {
		t.Errorf("row 4: %+v", res.Indicators[3])
	}

	bad := "indicator,kind\nevil.com,domain\nx.com,bogus\n1.2.3.4,host\n"
	_, err = ParseFile("bad.csv", strings.NewReader(bad), testGuard(t))
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 2 || ps[0].Line != 3 || ps[1].Line != 4 {
		t.Fatalf("err = %v", err)
	}
	_, err = ParseFile("bad.csv", strings.NewReader("indicator,colour\nevil.com,red\n"), testGuard(t))
	if err == nil || !strings.Contains(err.Error(), `bad.csv:1: unknown column "colour"`) {
		t.Fatalf("err = %v", err)
	}
}

const stixBundle = `{
  "type": "bundle",
  "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d",
  "objects": [
    {"type": "identity", "spec_version": "2.1", "id": "identity--1", "name": "x"},
    {
      "type": "indicator", "spec_version": "2.1",
      "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
      "created": "2011-03-16T00:00:00Z", "modified": "2011-03-16T00:00:00Z",
      "pattern": "[domain-name:value = 'Evil-C2.com']", "pattern_type": "stix",
      "valid_from": "2011-03-16T00:00:00Z", "valid_until": "2013-03-16T00:00:00Z"
    },
    {
      "type": "indicator", "spec_version": "2.1",
      "id": "indicator--2",
      "pattern": "[ipv4-addr:value = '93.184.216.0/24'] OR [ipv6-addr:value = '2a00:1450::1']", "pattern_type": "stix",
      "valid_from": "2011-03-16T00:00:00Z"
    }
  ]
}`

func TestParseFileSTIX(t *testing.T) {
	res, err := ParseFile("bundle.json", strings.NewReader(stixBundle), testGuard(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Indicators) != 3 {
		t.Fatalf("got %+v", res.Indicators)
	}
	d := res.Indicators[0]
	if d.Kind != KindDomain || d.Value != "evil-c2.com" || d.Until.Year() != 2013 || d.Source != "bundle.json:6" {
		t.Errorf("domain: %+v", d)
	}
	if res.Indicators[1].Value != "93.184.216.0/24" || res.Indicators[2].Value != "2a00:1450::1" {
		t.Errorf("addresses: %+v", res.Indicators[1:])
	}
	host := strings.Replace(stixBundle, `"pattern_type": "stix",
      "valid_from": "2011-03-16T00:00:00Z", "valid_until"`, `"pattern_type": "stix", "x_takedown_kind": "host",
      "valid_from": "2011-03-16T00:00:00Z", "valid_until"`, 1)
	if res, err := ParseFile("bundle.json", strings.NewReader(host), testGuard(t)); err != nil || res.Indicators[0].Kind != KindHost {
		t.Fatalf("x_takedown_kind host: %+v, %v", res, err)
	}
	bad := strings.Replace(stixBundle, `'93.184.216.0/24'`, `'2a00::1'`, 1)
	bad = strings.Replace(bad, "[domain-name:value = 'Evil-C2.com']", "[url:value = 'http://x']", 1)
	_, err = ParseFile("bundle.json", strings.NewReader(bad), testGuard(t))
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 2 || ps[0].Line != 6 || ps[1].Line != 13 {
		t.Fatalf("err = %v", err)
	}
}

func FuzzParseText(f *testing.F) {
	f.Add("evil.com\n# c\nhost:www.x.net\n1.2.3.4/24\n")
	f.Add("\ufeff*.a.b\n")
	g := testGuard(f)
	f.Fuzz(func(t *testing.T, s string) {
		res, err := ParseFile("f.txt", strings.NewReader(s), g)
		checkFuzzResult(t, res, err)
	})
}

func FuzzParseCSV(f *testing.F) {
	f.Add("indicator,kind,family,note\nevil.com,,x,\"q\"\"\"\n")
	f.Add("indicator\n\"unterminated\n")
	g := testGuard(f)
	f.Fuzz(func(t *testing.T, s string) {
		res, err := ParseFile("f.csv", strings.NewReader("indicator,kind,family\n"+s), g)
		checkFuzzResult(t, res, err)
	})
}

func FuzzParseSTIX(f *testing.F) {
	f.Add(stixBundle)
	f.Add(`{"type":"bundle","objects":[{"type":"indicator","pattern":"[domain-name:value = 'a\\'b.com' OR domain-name:value = 'c.com']"}]}`)
	g := testGuard(f)
	f.Fuzz(func(t *testing.T, s string) {
		res, err := ParseFile("f.json", strings.NewReader("{"+s), g)
		checkFuzzResult(t, res, err)
	})
}

// checkFuzzResult checks the importer's contract on any input: either
// problems with positions, or indicators that normalise to themselves and
// pass the guard.
func checkFuzzResult(t *testing.T, res *ParseResult, err error) {
	t.Helper()
	if err != nil {
		var ps Problems
		if !errors.As(err, &ps) || len(ps) == 0 {
			t.Fatalf("error is not Problems: %v", err)
		}
		return
	}
	for _, ind := range res.Indicators {
		again, err := Parse(ind.Value, ind.Kind)
		if err != nil || again.Value != ind.Value {
			t.Fatalf("%s %q does not normalise to itself: %q, %v", ind.Kind, ind.Value, again.Value, err)
		}
	}
}

// TestNormalizeNameNumericTLD: a name that is a whole address gets the
// address form suggested; one that is not still names its numeric label.
func TestNormalizeNameNumericTLD(t *testing.T) {
	tests := []struct{ in, wantErr string }{
		{"1.2.3.4", "seize it as the address 1.2.3.4"},
		{"1.2.3.4.", "seize it as the address 1.2.3.4"},
		{"999.1.1.300", "neither a domain name nor an address"},
		{"example.42", `top-level label "42"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := NormalizeName(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NormalizeName(%q) = %q, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
		})
	}
}

// TestParseFileNumericTLD: a mistyped address in a file is one more bad
// line, reported with file:line among the others.
func TestParseFileNumericTLD(t *testing.T) {
	in := "# order\nevil-c2.com\n999.1.1.300\n93.184.216.34\nhost:1.2.3.4\n"
	_, err := ParseFile("order.txt", strings.NewReader(in), testGuard(t))
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("ParseFile = %v; want Problems", err)
	}
	want := []string{
		`order.txt:3: "999.1.1.300" is neither a domain name nor an address: the top-level label "300" is all-numeric`,
		`order.txt:5: "host:1.2.3.4" is an address, not a host: to seize the address, write it as ip:1.2.3.4`,
	}
	if len(ps) != len(want) {
		t.Fatalf("problems:\n%v\nwant %d", err, len(want))
	}
	for i, w := range want {
		if ps[i].String() != w {
			t.Errorf("problem %d = %q\nwant %q", i, ps[i].String(), w)
		}
	}
}
