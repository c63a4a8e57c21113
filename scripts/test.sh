#!/usr/bin/env bash
# The one test command: the whole suite on SQLite, then again on a throwaway PostgreSQL cluster
# when the server binaries are installed.
set -euo pipefail
cd "$(dirname "$0")/.."

# The warning tests validate CAP output with xmllint against the official CAP 1.2 schema.
if ! command -v xmllint >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get install -y -q libxml2-utils >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q libxml2-utils >/dev/null 2>&1; }) || true
fi
command -v xmllint >/dev/null 2>&1 || echo "!!! xmllint (libxml2-utils) missing: CAP schema validation in the warning tests is SKIPPED"
# The console's browser tests need Chromium; find or install it (says loudly when it cannot).
scripts/browser.sh
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  export YINGJI_BROWSER_TESTS=required
fi

echo "=== yingji tests on SQLite"
YINGJI_TEST_DATABASE_URL= cargo test "$@"

PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
if [ ! -x "$PG_BIN/initdb" ]; then
  echo "!!! ================================================================="
  echo "!!! PostgreSQL server binaries not found in $PG_BIN:"
  echo "!!! ran the suite on SQLite ONLY. Install postgresql-15 to test both."
  echo "!!! ================================================================="
  exit 0
fi

pgdir=$(mktemp -d /tmp/yingji-pg.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
# The server refuses to run as root: run it as the unprivileged `postgres` user when we are root.
if [ "$(id -u)" = 0 ]; then
  chown postgres: "$pgdir"
  as_pg() { runuser -u postgres -- "$@"; }
else
  as_pg() { "$@"; }
fi
stop_pg() {
  as_pg "$PG_BIN/pg_ctl" -D "$pgdir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$pgdir"
}
trap stop_pg EXIT

as_pg "$PG_BIN/initdb" -D "$pgdir/data" -U postgres -A trust -E UTF8 --no-locale >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$pgdir/data" -l "$pgdir/server.log" -w \
  -o "-p $port -k $pgdir -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
  start >/dev/null

echo "=== yingji tests on PostgreSQL (port $port)"
[ "${YINGJI_BROWSER_TESTS:-}" = required ] || echo "!!! chromium / chromedriver NOT FOUND: the browser tests are SKIPPED on PostgreSQL too"
YINGJI_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres" cargo test "$@"
