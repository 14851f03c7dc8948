package evidence

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/mod/sumdb/tlog"
)

// AuditResult says what an audit covered.
type AuditResult struct {
	Leaves      uint64 // entries re-hashed
	Checkpoints int    // checkpoints whose root was recomputed
	Latest      uint64 // size of the latest checkpoint checked
}

// Audit re-reads every stored entry, re-hashes it, compares every stored
// tree hash and index offset with the recomputed ones and checks the root of
// every kept checkpoint. It reads what was appended before it started and
// does not block Append.
func (l *Log) Audit(ctx context.Context) error {
	_, err := l.AuditResult(ctx)
	return err
}

// AuditResult is Audit that also says what it covered.
func (l *Log) AuditResult(ctx context.Context) (AuditResult, error) {
	n, _, err := l.snapshot()
	if err != nil {
		return AuditResult{}, err
	}
	st, err := l.verifyDisk(ctx, n, false)
	if err != nil {
		return AuditResult{}, err
	}
	return st.result, nil
}

// scan is Open's check: verifyDisk with repair of a crash's leftovers, then
// the log's in-memory state is set from what it found.
func (l *Log) scan(ctx context.Context, repair bool) error {
	st, err := l.verifyDisk(ctx, ^uint64(0), repair)
	if err != nil {
		return err
	}
	l.n, l.dataEnd, l.frontier, l.last = st.n, st.dataEnd, st.frontier, st.last
	return nil
}

type diskState struct {
	n        uint64
	dataEnd  int64
	frontier []tlog.Hash
	last     Checkpoint
	result   AuditResult
}

