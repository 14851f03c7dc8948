package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/takedown/takedown/internal/backup"
)

// newBackupCmd is `takedown backup -o FILE`.
func newBackupCmd(g *globals) *cobra.Command {
	var out string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "backup -o FILE",
		Short: "Copy the data dir (store and evidence log) into one file, consistently, while serve runs",
		Long: `backup writes one tar file (mode 0600) holding a consistent copy of the data
dir: the evidence log, then the SQLite store as of one instant (VACUUM INTO),
then every other file, with SHA256SUMS and MANIFEST.json. It runs beside a
running server. With a PostgreSQL store (--db postgres://…) it copies the
data dir's files only: run pg_dump right after (docs/deploy.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usagef("backup: -o FILE is required")
			}
			c, err := g.config(cmd)
			if err != nil {
				return err
			}
			opts := backup.Options{Logger: g.logger(c)}
			if c.DB == "" || strings.HasPrefix(c.DB, "sqlite:") {
				st, err := g.openStore(cmd.Context(), c)
				if err != nil {
					return err
				}
				defer st.Close()
				opts.Store = st.sq
			}
			m, err := backup.Create(cmd.Context(), c.Data, out, opts)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(g.stdout, m)
			}
			fmt.Fprintf(g.stdout, "backup written to %s: %d files, store %s", out, len(m.Files), m.Store)
			if m.Evidence != nil {
				fmt.Fprintf(g.stdout, ", evidence log %d entries (checkpoint %d)", m.Evidence.Entries, m.Evidence.Checkpoint)
			}
			fmt.Fprintln(g.stdout)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "the backup file to write (must not exist)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the manifest as JSON")
	return cmd
}

// newRestoreCmd is `takedown restore FILE`.
func newRestoreCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Restore a backup into an empty data dir, checking its manifest",
		Long: `restore unpacks a file written by takedown backup into the data dir, which
must be empty or absent (exit 2 otherwise), checks every member against the
manifest, opens the store (bringing its schema up to this build's) and the
evidence log (re-hashed against every checkpoint), and appends to the log the
events stored while the backup was taken.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.config(cmd)
			if err != nil {
				return err
			}
			if c.DB != "" && !strings.HasPrefix(c.DB, "sqlite:") {
				return usagef("restore: --db %s: restore brings back the embedded SQLite store; restore PostgreSQL with pg_restore (docs/deploy.md) and this file with --db unset", redactDSN(c.DB))
			}
			res, err := backup.Restore(cmd.Context(), args[0], c.Data, g.logger(c))
			if errors.Is(err, backup.ErrNotEmpty) || errors.Is(err, backup.ErrCorrupt) {
				return &UsageError{fmt.Errorf("restore %s: %w", args[0], err)}
			}
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(g.stdout, res)
			}
			fmt.Fprintf(g.stdout, "restored %s into %s: %d files as of %s", args[0], c.Data, len(res.Manifest.Files), res.Manifest.Created.Format("2006-01-02T15:04:05Z"))
			if res.Manifest.Store == "sqlite" {
				fmt.Fprintf(g.stdout, "; store: %d events stored, %d received, %d dropped", res.Health.Stored, res.Health.Received, res.Health.Dropped)
			}
			if res.Entries > 0 {
				fmt.Fprintf(g.stdout, "; evidence log: %d entries (%d stored events appended)", res.Entries, res.Appended)
			}
			fmt.Fprintln(g.stdout)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}
