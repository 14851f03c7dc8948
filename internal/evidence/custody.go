package evidence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// CustodyRecord is a custody action as stored in the log (one JSON object,
// "type":"custody"). Export records fill the export fields.
type CustodyRecord struct {
	Type   string    `json:"type"` // always "custody"
	Action string    `json:"action"`
	Time   time.Time `json:"time"`
	Detail string    `json:"detail,omitempty"`

	Who      string     `json:"who,omitempty"`
	ForWhom  string     `json:"for,omitempty"`
	Case     string     `json:"case,omitempty"`
	From     *time.Time `json:"from,omitempty"`
	To       *time.Time `json:"to,omitempty"`
	First    uint64     `json:"first,omitempty"` // first leaf of the exported range
	End      uint64     `json:"end,omitempty"`   // one past its last leaf
	Events   int        `json:"events,omitempty"`
	TreeSize uint64     `json:"tree_size,omitempty"` // log size when the export was selected (rotate-key: before the record)

	// import records (AppendImport): the files an import read.
	Files []ImportedFile `json:"files,omitempty"`

	// rotate-key records (rotate.go): the old and the new key.
	OldKey     string `json:"old_key,omitempty"`      // OpenSSH form
	NewKey     string `json:"new_key,omitempty"`      // OpenSSH form
	NewNoteKey string `json:"new_note_key,omitempty"` // note verifier key
}

// Custody appends a custody action (export, hand-off, key rotation …) as a
// leaf of the log.
func (l *Log) Custody(ctx context.Context, action, detail string) error {
	if action == "" {
		return errors.New("evidence custody: empty action")
	}
	_, _, err := l.AppendCustody(ctx, &CustodyRecord{Action: action, Detail: detail})
	return err
}

// AppendCustody appends custody record c (its Type set to "custody", its
// Time to now when zero) as a leaf and returns the leaf's index and the
// record's bytes as stored.
func (l *Log) AppendCustody(ctx context.Context, c *CustodyRecord) (uint64, []byte, error) {
	c.Type = "custody"
	if c.Time.IsZero() {
		c.Time = l.opts.Now().UTC().Truncate(time.Millisecond)
	}
	b, err := json.Marshal(c)
	if err != nil {
		return 0, nil, fmt.Errorf("evidence custody: %w", err)
	}
	// On a shared log another node may append first; the record is then
	// appended after what it appended.
	i, err := l.Append(ctx, [][]byte{b})
	for try := 0; errors.Is(err, ErrEntriesTaken) && try < 10; try++ {
		time.Sleep(time.Duration(try+1) * 10 * time.Millisecond)
		i, err = l.Append(ctx, [][]byte{b})
	}
	if err != nil {
		return 0, nil, fmt.Errorf("evidence custody: %w", err)
	}
	return i, b, nil
}

// ImportedFile is one source file of an import as its custody record
// names it.
type ImportedFile struct {
	Name   string `json:"name"`   // as given on the command line; "-" is standard input
	SHA256 string `json:"sha256"` // of every byte read, hex
	Rows   int    `json:"rows"`   // events read from it
}

// ImportResult says where an import's records went.
type ImportResult struct {
	Events  int    // event records appended
	First   uint64 // leaf of the first of them (when Events > 0)
	End     uint64 // one past the leaf of the last of them
	Custody uint64 // leaf of the custody record
}

// AppendImport appends the records of the events an import newly stored,
// as each gives them (each calls its argument with successive slices),
// then a custody record (action "import") naming the importing user, the
// files with their SHA-256 and row counts, the number of events and the
// leaves [first, end) they went to. Each slice is one Append, so the
// writer lock is held only batch by batch: a running server appends its
// own events between them (they are then inside [first, end) too; the
// custody record's count says how many are the import's).
func (l *Log) AppendImport(ctx context.Context, who string, files []ImportedFile, each func(fn func(records [][]byte) error) error) (ImportResult, error) {
	var res ImportResult
	err := each(func(recs [][]byte) error {
		if len(recs) == 0 {
			return nil
		}
		first, err := l.Append(ctx, recs)
		if err != nil {
			return err
		}
		if res.Events == 0 {
			res.First = first
		}
		res.Events += len(recs)
		res.End = first + uint64(len(recs))
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("evidence import: %w", err)
	}
	c := &CustodyRecord{Action: "import", Who: who, Files: files, Events: res.Events,
		Detail: "events newly stored by an import, in leaves [first, end); files: what was read"}
	if res.Events > 0 {
		c.First, c.End = res.First, res.End
	}
	if res.Custody, _, err = l.AppendCustody(ctx, c); err != nil {
		return res, err
	}
	return res, nil
}
