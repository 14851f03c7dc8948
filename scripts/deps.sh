#!/usr/bin/env bash
# Installs the Debian packages that the integration tests and benchmarks run
# against. As root it installs them (without starting their system services:
# the tests start their own instances on loopback ports); otherwise it prints
# the apt-get line to run.
set -euo pipefail

PKGS=(
  bind9-utils bind9-dnsutils knot-dnsutils   # named-checkzone, dig, kdig
  unbound nsd dnsperf dnsmasq-base nftables  # resolvers, anchor servers, consumers of exports
  nginx-light wrk curl openssl hyperfine     # HTTP anchor and clients
  sqlite3 bc                                 # storage anchor of the import benchmark
  postgresql                                 # shared store
  chromium openssh-client                    # dashboard browser tests; ssh-keygen -Y verify for evidence
  opensmtpd python3-aiosmtpd                 # real SMTP servers for the notification tests
  systemd                                    # systemd-analyze verify of deploy/systemd (no service is started)
  libxml2-utils                              # xmllint: the registry export's EPP against the RFC 5730/5731 schemas
  fstrm-bin time                             # fstrm_capture: NSD's dnstap log (bench/dns_serve); /usr/bin/time -v (bench/scale)
  ca-certificates
)

# nats-server (the many-sensor transport) is built from its Go module at a
# pinned version, not taken from Debian: bookworm's 2.9.10 (January 2023)
# predates years of JetStream cluster fixes, among them a consumer that
# stopped redelivering after its leader changed (nats-server #6387), which
# the whole-system test, killing the stream's leader, can meet.
NATS_VERSION=v2.15.3
NATS_BIN=/usr/local/bin/nats-server

install_nats() {
  if [ -x "$NATS_BIN" ] && "$NATS_BIN" --version 2>/dev/null | grep -qx "nats-server: $NATS_VERSION"; then
    echo "deps: nats-server $NATS_VERSION present"
    return
  fi
  echo "deps: building nats-server $NATS_VERSION from the Go module proxy"
  tmp=$(mktemp -d)
  GOBIN="$tmp" GOFLAGS=-mod=mod go install "github.com/nats-io/nats-server/v2@$NATS_VERSION"
  install -m 0755 "$tmp/nats-server" "$NATS_BIN"
  rm -rf "$tmp"
}

if [ "$(id -u)" -ne 0 ]; then
  echo "not root: install the test dependencies with:"
  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${PKGS[*]}"
  echo "  GOBIN=/usr/local/bin go install github.com/nats-io/nats-server/v2@$NATS_VERSION"
  exit 0
fi
install_nats

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all packages present"
  exit 0
fi

# Keep the packages' own services from starting (and binding port 53 or 80):
# every test starts the server it needs on a loopback port of its own.
created_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  created_policy=1
fi
trap '[ $created_policy -eq 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT

export DEBIAN_FRONTEND=noninteractive
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
  apt-get update -q
fi
apt-get install -y -q --no-install-recommends "${missing[@]}"
