package event

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"sync/atomic"
)

// record is the JSON-lines form: the schema version first, then the event.
type record struct {
	V int `json:"v"`
	*Event
}

// MarshalJSONL returns e as one JSON-lines record (without the newline):
// encoding/json's form of record, made by hand (jsonl.go).
func MarshalJSONL(e *Event) ([]byte, error) {
	return AppendJSONL(make([]byte, 0, 512), e)
}

// AppendJSONL appends MarshalJSONL's record of e to dst (on an error, dst
// as it was).
func AppendJSONL(dst []byte, e *Event) ([]byte, error) {
	if b, ok := appendJSONL(dst, e); ok {
		return b, nil
	}
	b, err := json.Marshal(record{V: SchemaVersion, Event: e})
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}

// UnmarshalJSONL parses one JSON-lines record. Unknown fields are errors, as
// is a schema version this build does not know.
func UnmarshalJSONL(line []byte) (Event, error) {
	var ev Event
	r := record{Event: &ev}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Event{}, fmt.Errorf("bad event record: %w", err)
	}
	if dec.More() {
		return Event{}, fmt.Errorf("bad event record: trailing data")
	}
	if r.V != SchemaVersion {
		return Event{}, fmt.Errorf("event schema version %d not supported (want %d)", r.V, SchemaVersion)
	}
	if !ev.SrcIP.IsValid() {
		return Event{}, fmt.Errorf("event has no src_ip")
	}
	if ev.Timestamp.IsZero() {
		return Event{}, fmt.Errorf("event has no timestamp")
	}
	switch ev.Protocol {
	case ProtoDNS, ProtoHTTP, ProtoHTTPS, ProtoTCP, ProtoUDP:
	default:
		return Event{}, fmt.Errorf("event has unknown protocol %q", ev.Protocol)
	}
	ev.Timestamp = ev.Timestamp.UTC()
	return ev, nil
}

// Writer writes events as JSON lines.
type Writer struct{ w *bufio.Writer }

// NewWriter returns a Writer on w; call Flush when done.
func NewWriter(w io.Writer) *Writer { return &Writer{w: bufio.NewWriter(w)} }

// Write writes one event and a newline.
func (w *Writer) Write(e *Event) error {
	b, err := MarshalJSONL(e)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	_, err = w.w.Write(b)
	return err
}

// Flush flushes buffered records.
func (w *Writer) Flush() error { return w.w.Flush() }

// IDGen makes event IDs unique across processes and restarts: a random
// per-process prefix and a counter.
type IDGen struct {
	prefix string
	n      atomic.Uint64
}

// NewIDGen returns a generator with a fresh random prefix.
func NewIDGen() *IDGen {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return &IDGen{prefix: hex.EncodeToString(b[:])}
}

// Next returns a new ID.
func (g *IDGen) Next() string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], g.n.Add(1))
	return g.prefix + "-" + hex.EncodeToString(b[:])
}
