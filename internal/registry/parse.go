package registry

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
)

// MaxImportBytes bounds one import file (a court order's appendix of a few
// hundred thousand indicators is far below it).
const MaxImportBytes = 256 << 20

// ParseResult is what a file of indicators held.
type ParseResult struct {
	Indicators []Indicator
	Duplicates int // lines that repeated an earlier indicator, collapsed
}

// ParseFile reads indicators from r, named name in problems. The format is
// detected: a JSON document is a STIX 2.1 bundle; a first record with a
// comma and an "indicator" column is CSV with a header; anything else is
// text, one indicator a line, "#" starting a comment. Every problem is
// returned at once as Problems, together with the guard's refusals.
func ParseFile(name string, r io.Reader, g *Guard) (*ParseResult, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxImportBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(data) > MaxImportBytes {
		return nil, Problems{{File: name, Msg: fmt.Sprintf("larger than %d bytes", MaxImportBytes)}}
	}
	var inds []Indicator
	var probs Problems
	switch detect(data) {
	case "stix":
		inds, probs = parseSTIX(name, data)
	case "csv":
		inds, probs = parseCSV(name, data)
	default:
		inds, probs = parseText(name, data)
	}
	res := &ParseResult{}
	seen := map[string]bool{}
	for _, ind := range inds {
		if ind.Kind == KindDGA {
			if err := resolveDGA(&ind, g.DGAMargin); err != nil {
				probs = append(probs, Problem{File: name, Line: lineOf(ind.Source), Msg: err.Error()})
				continue
			}
		}
		if err := g.Check(ind); err != nil {
			probs = append(probs, Problem{File: name, Line: lineOf(ind.Source), Msg: err.Error()})
			continue
		}
		key := string(ind.Kind) + " " + ind.Value
		if seen[key] {
			res.Duplicates++
			continue
		}
		seen[key] = true
		res.Indicators = append(res.Indicators, ind)
	}
	if len(probs) > 0 {
		return nil, probs
	}
	return res, nil
}

func lineOf(source string) int {
	i := strings.LastIndexByte(source, ':')
	if i < 0 {
		return 0
	}
	n := 0
	for _, c := range source[i+1:] {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + int(c-'0')
	}
	return n
}

func detect(data []byte) string {
	t := bytes.TrimLeft(data, " \t\r\n\ufeff")
	if len(t) > 0 && t[0] == '{' {
		return "stix"
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		l := strings.TrimSpace(strings.TrimPrefix(sc.Text(), "\ufeff"))
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.Contains(l, ",") {
			for _, f := range strings.Split(l, ",") {
				if strings.EqualFold(strings.Trim(strings.TrimSpace(f), `"`), "indicator") {
					return "csv"
				}
			}
		}
		return "text"
	}
	return "text"
}

func parseText(name string, data []byte) ([]Indicator, Problems) {
	var inds []Indicator
	var probs Problems
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		l := sc.Text()
		if line == 1 {
			l = strings.TrimPrefix(l, "\ufeff")
		}
		if i := strings.IndexByte(l, '#'); i >= 0 {
			l = l[:i]
		}
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		ind, err := Parse(l, "")
		if err != nil {
			probs = append(probs, Problem{File: name, Line: line, Msg: err.Error()})
			continue
		}
		ind.Source = fmt.Sprintf("%s:%d", name, line)
		inds = append(inds, ind)
	}
	if err := sc.Err(); err != nil {
		probs = append(probs, Problem{File: name, Line: line + 1, Msg: err.Error()})
	}
	return inds, probs
}

