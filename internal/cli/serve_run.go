package cli

import (
	"github.com/spf13/cobra"

	"github.com/takedown/takedown/internal/config"
)

func runServe(cmd *cobra.Command, g *globals, c *config.Config) error {
	return usagef("serve: the sinkhole roles are not wired into this build yet; use --check-config")
}
