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
	i, err := l.Append(ctx, [][]byte{b})
	if err != nil {
		return 0, nil, fmt.Errorf("evidence custody: %w", err)
	}
	return i, b, nil
}
