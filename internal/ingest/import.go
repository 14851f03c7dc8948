package ingest

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/progress"
	"github.com/takedown/takedown/internal/store"
)

// How Import works. One goroutine reads the files in order (CSV or line
// splitting, SHA-256 of the bytes) and cuts the rows into chunks of
// chunkRows; Workers goroutines decode each chunk (fields, timestamps,
// addresses, IDs), prepare its events (enrichment, case) and encode
// their records; the caller's goroutine takes the chunks back in file
// order and writes them, in batches of writeRows, in the store's import
// transaction. At most workers + 2 chunks are in flight, so memory is
// bounded by that many chunks of rows, whatever the input's size. Rows keep
// their order end to end: an aggregate's attributes are those of its
// first stored event, so the same files give the same figures however
// the work was split.
//
// All or nothing: the transaction commits only after the last row of the
// last file was read and every row was good. From the first bad row on,
// nothing more is written (the reading goes on, to report every problem)
// and the transaction is rolled back at the end. A killed process leaves
// an uncommitted transaction, which the store discards.

const (
	chunkRows = 4096
	writeRows = 4 * chunkRows
)

// Options configures Import.
type Options struct {
	// Format is FormatShadowserver or FormatJSONL.
	Format string
	// Prepare enriches and classifies each event before it is stored
	// (pipeline.Pipeline.Prepare); false drops the event. It is called on
	// several goroutines at once. Nil skips it.
	Prepare func(*event.Event) bool
	// Workers decode rows in parallel (default GOMAXPROCS).
	Workers int
	// Progress counts rows (as they are stored) and bytes (as they are
	// read); nil is quiet.
	Progress *progress.Meter
	// Stdin is read for the file "-" (default os.Stdin).
	Stdin io.Reader
	// SpoolDir, when set, keeps the records of the newly stored events in
	// a temporary file there, for Result.EachFresh after the commit (the
	// evidence log appends them). Empty keeps nothing.
	SpoolDir string
}

// FileStat is what an import read of one file: the custody figures the
// evidence log records.
type FileStat struct {
	Name   string `json:"name"`   // as given; "-" is standard input
	SHA256 string `json:"sha256"` // of every byte read, hex
	Bytes  int64  `json:"bytes"`
	Rows   int    `json:"rows"` // events read (good rows)
}

// Result is what a committed import did.
type Result struct {
	Files      []FileStat
	Read       int // events read in all files
	Inserted   int // newly stored
	Duplicates int // already stored (or repeated in the input)
	spool      *os.File
}

// EachFresh calls fn with the records of the newly stored events, in
// input order, in slices of at most chunkRows, reading them back from the
// spool (Options.SpoolDir); it calls fn never without one. fn must not
// keep the slice.
func (r *Result) EachFresh(fn func(records [][]byte) error) error {
	if r.spool == nil {
		return nil
	}
	if _, err := r.spool.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("read import spool: %w", err)
	}
	br := bufio.NewReaderSize(r.spool, 256<<10)
	var recs [][]byte
	var n [4]byte
	for {
		if _, err := io.ReadFull(br, n[:]); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("read import spool: %w", err)
		}
		rec := make([]byte, binary.BigEndian.Uint32(n[:]))
		if _, err := io.ReadFull(br, rec); err != nil {
			return fmt.Errorf("read import spool: %w", err)
		}
		recs = append(recs, rec)
		if len(recs) == chunkRows {
			if err := fn(recs); err != nil {
				return err
			}
			recs = recs[:0]
		}
	}
	if len(recs) > 0 {
		return fn(recs)
	}
	return nil
}

// Close removes the spool.
func (r *Result) Close() error {
	if r == nil || r.spool == nil {
		return nil
	}
	err := r.spool.Close()
	r.spool = nil
	return err
}

// TotalSize is the sum of the sizes of the named files, or 0 when one is
// standard input or cannot be read (the progress then shows no share).
func TotalSize(names []string) int64 {
	var total int64
	for _, n := range names {
		fi, err := os.Stat(n)
		if n == "-" || err != nil || !fi.Mode().IsRegular() {
			return 0
		}
		total += fi.Size()
	}
	return total
}

// chunk is up to chunkRows rows of one file on their way through Import.
type chunk struct {
	file     int
	name     string
	rows     []rawRow
	dec      decoder
	problems []Problem // of the reading and of the decoding
	batch    *store.Batch
	read     int // events decoded (good rows)
	err      error
	done     chan struct{} // closed when decoded
	// end, on the last chunk of a file, is its figures.
	end *FileStat
}

