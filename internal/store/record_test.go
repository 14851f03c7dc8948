package store_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/store/storetest"
)

// TestEncodeTemplates: a writer adds the missing strings, then the
// missing templates (made once, store.Templates), then encodes. Events
// sharing their template fields are stored as that template's reference
// (event.CompactTemplated), byte for byte as when EncodeEventsWith makes
// the templates itself, and read back whole.
func TestEncodeTemplates(t *testing.T) {
	refs := map[string]uint64{}
	strs := map[uint64]string{}
	add := func(ss []string) {
		for _, s := range ss {
			if _, ok := refs[s]; ok {
				t.Fatalf("%q added twice", s)
			}
			refs[s] = uint64(len(refs) + 1)
			strs[refs[s]] = s
		}
	}
	known := func(s string) (uint64, bool) { r, ok := refs[s]; return r, ok }
	var events []event.Event
	for _, base := range storetest.RecordCases() {
		for j := range 3 {
			e := base
			e.ID = fmt.Sprintf("%s-%d", base.ID, j)
			events = append(events, e)
		}
	}
	add(store.MissingStrings(events, known, store.MaxTableStrings))
	if again := store.MissingStrings(events, known, store.MaxTableStrings); len(again) != 0 {
		t.Fatalf("strings still missing after they were added: %q", again)
	}
	templates := store.Templates(events, known)
	missing := store.MissingTemplates(templates, known, store.MaxTableStrings)
	add(missing)
	if len(missing) == 0 || len(missing) > len(events)/3 {
		t.Fatalf("%d templates for %d events in threes", len(missing), len(events))
	}
	got, err := store.EncodeEventsWith(known, events, nil, templates)
	if err != nil {
		t.Fatal(err)
	}
	want, err := store.EncodeEventsWith(known, events, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	templated := 0
	for i := range got {
		if !bytes.Equal(got[i].Record, want[i].Record) {
			t.Errorf("event %d: record with the templates given differs from the one made alone", i)
		}
		if len(got[i].Record) > 0 && got[i].Record[0] == event.CompactTemplated {
			templated++
		}
		e, err := store.DecodeEvent(got[i].ID, got[i].TS, got[i].Record, func(r uint64) (string, bool) { s, ok := strs[r]; return s, ok })
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		// Stored times are UTC (the zone is not part of an event).
		w := events[i]
		w.Timestamp = w.Timestamp.UTC()
		a, _ := event.MarshalJSONL(&e)
		b, _ := event.MarshalJSONL(&w)
		if !bytes.Equal(a, b) {
			t.Errorf("event %d changed\n got %s\nwant %s", i, a, b)
		}
	}
	if templated < len(events)/2 {
		t.Errorf("%d of %d events stored with a template", templated, len(events))
	}
}
