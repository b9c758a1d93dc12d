#!/usr/bin/env bash
# Browser tests for the Parley web client.
#
# Installs Debian's Chromium if missing, installs playwright-core (npm ci),
# builds the server (unless PARLEY_BIN points at one), then runs every
# tests/web/*.test.mjs with node's built-in test runner. Each test file starts
# its own `parley serve` on port 0 with a fresh data dir and stops it by PID.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

if [ ! -x /usr/bin/chromium ]; then
  echo "run.sh: installing Debian's chromium" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi

cd "$here"
npm ci --no-audit --no-fund --loglevel=error

if [ -z "${PARLEY_BIN:-}" ]; then
  (cd "$root" && cargo build -p parley)
fi

mkdir -p "$here/artifacts"
# One file at a time: two cores, and each file runs its own server and browser.
exec node --test --test-concurrency=1 --test-timeout=300000 "$here"/*.test.mjs
