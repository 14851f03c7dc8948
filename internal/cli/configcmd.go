package cli

import (
	"github.com/spf13/cobra"

	"github.com/takedown/takedown/internal/config"
)

func newConfigCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "The configuration file"}
	cmd.AddCommand(&cobra.Command{
		Use:   "example",
		Short: "Print a commented example configuration (every default spelled out)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := g.stdout.Write(config.Example())
			return err
		},
	})
	return cmd
}
