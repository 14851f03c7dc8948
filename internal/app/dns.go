package app

import "github.com/takedown/takedown/internal/config"

// newDNS builds the DNS sinkhole role from the configuration, or nil when
// no DNS address is configured.
func newDNS(a *App, c *config.Config) (dnsRole, error) {
	return nil, nil
}
