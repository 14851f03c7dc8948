// Package config is takedown's one configuration schema: a strict YAML file
// (unknown keys are errors), its defaults and its validation, all at load.
// It is not the command line: flags override a few fields after Load.
package config

import (
	"bytes"
	"cmp"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/takedown/takedown/internal/netprefix"
)

//go:embed example.yaml
var example []byte

// Example returns the commented example configuration, which is also every
// default spelled out.
func Example() []byte { return bytes.Clone(example) }

// Config is the whole configuration.
type Config struct {
	// Data is the data dir (database, CA, keys, exports).
	Data string `yaml:"data"`
	// DB is the store: empty for SQLite in the data dir, or postgres://….
	DB        string     `yaml:"db"`
	Log       Log        `yaml:"log"`
	Registry  Registry   `yaml:"registry"`
	Sinkhole  Sinkhole   `yaml:"sinkhole"`
	DNS       DNS        `yaml:"dns"`
	Listeners []Listener `yaml:"listeners"`
	Pipeline  Pipeline   `yaml:"pipeline"`
	Geo       Geo        `yaml:"geo"`
	Web       Web        `yaml:"web"`
	SelfCheck SelfCheck  `yaml:"selfcheck"`
	Evidence  Evidence   `yaml:"evidence"`
	Notify    Notify     `yaml:"notify"`
}

// Notify configures the daily reports to network owners sent by serve.
type Notify struct {
	Enabled bool `yaml:"enabled"`
	// At is the UTC time of day ("06:00") the previous day's reports go out.
	At           string `yaml:"at"`
	From         string `yaml:"from"`
	PublicSource string `yaml:"public_source"`
	APIURL       string `yaml:"api_url"`
	CleanupURL   string `yaml:"cleanup_url"`
	// CompressAbove gzips attachments larger than this many bytes (-1:
	// never).
	CompressAbove int `yaml:"compress_above"`
	// XARF02Max is how many X-ARF 0.2 messages one daily mail holds; the
	// rest go in one YAML attachment.
	XARF02Max int `yaml:"xarf02_max"`
	// Maildir, when set, delivers the reports into this local maildir
	// instead of through SMTP (a local mail pipeline; the demo).
	Maildir string `yaml:"maildir"`
	SMTP    SMTP   `yaml:"smtp"`
}

// SMTP is the mail server the reports go through.
type SMTP struct {
	Addr         string `yaml:"addr"`
	StartTLS     string `yaml:"starttls"` // auto, always, never
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
	Helo         string `yaml:"helo"`
}

// Evidence configures the tamper-evident log of stored events.
type Evidence struct {
	// Enabled appends every stored event to the log in <data>/evidence.
	Enabled bool `yaml:"enabled"`
	// CheckpointEvery is how often a signed checkpoint is written.
	CheckpointEvery Duration `yaml:"checkpoint_every"`
}

// SelfCheck configures the public self-check page.
type SelfCheck struct {
	// Listen is the page's address; empty turns it off.
	Listen string `yaml:"listen"`
	// TrustedProxy may send a PROXY v1/v2 header naming the client. It
	// says nothing about X-Forwarded-For.
	TrustedProxy []string `yaml:"trusted_proxy"`
	// TrustedForwarders may name the client in X-Forwarded-For; from any
	// other peer the header is ignored. Never implied, not by loopback and
	// not by the demo.
	TrustedForwarders []string `yaml:"trusted_forwarders"`
	// Days is how far back a visitor's address is looked up.
	Days int `yaml:"days"`
}

