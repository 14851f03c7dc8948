package registry

import (
	"strings"

	"golang.org/x/net/publicsuffix"
)

// RegistrySuffix returns the suffix of name that a domain registry
// operates, by the ICANN section of the public suffix list (com, co.uk;
// a private-section suffix such as blogspot.com belongs to the registry of
// its parent; a TLD the list does not know, such as the special-use
// example, is its own), and the registered domain under it: the one label
// below the suffix, the object a registry acts on. ok is false when name is
// itself such a suffix.
func RegistrySuffix(name string) (suffix, registered string, ok bool) {
	name = strings.TrimSuffix(name, ".")
	suffix, icann := publicsuffix.PublicSuffix(name)
	for !icann {
		i := strings.IndexByte(suffix, '.')
		if i < 0 {
			break
		}
		suffix, icann = publicsuffix.PublicSuffix(suffix[i+1:])
	}
	if len(name) <= len(suffix) {
		return suffix, "", false
	}
	rest := name[:len(name)-len(suffix)-1]
	if i := strings.LastIndexByte(rest, '.'); i >= 0 {
		rest = rest[i+1:]
	}
	return suffix, rest + "." + suffix, true
}
