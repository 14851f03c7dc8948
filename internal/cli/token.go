package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/takedown/takedown/internal/api/token"
	"github.com/takedown/takedown/internal/netscope"
)

// newTokenCmd is `takedown token create|list|revoke`: API tokens, stored
// hashed in the store.
func newTokenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke API tokens",
		Long: `API tokens authenticate programs to the REST API (Authorization: Bearer …).
Roles: admin (everything, manages tokens), analyst (reads everything),
network (IP-level data only inside --networks: ASNs, CIDRs, country codes).
The secret is printed once; the store keeps only its SHA-256.`,
	}
	cmd.AddCommand(newTokenCreateCmd(g), newTokenListCmd(g), newTokenRevokeCmd(g))
	return cmd
}

func newTokenCreateCmd(g *globals) *cobra.Command {
	var role, networks, note, expires string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "create --role admin|analyst|network [--networks LIST] [--expires TIME]",
		Short: "Create an API token and print its secret once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var errs []error
			r, err := netscope.ParseRole(role)
			if err != nil {
				errs = append(errs, fmt.Errorf("--role: %w", err))
			}
			nets, err := netscope.ParseNetworks(networks)
			if err != nil {
				errs = append(errs, fmt.Errorf("--networks: %w", err))
			}
			spec := token.Spec{Role: r, Networks: nets, Note: note}
			if expires != "" {
				if spec.Expires, err = ParseTime(expires); err != nil {
					errs = append(errs, fmt.Errorf("--expires: %w", err))
				}
			}
			if len(errs) == 0 {
				if err := spec.Validate(); err != nil {
					errs = append(errs, err)
				}
			}
			if err := errors.Join(errs...); err != nil {
				return &UsageError{err}
			}
			_, st, err := g.configuredStore(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			t, secret, err := token.Issue(cmd.Context(), st.tokens, spec, g.now())
			if err != nil {
				return &UsageError{err}
			}
			if asJSON {
				return json.NewEncoder(g.stdout).Encode(map[string]any{"token": t, "secret": secret})
			}
			fmt.Fprintf(g.stdout, "token %s (%s) created; its secret, shown only now:\n%s\n", t.ID, t.Role, secret)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&role, "role", "", "admin, analyst or network")
	fl.StringVar(&networks, "networks", "", "network tokens: comma-separated ASNs (AS64500), CIDRs and country codes")
	fl.StringVar(&note, "note", "", "who the token is for")
	fl.StringVar(&expires, "expires", "", "expiry (RFC 3339 or YYYY-MM-DD); default never")
	fl.BoolVar(&asJSON, "json", false, "print the result as JSON")
	_ = cmd.MarkFlagRequired("role")
	return cmd
}

func newTokenListCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List API tokens (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, st, err := g.configuredStore(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			ts, err := st.tokens.Tokens(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				if ts == nil {
					ts = []token.Token{}
				}
				return json.NewEncoder(g.stdout).Encode(ts)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tROLE\tNETWORKS\tCREATED\tEXPIRES\tSTATE\tNOTE")
			now := g.now()
			for _, t := range ts {
				state := "valid"
				switch {
				case !t.Revoked.IsZero():
					state = "revoked"
				case !t.ValidAt(now):
					state = "expired"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Role, t.Networks, t.Created.Format(time.RFC3339), timeOrNever(t.Expires), state, t.Note)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the tokens as JSON")
	return cmd
}

func timeOrNever(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Format(time.RFC3339)
}

func newTokenRevokeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an API token",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, st, err := g.configuredStore(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			if err := st.tokens.RevokeToken(cmd.Context(), args[0], g.now()); err != nil {
				if errors.Is(err, token.ErrNotFound) {
					return &UsageError{err}
				}
				return err
			}
			fmt.Fprintf(g.stdout, "token %s revoked\n", args[0])
			return nil
		},
	}
}
