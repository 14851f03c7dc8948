// Package geo looks up the country, autonomous system number and AS
// organisation of an IP address in MaxMind DB (MMDB) files, for event
// enrichment. It reads both MaxMind layouts (country.iso_code,
// autonomous_system_number, autonomous_system_organization) and the flat
// country_code layout of ip-location-db, and reloads a file when it changes.
// It is not a geolocation service: it only answers what the configured files
// say, and an address they do not cover gets empty fields.
package geo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oschwald/maxminddb-golang/v2"
)

// Info is what the databases say about one address. Empty fields mean the
// databases do not know.
type Info struct {
	Country string // ISO 3166-1 alpha-2, upper case
	ASN     uint32
	Org     string // AS organisation
}

// Source is one database: a file path (reloaded when it changes) or bytes
// (for the bundled data). Path wins when both are set; neither means the
// database is not used.
type Source struct {
	Path string
	Data []byte
}

func (s Source) set() bool { return s.Path != "" || len(s.Data) > 0 }

// Options configures a DB.
type Options struct {
	Country Source // a country database (either layout)
	ASN     Source // an ASN database
	// CheckEvery is how often Run looks for changed files (default 30s).
	CheckEvery time.Duration
	Logger     *slog.Logger // nil discards
}

// DB answers lookups from one country and one ASN database. It is safe for
// concurrent use; a reload swaps a database atomically and lookups in
// flight finish on the old one.
type DB struct {
	mu      sync.Mutex // guards opts' sources: Reload and Commit
	opts    Options
	log     *slog.Logger
	country atomic.Pointer[file]
	asn     atomic.Pointer[file]
}

// file is one loaded database and a cache of its decoded records by data
// offset: a country file has a few hundred distinct records, an ASN file
// about a hundred thousand, so the cache is bounded by the file, and a
// lookup after the first decodes nothing.
type file struct {
	name  string
	r     *maxminddb.Reader
	mtime time.Time
	size  int64
	cache sync.Map // uintptr -> Info

	orgsOnce sync.Once
	orgs     map[uint32]string // ASN -> organisation, built on first ASOrg
}