// Web configures the operator dashboard, REST API and /metrics.
type Web struct {
	// Listen is the dashboard's address; empty turns it off.
	Listen string `yaml:"listen"`
	// PublicStats serves aggregate statistics without a token.
	PublicStats bool `yaml:"public_stats"`
	// MinCount is the smallest country or ASN count shown to anyone who
	// does not see everything.
	MinCount uint64 `yaml:"min_count"`
	// TLSCert and TLSKey, both set, serve the dashboard over HTTPS.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// TrustedProxy are the reverse proxies whose X-Forwarded-For and
	// X-Forwarded-Proto are believed.
	TrustedProxy []string `yaml:"trusted_proxy"`
	// SecureCookies is auto (Secure over TLS, direct or through a trusted
	// proxy), always or never.
	SecureCookies string `yaml:"secure_cookies"`
	// MetricsListen, when set, serves /metrics and /healthz without
	// credentials on its own address, in every process (serve, sensor,
	// collector; with or without the dashboard); /metrics on the dashboard
	// always needs an admin or analyst.
	MetricsListen string `yaml:"metrics_listen"`
	// The HTTP server's timeouts.
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"`
	ReadTimeout       Duration `yaml:"read_timeout"`
	WriteTimeout      Duration `yaml:"write_timeout"`
	IdleTimeout       Duration `yaml:"idle_timeout"`
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// Registry configures the seizure registry.
type Registry struct {
	// NeverSeize adds the operator's own names to the shipped list.
	NeverSeize []string `yaml:"never_seize"`
	// Poll is how often consumers look for registry changes.
	Poll Duration `yaml:"poll"`
	// DGAMargin is how long before and after its day a generated name is
	// seized when the order's dga line names no margin; zero: the family's
	// default (docs/dga.md). It is written into the order at import.
	DGAMargin Duration `yaml:"dga_margin"`
}

// Sinkhole is where seized names point.
type Sinkhole struct {
	A    []string `yaml:"a"`
	AAAA []string `yaml:"aaaa"`
	// PerCase overrides the addresses for one case.
	PerCase map[string]SinkholeAddrs `yaml:"per_case"`
}

// SinkholeAddrs are one case's sinkhole addresses.
type SinkholeAddrs struct {
	A    []string `yaml:"a"`
	AAAA []string `yaml:"aaaa"`
}

// DNS configures the authoritative DNS sinkhole.
type DNS struct {
	Listen       []string `yaml:"listen"`
	TTL          uint32   `yaml:"ttl"`
	NS           []string `yaml:"ns"`
	SOAContact   string   `yaml:"soa_contact"`
	UDPSize      uint16   `yaml:"udp_size"`
	TrustedProxy []string `yaml:"trusted_proxy"`
	// TCPPerSource caps open TCP connections from one source (IPv4
	// address, IPv6 /64); the excess is closed at once.
	TCPPerSource int `yaml:"tcp_per_source"`
	RRL          RRL `yaml:"rrl"`
}

// RRL is response rate limiting.
type RRL struct {
	Enabled         bool     `yaml:"enabled"`
	ResponsesPerSec int      `yaml:"responses_per_second"`
	Window          Duration `yaml:"window"`
	// Slip: every slip-th limited answer is sent truncated; 0 never (all
	// limited answers are dropped, as BIND's and NSD's slip 0).
	Slip       int `yaml:"slip"`
	IPv4Prefix int `yaml:"ipv4_prefix"`
	IPv6Prefix int `yaml:"ipv6_prefix"`
	// TableSize bounds the buckets remembered (BIND's max-table-size).
	TableSize int      `yaml:"table_size"`
	Exempt    []string `yaml:"exempt"`
}

// Listener is one connection-sinkhole listener.
type Listener struct {
	Kind         string   `yaml:"kind"` // http, https, tcp, udp
	Listen       string   `yaml:"listen"`
	TrustedProxy []string `yaml:"trusted_proxy"`
}

// Pipeline configures the event pipeline.
type Pipeline struct {
	Queue     int      `yaml:"queue"`
	Batch     int      `yaml:"batch"`
	Retention Duration `yaml:"retention"`
	Rules     string   `yaml:"rules"` // classification rules file; empty: the shipped rules
	// SourceBudget bounds what one source can make the pipeline store one
	// by one (docs/security.md).
	SourceBudget SourceBudget `yaml:"source_budget"`
}

// SourceBudget is the per-source budget of raw records and evidence leaves.
type SourceBudget struct {
	// Rate is the contacts per second of one source (an IPv4 address, an
	// IPv6 /64) stored one by one; 0 stores every contact.
	Rate float64 `yaml:"rate"`
	// Burst is how many may come at once.
	Burst int `yaml:"burst"`
	// SummaryEvery is how long the contacts beyond the budget gather into
	// one summary record before it is stored.
	SummaryEvery Duration `yaml:"summary_every"`
}

// Geo names the MMDB files; empty means the bundled data.
type Geo struct {
	Country string `yaml:"country"`
	ASN     string `yaml:"asn"`
}

// Duration is a time.Duration written as "15s", "720h".
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		// A TypeError lets the decoder go on and report every problem.
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %q is not a duration like 15s or 720h", n.Line, s)}}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Default returns the configuration with every default filled in.
func Default() *Config {
	var c Config
	if err := decode(bytes.NewReader(example), &c); err != nil {
		panic(fmt.Sprintf("config: the shipped example does not load: %v", err))
	}
	return &c
}

// Load reads the file at path over the defaults. An empty path returns the
// defaults. Every problem in the file, a YAML error or a value that does
// not validate, is in the returned Problems with the file's line.
func Load(path string) (*Config, error) {
	c := Default()
	if path == "" {
		return c, c.Validate()
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, b)
}

// Parse reads the YAML document b, named path in problems, over the
// defaults and validates the result.
func Parse(path string, b []byte) (*Config, error) {
	c := Default()
	// The keys' lines, for problems found after decoding.
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, decodeProblems(path, err, nil)
	}
	lines := keyLines(&root)
	// A list in the file replaces the default list (yaml.v3 makes a new
	// slice); a key the file does not name keeps its default.
	var ps Problems
	if err := decode(bytes.NewReader(b), c); err != nil {
		ps = decodeProblems(path, err, lines)
		// After a type error the decoder went on: validate what it read,
		// so that every problem is reported at once.
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, ps
		}
	}
	if err := c.Validate(); err != nil {
		var vs Problems
		if !errors.As(err, &vs) {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		for _, v := range vs {
			v.File, v.Line = path, lines.of(v.Key)
			// A key whose value did not decode is already reported.
			if !slices.ContainsFunc(ps, func(p Problem) bool { return p.Line == v.Line }) {
				ps = append(ps, v)
			}
		}
	}
	if len(ps) > 0 {
		slices.SortStableFunc(ps, func(a, b Problem) int { return cmp.Compare(a.Line, b.Line) })
		return nil, ps
	}
	return c, nil
}

