// Package classify names the botnet family behind a sinkhole observation
// from operator-written YAML rules: destination port, Host/SNI (and the
// family of the seized indicator the name belongs to), method and URI
// pattern, User-Agent pattern, header-order hash, JA4, body length and body
// bytes. It is not an enricher (see geo) and keeps no state between calls.
//
// A [Rules] value is immutable after [Parse]; reload builds a new one and
// swaps it in, so a bad file never touches the rules in use.
//
// Names: this package is the family rules ([Rules.Match]). Which court
// case a name or address belongs to is the registry's case lookup
// (registry.Index.CaseOf), and filling an event's case from it is
// registry.Index.FillCase; neither is called "classify".
package classify

import (
	"bytes"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML returns the rules file shipped with the binary.
func DefaultYAML() []byte { return slices.Clone(defaultYAML) }

// Default returns the rules shipped with the binary.
func Default() *Rules {
	r, err := Parse("default.yaml", defaultYAML)
	if err != nil {
		panic(fmt.Sprintf("embedded default.yaml: %v", err)) // a build defect, caught by tests
	}
	return r
}

// Unknown is the family of traffic no rule matched and no indicator names.
const Unknown = "unknown"

// Input is what a listener knows about one observation.
type Input struct {
	Protocol        string // http, https, tcp, udp
	DstPort         uint16
	Host            string // HTTP Host without port, lower case
	SNI             string // TLS server name
	IndicatorFamily string // family of the seized indicator Host/SNI belongs to, if any
	Method          string
	URI             string
	UserAgent       string
	HeaderHash      string
	JA4             string
	BodyLen         int64  // declared or observed length of the body/payload; -1 if unknown
	Body            []byte // its first bytes (the event's payload prefix)
}

// Result is the classification of one observation.
type Result struct {
	Family     string
	Tag        string
	Confidence float64
	Rule       string // name of the rule that matched, empty if none
	// VerifiesSource is set when the matching rule says its payload
	// pattern vouches for a datagram's source (verifies_source): only
	// then is a UDP contact counted as an infected host.
	VerifiesSource bool
}

// Rules is a parsed, validated rules file. It is safe for concurrent use.
type Rules struct {
	rules []*rule
}

type rule struct {
	name       string
	family     string
	tag        string
	confidence float64
	verifies   bool // verifies_source

	protocols []string
	ports     []uint16
	hosts     []string // glob patterns, lower case
	indFam    []string
	methods   []string
	uri       *regexp.Regexp
	agent     *regexp.Regexp
	hdrHash   []string
	ja4       []string
	bodyMin   int64
	bodyMax   int64 // -1: no bound
	hasBody   bool
	prefix    []byte
	contains  []byte
}

// file is the YAML schema; unknown keys are errors.
type file struct {
	Rules []ruleSpec `yaml:"rules"`
}

type ruleSpec struct {
	Name       string   `yaml:"name"`
	Family     string   `yaml:"family"`
	Tag        string   `yaml:"tag"`
	Confidence *float64 `yaml:"confidence"`
	// VerifiesSource says that a UDP datagram matching this rule's payload
	// pattern comes from a real infected host, not a forged source
	// (docs/classify.md); it needs body_prefix_hex or body_contains_hex.
	VerifiesSource bool      `yaml:"verifies_source"`
	Match          matchSpec `yaml:"match"`
}

type matchSpec struct {
	Protocol        strList `yaml:"protocol"`
	DstPort         strList `yaml:"dst_port"`
	Host            strList `yaml:"host"`
	IndicatorFamily strList `yaml:"indicator_family"`
	Method          strList `yaml:"method"`
	URI             string  `yaml:"uri"`
	UserAgent       string  `yaml:"user_agent"`
	HeaderHash      strList `yaml:"header_hash"`
	JA4             strList `yaml:"ja4"`
	BodyLength      string  `yaml:"body_length"`
	BodyPrefixHex   string  `yaml:"body_prefix_hex"`
	BodyContainsHex string  `yaml:"body_contains_hex"`
}

// strList accepts a scalar or a sequence of scalars.
type strList []string

func (s *strList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*s = strList{n.Value}
		return nil
	case yaml.SequenceNode:
		out := make(strList, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: list items must be plain values", c.Line)
			}
			out = append(out, c.Value)
		}
		*s = out
		return nil
	}
	return fmt.Errorf("line %d: want a value or a list of values", n.Line)
}

