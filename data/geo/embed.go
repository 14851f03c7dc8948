// Package geodata carries the bundled, openly licensed IP data (country and
// ASN, CC BY 4.0, see NOTICE) inside the binary, so that the demo enriches
// events on a fresh clone with no configuration. It is not for production
// accuracy: operators configure their own databases (docs/geo.md).
package geodata

import _ "embed"

//go:embed country.mmdb
var country []byte

//go:embed asn.mmdb
var asn []byte

//go:embed NOTICE
var notice string

// Country is the bundled country database (flat country_code layout). The
// slice is shared: callers must not modify it.
func Country() []byte { return country }

// ASN is the bundled ASN database (autonomous_system_number,
// autonomous_system_organization). The slice is shared: callers must not
// modify it.
func ASN() []byte { return asn }

// Notice is the attribution that must travel with the data.
func Notice() string { return notice }
