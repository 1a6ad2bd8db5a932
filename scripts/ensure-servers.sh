#!/usr/bin/env bash
# Install the Debian server packages the tests and benchmarks start (as root),
# or say which are missing and what to run. Tests start each server themselves,
# on loopback or a Unix socket; nothing here runs one.
#
# Then the command-line tools that come as npm packages (buf: `buf curl` against
# live servers, `buf breaking`) into the project's git-ignored .tools/ (tests
# look in .tools/node_modules/.bin after PATH).
set -u
cd "$(dirname "$0")/.."

need=()
for pair in redis-server:redis-server nats-server:nats-server serf:serf dnsmasq:dnsmasq curl:curl go:golang-go; do
  bin=${pair%%:*}; pkg=${pair##*:}
  command -v "$bin" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -eq 0 ]; then
  :
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing ${need[*]} from Debian's packages"
  # dnsmasq's package would start a system resolver on port 53; the tests run their own.
  (DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null 2>&1 || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null; }) \
    || echo "could not install ${need[*]}" >&2
  command -v systemctl >/dev/null && systemctl disable --now dnsmasq >/dev/null 2>&1
else
  echo "missing ${need[*]}: run 'apt-get install ${need[*]}' as root" >&2
fi

# npm tools: binary:package@version, or a bare package@version for a library with no
# binary (checked by its directory in .tools/node_modules/). Pinned; one npm install for
# all that are missing. The Node client test (tests/polyglot) generates code with
# protoc-gen-es and runs it against @bufbuild/protobuf and @connectrpc/connect-node;
# these are the newest releases that still run on Node 20 (later ones want Node 22).
TOOLS=.tools
npm_need=()
for pair in buf:@bufbuild/buf@1.75.0 protoc-gen-es:@bufbuild/protoc-gen-es@2.13.0 \
    @bufbuild/protobuf@2.13.0 @connectrpc/connect@2.1.2 @connectrpc/connect-node@2.1.2; do
  case $pair in
    *:*) bin=${pair%%:*}; pkg=${pair#*:}
      [ -x "$TOOLS/node_modules/.bin/$bin" ] || command -v "$bin" >/dev/null 2>&1 || npm_need+=("$pkg") ;;
    *) pkg=$pair
      [ -d "$TOOLS/node_modules/${pkg%@*}" ] || npm_need+=("$pkg") ;;
  esac
done
if [ ${#npm_need[@]} -eq 0 ]; then
  :
elif command -v npm >/dev/null; then
  echo "installing ${npm_need[*]} into $TOOLS/ with npm"
  npm install --prefix "$TOOLS" --save-exact --no-audit --no-fund --silent "${npm_need[@]}" >/dev/null \
    || echo "could not install ${npm_need[*]}" >&2
else
  echo "missing ${npm_need[*]}: install Node.js and npm, then run 'npm install --prefix $TOOLS ${npm_need[*]}'" >&2
fi
exit 0