func parseCSV(name string, data []byte) ([]Indicator, Problems) {
	r := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(data, []byte("\ufeff"))))
	r.Comment = '#'
	r.FieldsPerRecord = -1
	r.TrimLeadingSpace = true
	var probs Problems
	header, err := r.Read()
	if err != nil {
		return nil, Problems{{File: name, Line: 1, Msg: "bad CSV header: " + err.Error()}}
	}
	line, _ := r.FieldPos(0)
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		switch h {
		case "indicator", "kind", "family", "note":
		default:
			probs = append(probs, Problem{File: name, Line: line, Msg: fmt.Sprintf("unknown column %q (want indicator, kind, family, note)", h)})
			continue
		}
		if _, dup := col[h]; dup {
			probs = append(probs, Problem{File: name, Line: line, Msg: fmt.Sprintf("column %q twice", h)})
		}
		col[h] = i
	}
	if _, ok := col["indicator"]; !ok {
		probs = append(probs, Problem{File: name, Line: line, Msg: `no "indicator" column`})
	}
	if len(probs) > 0 {
		return nil, probs
	}
	get := func(rec []string, c string) string {
		if i, ok := col[c]; ok && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	var inds []Indicator
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				probs = append(probs, Problem{File: name, Line: pe.Line, Msg: pe.Err.Error()})
				if pe.Err == csv.ErrQuote || pe.Err == csv.ErrBareQuote {
					break // the rest of the file cannot be framed reliably
				}
				continue
			}
			probs = append(probs, Problem{File: name, Msg: err.Error()})
			break
		}
		line, _ := r.FieldPos(0)
		var kind Kind
		if k := get(rec, "kind"); k != "" {
			kind, err = ParseKind(strings.ToLower(k))
			if err != nil {
				probs = append(probs, Problem{File: name, Line: line, Msg: err.Error()})
				continue
			}
		}
		ind, err := Parse(get(rec, "indicator"), kind)
		if err != nil {
			probs = append(probs, Problem{File: name, Line: line, Msg: err.Error()})
			continue
		}
		ind.Family = strings.ToLower(get(rec, "family"))
		ind.Note = get(rec, "note")
		ind.Source = fmt.Sprintf("%s:%d", name, line)
		inds = append(inds, ind)
	}
	return inds, probs
}

// STIXPatternDGA is the pattern_type (STIX 2.1 leaves the vocabulary open)
// of an indicator whose pattern names a generator: "necurs?seed=9&…", the
// form of a text line without its "dga:" (docs/dga.md).
const STIXPatternDGA = "x-takedown-dga"

// stixComparison matches one equality comparison of a STIX pattern.
var stixComparison = regexp.MustCompile(`^\s*(domain-name|ipv4-addr|ipv6-addr):value\s*=\s*'((?:[^'\\]|\\.)*)'\s*$`)

