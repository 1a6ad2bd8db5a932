#!/usr/bin/env bash
# Install the Debian server packages the benchmarks start (as root),
# or say which are missing.
set -u
need=()
for pair in redis-server:redis-server nats-server:nats-server; do
  bin=${pair%%:*}; pkg=${pair##*:}
  command -v "$bin" >/dev/null 2>&1 || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing ${need[*]} from Debian's packages"
  (apt-get install -y -q "${need[@]}" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "${need[@]}" >/dev/null; }) \
    || echo "could not install ${need[*]}" >&2
else
  echo "missing ${need[*]}: run 'apt-get install ${need[*]}' as root" >&2
fi
exit 0
