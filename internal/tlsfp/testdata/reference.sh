#!/usr/bin/env bash
# Computes the expected JA3 and JA4 of every *.bin ClientHello capture here
# without the Go code under test: Wireshark's tshark dissects the hello
# (text2pcap wraps the bytes in a TCP packet to port 443), tshark's own
# tls.handshake.ja3/ja3_full fields give JA3, and the JA4 string is put
# together below from tshark's fields by the FoxIO spec, hashed with
# sha256sum. Output: one line per capture, as in expected.tsv.
# Needs: tshark (Debian package tshark, 4.0 has no JA4 field of its own).
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
is_grease() { local v=$((16#${1#0x})); (( (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff) )); }
h12() { if [ -z "$1" ]; then echo 000000000000; else printf '%s' "$1" | sha256sum | cut -c1-12; fi; }
printf 'file\tja3\tja3_md5\tja4\tja4_r\n'
for f in *.bin; do
  od -Ax -tx1 -v "$f" > "$tmp/hex"
  text2pcap -q -T 50000,443 "$tmp/hex" "$tmp/p.pcap" 2>/dev/null
  IFS=$'\t' read -r ver ciphers exts sni alpn svers ja3full ja3 < <(tshark -r "$tmp/p.pcap" -Y 'tls.handshake.type==1' -T fields -E separator=/t -E aggregator=, \
    -e tls.handshake.version -e tls.handshake.ciphersuite -e tls.handshake.extension.type \
    -e tls.handshake.extensions_server_name -e tls.handshake.extensions_alpn_str \
    -e tls.handshake.extensions.supported_version -e tls.handshake.ja3_full -e tls.handshake.ja3 | sed 's/\t\t/\t-\t/g; s/\t\t/\t-\t/g')
  # signature_algorithms: the sig_hash_alg values of extension 13 only, from the verbose dissection
  sigs=$(tshark -r "$tmp/p.pcap" -Y 'tls.handshake.type==1' -V 2>/dev/null | awk '/Extension: signature_algorithms \(len/{on=1;next} on && /Extension: /{on=0} on && /Signature Algorithm: .*\(0x/{match($0,/\(0x[0-9a-f]+\)/); print substr($0,RSTART+3,4)}' | paste -sd, -)
  # version: highest non-GREASE supported_version, else the hello's version
  v=$ver
  if [ "$svers" != "-" ] && [ -n "$svers" ]; then
    v=$(tr , '\n' <<<"$svers" | while read -r x; do is_grease "$x" || echo "$x"; done | sort | tail -1)
  fi
  case $v in 0x0304) vc=13;; 0x0303) vc=12;; 0x0302) vc=11;; 0x0301) vc=10;; 0x0300) vc=s3;; *) vc=00;; esac
  c=$(tr , '\n' <<<"$ciphers" | while read -r x; do is_grease "$x" || echo "${x#0x}"; done)
  e=$(tr , '\n' <<<"$exts" | while read -r x; do is_grease "$(printf '0x%04x' "$x")" || printf '%04x\n' "$x"; done)
  nc=$(grep -c . <<<"$c" || true); ne=$(grep -c . <<<"$e" || true)
  d=i; grep -qx 0000 <<<"$e" && d=d
  a=00; if [ "$alpn" != "-" ] && [ -n "$alpn" ]; then first=${alpn%%,*}; a="${first:0:1}${first: -1}"; fi
  cs=$(sort <<<"$c" | paste -sd, -)
  es=$(grep -vx -e 0000 -e 0010 <<<"$e" | sort | paste -sd, -)
  sg=$(tr , '\n' <<<"$sigs" | while read -r x; do [ -n "$x" ] && { is_grease "0x$x" || echo "$x"; }; done | paste -sd, -)
  [ -n "$sg" ] && es="${es}_${sg}"
  pre=$(printf 't%s%s%02d%02d%s' "$vc" "$d" "$nc" "$ne" "$a")
  printf '%s\t%s\t%s\t%s\t%s\n' "$f" "$ja3full" "$ja3" "${pre}_$(h12 "$cs")_$(h12 "$es")" "${pre}_${cs}_${es}"
done
