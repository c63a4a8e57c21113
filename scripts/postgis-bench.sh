#!/usr/bin/env bash
# Nearest supplies and nearest teams, side by side: yingji on SQLite, yingji on PostgreSQL and
# hand-written PostGIS KNN SQL on the same rows, with the answers checked against each other.
#
#   scripts/postgis-bench.sh              # the province: 20,000 depots, 1,000,000 batches,
#                                         # 50,000 teams, 500,000 members; 1,000 questions each
#   scripts/postgis-bench.sh --scale 0.1 --questions 200    # quicker
#
# Installs Debian's postgresql-15-postgis-3 with apt-get when it is missing (as root), starts a
# throwaway PostgreSQL 15 server as the postgres user in a temporary directory, runs
# `cargo bench --bench nearest` against it and removes it afterwards.
set -euo pipefail

scale=1.0
questions=1000
while [ $# -gt 0 ]; do
    case "$1" in
        --scale) scale="$2"; shift 2 ;;
        --questions) questions="$2"; shift 2 ;;
        *) echo "usage: $0 [--scale S] [--questions N]" >&2; exit 2 ;;
    esac
done

cd "$(dirname "$0")/.."
bin=/usr/lib/postgresql/15/bin
postgis=yes
if [ ! -f /usr/share/postgresql/15/extension/postgis.control ]; then
    echo "postgis is not installed: installing postgresql-15-postgis-3 with apt-get" >&2
    if ! { [ "$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15-postgis-3 >&2; }; then
        echo "" >&2
        echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
        echo "!!! COULD NOT INSTALL postgresql-15-postgis-3: the raw PostGIS column will be MISSING  !!!" >&2
        echo "!!! (run as root with network access, or: apt-get install postgresql-15-postgis-3)     !!!" >&2
        echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
        postgis=no
    fi
fi
if [ ! -x "$bin/pg_ctl" ]; then
    echo "PostgreSQL 15 binaries not found under $bin (apt-get install postgresql-15)" >&2
    exit 1
fi

dir=$(mktemp -d /tmp/yingji-postgis-bench.XXXXXX)
chown postgres "$dir"
port=$((56000 + RANDOM % 1000))
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
    as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT
as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --no-sync >/dev/null
as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c shared_buffers=1GB -c max_connections=200" start >/dev/null
as_pg "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -q -c "CREATE DATABASE yingji_bench" postgres

export YINGJI_BENCH_SCALE="$scale" YINGJI_BENCH_QUESTIONS="$questions"
export YINGJI_BENCH_DATABASE_URL="postgres://postgres@127.0.0.1:$port/yingji_bench"
[ "$postgis" = yes ] && export YINGJI_BENCH_POSTGIS=1
echo "load before: $(uptime)"
cargo bench --bench nearest
echo "load after: $(uptime)"
