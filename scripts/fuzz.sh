#!/usr/bin/env bash
# OpenAPI-driven fuzz run (schemathesis: `pip install schemathesis`) against a fresh service.
#   scripts/fuzz.sh                 # SQLite in a temporary directory
#   DATABASE_URL=postgres://… YINGJI_PII_KEY=… scripts/fuzz.sh   # PostgreSQL (an empty database)
# Extra arguments go to `schemathesis run` (default: -n 15 --checks all). Exit status: schemathesis'.
# scripts/fuzz.toml lists the few operations whose rules JSON Schema cannot state (and why).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet
bin="$PWD/target/debug/yingji"
work="$(mktemp -d)"
port="${FUZZ_PORT:-18093}"
export DATABASE_URL="${DATABASE_URL:-sqlite://$work/fuzz.db}"
export YINGJI_PII_KEY="${YINGJI_PII_KEY:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
"$bin" migrate >/dev/null
token="$("$bin" token create --name "fuzz-$$" --role admin --region 152523000000 | tail -1)"
"$bin" serve --listen "127.0.0.1:$port" --scheduler off >"$work/serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
args=("$@")
[ ${#args[@]} -eq 0 ] && args=(-n 15 --checks all)
schemathesis --config-file scripts/fuzz.toml run "http://127.0.0.1:$port/api/v1/openapi.json" -H "Authorization: Bearer $token" \
  --request-timeout 20 "${args[@]}"
