package ingest

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/store/sqlite"
)

const sinkholeHeader = "timestamp,protocol,src_ip,src_port,src_asn,src_geo,src_region,src_city,src_hostname,src_naics,src_sector,device_vendor,device_type,device_model,severity,dst_ip,dst_port,dst_asn,dst_geo,dst_region,dst_city,dst_hostname,dst_naics,dst_sector,public_source,infection,family,tag,application,version,event_id,ssl_cipher,ssl_servername"

const httpHeader = sinkholeHeader + ",http_url,http_host,http_agent,forwarded_by,http_referer,machine_name"

const dnsHeader = "timestamp,protocol,src_ip,src_port,src_asn,src_geo,src_region,src_city,src_hostname,src_naics,src_sector,device_vendor,device_type,device_model,severity,infection,family,tag,query_type,query,count"

// row fills a CSV row for header from a map of column values.
func row(header string, vals map[string]string) string {
	cols := strings.Split(header, ",")
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = vals[c]
	}
	return strings.Join(out, ",")
}

func TestShadowserverLayouts(t *testing.T) {
	tests := []struct {
		name   string
		header string
		vals   map[string]string
		want   event.Event
	}{
		{"event4_sinkhole", sinkholeHeader,
			map[string]string{"timestamp": "2011-03-17 10:00:01", "protocol": "tcp", "src_ip": "192.0.2.7", "src_port": "49152", "src_asn": "64500", "src_geo": "us", "dst_ip": "198.51.100.1", "dst_port": "8080", "infection": "rustock", "tag": "spam", "public_source": "MSDCU"},
			event.Event{Timestamp: time.Date(2011, 3, 17, 10, 0, 1, 0, time.UTC), Protocol: "tcp", Transport: "tcp", SrcIP: netip.MustParseAddr("192.0.2.7"), SrcPort: 49152, SrcASN: 64500, SrcGeo: "US",
				DstIP: netip.MustParseAddr("198.51.100.1"), DstPort: 8080, Family: "rustock", Tag: "spam", Sensor: "MSDCU", Listener: "import:shadowserver"}},
		{"event4_sinkhole_http", httpHeader,
			map[string]string{"timestamp": "2011-03-17 10:00:02", "protocol": "tcp", "src_ip": "192.0.2.8", "dst_port": "80", "infection": "rustock", "http_url": "/login.php", "http_host": "c2.example", "http_agent": "Mozilla/4.0", "http_referer": "-"},
			event.Event{Timestamp: time.Date(2011, 3, 17, 10, 0, 2, 0, time.UTC), Protocol: "http", Transport: "tcp", SrcIP: netip.MustParseAddr("192.0.2.8"), DstPort: 80, Family: "rustock",
				HTTPURL: "/login.php", HTTPHost: "c2.example", HTTPAgent: "Mozilla/4.0", HTTPReferer: "-", Listener: "import:shadowserver"}},
		{"event6_sinkhole_http tls", httpHeader,
			map[string]string{"timestamp": "2011-03-17 10:00:03", "protocol": "tcp", "src_ip": "2001:db8::7", "dst_port": "443", "infection": "rustock", "ssl_servername": "c2.example", "http_host": "c2.example"},
			event.Event{Timestamp: time.Date(2011, 3, 17, 10, 0, 3, 0, time.UTC), Protocol: "https", Transport: "tcp", SrcIP: netip.MustParseAddr("2001:db8::7"), DstPort: 443, Family: "rustock",
				HTTPHost: "c2.example", SSLServerName: "c2.example", Listener: "import:shadowserver"}},
		{"event4_sinkhole_dns", dnsHeader,
			map[string]string{"timestamp": "2011-03-17 10:00:04", "protocol": "udp", "src_ip": "203.0.113.53", "infection": "rustock", "query_type": "a", "query": "c2.example", "count": "12"},
			event.Event{Timestamp: time.Date(2011, 3, 17, 10, 0, 4, 0, time.UTC), Protocol: "dns", Transport: "udp", SrcIP: netip.MustParseAddr("203.0.113.53"), Family: "rustock",
				QName: "c2.example", QType: "A", Listener: "import:shadowserver"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.header + "\n" + row(tc.header, tc.vals) + "\n"
			got, err := ReadShadowserver(strings.NewReader(in), "r.csv")
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 {
				t.Fatalf("%d events, want 1", len(got))
			}
			if !strings.HasPrefix(got[0].ID, "ss-") {
				t.Errorf("ID %q", got[0].ID)
			}
			got[0].ID = ""
			if !reflectEqual(got[0], tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got[0], tc.want)
			}
			if got[0].Resolver() != (tc.want.Protocol == "dns") {
				t.Fatalf("resolver flag wrong")
			}
		})
	}
}

