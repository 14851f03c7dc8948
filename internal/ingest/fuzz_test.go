package ingest

import (
	"bytes"
	"testing"
)

func FuzzShadowserver(f *testing.F) {
	f.Add([]byte(httpHeader + "\n" + row(httpHeader, map[string]string{"timestamp": "2011-03-17 10:00:00", "protocol": "tcp", "src_ip": "192.0.2.1", "http_host": "c2.example"}) + "\n"))
	f.Add([]byte(dnsHeader + "\n" + row(dnsHeader, map[string]string{"timestamp": "2011-03-17 10:00:00", "protocol": "udp", "src_ip": "::1", "query": "x.example"}) + "\n"))
	f.Add([]byte("src_ip,timestamp,protocol\n\"1.2.3.4\",2011-03-17 10:00:00,udp\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		evs, err := ReadShadowserver(bytes.NewReader(data), "fuzz.csv")
		if err != nil {
			if evs != nil {
				t.Fatal("events returned with an error")
			}
			return
		}
		again, _ := ReadShadowserver(bytes.NewReader(data), "fuzz.csv")
		for i := range evs {
			e := &evs[i]
			if e.ID == "" || !e.SrcIP.IsValid() || e.Timestamp.IsZero() || e.Protocol == "" {
				t.Fatalf("incomplete event %+v", e)
			}
			if again[i].ID != e.ID {
				t.Fatal("IDs not deterministic")
			}
		}
	})
}

func FuzzJSONL(f *testing.F) {
	f.Add([]byte(`{"v":1,"id":"a","timestamp":"2011-03-17T10:00:00Z","protocol":"http","src_ip":"192.0.2.1"}` + "\n"))
	f.Add([]byte("\n\n{\"v\":1}\n"))
	f.Add([]byte(`{"v":1,"id":"b","timestamp":"2011-03-17T10:00:00Z","protocol":"dns","src_ip":"192.0.2.1","listener":"dns"}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		evs, err := ReadJSONL(bytes.NewReader(data), "fuzz.jsonl")
		if err != nil {
			if evs != nil {
				t.Fatal("events returned with an error")
			}
			return
		}
		for i := range evs {
			e := &evs[i]
			if e.ID == "" || !e.SrcIP.IsValid() || e.Timestamp.IsZero() {
				t.Fatalf("incomplete event %+v", e)
			}
			if e.Listener != ListenerPrefix+FormatJSONL {
				t.Fatalf("imported event counts under listener %q", e.Listener)
			}
		}
	})
}
