#!/usr/bin/env bash
# Install the Debian server packages the tests and benchmarks start (as root),
# or say which are missing and what to run. Tests start each server themselves,
# on loopback or a Unix socket; nothing here runs one.
set -u
need=()
for pair in redis-server:redis-server nats-server:nats-server serf:serf dnsmasq:dnsmasq curl:curl; do
  bin=${pair%%:*}; pkg=${pair##*:}
  command -v "$bin" >/dev/null 2>&1 || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing ${need[*]} from Debian's packages"
  # dnsmasq's package would start a system resolver on port 53; the tests run their own.
  (DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null 2>&1 || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null; }) \
    || echo "could not install ${need[*]}" >&2
  command -v systemctl >/dev/null && systemctl disable --now dnsmasq >/dev/null 2>&1
else
  echo "missing ${need[*]}: run 'apt-get install ${need[*]}' as root" >&2
fi
exit 0
