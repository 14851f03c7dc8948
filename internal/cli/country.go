package cli

// countryNames are the countries the demo's headline names in full; others
// are shown by their ISO code.
var countryNames = map[string]string{
	"US": "United States", "IN": "India", "RU": "Russia", "BR": "Brazil", "TR": "Turkey", "UA": "Ukraine",
	"CN": "China", "DE": "Germany", "GB": "United Kingdom", "FR": "France", "IT": "Italy", "ES": "Spain",
	"PL": "Poland", "VN": "Vietnam", "ID": "Indonesia", "KR": "South Korea", "JP": "Japan", "MX": "Mexico",
	"AR": "Argentina", "TH": "Thailand", "PK": "Pakistan", "SA": "Saudi Arabia", "IR": "Iran", "EG": "Egypt",
	"RO": "Romania", "KZ": "Kazakhstan", "PH": "Philippines", "CO": "Colombia", "CA": "Canada", "AU": "Australia",
}

func countryName(code string) string {
	if n, ok := countryNames[code]; ok {
		return n
	}
	return code
}
