package registry

import "testing"

func TestRegistrySuffix(t *testing.T) {
	for _, tc := range []struct {
		name, suffix, registered string
		ok                       bool
	}{
		{"evil.com", "com", "evil.com", true},
		{"c2.evil.com", "com", "evil.com", true},
		{"foo.co.uk", "co.uk", "foo.co.uk", true},
		{"foo.uk", "uk", "foo.uk", true},
		{"x.blogspot.com", "com", "blogspot.com", true}, // private section: the .com registry holds blogspot.com
		{"abcdef.example", "example", "abcdef.example", true},
		{"com", "com", "", false},
		{"co.uk", "co.uk", "", false},
		{"evil.com.", "com", "evil.com", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, r, ok := RegistrySuffix(tc.name)
			if s != tc.suffix || r != tc.registered || ok != tc.ok {
				t.Errorf("RegistrySuffix(%q) = %q, %q, %v; want %q, %q, %v", tc.name, s, r, ok, tc.suffix, tc.registered, tc.ok)
			}
		})
	}
}
