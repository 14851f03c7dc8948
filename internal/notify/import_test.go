package notify_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/takedown/takedown/internal/notify"
	"github.com/takedown/takedown/internal/registry"
)

func TestParseSubscribersCSV(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		wantIDs  []string
		wantErrs []string // each a "file:line: …" prefix or fragment
	}{
		{"minimal", "id,organisation,contacts,networks\nisp-a,ISP A,abuse@isp-a.example,AS64500\n", []string{"isp-a"}, nil},
		{"columns in any order, lists, defaults", "networks,contacts,id,organisation,formats,tlp\n\"AS64500;192.0.2.0/24 2001:db8::/32\",a@x.example;b@x.example,isp-b,ISP B,csv xarf4,green\n# comment\ncert-nl,NL,cert@nl.example,CERT NL,,\n",
			[]string{"isp-b"}, []string{"subs.csv:4: network \"cert-nl\"", "subs.csv:4: contact \"NL\""}},
		{"every bad row reported", "id,organisation,contacts,networks\nok,OK,ok@ok.example,AS1\nBad!,,not-an-address,AS0\ndup,Dup,d@d.example,DE\ndup,Dup,d@d.example,DE\n",
			nil, []string{"subs.csv:3: id \"Bad!\"", "subs.csv:3: no organisation", "subs.csv:3: contact \"not-an-address\"", "subs.csv:3: network \"AS0\"", "subs.csv:5: id \"dup\" already used on line 4"}},
		{"unknown and missing columns", "id,org,colour\n", nil, []string{"subs.csv:1: unknown column \"colour\"", "subs.csv:1: no \"contacts\" column", "subs.csv:1: no \"networks\" column"}},
		{"bad format and tlp", "id,organisation,contacts,networks,formats,tlp\nx,X,x@x.example,AS5,pdf,purple\n", nil, []string{"subs.csv:2: unknown format \"pdf\"", "subs.csv:2: unknown TLP \"purple\""}},
		{"short row", "id,organisation,contacts,networks\nx,X,x@x.example\n", nil, []string{"subs.csv:2: 3 fields, want 4"}},
		{"bad quoting", "id,organisation,contacts,networks\nx,\"X,x@x.example,AS5\n", nil, []string{"subs.csv:2"}},
		{"empty", "", nil, []string{"subs.csv:1: empty file"}},
		{"header only", "id,organisation,contacts,networks\n", nil, []string{"subs.csv:1: no subscribers"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			subs, err := notify.ParseSubscribersCSV("subs.csv", strings.NewReader(tc.in))
			if len(tc.wantErrs) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				var ids []string
				for _, s := range subs {
					ids = append(ids, s.ID)
				}
				if !slices.Equal(ids, tc.wantIDs) {
					t.Errorf("ids %q, want %q", ids, tc.wantIDs)
				}
				return
			}
			var ps registry.Problems
			if !errors.As(err, &ps) {
				t.Fatalf("error %v, want registry.Problems", err)
			}
			if subs != nil {
				t.Errorf("subscribers returned with problems: all or nothing")
			}
			for _, w := range tc.wantErrs {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing problem %q in:\n%v", w, err)
				}
			}
		})
	}
	// The defaults and lists of a good row.
	subs, err := notify.ParseSubscribersCSV("s.csv", strings.NewReader("id,organisation,contacts,networks,formats,tlp\nisp-b,ISP B,\"a@x.example, b@x.example\",\"AS64500,192.0.2.0/24,2001:db8::/32,de\",csv xarf4,white\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := subs[0]
	if !slices.Equal(s.Contacts, []string{"a@x.example", "b@x.example"}) || s.Networks.String() != "AS64500,192.0.2.0/24,2001:db8::/32,DE" ||
		!slices.Equal(s.Formats, []notify.Format{notify.FormatShadowserver, notify.FormatXARF4}) || s.TLP != "CLEAR" || s.Cadence != "daily" {
		t.Errorf("parsed %+v", s)
	}
}

func FuzzParseSubscribersCSV(f *testing.F) {
	f.Add("id,organisation,contacts,networks\nisp-a,ISP A,abuse@isp-a.example,AS64500\n")
	f.Add("networks,contacts,id,organisation,formats,tlp\n\"AS64500;192.0.2.0/24\",a@x.example,isp-b,ISP B,csv xarf4,green\n")
	f.Add("id,organisation,contacts,networks\nx,\"X,x@x.example,AS5\n")
	f.Add("\ufeffid,org,contacts,networks,cadence\n#c\nx,X,<x@x.example>,::ffff:1.2.3.4/120,weekly\n")
	f.Fuzz(func(t *testing.T, in string) {
		subs, err := notify.ParseSubscribersCSV("f.csv", strings.NewReader(in))
		if err != nil {
			var ps registry.Problems
			if errors.As(err, &ps) {
				if subs != nil {
					t.Fatal("subscribers and problems together")
				}
				for _, p := range ps {
					if !strings.HasPrefix(p.String(), "f.csv") {
						t.Fatalf("problem without the file name: %q", p)
					}
				}
			}
			return
		}
		if len(subs) == 0 {
			t.Fatal("no error and no subscribers")
		}
		for _, s := range subs {
			// A parsed subscriber is valid and stays so.
			if err := s.Normalize(); err != nil {
				t.Fatalf("parsed subscriber %+v does not validate: %v", s, err)
			}
			if s.Networks.Empty() || len(s.Contacts) == 0 || strings.ContainsAny(s.ID+s.Org, "\r\n") {
				t.Fatalf("bad subscriber %+v", s)
			}
		}
	})
}