func decode(r io.Reader, c *Config) error {
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// Problem is one thing wrong in a configuration.
type Problem struct {
	File string // empty: not read from a file
	Line int    // 0: no line known
	Key  string // the key path, e.g. dns.listen[0]; empty for a YAML syntax error
	Msg  string
}

// String is "file:line: key: what is wrong".
func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
		}
		b.WriteString(": ")
	}
	if p.Key != "" {
		b.WriteString(p.Key + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems are every problem found in a configuration, one a line.
type Problems []Problem

func (ps Problems) Error() string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, "\n")
}

// lineMap maps key paths ("dns.listen[0]", "sinkhole.per_case.x.a") to
// the line of the key (or list item) in the file.
type lineMap map[string]int

// of returns the line of key or, when the file does not name it, of its
// nearest enclosing key; 1 when the file names none of them.
func (m lineMap) of(key string) int {
	for k := key; k != ""; {
		if l, ok := m[k]; ok {
			return l
		}
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return 1
}

func keyLines(root *yaml.Node) lineMap {
	m := lineMap{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i].Value
				if path != "" {
					k = path + "." + k
				}
				m[k] = n.Content[i].Line
				walk(n.Content[i+1], k)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				k := fmt.Sprintf("%s[%d]", path, i)
				m[k] = c.Line
				walk(c, k)
			}
		}
	}
	walk(root, "")
	return m
}

var (
	yamlLineRe = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	notFoundRe = regexp.MustCompile(`^field (\S+) not found in type \S+$`)
)

