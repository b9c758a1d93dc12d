#!/usr/bin/env bash
# Schema-driven fuzzing of the HTTP API (docs/protocol.md, "OpenAPI"):
# schemathesis reads GET /v1/openapi.json of a live `parley serve` and sends
# generated requests to every operation, checking that none answers 5xx and
# that every response matches the document.
#
# schemathesis lives in a venv outside the checkout,
# ~/.cache/parley-schemathesis (made once; delete it to upgrade). The server
# is the debug build (or PARLEY_BIN) on a free port of 127.0.0.1 with a temp
# data dir, stopped by PID. PARLEY_OPENAPI_EXAMPLES bounds the examples per
# operation (default 100: about a minute and a half on two idle cores; five
# minutes with other builds running).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${HOME}/.cache/parley-schemathesis"

if [ ! -x "$venv/bin/schemathesis" ]; then
  if ! command -v python3 >/dev/null; then
    echo "run.sh: python3 is missing" >&2
    exit 2
  fi
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q schemathesis
fi

bin="${PARLEY_BIN:-}"
if [ -z "$bin" ]; then
  (cd "$root" && cargo build -q -p parley --bin parley)
  bin="${CARGO_TARGET_DIR:-$root/target}/debug/parley"
fi

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
data="$(mktemp -d)"
base="http://127.0.0.1:$port"
# The fuzzing user is a server administrator (made on the host, as `parley
# admin create-user` does), so the admin API (§14) is fuzzed past its 403.
PARLEY_PASSWORD=fuzzer-password "$bin" admin create-user --admin --data-dir "$data" fuzzer \
  >/dev/null
PARLEY_LOG="${PARLEY_LOG:-warn}" "$bin" serve --listen "127.0.0.1:$port" --data-dir "$data" \
  >"$data/server.log" 2>&1 &
server=$!
cleanup() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -rf "$data"
}
trap cleanup EXIT

for _ in $(seq 1 100); do
  curl -fsS "$base/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

# Log in for a bearer token.
token="$(curl -fsS -X POST "$base/v1/sessions" -H 'content-type: application/json' \
  -d '{"username":"fuzzer","password":"fuzzer-password"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"

# Something to list: a second user, a direct conversation with a message
# (a reply) and a group, so responses carry conversations and messages.
post() {
  curl -fsS -X POST "$base$1" -H 'content-type: application/json' \
    -H "Authorization: Bearer $token" -d "$2"
}
other="$(curl -fsS -X POST "$base/v1/users" -H 'content-type: application/json' \
  -d '{"username":"other","password":"other-password"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["user_id"])')"
direct="$(post /v1/conversations/direct "{\"user_id\":\"$other\"}" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["conversation_id"])')"
post "/v1/conversations/$direct/messages" '{"client_msg_id":"a","kind":"text","text":"hello"}' >/dev/null
post "/v1/conversations/$direct/messages" \
  '{"client_msg_id":"b","kind":"text","text":"again","reply_to_seq":1}' >/dev/null
post /v1/groups "{\"name\":\"fuzzers\",\"member_ids\":[\"$other\"]}" >/dev/null

# The media endpoints are fuzzed like the rest. The two whose URL is the
# credential (`PUT /v1/media/{id}/blob`, `GET /v1/media/{id}/content`) can
# only be refused, since no generated request carries a valid signature;
# they stay in to show arbitrary bytes and queries get a 4xx, never a 5xx.
#
# Logging out (the current device, or it by id) and resetting the fuzzing
# administrator's own password would end the token for every later
# request, so those three operations are left out.
status=0
"$venv/bin/schemathesis" run "$base/v1/openapi.json" \
  --exclude-path /v1/sessions/current \
  --exclude-path '/v1/me/devices/{device_id}' \
  --exclude-path '/v1/admin/users/{user_id}/password' \
  --checks not_a_server_error,response_schema_conformance \
  --max-examples "${PARLEY_OPENAPI_EXAMPLES:-100}" \
  --header "Authorization: Bearer $token" || status=$?
if grep -q "panicked" "$data/server.log"; then
  echo "run.sh: the server panicked:" >&2
  grep -A5 "panicked" "$data/server.log" >&2
  status=1
fi
exit "$status"
