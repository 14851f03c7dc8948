package evidence

import (
	"bytes"
	"context"
	"fmt"
)

// bundle returns the bundle-encoded entries [256b, min(256b+256, n)) of
// bundle b: a full bundle below the journal from its file, the rest from
// the journal (read under mu: a rotation replaces the journal).
func (l *Log) bundle(b, n uint64) ([]byte, error) {
	lo, hi := b*tileWidth, min(b*tileWidth+tileWidth, n)
	if lo >= hi {
		return nil, fmt.Errorf("evidence: bundle %d is beyond the tree of size %d", b, n)
	}
	l.mu.Lock()
	if l.jf == nil {
		l.mu.Unlock()
		return nil, fmt.Errorf("evidence log closed")
	}
	if hi > l.n {
		l.mu.Unlock()
		return nil, fmt.Errorf("evidence: entries up to %d asked of a tree of size %d", hi, l.n)
	}
	if lo+tileWidth <= l.jStart {
		l.mu.Unlock()
		data, err := readBundle(l.dir, b)
		if err != nil {
			return nil, err
		}
		if hi-lo < tileWidth {
			if data, err = bundlePrefix(data, int(hi-lo)); err != nil {
				return nil, fmt.Errorf("evidence %s: %w", tilePath(-1, b, tileWidth), err)
			}
		}
		return data, nil
	}
	defer l.mu.Unlock()
	start := l.joff[lo-l.jStart]
	end := l.jEnd
	if hi-l.jStart < uint64(len(l.joff)) {
		end = l.joff[hi-l.jStart]
	}
	data := make([]byte, end-start)
	if _, err := l.jf.ReadAt(data, start); err != nil {
		return nil, fmt.Errorf("evidence journal: %w", err)
	}
	return data, nil
}

// bundlePrefix returns the first k entries of a bundle.
func bundlePrefix(data []byte, k int) ([]byte, error) {
	off, i := 0, 0
	err := bundleEntries(data, func(e []byte) error {
		if i < k {
			off += entryHeader + len(e)
		}
		i++
		return nil
	})
	if err == nil && i < k {
		err = fmt.Errorf("%d entries, want at least %d", i, k)
	}
	return data[:off], err
}

// forBundle calls fn with each entry of bundle b below n, its index, nonce
// and record (valid only during the call). A full bundle file must hold
// exactly 256 entries.
func (l *Log) forBundle(b, n uint64, fn func(i uint64, nonce, rec []byte) error) error {
	data, err := l.bundle(b, n)
	if err != nil {
		return err
	}
	i := b * tileWidth
	want := min(i+tileWidth, n)
	err = bundleEntries(data, func(e []byte) error {
		if i >= want {
			return fmt.Errorf("more than %d entries", want-b*tileWidth)
		}
		if err := fn(i, e[:NonceSize], e[NonceSize:]); err != nil {
			return err
		}
		i++
		return nil
	})
	if err == nil && i != want {
		err = fmt.Errorf("%d entries, want %d", i-b*tileWidth, want-b*tileWidth)
	}
	if err != nil {
		return fmt.Errorf("evidence entry bundle %d: %w", b, err)
	}
	return nil
}

// readEntry reads entry i (nonce, record).
func (l *Log) readEntry(i uint64) (nonce, rec []byte, err error) {
	err = l.forBundle(i/tileWidth, i+1, func(j uint64, nc, r []byte) error {
		if j == i {
			nonce, rec = bytes.Clone(nc), bytes.Clone(r)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("evidence entry %d: %w", i, err)
	}
	return nonce, rec, nil
}

// LastRecord returns the newest record for which match reports true,
// searching back from the end of the log (custody records, for example, are
// skipped by a match that recognises events). ok is false when no record
// matches. The server uses it at start to find which stored events the log
// already holds.
func (l *Log) LastRecord(match func(rec []byte) bool) (rec []byte, ok bool, err error) {
	n := l.Size()
	if n == 0 {
		return nil, false, nil
	}
	for b := (n - 1) / tileWidth; ; b-- {
		var recs [][]byte
		if err := l.forBundle(b, n, func(_ uint64, _, r []byte) error {
			recs = append(recs, r)
			return nil
		}); err != nil {
			return nil, false, err
		}
		for i := len(recs) - 1; i >= 0; i-- {
			if match(recs[i]) {
				return bytes.Clone(recs[i]), true, nil
			}
		}
		if b == 0 {
			break
		}
	}
	return nil, false, nil
}

// Entries calls fn with each entry of [lo, hi) in order (index, nonce and
// record, valid only during the call). hi must not exceed Size. It stops at
// fn's first error and returns it.
func (l *Log) Entries(ctx context.Context, lo, hi uint64, fn func(i uint64, nonce, record []byte) error) error {
	n := l.Size()
	if lo > hi || hi > n {
		return fmt.Errorf("entries [%d, %d) outside the log's %d", lo, hi, n)
	}
	for b := lo / tileWidth; b*tileWidth < hi; b++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := l.forBundle(b, hi, func(i uint64, nonce, rec []byte) error {
			if i < lo {
				return nil
			}
			return fn(i, nonce, rec)
		}); err != nil {
			return err
		}
	}
	return nil
}
