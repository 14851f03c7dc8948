package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/takedown/takedown/internal/app"
	"github.com/takedown/takedown/internal/config"
	"github.com/takedown/takedown/internal/evidence"
	"github.com/takedown/takedown/internal/evidence/bundle"
	"github.com/takedown/takedown/internal/store"
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
	simple := func(use, short string, f func(*cobra.Command, logAt) error) *cobra.Command {
		return &cobra.Command{Use: use, Short: short, Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.config(cmd)
			if err != nil {
				return err
			}
			at, release, err := g.evidenceLog(cmd.Context(), c, g.stderr)
			if err != nil {
				return err
			}
			defer release()
			return f(cmd, at)
		}}
	}
	var keyOut string
	keyCmd := simple("key", "Print the log's public key and its fingerprint; -o FILE writes the key file that verify --key reads", func(cmd *cobra.Command, at logAt) error {
		if keyOut != "" {
			return writeEvidenceKey(cmd.Context(), g.stdout, at, keyOut)
		}
		return printEvidenceKey(cmd.Context(), g.stdout, at)
	})
	keyCmd.Flags().StringVarP(&keyOut, "output", "o", "", "write the public key (one OpenSSH line) to this file")
	cmd.AddCommand(keyCmd)
	cmd.AddCommand(simple("checkpoint", "Write a signed checkpoint of the log now", func(cmd *cobra.Command, at logAt) error {
		return evidenceCheckpoint(cmd.Context(), g.stdout, at)
	}))
	cmd.AddCommand(simple("audit", "Re-hash every stored entry against every checkpoint", func(cmd *cobra.Command, at logAt) error {
		return evidenceAudit(cmd.Context(), g.stdout, at)
	}))

	var rotWho string
	rotate := simple("rotate-key", "Replace the signing key; the old key signs a custody record naming the new one", func(cmd *cobra.Command, at logAt) error {
		if rotWho == "" {
			rotWho = actor()
		}
		return evidenceRotateKey(cmd.Context(), g.stdout, at, rotWho)
	})
	rotate.Long = `rotate-key makes a new signing key for the evidence log. A custody record
naming the old and the new key is appended to the log, covered by a last
checkpoint signed by the old key, and signed by the old key; the new key signs
everything after it. The old private key is removed from the data dir.
Packages carry the signed rotation records, so a recipient holding the first
key still verifies packages made after the rotation. Needs the server stopped.
On a shared PostgreSQL store it needs only this node's server stopped (or run
it on a node without one): the record, its signature and the new key enter the
store in one transaction, and every other node takes them from there.`
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
			at, release, err := g.evidenceLog(cmd.Context(), c, g.stderr)
			if err != nil {
				return err
			}
			defer release()
			return evidenceExport(cmd.Context(), g.stdout, at, a)
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

// logAt is where an evidence command finds the log: the data dir's
// evidence folder, which on a shared PostgreSQL store is this node's
// replica of the deployment's one log (opts.Shared), brought up to date
// from the store when the command opens it.
type logAt struct {
	dir  string
	opts evidence.Options
}

// sharedEvidence is a store that holds a deployment's shared evidence log
// and the lease of the node that appends the stored events to it: the
// PostgreSQL event store.
type sharedEvidence interface {
	evidence.SharedStore
	store.Leaser
}

// evidenceLog returns the log of config c and its release: on a shared
// PostgreSQL store, sharedLog's.
func (g *globals) evidenceLog(ctx context.Context, c *config.Config, stderr io.Writer) (logAt, func(), error) {
	if !isPostgres(c.DB) {
		return logAt{dir: evidenceDir(c)}, func() {}, nil
	}
	pg, err := postgres.Open(ctx, c.DB)
	if err != nil {
		return logAt{}, nil, err
	}
	return g.sharedLog(ctx, c, pg.Events(), stderr), func() { pg.Close() }, nil
}

// sharedLog is the log of config c whose entries the shared store s holds
// (this node's replica in the data dir). It says on stderr which serve
// node appends the stored events (the holder of the lease "evidence",
// docs/operations.md).
func (g *globals) sharedLog(ctx context.Context, c *config.Config, s sharedEvidence, stderr io.Writer) logAt {
	at := logAt{dir: evidenceDir(c), opts: evidence.Options{Shared: s}}
	holder, until, ok, err := s.LeaseHolder(ctx, app.EvidenceLeaseName)
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "evidence: cannot name the evidence writer: %v\n", err)
	case !ok || until.Before(g.now()):
		fmt.Fprintf(stderr, "evidence: the log is the shared store's; no serve node appends stored events to it now; this node's replica is %s\n", at.dir)
	default:
		fmt.Fprintf(stderr, "evidence: the log is the shared store's; %s appends stored events to it (lease until %s); this node's replica is %s\n",
			holder, until.Format(time.RFC3339), at.dir)
	}
	return at
}
