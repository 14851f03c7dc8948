package notify

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/takedown/takedown/internal/registry"
)

// MaxImportBytes bounds a subscriber CSV file.
const MaxImportBytes = 16 << 20

// importColumns are the columns a subscriber CSV may have; id,
// organisation, contacts and networks are required.
var importColumns = []string{"id", "organisation", "contacts", "networks", "formats", "tlp", "cadence"}

// ParseSubscribersCSV reads subscribers from a CSV file with a header row
// (columns in any order: id, organisation, contacts, networks, formats,
// tlp, cadence). Lists inside a cell (contacts, networks, formats) are
// separated by spaces, ';' or ','. Every problem is returned at once as
// registry.Problems with name:line; on any problem no subscriber is
// returned.
func ParseSubscribersCSV(name string, r io.Reader) ([]Subscriber, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxImportBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(data) > MaxImportBytes {
		return nil, registry.Problems{{File: name, Msg: fmt.Sprintf("larger than %d bytes", MaxImportBytes)}}
	}
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	cr := csv.NewReader(bytes.NewReader(data))
	cr.FieldsPerRecord = -1
	cr.Comment = '#'
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, registry.Problems{{File: name, Line: 1, Msg: "empty file: want a header row"}}
	}
	if err != nil {
		return nil, registry.Problems{{File: name, Line: csvLine(err, 1), Msg: "bad CSV header: " + csvMsg(err)}}
	}
	hl, _ := cr.FieldPos(0)
	var probs registry.Problems
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "organization" || h == "org" {
			h = "organisation"
		}
		known := false
		for _, c := range importColumns {
			known = known || c == h
		}
		switch {
		case !known:
			probs = append(probs, registry.Problem{File: name, Line: hl, Msg: fmt.Sprintf("unknown column %q (want %s)", h, strings.Join(importColumns, ", "))})
		case col[h] != 0:
			probs = append(probs, registry.Problem{File: name, Line: hl, Msg: fmt.Sprintf("column %q twice", h)})
		default:
			col[h] = i + 1
		}
	}
	for _, c := range importColumns[:4] {
		if col[c] == 0 {
			probs = append(probs, registry.Problem{File: name, Line: hl, Msg: fmt.Sprintf("no %q column", c)})
		}
	}
	if len(probs) > 0 {
		return nil, probs
	}
	var subs []Subscriber
	seen := map[string]int{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			probs = append(probs, registry.Problem{File: name, Line: csvLine(err, 0), Msg: csvMsg(err)})
			var pe *csv.ParseError
			if errors.As(err, &pe) && errors.Is(pe.Err, csv.ErrFieldCount) {
				continue
			}
			break // the reader cannot resynchronise after a quoting error
		}
		line, _ := cr.FieldPos(0)
		get := func(c string) string {
			if i := col[c]; i > 0 && i <= len(rec) {
				return strings.TrimSpace(rec[i-1])
			}
			return ""
		}
		if len(rec) != len(header) {
			probs = append(probs, registry.Problem{File: name, Line: line, Msg: fmt.Sprintf("%d fields, want %d", len(rec), len(header))})
			continue
		}
		s := Subscriber{ID: get("id"), Org: get("organisation"), Contacts: splitList(get("contacts")), TLP: get("tlp"), Cadence: get("cadence")}
		for _, f := range splitList(get("formats")) {
			s.Formats = append(s.Formats, Format(f))
		}
		errs := []error{s.NormalizeWith(strings.Join(splitList(get("networks")), ","), "")}
		if prev, ok := seen[s.ID]; ok && s.ID != "" {
			errs = append(errs, fmt.Errorf("id %q already used on line %d", s.ID, prev))
		}
		seen[s.ID] = line
		for _, e := range errs {
			if e == nil {
				continue
			}
			for m := range strings.SplitSeq(e.Error(), "\n") {
				probs = append(probs, registry.Problem{File: name, Line: line, Msg: m})
			}
		}
		subs = append(subs, s)
	}
	if len(probs) > 0 {
		return nil, probs
	}
	if len(subs) == 0 {
		return nil, registry.Problems{{File: name, Line: hl, Msg: "no subscribers after the header"}}
	}
	return subs, nil
}

// splitList splits a cell on spaces, ';' and ','.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' })
}

func csvLine(err error, def int) int {
	var pe *csv.ParseError
	if errors.As(err, &pe) && pe.Line > 0 {
		return pe.Line
	}
	return def
}

func csvMsg(err error) string {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
