package export

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/takedown/takedown/internal/registry"
)

const (
	stixSchemaBase  = "http://raw.githubusercontent.com/oasis-open/cti-stix2-json-schemas/stix2.1/schemas/"
	stixBundleID    = stixSchemaBase + "common/bundle.json"
	stixIndicatorID = stixSchemaBase + "sdos/indicator.json"
)

// noFetch refuses every URL: the schemas must all come from disk.
type noFetch struct{}

func (noFetch) Load(url string) (any, error) {
	return nil, errors.New("test refuses to fetch " + url + ": every schema must be added from testdata/stix2.1")
}

// stixSchemas compiles the official STIX 2.1 schemas kept in
// testdata/stix2.1 (BSD-3-Clause, see its LICENSE), registered under their
// $ids.
func stixSchemas(tb testing.TB) (bundle, indicator *jsonschema.Schema) {
	tb.Helper()
	dir := filepath.Join("testdata", "stix2.1")
	if _, err := os.Stat(dir); err != nil {
		tb.Fatalf("STIX 2.1 schemas: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(noFetch{})
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".json") {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		doc, err := jsonschema.UnmarshalJSON(f)
		if err != nil {
			return err
		}
		m, _ := doc.(map[string]any)
		id, _ := m["$id"].(string)
		if id == "" {
			return errors.New(path + ": no $id")
		}
		n++
		return c.AddResource(id, doc)
	})
	if err != nil {
		tb.Fatal(err)
	}
	if n < 10 {
		tb.Fatalf("only %d schemas under %s", n, dir)
	}
	if bundle, err = c.Compile(stixBundleID); err != nil {
		tb.Fatal(err)
	}
	if indicator, err = c.Compile(stixIndicatorID); err != nil {
		tb.Fatal(err)
	}
	return bundle, indicator
}

// moduleRoot walks up from the test's directory to go.mod.
func moduleRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
}

func validateJSON(tb testing.TB, sch *jsonschema.Schema, text string) error {
	tb.Helper()
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(text))
	if err != nil {
		tb.Fatalf("export is not JSON: %v", err)
	}
	return sch.Validate(v)
}

type stixTestBundle struct {
	Type    string            `json:"type"`
	ID      string            `json:"id"`
	Objects []json.RawMessage `json:"objects"`
}

func decodeStix(tb testing.TB, text string) (stixTestBundle, []map[string]any) {
	tb.Helper()
	var b stixTestBundle
	if err := json.Unmarshal([]byte(text), &b); err != nil {
		tb.Fatal(err)
	}
	var objs []map[string]any
	for _, raw := range b.Objects {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			tb.Fatal(err)
		}
		objs = append(objs, m)
	}
	return b, objs
}

func TestStixValidatesAgainstSchemas(t *testing.T) {
	bundleSchema, indicatorSchema := stixSchemas(t)
	for setName, set := range consumerSets(t) {
		t.Run(setName, func(t *testing.T) {
			out := exportString(t, "stix", set, Options{})
			if err := validateJSON(t, bundleSchema, out); err != nil {
				t.Fatalf("bundle fails the STIX 2.1 schema: %v", err)
			}
			_, objs := decodeStix(t, out)
			if len(objs) != distinctIndicators(set) {
				t.Errorf("%d objects, want %d (one per case, kind and value)", len(objs), distinctIndicators(set))
			}
			for _, raw := range decodeRaw(t, out) {
				if err := validateJSON(t, indicatorSchema, raw); err != nil {
					t.Errorf("indicator fails the schema: %v\n%s", err, raw)
				}
			}
		})
	}
	t.Run("schema rejects a broken indicator", func(t *testing.T) {
		// Guards the test itself: if the schemas were loaded wrongly,
		// everything would pass.
		raws := decodeRaw(t, exportString(t, "stix", fixture(t), Options{}))
		broken := strings.Replace(raws[0], `"created":"2011-03-16T00:00:00.000Z"`, `"created":"2011-03-16T00:00:00Z"`, 1)
		if broken == raws[0] {
			t.Fatal("fixture object has no created timestamp to break")
		}
		if err := validateJSON(t, indicatorSchema, broken); err == nil {
			t.Fatal("schema accepted a created timestamp without milliseconds")
		}
	})
}

