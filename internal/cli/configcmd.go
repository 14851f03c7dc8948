package cli

import (
	"fmt"

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
	}, &cobra.Command{
		Use:   "check [FILE]",
		Short: "Validate a configuration file (default: --config); every problem as file:line, exit 2",
		Long: `check reads FILE (or the --config file) as serve would and reports every
problem at once, one a line as file:line: key: what is wrong, and exits 2;
a valid file prints one "ok" line and exits 0.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := g.configPath
			if len(args) == 1 {
				path = args[0]
			}
			if path == "" {
				return usagef("config check: name a FILE or give --config")
			}
			return checkConfig(g, path)
		},
	})
	return cmd
}

// checkConfig loads the file at path as serve would and prints one ok line;
// problems come back as a usage error (exit 2), one file:line a line.
func checkConfig(g *globals, path string) error {
	if _, err := config.Load(path); err != nil {
		return &UsageError{err}
	}
	fmt.Fprintf(g.stdout, "%s: ok\n", path)
	return nil
}
