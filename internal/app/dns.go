package app

import (
	"fmt"
	"net/netip"

	"github.com/takedown/takedown/internal/config"
	"github.com/takedown/takedown/internal/dnssink"
	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/netprefix"
)

// newDNS builds the DNS sinkhole role from the configuration, or nil when
// no DNS address is configured.
func newDNS(a *App, c *config.Config) (dnsRole, error) {
	if len(c.DNS.Listen) == 0 {
		return nil, nil
	}
	st, err := dnsSettings(a, c)
	if err != nil {
		return nil, err
	}
	srv, err := dnssink.New(a.ctx, dnssink.Options{
		Listen: c.DNS.Listen, Registry: a.reg, Sensor: a.opts.Sensor,
		Events:   event.NewProducer(a.queue, "dns"),
		Sinkhole: st.Sinkhole, PerCase: st.PerCase, TTL: st.TTL, NS: st.NS, SOAContact: st.SOAContact,
		UDPSize: c.DNS.UDPSize, TrustedProxies: st.TrustedProxies, PollInterval: st.PollInterval, RRL: st.RRL,
		TCPPerSource: st.TCPPerSource, Logger: a.log.With("role", "dns"), Registerer: a.opts.Registerer,
	})
	if err != nil {
		return nil, fmt.Errorf("dns: %w", err)
	}
	return srv, nil
}

// dnsSettings are the DNS sinkhole's settings that a reload may change.
func dnsSettings(a *App, c *config.Config) (dnssink.Settings, error) {
	sink, err := sinkAddrs(c.Sinkhole.A, c.Sinkhole.AAAA)
	if err != nil {
		return dnssink.Settings{}, fmt.Errorf("sinkhole: %w", err)
	}
	perCase := map[string]dnssink.Addrs{}
	for k, v := range c.Sinkhole.PerCase {
		if perCase[k], err = sinkAddrs(v.A, v.AAAA); err != nil {
			return dnssink.Settings{}, fmt.Errorf("sinkhole.per_case.%s: %w", k, err)
		}
	}
	var exempt []netip.Prefix
	for _, s := range c.DNS.RRL.Exempt {
		p, err := parsePrefix(s)
		if err != nil {
			return dnssink.Settings{}, fmt.Errorf("dns.rrl.exempt: %w", err)
		}
		exempt = append(exempt, p)
	}
	trust, err := a.trust(c.DNS.TrustedProxy)
	if err != nil {
		return dnssink.Settings{}, fmt.Errorf("dns.trusted_proxy: %w", err)
	}
	// dns.rrl.slip 0 means never slip (BIND's meaning); dnssink.RRL keeps
	// 0 for its default and says never with a negative value.
	slip := c.DNS.RRL.Slip
	if slip == 0 {
		slip = -1
	}
	return dnssink.Settings{
		Sinkhole: sink, PerCase: perCase, TTL: c.DNS.TTL, NS: c.DNS.NS, SOAContact: c.DNS.SOAContact,
		TrustedProxies: trust, PollInterval: c.Registry.Poll.D(),
		RRL: dnssink.RRL{
			Disabled: !c.DNS.RRL.Enabled, ResponsesPerSecond: c.DNS.RRL.ResponsesPerSec, Window: c.DNS.RRL.Window.D(),
			Slip: slip, IPv4Prefix: c.DNS.RRL.IPv4Prefix, IPv6Prefix: c.DNS.RRL.IPv6Prefix, TableSize: c.DNS.RRL.TableSize, Exempt: exempt,
		},
		TCPPerSource: c.DNS.TCPPerSource,
	}, nil
}

func sinkAddrs(a4, a6 []string) (dnssink.Addrs, error) {
	var out dnssink.Addrs
	for _, s := range a4 {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return out, err
		}
		out.A = append(out.A, a)
	}
	for _, s := range a6 {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return out, err
		}
		out.AAAA = append(out.AAAA, a)
	}
	return out, nil
}

// parsePrefix accepts a CIDR or a bare address.
func parsePrefix(s string) (netip.Prefix, error) {
	p, err := netprefix.Parse(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR", s)
	}
	return p, nil
}