// verifyDisk walks the first limit entries of the data file (all of them
// when limit is MaxUint64, at Open). With repair it truncates a torn last
// entry and writes index and hash entries missing after a crash; without,
// those are errors. Any stored value that disagrees with its recomputation,
// and any checkpoint the entries do not reproduce, is an error.
func (l *Log) verifyDisk(ctx context.Context, limit uint64, repair bool) (diskState, error) {
	var st diskState
	k, chain, _ := l.Keys()
	cps, err := readCheckpoints(l.dir, k.Name, chain)
	if err != nil {
		return st, err
	}
	open := limit == ^uint64(0)
	if !open {
		// Audit of a live log: checkpoints made after its snapshot are for
		// the next audit.
		for len(cps) > 0 && cps[len(cps)-1].Size > limit {
			cps = cps[:len(cps)-1]
		}
	}
	dataSize, err := fileSize(l.data)
	if err != nil {
		return st, err
	}
	indexSize, err := fileSize(l.index)
	if err != nil {
		return st, err
	}
	hashSize, err := fileSize(l.hashes)
	if err != nil {
		return st, err
	}
	er := &entryReader{r: bufio.NewReaderSize(io.NewSectionReader(l.data, 0, dataSize), 1<<20), max: l.opts.MaxRecordSize}
	ir := bufio.NewReaderSize(io.NewSectionReader(l.index, 0, indexSize), 64<<10)
	hr := bufio.NewReaderSize(io.NewSectionReader(l.hashes, 0, hashSize), 256<<10)
	var iw, hw *bufio.Writer
	var (
		n        uint64
		frontier []tlog.Hash
		hpos     int64 // byte position in hashes of the next stored hash
		hb       []byte
		cpi      int
		want     [tlog.HashSize]byte
		ib       [8]byte
	)
	checkRoots := func() error {
		for cpi < len(cps) && cps[cpi].Size == n {
			if root := frontierRoot(frontier); root != cps[cpi].Root {
				return fmt.Errorf("evidence log does not match its checkpoint of size %d: entries hash to root %s, checkpoint says %s (entries edited, removed or reordered)",
					n, b64(root), b64(cps[cpi].Root))
			}
			st.last = cps[cpi]
			st.result.Checkpoints++
			cpi++
		}
		return nil
	}
	if err := checkRoots(); err != nil {
		return st, err
	}
	for n < limit {
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return st, err
			}
		}
		start := er.off
		err := er.next()
		if err == io.EOF {
			break
		}
		if err != nil && !errors.Is(err, errTorn) && err != io.EOF && repair && zeroTail(l.data, start, dataSize) {
			// A crash can leave the file longer than what was written, filled
			// with zeros; nothing there was ever acknowledged.
			err = errTorn
		}
		if errors.Is(err, errTorn) {
			if !repair {
				return st, fmt.Errorf("evidence data: entry %d at offset %d is cut short", n, start)
			}
			l.log.Warn("evidence data: dropping a torn last entry (crash during append)", "entry", n, "offset", start)
			if err := l.data.Truncate(start); err != nil {
				return st, fmt.Errorf("evidence data: truncate torn entry: %w", err)
			}
			break
		}
		if err != nil {
			return st, fmt.Errorf("evidence data: entry %d: %w", n, err)
		}
		// index
		ipos := int64(n) * 8
		if ipos+8 <= indexSize {
			if _, err := io.ReadFull(ir, ib[:]); err != nil {
				return st, fmt.Errorf("evidence index: %w", err)
			}
			if got := int64(binary.BigEndian.Uint64(ib[:])); got != start {
				return st, fmt.Errorf("evidence index: entry %d says offset %d, data has it at %d (index edited)", n, got, start)
			}
		} else {
			if !repair {
				return st, fmt.Errorf("evidence index: entry %d missing", n)
			}
			if iw == nil {
				iw = bufio.NewWriter(io.NewOffsetWriter(l.index, ipos))
			}
			binary.BigEndian.PutUint64(ib[:], uint64(start))
			iw.Write(ib[:])
		}
		// hashes
		leaf := LeafHash(er.nonce[:], er.rec)
		frontier, hb = pushLeaf(frontier, n, leaf, hb[:0])
		for i := 0; i < len(hb); i += tlog.HashSize {
			if hpos+tlog.HashSize <= hashSize {
				if _, err := io.ReadFull(hr, want[:]); err != nil {
					return st, fmt.Errorf("evidence hashes: %w", err)
				}
				if !bytes.Equal(want[:], hb[i:i+tlog.HashSize]) {
					what := "record"
					if i > 0 {
						what = "tree hash"
					}
					return st, fmt.Errorf("evidence log edited: entry %d does not hash to its stored %s (stored hash %d)", n, what, hpos/tlog.HashSize)
				}
			} else {
				if !repair {
					return st, fmt.Errorf("evidence hashes: stored hash %d missing", hpos/tlog.HashSize)
				}
				if hw == nil {
					hw = bufio.NewWriter(io.NewOffsetWriter(l.hashes, hpos))
				}
				hw.Write(hb[i : i+tlog.HashSize])
			}
			hpos += tlog.HashSize
		}
		n++
		if err := checkRoots(); err != nil {
			return st, err
		}
	}
	if cpi < len(cps) {
		c := cps[len(cps)-1]
		return st, fmt.Errorf("evidence log truncated: it holds %d entries but its checkpoint of size %d commits to more; it does not extend its last checkpoint", n, c.Size)
	}
	if open {
		if int64(n)*8 < indexSize {
			return st, fmt.Errorf("evidence index: longer (%d entries) than data (%d entries): data truncated or index edited", indexSize/8, n)
		}
		if hpos < hashSize {
			return st, fmt.Errorf("evidence hashes: longer (%d) than data needs (%d): data truncated or hashes edited", hashSize/tlog.HashSize, hpos/tlog.HashSize)
		}
		for _, w := range []*bufio.Writer{iw, hw} {
			if w != nil {
				if err := w.Flush(); err != nil {
					return st, fmt.Errorf("evidence repair: %w", err)
				}
			}
		}
		if iw != nil || hw != nil {
			l.log.Warn("evidence log: rebuilt index and hashes after a crash", "entries", n)
			if err := l.index.Sync(); err != nil {
				return st, err
			}
			if err := l.hashes.Sync(); err != nil {
				return st, err
			}
		}
	}
	st.n, st.dataEnd, st.frontier = n, er.off, frontier
	st.result.Leaves = n
	st.result.Latest = st.last.Size
	return st, nil
}

func fileSize(f *os.File) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("evidence: %w", err)
	}
	return fi.Size(), nil
}

func b64(h tlog.Hash) string { return base64.StdEncoding.EncodeToString(h[:]) }

// zeroTail reports whether f holds only zero bytes from off to size.
func zeroTail(f *os.File, off, size int64) bool {
	r := bufio.NewReader(io.NewSectionReader(f, off, size-off))
	for {
		b, err := r.ReadByte()
		if err == io.EOF {
			return true
		}
		if err != nil || b != 0 {
			return false
		}
	}
}