func reflectEqual(a, b event.Event) bool {
	x, _ := event.MarshalJSONL(&a)
	y, _ := event.MarshalJSONL(&b)
	return bytes.Equal(x, y)
}

// reorder returns the CSV with its columns in reverse order.
func reorder(t *testing.T, in string) string {
	t.Helper()
	var out []string
	for l := range strings.SplitSeq(strings.TrimSpace(in), "\n") {
		f := strings.Split(l, ",")
		slices.Reverse(f)
		out = append(out, strings.Join(f, ","))
	}
	return strings.Join(out, "\n") + "\n"
}

func TestShadowserverIDs(t *testing.T) {
	r1 := row(sinkholeHeader, map[string]string{"timestamp": "2011-03-17 10:00:01", "protocol": "tcp", "src_ip": "192.0.2.7"})
	r2 := row(sinkholeHeader, map[string]string{"timestamp": "2011-03-17 10:00:01", "protocol": "tcp", "src_ip": "192.0.2.8"})
	in := sinkholeHeader + "\n" + r1 + "\n" + r2 + "\n" + r1 + "\n"
	a, err := ReadShadowserver(strings.NewReader(in), "a.csv")
	if err != nil {
		t.Fatal(err)
	}
	b, err := ReadShadowserver(strings.NewReader(reorder(t, in)), "b.csv")
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 3 || len(b) != 3 {
		t.Fatalf("%d and %d events", len(a), len(b))
	}
	for i := range a {
		if a[i].ID != b[i].ID {
			t.Errorf("row %d: ID depends on column order: %s vs %s", i, a[i].ID, b[i].ID)
		}
	}
	if a[0].ID == a[1].ID {
		t.Error("different rows share an ID")
	}
	if a[0].ID != a[2].ID {
		t.Error("a repeated row got a different ID")
	}
}

