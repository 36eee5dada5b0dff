#!/usr/bin/env bash
# fast_count benchmark: builds tables of 1M and 5M rows in a throwaway
# PostgreSQL 15 server and prints exact count(*), fast_count and the
# EXPLAIN-based estimate side by side, then 100 seeded runs per filter.
# Usage: bench/fast_count/run.sh [OUTPUT]    (default: bench/fast_count/results.txt)
# Needs n1detect installed (tools/build); works as root (the server runs as
# postgres) or as a normal user.  About 5-10 minutes on 2 cores, ~4 GB of disk.
# n1detect is preloaded with its detector off (n1detect.track = none): the
# counts do not need preloading, but this keeps the server identical to a
# production one.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:-$here/results.txt}"
bindir="$(/usr/lib/postgresql/15/bin/pg_config --bindir)"
sharedir="$("$bindir/pg_config" --sharedir)"
port="${FC_BENCH_PORT:-54329}"

if [ ! -f "$sharedir/extension/n1detect.control" ]; then
  echo "n1detect is not installed: run tools/build first" >&2
  exit 1
fi

work="$(mktemp -d /tmp/fc-bench.XXXXXX)"
chmod 755 "$work"
cp "$here/setup.sql" "$here/bench.sql" "$work/"
run=()
if [ "$(id -u)" -eq 0 ]; then
  chown -R postgres: "$work"
  run=(runuser -u postgres --)
fi
stop() {
  "${run[@]}" "$bindir/pg_ctl" -D "$work/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap stop EXIT

"${run[@]}" "$bindir/initdb" -D "$work/data" -A trust >/dev/null
"${run[@]}" "$bindir/pg_ctl" -D "$work/data" -l "$work/log" -w -o \
  "-p $port -k $work -c shared_buffers=4GB -c autovacuum=off -c max_wal_size=8GB -c checkpoint_timeout=30min -c fsync=off -c full_page_writes=off -c shared_preload_libraries=n1detect -c n1detect.track=none" \
  start >/dev/null
psql=("${run[@]}" "$bindir/psql" -X -q -h "$work" -p "$port" -d postgres -v ON_ERROR_STOP=1)

"${psql[@]}" -c 'CREATE EXTENSION n1detect'
start=$(date +%s)
"${psql[@]}" -f "$work/setup.sql" >/dev/null
setup_s=$(( $(date +%s) - start ))
{
  echo "fast_count benchmark: bench/fast_count/run.sh, $(date -u +%Y-%m-%d)"
  echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); autovacuum off; tables in shared_buffers"
  echo "commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown); setup took ${setup_s}s"
  echo
  "${psql[@]}" -P pager=off -f "$work/bench.sql"
} 2>&1 | tee "$out"
