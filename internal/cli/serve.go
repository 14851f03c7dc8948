package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newServeCmd(g *globals) *cobra.Command {
	var check bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the long-running server with the roles the config enables",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if check && g.configPath != "" {
				return checkConfig(g, g.configPath)
			}
			c, err := g.config(cmd)
			if err != nil {
				return err
			}
			if check {
				fmt.Fprintln(g.stdout, "the built-in defaults: ok")
				return nil
			}
			return runServe(cmd, g, c)
		},
	}
	cmd.Flags().BoolVar(&check, "check-config", false, "validate the configuration and exit")
	return cmd
}