// Load reads and parses the rules file at path.
func Load(path string) (*Rules, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read rules: %w", err)
	}
	return Parse(path, b)
}

// Parse parses and validates a rules file; name is used in messages
// ("name:line: what is wrong"). Every problem found is reported, joined.
func Parse(name string, b []byte) (*Rules, error) {
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return &Rules{}, nil // an empty file is no rules
		}
		return nil, fmt.Errorf("%s: %s", name, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	lines := ruleLines(b)
	var errs []error
	out := &Rules{}
	seen := map[string]int{}
	for i, rs := range f.Rules {
		line := 0
		if i < len(lines) {
			line = lines[i]
		}
		r, problems := compile(rs)
		if rs.Name != "" {
			if prev, dup := seen[rs.Name]; dup {
				problems = append(problems, fmt.Sprintf("rule name %q already used at line %d", rs.Name, prev))
			}
			seen[rs.Name] = line
		}
		for _, p := range problems {
			errs = append(errs, fmt.Errorf("%s:%d: %s", name, line, p))
		}
		out.rules = append(out.rules, r)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// ruleLines returns the line of each item of the top-level rules list.
func ruleLines(b []byte) []int {
	var doc yaml.Node
	if yaml.Unmarshal(b, &doc) != nil || len(doc.Content) == 0 {
		return nil
	}
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "rules" {
			var out []int
			for _, item := range m.Content[i+1].Content {
				out = append(out, item.Line)
			}
			return out
		}
	}
	return nil
}

func compile(rs ruleSpec) (*rule, []string) {
	var p []string
	r := &rule{name: rs.Name, family: rs.Family, tag: rs.Tag, confidence: 0.5, bodyMin: 0, bodyMax: -1}
	if rs.Name == "" {
		p = append(p, "rule has no name")
	}
	if rs.Family == "" {
		p = append(p, "rule has no family")
	}
	if rs.Confidence != nil {
		r.confidence = *rs.Confidence
		if r.confidence < 0 || r.confidence > 1 {
			p = append(p, fmt.Sprintf("confidence %v out of range [0, 1]", r.confidence))
		}
	}
	m := rs.Match
	for _, v := range m.Protocol {
		v = strings.ToLower(v)
		switch v {
		case "http", "https", "tcp", "udp":
			r.protocols = append(r.protocols, v)
		default:
			p = append(p, fmt.Sprintf("protocol %q is not http, https, tcp or udp", v))
		}
	}
	for _, v := range m.DstPort {
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil || n == 0 {
			p = append(p, fmt.Sprintf("dst_port %q is not a port number", v))
			continue
		}
		r.ports = append(r.ports, uint16(n))
	}
	for _, v := range m.Host {
		v = strings.TrimSuffix(strings.ToLower(v), ".")
		if v == "" || strings.Contains(v[1:], "*") || (strings.HasPrefix(v, "*") && !strings.HasPrefix(v, "*.")) {
			p = append(p, fmt.Sprintf("host %q: want a name or *.name", v))
			continue
		}
		r.hosts = append(r.hosts, v)
	}
	r.indFam = m.IndicatorFamily
	for _, v := range m.Method {
		r.methods = append(r.methods, strings.ToUpper(v))
	}
	var err error
	if m.URI != "" {
		if r.uri, err = regexp.Compile(m.URI); err != nil {
			p = append(p, fmt.Sprintf("uri: %v", err))
		}
	}
	if m.UserAgent != "" {
		if r.agent, err = regexp.Compile(m.UserAgent); err != nil {
			p = append(p, fmt.Sprintf("user_agent: %v", err))
		}
	}
	r.hdrHash = m.HeaderHash
	r.ja4 = m.JA4
	if m.BodyLength != "" {
		r.hasBody = true
		lo, hi, ok := parseRange(m.BodyLength)
		if !ok {
			p = append(p, fmt.Sprintf("body_length %q: want N, N-M, N- or -M", m.BodyLength))
		}
		r.bodyMin, r.bodyMax = lo, hi
	}
	if m.BodyPrefixHex != "" {
		if r.prefix, err = hex.DecodeString(strings.ReplaceAll(m.BodyPrefixHex, " ", "")); err != nil {
			p = append(p, fmt.Sprintf("body_prefix_hex: %v", err))
		}
	}
	if m.BodyContainsHex != "" {
		if r.contains, err = hex.DecodeString(strings.ReplaceAll(m.BodyContainsHex, " ", "")); err != nil {
			p = append(p, fmt.Sprintf("body_contains_hex: %v", err))
		}
	}
	if rs.VerifiesSource {
		r.verifies = true
		if r.prefix == nil && r.contains == nil {
			p = append(p, "verifies_source needs a payload pattern (body_prefix_hex or body_contains_hex)")
		}
	}
	return r, p
}

// parseRange parses "96", "64-128", "64-" or "-128".
func parseRange(s string) (lo, hi int64, ok bool) {
	s = strings.TrimSpace(s)
	a, b, isRange := strings.Cut(s, "-")
	num := func(v string, def int64) (int64, bool) {
		if v == "" {
			return def, true
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		return n, err == nil && n >= 0
	}
	if !isRange {
		n, ok := num(a, -2)
		return n, n, ok && n >= 0
	}
	lo, ok1 := num(a, 0)
	hi, ok2 := num(b, -1)
	if !ok1 || !ok2 || (a == "" && b == "") || (hi >= 0 && hi < lo) {
		return 0, 0, false
	}
	return lo, hi, true
}

// Len is the number of rules.
func (rs *Rules) Len() int {
	if rs == nil {
		return 0
	}
	return len(rs.rules)
}

// Match returns the result of the first rule, in file order, all of whose
// conditions hold. Without a match the family is the indicator's, if the
// input has one (tag "indicator"), else [Unknown]. A nil *Rules matches
// nothing.
func (rs *Rules) Match(in *Input) Result {
	if rs != nil {
		for _, r := range rs.rules {
			if r.match(in) {
				return Result{Family: r.family, Tag: r.tag, Confidence: r.confidence, Rule: r.name, VerifiesSource: r.verifies}
			}
		}
	}
	if in.IndicatorFamily != "" {
		return Result{Family: in.IndicatorFamily, Tag: "indicator", Confidence: 0.5}
	}
	return Result{Family: Unknown}
}

func (r *rule) match(in *Input) bool {
	if len(r.protocols) > 0 && !slices.Contains(r.protocols, in.Protocol) {
		return false
	}
	if len(r.ports) > 0 && !slices.Contains(r.ports, in.DstPort) {
		return false
	}
	if len(r.hosts) > 0 && !r.hostMatch(in) {
		return false
	}
	if len(r.indFam) > 0 && !slices.Contains(r.indFam, in.IndicatorFamily) {
		return false
	}
	if len(r.methods) > 0 && !slices.Contains(r.methods, in.Method) {
		return false
	}
	if r.uri != nil && !r.uri.MatchString(in.URI) {
		return false
	}
	if r.agent != nil && !r.agent.MatchString(in.UserAgent) {
		return false
	}
	if len(r.hdrHash) > 0 && !slices.Contains(r.hdrHash, in.HeaderHash) {
		return false
	}
	if len(r.ja4) > 0 && !slices.Contains(r.ja4, in.JA4) {
		return false
	}
	if r.hasBody && (in.BodyLen < r.bodyMin || (r.bodyMax >= 0 && in.BodyLen > r.bodyMax)) {
		return false
	}
	if r.prefix != nil && !bytes.HasPrefix(in.Body, r.prefix) {
		return false
	}
	if r.contains != nil && !bytes.Contains(in.Body, r.contains) {
		return false
	}
	return true
}

func (r *rule) hostMatch(in *Input) bool {
	for _, name := range [2]string{in.Host, in.SNI} {
		if name == "" {
			continue
		}
		name = strings.TrimSuffix(strings.ToLower(name), ".")
		for _, h := range r.hosts {
			if suffix, ok := strings.CutPrefix(h, "*."); ok {
				if name == suffix || strings.HasSuffix(name, "."+suffix) {
					return true
				}
			} else if name == h {
				return true
			}
		}
	}
	return false
}