func decodeRaw(tb testing.TB, text string) []string {
	tb.Helper()
	b, _ := decodeStix(tb, text)
	var out []string
	for _, r := range b.Objects {
		out = append(out, string(r))
	}
	return out
}

func distinctIndicators(set *registry.ActiveSet) int {
	var keys []string
	for _, e := range set.Entries {
		k := e.Case + "|" + string(e.Kind) + "|" + e.Value
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	return len(keys)
}

func TestStixIdentityAcrossExports(t *testing.T) {
	first := fixture(t)
	later := fixture(t)
	later.At = later.At.Add(30 * 24 * time.Hour)
	later.Serial++
	_, a := decodeStix(t, exportString(t, "stix", first, Options{}))
	_, b := decodeStix(t, exportString(t, "stix", later, Options{}))
	if len(a) != len(b) || len(a) == 0 {
		t.Fatalf("%d and %d objects", len(a), len(b))
	}
	ids := map[string]bool{}
	for i := range a {
		if a[i]["id"] != b[i]["id"] {
			t.Errorf("id changed between exports: %v → %v", a[i]["id"], b[i]["id"])
		}
		if ids[a[i]["id"].(string)] {
			t.Errorf("duplicate id %v", a[i]["id"])
		}
		ids[a[i]["id"].(string)] = true
		if a[i]["created"] != b[i]["created"] {
			t.Errorf("created changed: %v → %v", a[i]["created"], b[i]["created"])
		}
		if a[i]["modified"] != timestamp(first.At) || b[i]["modified"] != timestamp(later.At) {
			t.Errorf("modified = %v, %v; want the sets' instants", a[i]["modified"], b[i]["modified"])
		}
		if !(a[i]["valid_from"].(string) < a[i]["valid_until"].(string)) {
			t.Errorf("valid_from %v not before valid_until %v", a[i]["valid_from"], a[i]["valid_until"])
		}
	}
}

func TestStixPatterns(t *testing.T) {
	tests := []struct {
		kind  registry.Kind
		value string
		want  string
	}{
		{registry.KindDomain, "c2.example", "[domain-name:value = 'c2.example']"},
		{registry.KindHost, "www.c2.example", "[domain-name:value = 'www.c2.example']"},
		{registry.KindIP, "198.51.100.7", "[ipv4-addr:value = '198.51.100.7/32']"},
		{registry.KindCIDR, "198.51.100.0/24", "[ipv4-addr:value = '198.51.100.0/24']"},
		{registry.KindIP, "2001:db8::7", "[ipv6-addr:value = '2001:db8::7/128']"},
		{registry.KindCIDR, "2001:db8::/32", "[ipv6-addr:value = '2001:db8::/32']"},
		{registry.KindDomain, "it's\\odd", `[domain-name:value = 'it\'s\\odd']`},
	}
	for _, tc := range tests {
		t.Run(tc.value, func(t *testing.T) {
			e := registry.Entry{Kind: tc.kind, Value: tc.value}
			if got := stixPattern(&e); got != tc.want {
				t.Errorf("stixPattern = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestStixMergesOrdersOfOneCase(t *testing.T) {
	// The same indicator in force through two orders of one case is one
	// object spanning both windows.
	a := entry(t, registry.KindDomain, "c2.example", "rustock-2011", shortExpiry)
	b := a
	b.OrderID, b.Effective, b.Expires = 9, effective.Add(24*time.Hour), longExpiry
	_, objs := decodeStix(t, exportString(t, "stix", newSet(fixtureAt, 1, []registry.Entry{a, b}), Options{}))
	if len(objs) != 1 {
		t.Fatalf("%d objects, want 1", len(objs))
	}
	if objs[0]["valid_from"] != timestamp(effective) || objs[0]["valid_until"] != timestamp(longExpiry) {
		t.Errorf("window = %v – %v, want %s – %s", objs[0]["valid_from"], objs[0]["valid_until"], timestamp(effective), timestamp(longExpiry))
	}
}