func TestShadowserverProblems(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"empty", "", []string{"f.csv: empty file: no header row"}},
		{"no src_ip column", "timestamp,protocol\n2011-03-17 10:00:00,tcp\n", []string{`f.csv:1: header has no "src_ip" column`}},
		{"no protocol column", "timestamp,src_ip\n2011-03-17 10:00:00,192.0.2.1\n", []string{`f.csv:1: header has no "protocol" column`}},
		{"every bad row", "timestamp,protocol,src_ip,src_port,src_geo\n" +
			"2011-03-17 10:00:00,tcp,192.0.2.1,80,US\n" +
			"17/03/2011,tcp,192.0.2.1,80,US\n" +
			"2011-03-17 10:00:00,icmp,192.0.2.x,99999,USA\n" +
			"2011-03-17 10:00:00,tcp\n" +
			"\"2011-03-17 10:00:00\",\"udp\",\"192.0.2.1\",\"1\n2\",\"US\"\n" +
			"2011-03-17 10:00:00,,192.0.2.1,,\n",
			[]string{
				`f.csv:3: bad timestamp "17/03/2011" (want YYYY-MM-DD HH:MM:SS, UTC)`,
				`f.csv:4: bad src_ip "192.0.2.x"; bad src_port "99999"; bad src_geo "USA" (want a two-letter country code); unsupported protocol "icmp" (want tcp or udp)`,
				`f.csv:5: 2 fields, the header has 5`,
				`f.csv:6: bad src_port "1\n2"`,
				`f.csv:8: empty protocol`,
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := ReadShadowserver(strings.NewReader(tc.in), "f.csv")
			var ie *Error
			if !errors.As(err, &ie) {
				t.Fatalf("err %v, want *Error", err)
			}
			if evs != nil {
				t.Fatalf("%d events returned with problems", len(evs))
			}
			var got []string
			for _, p := range ie.Problems {
				got = append(got, p.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestJSONL(t *testing.T) {
	var buf bytes.Buffer
	w := event.NewWriter(&buf)
	in := []event.Event{
		{ID: "e1", Timestamp: time.Date(2011, 3, 17, 10, 0, 0, 0, time.UTC), Protocol: "http", SrcIP: netip.MustParseAddr("192.0.2.1"), HTTPHost: "c2.example"},
		{Timestamp: time.Date(2011, 3, 17, 11, 0, 0, 0, time.UTC), Protocol: "dns", SrcIP: netip.MustParseAddr("203.0.113.53"), QName: "c2.example", Listener: "dns"},
	}
	for i := range in {
		if err := w.Write(&in[i]); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	got, err := ReadJSONL(bytes.NewReader(append(buf.Bytes(), '\n')), "e.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != "e1" || !strings.HasPrefix(got[1].ID, "jl-") || got[1].QName != "c2.example" {
		t.Fatalf("got %+v", got)
	}
	for _, e := range got { // the importer is the listener, whatever the record says
		if e.Listener != "import:jsonl" {
			t.Fatalf("listener %q, want import:jsonl", e.Listener)
		}
	}
	again, _ := ReadJSONL(bytes.NewReader(buf.Bytes()), "e.jsonl")
	if again[1].ID != got[1].ID {
		t.Fatal("ID of an event without one is not deterministic")
	}

	bad := buf.String() + `{"v":1,"id":"x","timestamp":"2011-03-17T10:00:00Z","protocol":"http"}` + "\n" + "not json\n"
	_, err = ReadJSONL(strings.NewReader(bad), "e.jsonl")
	var ie *Error
	if !errors.As(err, &ie) || len(ie.Problems) != 2 || ie.Problems[0].Line != 3 || ie.Problems[1].Line != 4 {
		t.Fatalf("err %v", err)
	}
}

func TestReadFilesAndStoreTwice(t *testing.T) {
	dir := t.TempDir()
	csvPath := filepath.Join(dir, "2011-03-18-event4_sinkhole_http-test.csv")
	var b strings.Builder
	b.WriteString(httpHeader + "\n")
	for i, ip := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.1", "2001:db8::1"} {
		b.WriteString(row(httpHeader, map[string]string{"timestamp": "2011-03-17 1" + string(rune('0'+i)) + ":00:00", "protocol": "tcp", "src_ip": ip, "infection": "rustock", "src_geo": "US", "src_asn": "64500"}) + "\n")
	}
	if err := os.WriteFile(csvPath, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	badPath := filepath.Join(dir, "bad.csv")
	if err := os.WriteFile(badPath, []byte(httpHeader+"\nnope\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFiles([]string{csvPath, badPath, filepath.Join(dir, "missing.csv")}, FormatShadowserver); err == nil ||
		!strings.Contains(err.Error(), "bad.csv:2:") || !strings.Contains(err.Error(), "missing.csv:") {
		t.Fatalf("err %v, want problems of bad.csv and missing.csv", err)
	}

	db, err := sqlite.Open(t.Context(), filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.NewEventStore(t.Context(), db, sqlite.EventStoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(); db.Close() })
	day := time.Date(2011, 3, 17, 0, 0, 0, 0, time.UTC)
	for i, want := range []int{4, 0} {
		evs, err := ReadFiles([]string{csvPath}, FormatShadowserver)
		if err != nil {
			t.Fatal(err)
		}
		res, err := Store(t.Context(), st, evs, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Inserted != want {
			t.Fatalf("import %d inserted %d, want %d", i+1, res.Inserted, want)
		}
		var ips, hits uint64
		rs, err := st.Rollups(t.Context(), day, day.Add(24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			ips += r.IPs
			hits += r.Hits
		}
		if ips != 3 || hits != 4 {
			t.Fatalf("import %d: rollups count %d IPs, %d hits; want 3, 4", i+1, ips, hits)
		}
	}
	// Imported twice: received twice, stored once, under the importer's
	// listener name.
	want := []store.ListenerHealth{{Name: "import:shadowserver", Received: 8, Stored: 4}}
	if h, _ := st.Health(t.Context()); h.Stored != 4 || !reflect.DeepEqual(h.Listeners, want) {
		t.Fatalf("health %+v, want stored 4 and listeners %+v", h, want)
	}
}
