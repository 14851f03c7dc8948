package cli

import (
	"strings"

	"github.com/spf13/cobra"
)

// unknownSubcommand reports an unknown subcommand of a command group
// (`takedown config chekc`, `takedown evidence nope --help`) as a usage
// error naming it. Cobra itself does so only below the root: for a group
// it prints the group's help and succeeds, which a script would take for
// success.
func unknownSubcommand(root *cobra.Command, args []string) error {
	c, rest, err := root.Find(args)
	if err != nil || c == root || !c.HasSubCommands() || c.Runnable() {
		return nil
	}
	// Parse the flags to tell their values from the arguments; the
	// execution that follows parses them again.
	c.InitDefaultHelpFlag()
	c.Flags().AddFlagSet(c.InheritedFlags())
	if err := c.ParseFlags(rest); err != nil {
		return nil // cobra reports a bad flag itself
	}
	if a := c.Flags().Args(); len(a) > 0 {
		var names []string
		for _, s := range c.Commands() {
			if s.IsAvailableCommand() {
				names = append(names, s.Name())
			}
		}
		return usagef("unknown command %q for %q (its commands: %s)", a[0], c.CommandPath(), strings.Join(names, ", "))
	}
	return nil
}