// decodeProblems turns a YAML error into problems with the file's lines;
// an unknown key is named by its whole path.
func decodeProblems(path string, err error, lines lineMap) Problems {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	var ps Problems
	for _, s := range msgs {
		p := Problem{File: path, Msg: strings.TrimPrefix(s, "yaml: ")}
		if m := yamlLineRe.FindStringSubmatch(s); m != nil {
			p.Line, _ = strconv.Atoi(m[1])
			p.Msg = m[2]
			if f := notFoundRe.FindStringSubmatch(p.Msg); f != nil {
				p.Key, p.Msg = f[1], "unknown key"
				for k, l := range lines {
					if l == p.Line && (k == f[1] || strings.HasSuffix(k, "."+f[1])) {
						p.Key = k
					}
				}
			} else {
				// A value that did not decode: name the deepest key on
				// its line.
				for k, l := range lines {
					if l == p.Line && len(k) > len(p.Key) {
						p.Key = k
					}
				}
			}
		}
		ps = append(ps, p)
	}
	return ps
}

// Validate checks the whole configuration and reports every problem at once.
func (c *Config) Validate() error {
	var ps Problems
	bad := func(format string, a ...any) {
		key, msg, _ := strings.Cut(fmt.Sprintf(format, a...), ": ")
		ps = append(ps, Problem{Key: key, Msg: msg})
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level: %q is not debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format: %q is not text or json", c.Log.Format)
	}
	if c.DB != "" && !strings.HasPrefix(c.DB, "postgres://") && !strings.HasPrefix(c.DB, "postgresql://") && !strings.HasPrefix(c.DB, "sqlite:") {
		bad("db: %q is not postgres://… or sqlite:PATH (leave it empty for SQLite in the data dir)", c.DB)
	}
	checkAddrs := func(field string, v []string, want4 bool) {
		for _, s := range v {
			a, err := netip.ParseAddr(s)
			if err != nil {
				bad("%s: %q is not an address", field, s)
			} else if a.Is4() != want4 {
				bad("%s: %q is not an IPv%s address", field, s, map[bool]string{true: "4", false: "6"}[want4])
			}
		}
	}
	checkAddrs("sinkhole.a", c.Sinkhole.A, true)
	checkAddrs("sinkhole.aaaa", c.Sinkhole.AAAA, false)
	for k, v := range c.Sinkhole.PerCase {
		checkAddrs("sinkhole.per_case."+k+".a", v.A, true)
		checkAddrs("sinkhole.per_case."+k+".aaaa", v.AAAA, false)
	}
	checkListen := func(field, s string) {
		if _, err := netip.ParseAddrPort(s); err != nil {
			bad("%s: %q is not address:port", field, s)
		}
	}
	checkPrefixes := func(field string, v []string) {
		for _, s := range v {
			if _, err := netprefix.Parse(s); err != nil {
				bad("%s: %q is not an address or CIDR", field, s)
			}
		}
	}
	for i, l := range c.DNS.Listen {
		checkListen(fmt.Sprintf("dns.listen[%d]", i), l)
	}
	if c.DNS.TTL == 0 || c.DNS.TTL > 86400 {
		bad("dns.ttl: %d is not between 1 and 86400", c.DNS.TTL)
	}
	if c.DNS.UDPSize < 512 {
		bad("dns.udp_size: %d is below 512", c.DNS.UDPSize)
	}
	if len(c.DNS.NS) == 0 {
		bad("dns.ns: at least one name server name is needed for the SOA and NS records")
	}
	checkPrefixes("dns.trusted_proxy", c.DNS.TrustedProxy)
	checkPrefixes("dns.rrl.exempt", c.DNS.RRL.Exempt)
	if c.DNS.RRL.Enabled {
		if c.DNS.RRL.ResponsesPerSec < 1 {
			bad("dns.rrl.responses_per_second: must be at least 1")
		}
		if c.DNS.RRL.Slip < 0 || c.DNS.RRL.Slip > 10 {
			bad("dns.rrl.slip: %d is not between 0 and 10", c.DNS.RRL.Slip)
		}
		if c.DNS.RRL.IPv4Prefix < 8 || c.DNS.RRL.IPv4Prefix > 32 {
			bad("dns.rrl.ipv4_prefix: %d is not between 8 and 32", c.DNS.RRL.IPv4Prefix)
		}
		if c.DNS.RRL.IPv6Prefix < 16 || c.DNS.RRL.IPv6Prefix > 128 {
			bad("dns.rrl.ipv6_prefix: %d is not between 16 and 128", c.DNS.RRL.IPv6Prefix)
		}
		if c.DNS.RRL.TableSize < 64 || c.DNS.RRL.TableSize > 1<<24 {
			bad("dns.rrl.table_size: %d is not between 64 and 16777216", c.DNS.RRL.TableSize)
		}
	}
	if c.DNS.TCPPerSource < 1 || c.DNS.TCPPerSource > 65535 {
		bad("dns.tcp_per_source: %d is not between 1 and 65535", c.DNS.TCPPerSource)
	}
	seen := map[string]bool{}
	for i, l := range c.Listeners {
		f := fmt.Sprintf("listeners[%d]", i)
		switch l.Kind {
		case "http", "https", "tcp", "udp":
		default:
			bad("%s.kind: %q is not http, https, tcp or udp", f, l.Kind)
		}
		checkListen(f+".listen", l.Listen)
		checkPrefixes(f+".trusted_proxy", l.TrustedProxy)
		key := l.Listen + "/" + map[bool]string{true: "udp", false: "tcp"}[l.Kind == "udp"]
		if seen[key] {
			bad("%s.listen: %s is used twice", f, l.Listen)
		}
		seen[key] = true
	}
	if c.Web.Listen != "" {
		checkListen("web.listen", c.Web.Listen)
	}
	if c.SelfCheck.Listen != "" {
		checkListen("selfcheck.listen", c.SelfCheck.Listen)
	}
	checkPrefixes("selfcheck.trusted_proxy", c.SelfCheck.TrustedProxy)
	checkPrefixes("selfcheck.trusted_forwarders", c.SelfCheck.TrustedForwarders)
	// A self-check list that trusts every address lets any visitor name
	// the address looked up: refused rather than run as a lookup service.
	for _, l := range []struct {
		field string
		v     []string
	}{{"selfcheck.trusted_proxy", c.SelfCheck.TrustedProxy}, {"selfcheck.trusted_forwarders", c.SelfCheck.TrustedForwarders}} {
		for _, s := range l.v {
			if p, err := netprefix.Parse(s); err == nil && p.Bits() == 0 {
				bad("%s: %q trusts every address, so any visitor could name the address looked up; list only your proxies", l.field, s)
			}
		}
	}
	if c.SelfCheck.Days < 1 || c.SelfCheck.Days > 366 {
		bad("selfcheck.days: %d is not between 1 and 366", c.SelfCheck.Days)
	}
	if c.Web.MinCount < 1 {
		bad("web.min_count: must be at least 1")
	}
	if (c.Web.TLSCert == "") != (c.Web.TLSKey == "") {
		bad("web.tls_cert: give both web.tls_cert and web.tls_key, or neither")
	}
	checkPrefixes("web.trusted_proxy", c.Web.TrustedProxy)
	switch c.Web.SecureCookies {
	case "auto", "always", "never":
	default:
		bad("web.secure_cookies: %q is not auto, always or never", c.Web.SecureCookies)
	}
	if c.Web.MetricsListen != "" {
		checkListen("web.metrics_listen", c.Web.MetricsListen)
	}
	for _, d := range []struct {
		name string
		d    Duration
	}{{"read_header_timeout", c.Web.ReadHeaderTimeout}, {"read_timeout", c.Web.ReadTimeout}, {"write_timeout", c.Web.WriteTimeout}, {"idle_timeout", c.Web.IdleTimeout}} {
		if d.d.D() <= 0 {
			bad("web.%s: must be positive", d.name)
		}
	}
	if c.Evidence.Enabled && c.Evidence.CheckpointEvery.D() < time.Second {
		bad("evidence.checkpoint_every: must be at least 1s")
	}
	if c.Notify.Enabled {
		if _, err := time.Parse("15:04", c.Notify.At); err != nil {
			bad("notify.at: %q is not a UTC time of day like 06:00", c.Notify.At)
		}
		if c.Notify.From == "" {
			bad("notify.from: the sender address is required")
		}
		if c.Notify.CompressAbove < -1 {
			bad("notify.compress_above: %d: want a size in bytes, or -1 for never", c.Notify.CompressAbove)
		}
		if c.Notify.XARF02Max < 1 {
			bad("notify.xarf02_max: %d: want at least 1", c.Notify.XARF02Max)
		}
		if _, _, err := net.SplitHostPort(c.Notify.SMTP.Addr); err != nil && c.Notify.Maildir == "" {
			bad("notify.smtp.addr: %q is not host:port", c.Notify.SMTP.Addr)
		}
	}
	switch c.Notify.SMTP.StartTLS {
	case "auto", "always", "never":
	default:
		bad("notify.smtp.starttls: %q is not auto, always or never", c.Notify.SMTP.StartTLS)
	}
	if c.Pipeline.Queue < 1 {
		bad("pipeline.queue: must be at least 1")
	}
	if c.Pipeline.Batch < 1 {
		bad("pipeline.batch: must be at least 1")
	}
	if sb := c.Pipeline.SourceBudget; sb.Rate < 0 || sb.Burst < 0 || sb.SummaryEvery.D() < 0 {
		bad("pipeline.source_budget: rate, burst and summary_every must not be negative")
	} else if sb.Rate > 0 && (sb.Burst < 1 || sb.SummaryEvery.D() < time.Second) {
		bad("pipeline.source_budget: with a rate, burst must be at least 1 and summary_every at least 1s")
	}
	if c.Registry.Poll.D() <= 0 {
		bad("registry.poll: must be positive")
	}
	if m := c.Registry.DGAMargin.D(); m < 0 || m > 31*24*time.Hour {
		bad("registry.dga_margin: must be from 0 to 744h (31 days)")
	}
	if len(ps) > 0 {
		return ps
	}
	return nil
}