// parseSTIXPattern accepts "[a = 'x']", "[a = 'x' OR a = 'y']" and
// "[a = 'x'] OR [a = 'y']": equality comparisons on domain-name, ipv4-addr
// and ipv6-addr values joined by OR. Anything else is refused rather than
// half-understood.
func parseSTIXPattern(p string) ([]Indicator, error) {
	p = strings.TrimSpace(p)
	var out []Indicator
	for _, obs := range splitOutside(p, " OR ", '[', ']') {
		obs = strings.TrimSpace(obs)
		if !strings.HasPrefix(obs, "[") || !strings.HasSuffix(obs, "]") {
			return nil, fmt.Errorf("pattern %q: only [comparison] OR [comparison] patterns are supported", p)
		}
		for _, cmp := range splitOutside(obs[1:len(obs)-1], " OR ", '\'', '\'') {
			m := stixComparison.FindStringSubmatch(cmp)
			if m == nil {
				return nil, fmt.Errorf("pattern %q: %q is not an equality on domain-name, ipv4-addr or ipv6-addr value", p, strings.TrimSpace(cmp))
			}
			v := strings.NewReplacer(`\'`, `'`, `\\`, `\`).Replace(m[2])
			var kind Kind
			if m[1] == "domain-name" {
				kind = KindDomain
			}
			ind, err := Parse(v, kind)
			if err != nil {
				return nil, err
			}
			if kind == "" {
				if (m[1] == "ipv4-addr") != ind.Prefix.Addr().Is4() {
					return nil, fmt.Errorf("pattern %q: %s is not an %s", p, v, m[1])
				}
			}
			out = append(out, ind)
		}
	}
	return out, nil
}

// splitOutside splits s at sep where sep is not inside open…close.
func splitOutside(s, sep string, open, close byte) []string {
	var parts []string
	depth, start := 0, 0
	inQuote := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if open == close {
			if c == '\\' {
				i++
				continue
			}
			if c == open {
				inQuote = !inQuote
			}
		} else if c == open {
			depth++
		} else if c == close {
			depth--
		}
		if depth == 0 && !inQuote && strings.HasPrefix(s[i:], sep) {
			parts = append(parts, s[start:i])
			start = i + len(sep)
			i += len(sep) - 1
		}
	}
	return append(parts, s[start:])
}

type stixObject struct {
	Type        string `json:"type"`
	ID          string `json:"id"`
	Pattern     string `json:"pattern"`
	PatternType string `json:"pattern_type"`
	ValidFrom   string `json:"valid_from"`
	ValidUntil  string `json:"valid_until"`
	Revoked     bool   `json:"revoked"`
	Name        string `json:"name"`
	Labels      []string
	MalwareName string `json:"x_takedown_family"`
	// Kind is takedown's own export property: "host" marks an exact name
	// (a domain-name pattern is otherwise a domain and all subdomains).
	Kind string `json:"x_takedown_kind"`
}

func parseSTIX(name string, data []byte) ([]Indicator, Problems) {
	lineAt := func(off int64) int { return 1 + bytes.Count(data[:min(int(off), len(data))], []byte("\n")) }
	dec := json.NewDecoder(bytes.NewReader(data))
	fail := func(off int64, msg string) ([]Indicator, Problems) {
		return nil, Problems{{File: name, Line: lineAt(off), Msg: msg}}
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return fail(dec.InputOffset(), "not a STIX bundle (want a JSON object)")
	}
	var inds []Indicator
	var probs Problems
	sawType := false
	for dec.More() {
		keyTok, err := dec.Token()
		if err != nil {
			return fail(dec.InputOffset(), "bad JSON: "+err.Error())
		}
		key, _ := keyTok.(string)
		switch key {
		case "type":
			var t string
			if err := dec.Decode(&t); err != nil || t != "bundle" {
				return fail(dec.InputOffset(), `not a STIX bundle ("type" is not "bundle")`)
			}
			sawType = true
		case "objects":
			if t, err := dec.Token(); err != nil || t != json.Delim('[') {
				return fail(dec.InputOffset(), `"objects" is not an array`)
			}
			for dec.More() {
				start := dec.InputOffset()
				// InputOffset is before the separating comma and white space.
				for start < int64(len(data)) && (data[start] == ',' || data[start] == ' ' || data[start] == '\n' || data[start] == '\r' || data[start] == '\t') {
					start++
				}
				var o stixObject
				if err := dec.Decode(&o); err != nil {
					return fail(dec.InputOffset(), "bad JSON: "+err.Error())
				}
				line := lineAt(start)
				if o.Type != "indicator" {
					continue // identities, malware, relationships: not seizable
				}
				if o.Revoked {
					continue
				}
				var got []Indicator
				var err error
				switch o.PatternType {
				case "", "stix":
					got, err = parseSTIXPattern(o.Pattern)
				case STIXPatternDGA:
					var ind Indicator
					ind, err = Parse(o.Pattern, KindDGA)
					got = []Indicator{ind}
				default:
					probs = append(probs, Problem{File: name, Line: line, Msg: fmt.Sprintf("%s: pattern_type %q is not supported (want stix or %s)", o.ID, o.PatternType, STIXPatternDGA)})
					continue
				}
				if err != nil {
					probs = append(probs, Problem{File: name, Line: line, Msg: fmt.Sprintf("%s: %v", o.ID, err)})
					continue
				}
				var from, until time.Time
				if o.ValidFrom != "" {
					if from, err = time.Parse(time.RFC3339Nano, o.ValidFrom); err != nil {
						probs = append(probs, Problem{File: name, Line: line, Msg: fmt.Sprintf("%s: bad valid_from: %v", o.ID, err)})
						continue
					}
				}
				if o.ValidUntil != "" {
					if until, err = time.Parse(time.RFC3339Nano, o.ValidUntil); err != nil {
						probs = append(probs, Problem{File: name, Line: line, Msg: fmt.Sprintf("%s: bad valid_until: %v", o.ID, err)})
						continue
					}
					if !from.IsZero() && !until.After(from) {
						probs = append(probs, Problem{File: name, Line: line, Msg: fmt.Sprintf("%s: valid_until is not after valid_from", o.ID)})
						continue
					}
				}
				for _, ind := range got {
					if o.Kind == string(KindHost) && ind.Kind == KindDomain {
						ind.Kind = KindHost
					}
					ind.From, ind.Until = from.UTC(), until.UTC()
					ind.Family = strings.ToLower(o.MalwareName)
					ind.Note = o.Name
					ind.Source = fmt.Sprintf("%s:%d", name, line)
					inds = append(inds, ind)
				}
			}
			if _, err := dec.Token(); err != nil {
				return fail(dec.InputOffset(), "bad JSON: "+err.Error())
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return fail(dec.InputOffset(), "bad JSON: "+err.Error())
			}
		}
	}
	if _, err := dec.Token(); err != nil {
		return fail(dec.InputOffset(), "bad JSON: "+err.Error())
	}
	if !sawType {
		return fail(0, `not a STIX bundle (no "type": "bundle")`)
	}
	return inds, probs
}
