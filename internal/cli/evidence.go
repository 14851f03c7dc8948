package cli

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/takedown/takedown/internal/app"
	"github.com/takedown/takedown/internal/config"
	"github.com/takedown/takedown/internal/evidence/bundle"
	"github.com/takedown/takedown/internal/store/postgres"
)

// evidenceDir is the evidence log's folder in the data dir.
func evidenceDir(c *config.Config) string { return filepath.Join(c.Data, "evidence") }

// errVerifyFailed is returned when a package fails a check: the report has
// already named every failing check.
var errVerifyFailed = errors.New("evidence verify: the package failed one or more checks")

func newEvidenceCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "evidence",
		Short: "The tamper-evident evidence log: key, checkpoints, audit, export and offline verification",
		Long: `The evidence log is an append-only Merkle log (RFC 6962) of every stored
event and custody action, with signed checkpoints, stored as C2SP tlog-tiles.
key, checkpoint, audit and export open the log in the data dir and work while
the server runs (each write holds the log's writer lock only while it runs).
rotate-key needs the server stopped. verify works offline on an exported
package.`,
	}
	simple := func(use, short string, f func(*cobra.Command, *config.Config) error) *cobra.Command {
		return &cobra.Command{Use: use, Short: short, Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.config(cmd)
			if err != nil {
				return err
			}
			return f(cmd, c)
		}}
	}
	var keyOut string
	keyCmd := simple("key", "Print the log's public key and its fingerprint; -o FILE writes the key file that verify --key reads", func(cmd *cobra.Command, c *config.Config) error {
		if keyOut != "" {
			return writeEvidenceKey(cmd.Context(), g.stdout, evidenceDir(c), keyOut)
		}
		return printEvidenceKey(cmd.Context(), g.stdout, evidenceDir(c))
	})
	keyCmd.Flags().StringVarP(&keyOut, "output", "o", "", "write the public key (one OpenSSH line) to this file")
	cmd.AddCommand(keyCmd)
	cmd.AddCommand(simple("checkpoint", "Write a signed checkpoint of the log now", func(cmd *cobra.Command, c *config.Config) error {
		g.noteEvidenceWriter(cmd.Context(), c)
		return evidenceCheckpoint(cmd.Context(), g.stdout, evidenceDir(c))
	}))
	cmd.AddCommand(simple("audit", "Re-hash every stored entry against every checkpoint", func(cmd *cobra.Command, c *config.Config) error {
		g.noteEvidenceWriter(cmd.Context(), c)
		return evidenceAudit(cmd.Context(), g.stdout, evidenceDir(c))
	}))

	var rotWho string
	rotate := simple("rotate-key", "Replace the signing key; the old key signs a custody record naming the new one", func(cmd *cobra.Command, c *config.Config) error {
		if rotWho == "" {
			rotWho = actor()
		}
		return evidenceRotateKey(cmd.Context(), g.stdout, evidenceDir(c), rotWho)
	})
	rotate.Long = `rotate-key makes a new signing key for the evidence log. A custody record
naming the old and the new key is appended to the log, covered by a last
checkpoint signed by the old key, and signed by the old key; the new key signs
everything after it. The old private key is removed from the data dir.
Packages carry the signed rotation records, so a recipient holding the first
key still verifies packages made after the rotation. Needs the server stopped.`
	rotate.Flags().StringVar(&rotWho, "who", "", "who rotates the key, recorded in the custody record (default: $TAKEDOWN_ACTOR or $USER)")
	cmd.AddCommand(rotate)

	var a exportArgs
	var from, to string
	export := &cobra.Command{
		Use:   "export --case ID --from TIME --to TIME -o DIR",
		Short: "Write an evidence package that verifies offline",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.config(cmd)
			if err != nil {
				return err
			}
			if a.Out == "" {
				return usagef("-o DIR is required")
			}
			if from != "" {
				if a.From, err = ParseTime(from); err != nil {
					return usagef("--from: %v", err)
				}
			}
			if to != "" {
				if a.To, err = ParseTime(to); err != nil {
					return usagef("--to: %v", err)
				}
			}
			if a.Who == "" {
				a.Who = actor()
			}
			g.noteEvidenceWriter(cmd.Context(), c)
			return evidenceExport(cmd.Context(), g.stdout, evidenceDir(c), a)
		},
	}
	export.Flags().StringVar(&a.Case, "case", "", "only this case's events")
	export.Flags().StringVar(&from, "from", "", "window start, RFC 3339 or date")
	export.Flags().StringVar(&to, "to", "", "window end (exclusive)")
	export.Flags().StringVarP(&a.Out, "output", "o", "", "the package folder to write")
	export.Flags().StringVar(&a.ForWhom, "for", "", "the recipient, recorded in the custody record")
	cmd.AddCommand(export)

	var key string
	var asJSON bool
	verify := &cobra.Command{
		Use:   "verify DIR --key PUBKEY",
		Short: "Verify an evidence package offline against a trusted public key; exit 0 only when every check passes",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if key == "" {
				return usagef("--key is required: the key shipped inside a package is not trusted")
			}
			rep, err := bundle.Verify(args[0], verifyKey(key))
			switch {
			case err != nil && asJSON:
				return &UsageError{err}
			case err != nil:
				return &UsageError{fmt.Errorf("evidence verify: %w", err)}
			case asJSON:
				if err := writeJSON(g.stdout, rep); err != nil {
					return err
				}
			default:
				printVerifyReport(g.stdout, rep)
			}
			if !rep.OK() {
				return errVerifyFailed
			}
			return nil
		},
	}
	verify.Flags().StringVar(&key, "key", "", "the trusted public key: a file or the key itself (OpenSSH or note format)")
	verify.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.AddCommand(verify)
	return cmd
}

// noteEvidenceWriter says, on a shared PostgreSQL store, which serve node
// writes the deployment's evidence log (the holder of the lease
// "evidence", docs/operations.md): the evidence commands read the log of
// the data dir they are given, which is the deployment's only on that
// node.
func (g *globals) noteEvidenceWriter(ctx context.Context, c *config.Config) {
	if !isPostgres(c.DB) {
		return
	}
	// Only a read: no migration, as openStore would run.
	pg, err := postgres.Connect(c.DB)
	if err != nil {
		fmt.Fprintf(g.stderr, "evidence: cannot read the store to name the evidence writer: %v\n", err)
		return
	}
	defer pg.Close()
	holder, until, ok, err := pg.LeaseHolder(ctx, app.EvidenceLeaseName)
	switch {
	case err != nil:
		fmt.Fprintf(g.stderr, "evidence: cannot name the evidence writer: %v\n", err)
	case !ok || until.Before(g.now()):
		fmt.Fprintf(g.stderr, "evidence: no serve node writes the evidence log of this shared store now; this command reads %s\n", evidenceDir(c))
	default:
		fmt.Fprintf(g.stderr, "evidence: the evidence log of this shared store is written by %s (lease until %s); this command reads %s, complete only on that node\n",
			holder, until.Format(time.RFC3339), evidenceDir(c))
	}
}
