// Package cli is takedown's command line: the command tree, its flags and
// the printing of results. It is not the wiring of the long-running roles
// (that is package app) nor any of the domain logic.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/takedown/takedown/internal/config"
	"github.com/takedown/takedown/internal/registry"
)

// Exit statuses.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// UsageError is bad input or usage: exit status 2, nothing changed.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

func usagef(format string, a ...any) error { return &UsageError{fmt.Errorf(format, a...)} }

// globals are the flags every command takes.
type globals struct {
	data       string
	db         string
	configPath string
	stdout     io.Writer
	stderr     io.Writer
	stdin      io.Reader
	now        func() time.Time
}

// Run runs the command line args (without the program name) and returns the
// exit status.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := &globals{stdout: stdout, stderr: stderr, stdin: stdin, now: time.Now}
	root := newRoot(g)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := unknownSubcommand(root, args)
	if err == nil {
		err = root.ExecuteContext(ctx)
	}
	if err == nil {
		return ExitOK
	}
	fmt.Fprintln(stderr, errorText(err))
	var ue *UsageError
	var ps registry.Problems
	var cps config.Problems
	if errors.As(err, &ue) || errors.As(err, &ps) || errors.As(err, &cps) || isFlagError(err) {
		return ExitUsage
	}
	return ExitFailure
}

func errorText(err error) string {
	var ps registry.Problems
	if errors.As(err, &ps) {
		return ps.Error() + fmt.Sprintf("\n%d problem(s); nothing was changed", len(ps))
	}
	// Configuration problems are file:line: lines, as editors and CI read them.
	var cps config.Problems
	if errors.As(err, &cps) {
		return cps.Error() + fmt.Sprintf("\n%d problem(s) in the configuration", len(cps))
	}
	return "takedown: " + err.Error()
}

func isFlagError(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown flag", "unknown shorthand flag", "flag needs an argument", "invalid argument", "unknown command", "accepts ", "requires at least", "required flag"} {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "takedown",
		Short: "Run a court-ordered botnet takedown: registry, exports, sinkhole, counts, reports, evidence",
		Long: `takedown runs a court-ordered botnet takedown end to end: the registry of
seized names and addresses, enforcement exports for resolvers and firewalls,
the sinkhole that infected machines still call, and the counts and reports
that get them cleaned.

Start with:  takedown demo`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	def := os.Getenv("TAKEDOWN_DATA")
	if def == "" {
		def = "./takedown-data"
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.data, "data", def, "data dir (default ./takedown-data, or $TAKEDOWN_DATA)")
	pf.StringVar(&g.db, "db", "", "store DSN (default: SQLite in the data dir)")
	pf.StringVar(&g.configPath, "config", "", "YAML configuration file")
	root.AddCommand(newDemoCmd(g), newServeCmd(g), newSensorCmd(g), newCollectorCmd(g), newOrderCmd(g), newExportCmd(g), newEventsCmd(g), newStatsCmd(g), reportCmd(g),
		newSubscriberCmd(g), newNotifyCmd(g), newTokenCmd(g), newEvidenceCmd(g), newSimulateCmd(g), newConfigCmd(g),
		newBackupCmd(g), newRestoreCmd(g))
	return root
}

// reportCmd is `takedown report` with its status (court) and network
// (Shadowserver CSV for one network) reports.
func reportCmd(g *globals) *cobra.Command {
	cmd := newReportCmd(g)
	cmd.Short = "Write reports: the court status report, a network's infected addresses"
	cmd.AddCommand(newReportNetworkCmd(g))
	return cmd
}

// config loads the configuration and applies the global flags over it.
func (g *globals) config(cmd *cobra.Command) (*config.Config, error) {
	c, err := config.Load(g.configPath)
	if err != nil {
		return nil, &UsageError{err}
	}
	if cmd.Flags().Changed("data") || g.configPath == "" || os.Getenv("TAKEDOWN_DATA") != "" {
		c.Data = g.data
	}
	if g.db != "" {
		c.DB = g.db
	}
	return c, nil
}

// configuredStore loads the configuration and opens its store: the
// preamble of every command that reads or changes the registry. The caller
// closes the store.
func (g *globals) configuredStore(cmd *cobra.Command) (*config.Config, *stores, error) {
	c, err := g.config(cmd)
	if err != nil {
		return nil, nil, err
	}
	st, err := g.openStore(cmd.Context(), c)
	if err != nil {
		return nil, nil, err
	}
	return c, st, nil
}

func redactDSN(dsn string) string {
	if i := strings.Index(dsn, "@"); i > 0 {
		if j := strings.Index(dsn, "://"); j > 0 && j < i {
			return dsn[:j+3] + "…" + dsn[i:]
		}
	}
	return dsn
}

func (g *globals) logger(c *config.Config) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Log.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(g.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(g.stderr, opts))
}

// ParseTime parses RFC 3339 or a bare date (UTC midnight).
func ParseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time or a date (2011-09-13)", s)
}