// record decodes every layout this package reads; absent keys stay empty.
type record struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	RegisteredCountry struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"registered_country"`
	CountryCode string `maxminddb:"country_code"`
	ASN         uint32 `maxminddb:"autonomous_system_number"`
	Org         string `maxminddb:"autonomous_system_organization"`
}

func (r *record) info() Info {
	cc := r.Country.ISOCode
	if cc == "" {
		cc = r.CountryCode
	}
	if cc == "" {
		cc = r.RegisteredCountry.ISOCode
	}
	return Info{Country: upper(cc), ASN: r.ASN, Org: r.Org}
}

func upper(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= 'a' && s[i] <= 'z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'a' && b[j] <= 'z' {
					b[j] -= 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// Open loads the configured databases. A database that is configured but
// cannot be read is an error.
func Open(opts Options) (*DB, error) {
	if opts.CheckEvery <= 0 {
		opts.CheckEvery = 30 * time.Second
	}
	d := &DB{opts: opts, log: opts.Logger}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	for _, x := range []struct {
		src  Source
		dst  *atomic.Pointer[file]
		kind string
	}{{opts.Country, &d.country, "country"}, {opts.ASN, &d.asn, "asn"}} {
		if !x.src.set() {
			continue
		}
		f, err := load(x.src)
		if err != nil {
			return nil, fmt.Errorf("open %s database: %w", x.kind, err)
		}
		x.dst.Store(f)
	}
	return d, nil
}

// load reads a database fully into memory rather than memory-mapping it, so
// that a swapped-out reader can never point into an unmapped file: the old
// copy is freed by the garbage collector when the last lookup is done.
func load(src Source) (*file, error) {
	if src.Path == "" {
		r, err := maxminddb.OpenBytes(src.Data)
		if err != nil {
			return nil, fmt.Errorf("bundled data: %w", err)
		}
		return &file{name: "(bundled)", r: r}, nil
	}
	st, err := os.Stat(src.Path)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(src.Path)
	if err != nil {
		return nil, err
	}
	r, err := maxminddb.OpenBytes(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src.Path, err)
	}
	return &file{name: src.Path, r: r, mtime: st.ModTime(), size: st.Size()}, nil
}

// Lookup returns what the databases say about addr. IPv4-mapped IPv6
// addresses are looked up as IPv4.
func (d *DB) Lookup(addr netip.Addr) Info {
	addr = addr.Unmap()
	var in Info
	if f := d.country.Load(); f != nil {
		c := f.lookup(addr)
		in.Country = c.Country
		in.ASN, in.Org = c.ASN, c.Org // a combined file may carry both
	}
	if f := d.asn.Load(); f != nil {
		a := f.lookup(addr)
		if a.ASN != 0 {
			in.ASN, in.Org = a.ASN, a.Org
		}
		if in.Country == "" {
			in.Country = a.Country
		}
	}
	return in
}

func (f *file) lookup(addr netip.Addr) Info {
	res := f.r.Lookup(addr)
	if !res.Found() {
		return Info{}
	}
	off := res.Offset()
	if v, ok := f.cache.Load(off); ok {
		return v.(Info)
	}
	var rec record
	if err := res.Decode(&rec); err != nil {
		return Info{}
	}
	in := rec.info()
	f.cache.Store(off, in)
	return in
}

// ASOrg returns the organisation the databases name for an autonomous
// system ("" if they do not know it), so that figures grouped by ASN can
// name the network's owner next to its number. The first call per loaded
// database walks it once (about 0.1 s for the bundled data); later calls
// are a map lookup.
func (d *DB) ASOrg(asn uint32) string {
	if asn == 0 {
		return ""
	}
	for _, p := range []*atomic.Pointer[file]{&d.asn, &d.country} { // a combined country file may carry ASNs too
		if f := p.Load(); f != nil {
			if org := f.asOrg(asn); org != "" {
				return org
			}
		}
	}
	return ""
}

func (f *file) asOrg(asn uint32) string {
	f.orgsOnce.Do(func() {
		f.orgs = make(map[uint32]string)
		seen := make(map[uintptr]struct{}) // networks share records: decode each once
		for res := range f.r.Networks() {
			off := res.Offset()
			if _, ok := seen[off]; ok {
				continue
			}
			seen[off] = struct{}{}
			var rec struct {
				ASN uint32 `maxminddb:"autonomous_system_number"`
				Org string `maxminddb:"autonomous_system_organization"`
			}
			if res.Err() != nil || res.Decode(&rec) != nil || rec.ASN == 0 || rec.Org == "" {
				continue
			}
			f.orgs[rec.ASN] = rec.Org
		}
	})
	return f.orgs[asn]
}

// Reload re-reads every file-backed database whose file changed (size or
// modification time). A file that fails to load keeps the old database and
// is reported in the error.
func (d *DB) Reload() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for _, x := range []struct {
		src Source
		dst *atomic.Pointer[file]
	}{{d.opts.Country, &d.country}, {d.opts.ASN, &d.asn}} {
		if x.src.Path == "" {
			continue
		}
		old := x.dst.Load()
		st, err := os.Stat(x.src.Path)
		if err != nil {
			errs = append(errs, fmt.Errorf("reload %s: %w", x.src.Path, err))
			continue
		}
		if old != nil && st.ModTime().Equal(old.mtime) && st.Size() == old.size {
			continue
		}
		f, err := load(x.src)
		if err != nil {
			errs = append(errs, fmt.Errorf("reload %s: %w", x.src.Path, err))
			continue
		}
		x.dst.Store(f)
		d.log.Info("geo database reloaded", "path", x.src.Path, "build", f.r.Metadata.BuildTime())
	}
	return errors.Join(errs...)
}

// Staged are databases loaded by Stage and not yet in use.
type Staged struct {
	country, asn Source
	cf, af       *file
}

// Stage loads the databases country and asn name, without using them: a
// configuration reload. A source that names what is loaded now, unchanged
// on disk, is not read again.
func (d *DB) Stage(country, asn Source) (*Staged, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := &Staged{country: country, asn: asn}
	for _, x := range []struct {
		src, cur Source
		loaded   *file
		dst      **file
		kind     string
	}{{country, d.opts.Country, d.country.Load(), &st.cf, "country"}, {asn, d.opts.ASN, d.asn.Load(), &st.af, "asn"}} {
		if !x.src.set() {
			continue
		}
		if x.src.Path != "" && x.src.Path == x.cur.Path && x.loaded != nil {
			if fi, err := os.Stat(x.src.Path); err == nil && fi.ModTime().Equal(x.loaded.mtime) && fi.Size() == x.loaded.size {
				*x.dst = x.loaded
				continue
			}
		}
		if x.src.Path == "" && x.cur.Path == "" && x.loaded != nil && bytes.Equal(x.src.Data, x.cur.Data) {
			*x.dst = x.loaded
			continue
		}
		f, err := load(x.src)
		if err != nil {
			return nil, fmt.Errorf("open %s database: %w", x.kind, err)
		}
		*x.dst = f
	}
	return st, nil
}

// Commit puts the staged databases in use, both at once for every later
// lookup; Run then watches their files.
func (d *DB) Commit(st *Staged) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.opts.Country, d.opts.ASN = st.country, st.asn
	d.country.Store(st.cf)
	d.asn.Store(st.af)
}

// Close releases the loaded databases; later lookups find nothing. Call it
// once no lookup runs (the app does after the pipeline stopped). It is
// idempotent.
func (d *DB) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for _, p := range []*atomic.Pointer[file]{&d.country, &d.asn} {
		if f := p.Swap(nil); f != nil {
			errs = append(errs, f.r.Close())
		}
	}
	return errors.Join(errs...)
}

// Run checks the configured files every CheckEvery and reloads those that
// changed, until ctx is done. It returns nil on cancellation.
func (d *DB) Run(ctx context.Context) error {
	t := time.NewTicker(d.opts.CheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := d.Reload(); err != nil {
				d.log.Warn("geo reload failed, keeping the loaded database", "err", err)
			}
		}
	}
}

// Describe names the loaded databases and their build times, for logs and
// the dashboard.
func (d *DB) Describe() string {
	var b bytes.Buffer
	for _, x := range []struct {
		kind string
		f    *file
	}{{"country", d.country.Load()}, {"asn", d.asn.Load()}} {
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		if x.f == nil {
			fmt.Fprintf(&b, "%s: none", x.kind)
			continue
		}
		fmt.Fprintf(&b, "%s: %s (%s, built %s)", x.kind, x.f.name, x.f.r.Metadata.DatabaseType,
			x.f.r.Metadata.BuildTime().UTC().Format(time.DateOnly))
	}
	return b.String()
}