// Import reads every file ("-" is standard input) in opts.Format and
// stores their events through one import transaction of st: all or
// nothing. It returns an *Error listing every bad row (at most 1000, with
// the number of others) and then nothing is stored.
func Import(ctx context.Context, st store.Importer, names []string, opts Options) (*Result, error) {
	switch opts.Format {
	case FormatShadowserver, FormatJSONL:
	default:
		return nil, fmt.Errorf("unknown import format %q (want %s or %s)", opts.Format, FormatShadowserver, FormatJSONL)
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	queue := workers + 2 // enough to keep every worker and the writer busy
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	ordered := make(chan *chunk, queue)
	work := make(chan *chunk, queue)
	go readFiles(ctx, names, opts, ordered, work)
	for range workers {
		go decodeChunks(work, opts.Prepare, opts.SpoolDir != "")
	}

	res := &Result{Files: make([]FileStat, len(names))}
	fail := func(err error) (*Result, error) {
		cancel()
		drain(ordered)
		res.Close()
		return nil, err
	}
	var spool *bufio.Writer
	if opts.SpoolDir != "" {
		f, err := os.CreateTemp(opts.SpoolDir, "import-spool-*")
		if err != nil {
			return fail(fmt.Errorf("import spool: %w", err))
		}
		os.Remove(f.Name()) // gone when closed, whatever happens
		res.spool = f
		spool = bufio.NewWriterSize(f, 256<<10)
	}
	im, err := st.BeginImport(ctx)
	if err != nil {
		return fail(fmt.Errorf("import: %w", err))
	}
	defer im.Rollback() //nolint:errcheck // after Commit it does nothing; otherwise the error that ended the import matters
	// Chunks are written in batches of writeRows or more: a store batch
	// has a fixed cost (statements, counters), paid less often.
	var pending store.Batch
	write := func() error {
		if len(pending.Events) == 0 {
			return nil
		}
		r, err := im.Write(ctx, &pending)
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		res.Inserted += r.Inserted
		res.Duplicates += r.Duplicates
		opts.Progress.Add(int64(len(pending.Events)), 0)
		if spool != nil && r.Inserted > 0 {
			if err := writeSpool(spool, pending.Records, r.Fresh); err != nil {
				return err
			}
		}
		pending = store.Batch{Events: pending.Events[:0], Records: pending.Records[:0], Listeners: pending.Listeners[:0]}
		return nil
	}
	var ps problems
	for c := range ordered {
		<-c.done
		if c.err != nil {
			return fail(c.err)
		}
		for _, p := range c.problems {
			ps.addProblem(p)
		}
		res.Files[c.file].Rows += c.read
		res.Read += c.read
		if c.end != nil {
			end := *c.end
			end.Rows = res.Files[c.file].Rows
			res.Files[c.file] = end
		}
		if ps.any() || c.batch == nil || len(c.batch.Events) == 0 {
			continue // nothing more is written once a row was bad
		}
		addBatch(&pending, c.batch)
		if len(pending.Events) >= writeRows {
			if err := write(); err != nil {
				return fail(err)
			}
		}
	}
	if !ps.any() {
		if err := write(); err != nil {
			return fail(err)
		}
	}
	if err := ps.err(); err != nil {
		if rerr := im.Rollback(); rerr != nil {
			return fail(errors.Join(err, rerr))
		}
		return fail(err)
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	if spool != nil {
		if err := spool.Flush(); err != nil {
			return fail(fmt.Errorf("import spool: %w", err))
		}
	}
	if err := im.Commit(ctx); err != nil {
		return fail(fmt.Errorf("import: %w", err))
	}
	return res, nil
}

// writeSpool appends the records fresh marks, each as a 4-byte length and
// its bytes.
func writeSpool(w *bufio.Writer, records [][]byte, fresh []bool) error {
	var n [4]byte
	for i, rec := range records {
		if !fresh[i] {
			continue
		}
		binary.BigEndian.PutUint32(n[:], uint32(len(rec)))
		w.Write(n[:])
		if _, err := w.Write(rec); err != nil {
			return fmt.Errorf("import spool: %w", err)
		}
	}
	return nil
}

// drain waits for the chunks in flight after a cancel, so that no
// goroutine of the import outlives it.
func drain(ordered <-chan *chunk) {
	for c := range ordered {
		<-c.done
	}
}

// hashCounter is the bytes of a file as read: their SHA-256 and number,
// counted into the progress meter as well.
type hashCounter struct {
	r io.Reader
	h hash.Hash
	n int64
	m *progress.Meter
}

func (h *hashCounter) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	h.m.Add(0, int64(n))
	return n, err
}

// readFiles reads the files in order and sends their chunks to both
// ordered (in order, for the writer) and work (for the decoders); it
// closes both at the end or when ctx is done.
func readFiles(ctx context.Context, names []string, opts Options, ordered, work chan<- *chunk) {
	defer close(ordered)
	defer close(work)
	send := func(c *chunk) bool {
		// ordered first: its capacity is what bounds the chunks in flight.
		select {
		case ordered <- c:
		case <-ctx.Done():
			return false
		}
		work <- c // never blocks longer than a decoder takes: work is as large as ordered
		return true
	}
	for i, name := range names {
		stdin := opts.Stdin
		if stdin == nil {
			stdin = os.Stdin
		}
		r, closeFn, err := open(name, stdin)
		if err != nil {
			c := &chunk{file: i, name: name, problems: []Problem{{File: name, Msg: err.Error()}}, end: &FileStat{Name: name}, done: make(chan struct{})}
			if !send(c) {
				return
			}
			continue
		}
		hc := &hashCounter{r: r, h: sha256.New(), m: opts.Progress}
		src, dec, ps, _ := newSource(hc, name, opts.Format)
		c := &chunk{file: i, name: name, dec: dec, problems: ps.e.Problems, done: make(chan struct{})}
		for {
			row, p, more := src.next()
			if p != nil {
				c.problems = append(c.problems, *p)
			} else if more {
				c.rows = append(c.rows, row)
			}
			if !more {
				break
			}
			if len(c.rows) == chunkRows {
				if !send(c) {
					closeFn()
					return
				}
				c = &chunk{file: i, name: name, dec: dec, done: make(chan struct{})}
			}
		}
		// The rest of the file (after a last row without a newline, say)
		// is read too: the hash covers the whole file.
		io.Copy(io.Discard, hc) //nolint:errcheck // a read error was already reported by the source
		closeFn()
		c.end = &FileStat{Name: name, SHA256: hex.EncodeToString(hc.h.Sum(nil)), Bytes: hc.n}
		if !send(c) {
			return
		}
	}
}

// decodeChunks decodes chunks until work is closed; records makes it
// encode the events' JSON-lines records too (for the spool).
func decodeChunks(work <-chan *chunk, prepare func(*event.Event) bool, records bool) {
	x := newIDHash()
	in := make(interner)
	for c := range work {
		decodeChunk(c, prepare, x, in, records)
		close(c.done)
	}
}

// interner shares the copies of the few values a column repeats (family,
// country): the aggregates an import holds keep these strings, and a
// string cut from a CSV row would keep the whole row alive with it.
type interner map[string]string

func (in interner) of(s string) string {
	if v, ok := in[s]; ok || s == "" {
		return v
	}
	s = strings.Clone(s)
	if len(in) < 4096 {
		in[s] = s
	}
	return s
}

func decodeChunk(c *chunk, prepare func(*event.Event) bool, x *idHash, in interner, records bool) {
	if len(c.rows) == 0 {
		return
	}
	events := make([]event.Event, 0, len(c.rows))
	for i := range c.rows {
		row := &c.rows[i]
		var e event.Event
		var msg string
		if d, ok := c.dec.(*shadowserverDecoder); ok {
			e, msg = d.decodeID(row, x)
		} else {
			e, msg = c.dec.decode(row)
		}
		if msg != "" {
			c.problems = append(c.problems, Problem{c.name, row.line, msg})
			continue
		}
		e.Family, e.SrcGeo = in.of(e.Family), in.of(e.SrcGeo)
		e.BotID = strings.Clone(e.BotID)
		events = append(events, e)
	}
	c.read = len(events)
	c.rows = nil
	// Problems of reading and of decoding, in line order.
	slices.SortStableFunc(c.problems, func(a, b Problem) int { return a.Line - b.Line })
	if len(c.problems) > 0 {
		return // the import will not be committed: no need to prepare
	}
	c.batch = batchOf(events, prepare)
	if !records {
		return
	}
	recs, err := c.batch.EncodeRecords()
	if err != nil {
		c.err = fmt.Errorf("import: %w", err)
		return
	}
	c.batch.Records = recs
}

// addBatch appends the events, records and counts of src to dst.
func addBatch(dst, src *store.Batch) {
	dst.Events = append(dst.Events, src.Events...)
	dst.Records = append(dst.Records, src.Records...)
	dst.Received += src.Received
	dst.Dropped += src.Dropped
next:
	for _, d := range src.Listeners {
		for i := range dst.Listeners {
			if dst.Listeners[i].Name == d.Name {
				dst.Listeners[i].Received += d.Received
				dst.Listeners[i].Dropped += d.Dropped
				continue next
			}
		}
		dst.Listeners = append(dst.Listeners, d)
	}
}
