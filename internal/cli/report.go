package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/takedown/takedown/internal/evidence"

	"github.com/spf13/cobra"

	"github.com/takedown/takedown/internal/stats"
)

type reportStatusFlags struct {
	caseID, at, baseFrom, baseTo, out, pdf string
	days                                   int
}

func newReportCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Write reports: the court status report",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newReportStatusCmd(g))
	return cmd
}

func newReportStatusCmd(g *globals) *cobra.Command {
	var f reportStatusFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Write a self-contained HTML status report of a case for the court",
		Long: `Write a self-contained HTML status report of case --case as of report day
--at: the order (indicators by kind, effective and expiry dates, days left),
the headline figures of the seven days ending with the report day (distinct
infected addresses, estimated machines, resolvers excluded, the reduction
since the baseline), a per-country table (top 20 and the rest) and the
daily trend. The baseline defaults to the first seven days of the order.
With --pdf, headless Chromium also prints it to PDF.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.caseID == "" {
				return usagef("--case is required")
			}
			at := g.now().UTC().Truncate(24 * time.Hour)
			var err error
			if f.at != "" {
				if at, err = ParseTime(f.at); err != nil {
					return usagef("--at: %v", err)
				}
				at = at.Truncate(24 * time.Hour)
			}
			if f.out == "" {
				return usagef("-o FILE is required")
			}
			c, eng, db, err := g.statsEngine(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			o, _, _, err := db.Order(cmd.Context(), f.caseID)
			if err != nil {
				return err
			}
			end := at.Add(24 * time.Hour)
			q := stats.Query{From: end.AddDate(0, 0, -7), To: end, By: stats.ByCountry, Top: 20, Case: o.Case}
			if f.baseFrom != "" || f.baseTo != "" {
				if q.BaselineFrom, err = ParseTime(f.baseFrom); err != nil {
					return usagef("--baseline-from: %v", err)
				}
				if q.BaselineTo, err = ParseTime(f.baseTo); err != nil {
					return usagef("--baseline-to: %v", err)
				}
			} else if eff := o.Effective.UTC().Truncate(24 * time.Hour); eff.AddDate(0, 0, 7).Before(q.From) || eff.AddDate(0, 0, 7).Equal(q.From) {
				q.BaselineFrom, q.BaselineTo = eff, eff.AddDate(0, 0, 7)
			}
			if err := q.Validate(); err != nil {
				return &UsageError{err}
			}
			res, err := eng.Stats(cmd.Context(), q)
			if err != nil {
				return err
			}
			trendFrom := end.AddDate(0, 0, -f.days)
			if eff := o.Effective.UTC().Truncate(24 * time.Hour); eff.After(trendFrom) {
				trendFrom = eff
			}
			if !trendFrom.Before(end) {
				trendFrom = end.AddDate(0, 0, -1)
			}
			trend, err := eng.Series(cmd.Context(), stats.Query{From: trendFrom, To: end, Case: o.Case}, stats.Daily)
			if err != nil {
				return err
			}
			rep := &stats.StatusReport{Order: *o, At: at, Generated: g.now().UTC(), Stats: res, Trend: trend}
			rep.Checkpoint = latestCheckpoint(evidenceDir(c))
			if rep.Registries, err = registryRows(cmd.Context(), db, &o.Order, c.DNS.NS); err != nil {
				return err
			}
			var buf bytes.Buffer
			if err := stats.WriteStatusHTML(&buf, rep); err != nil {
				return fmt.Errorf("render status report: %w", err)
			}
			if err := writeFileAtomic(f.out, func(w io.Writer) error { _, err := w.Write(buf.Bytes()); return err }); err != nil {
				return fmt.Errorf("write %s: %w", f.out, err)
			}
			if f.pdf != "" {
				return printPDF(cmd.Context(), f.out, f.pdf)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.caseID, "case", "", "the case (required)")
	fl.StringVar(&f.at, "at", "", "the report day (default today, UTC)")
	fl.StringVar(&f.baseFrom, "baseline-from", "", "baseline window start (default: the order's effective day)")
	fl.StringVar(&f.baseTo, "baseline-to", "", "baseline window end, exclusive (default: seven days later)")
	fl.StringVarP(&f.out, "output", "o", "", "the HTML file to write (required)")
	fl.StringVar(&f.pdf, "pdf", "", "also print the report to this PDF file with headless Chromium")
	fl.IntVar(&f.days, "trend-days", 90, "days of trend before the report day (not before the order)")
	return cmd
}

// printPDF prints the HTML file html to pdf with headless Chromium, which
// loads nothing but that local file (the report has no external
// resources).
func printPDF(ctx context.Context, html, pdf string) error {
	bin := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		return fmt.Errorf("--pdf: no chromium found on PATH (Debian package chromium)")
	}
	abs, err := filepath.Abs(html)
	if err != nil {
		return err
	}
	out, err := filepath.Abs(pdf)
	if err != nil {
		return err
	}
	profile, err := os.MkdirTemp("", "takedown-chromium-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(profile)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
		"--user-data-dir="+profile, "--print-to-pdf="+out, "file://"+abs)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	if err := c.Run(); err != nil {
		return fmt.Errorf("chromium --print-to-pdf: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	if st, err := os.Stat(out); err != nil || st.Size() == 0 {
		return fmt.Errorf("chromium wrote no PDF to %s", out)
	}
	return nil
}

// latestCheckpoint returns the evidence log's latest signed checkpoint,
// verbatim, or "" when there is none. It reads the file the log wrote (the
// log itself may be open in a running server) and only if its signature
// verifies with the log's own key.
func latestCheckpoint(dir string) string {
	ents, err := os.ReadDir(filepath.Join(dir, "checkpoints"))
	if err != nil || len(ents) == 0 {
		return ""
	}
	name := ents[len(ents)-1].Name() // named by tree size, zero-padded: sorted
	b, err := os.ReadFile(filepath.Join(dir, "checkpoints", name))
	if err != nil {
		return ""
	}
	k, err := evidence.LoadKey(dir)
	if err != nil {
		return ""
	}
	if _, err := evidence.OpenCheckpoint(b, k.Public()); err != nil {
		return ""
	}
	return string(b)
}