// Keys returns every key the schema knows, as paths of yaml names: a list
// of records is written "listeners[].kind", a map of records
// "sinkhole.per_case.*.a". It walks the Config type, so it cannot fall
// behind it.
func Keys() []string {
	var out []string
	var walk func(t reflect.Type, path string)
	walk = func(t reflect.Type, path string) {
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			k := name
			if path != "" {
				k = path + "." + name
			}
			ft := f.Type
			switch {
			case ft.Kind() == reflect.Struct && ft != reflect.TypeFor[Duration]():
				walk(ft, k)
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
				walk(ft.Elem(), k+"[]")
			case ft.Kind() == reflect.Map && ft.Elem().Kind() == reflect.Struct:
				walk(ft.Elem(), k+".*")
			default:
				out = append(out, k)
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
	return out
}

// Settings returns every setting of c by key path, the unit in which a
// reload compares an old and a new configuration: a leaf value, or a
// whole list or map ("listeners", "sinkhole.per_case").
func (c *Config) Settings() map[string]any {
	out := map[string]any{}
	var walk func(v reflect.Value, path string)
	walk = func(v reflect.Value, path string) {
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			k := name
			if path != "" {
				k = path + "." + name
			}
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[Duration]() {
				walk(v.Field(i), k)
				continue
			}
			out[k] = v.Field(i).Interface()
		}
	}
	walk(reflect.ValueOf(c).Elem(), "")
	return out
}

// Changed returns the settings (as Settings names them) whose values
// differ between old and c, sorted. An empty list and no list are equal.
func (c *Config) Changed(old *Config) []string {
	a, b := old.Settings(), c.Settings()
	var out []string
	for k, v := range b {
		if !equalSetting(a[k], v) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func equalSetting(a, b any) bool {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	if (va.Kind() == reflect.Slice || va.Kind() == reflect.Map) && va.Len() == 0 && vb.Len() == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}
