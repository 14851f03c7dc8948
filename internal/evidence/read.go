package evidence

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"slices"
)

// readEntry reads entry i (nonce, record) given its offset from the index.
func (l *Log) readEntry(i uint64) (nonce, rec []byte, err error) {
	var ib [8]byte
	if _, err := l.index.ReadAt(ib[:], int64(i)*8); err != nil {
		return nil, nil, fmt.Errorf("evidence index entry %d: %w", i, err)
	}
	off := int64(beUint64(ib[:]))
	er := &entryReader{r: io.NewSectionReader(l.data, off, int64(entryHeader+NonceSize+l.opts.MaxRecordSize)), off: off, max: l.opts.MaxRecordSize}
	if err := er.next(); err != nil {
		return nil, nil, fmt.Errorf("evidence entry %d: %w", i, err)
	}
	return slices.Clone(er.nonce[:]), er.rec, nil
}

func beUint64(b []byte) uint64 {
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}

// LastRecord returns the newest record for which match reports true,
// searching back from the end of the log (custody records, for example, are
// skipped by a match that recognises events). ok is false when no record
// matches. The server uses it at start to find which stored events the log
// already holds.
func (l *Log) LastRecord(match func(rec []byte) bool) (rec []byte, ok bool, err error) {
	for i := l.Size(); i > 0; i-- {
		_, r, err := l.readEntry(i - 1)
		if err != nil {
			return nil, false, err
		}
		if match(r) {
			return r, true, nil
		}
	}
	return nil, false, nil
}

// Entries calls fn with each entry of [lo, hi) in order (index, nonce and
// record, valid only during the call), reading the data file sequentially.
// hi must not exceed Size. It stops at fn's first error and returns it.
func (l *Log) Entries(ctx context.Context, lo, hi uint64, fn func(i uint64, nonce, record []byte) error) error {
	n, dataEnd, err := l.snapshot()
	if err != nil {
		return err
	}
	if lo > hi || hi > n {
		return fmt.Errorf("entries [%d, %d) outside the log's %d", lo, hi, n)
	}
	if lo == hi {
		return nil
	}
	var ib [8]byte
	if _, err := l.index.ReadAt(ib[:], int64(lo)*8); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	off := int64(beUint64(ib[:]))
	er := &entryReader{r: bufio.NewReaderSize(io.NewSectionReader(l.data, off, dataEnd-off), 1<<20), off: off, max: l.opts.MaxRecordSize}
	for i := lo; i < hi; i++ {
		if (i-lo)%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := er.next(); err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
		if err := fn(i, er.nonce[:], er.rec); err != nil {
			return err
		}
	}
	return nil
}
