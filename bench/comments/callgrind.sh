#!/bin/bash
# Instructions per statement of n1detect with and without a query comment
# (issue 10): callgrind on a single-user backend (postgres --single,
# compute_query_id=on, as bench/overhead's callgrind phase) fed 3,000
# single-row SELECTs by primary key, plain, with a 170-byte sqlcommenter
# comment (traceparent) and with a 110-byte marginalia one, and none.
#   extra/stmt = ((n1_N - n1_0) - (none_N - none_0)) / N  per file
# Run as the postgres user (or any non-root user), in an empty directory DIR:
#   B=<bindir of a server with n1detect installed> bench/comments/callgrind.sh DIR
# LIBS="n1" / FILES="empty plain" restrict the runs.  Prints "lib file Ir".
set -e
cd "${1:?usage: callgrind.sh DIR}"
B="${B:-/usr/lib/postgresql/15/bin}"
N=3000
if [ ! -d data ]; then
$B/initdb -D data -A trust >/dev/null
# a running server, so that the table's OID is a user one (>= 16384)
$B/pg_ctl -D data -o "-k $PWD -c listen_addresses= -p 56999" -l server.log -w start >/dev/null
$B/psql -h $PWD -p 56999 -X -q -d postgres -c "CREATE TABLE accounts (aid int PRIMARY KEY, abalance int);
INSERT INTO accounts SELECT g, 0 FROM generate_series(1, 100000) g;
CREATE EXTENSION n1detect;" -c "VACUUM ANALYZE accounts" -c CHECKPOINT
$B/pg_ctl -D data -w stop >/dev/null
fi
python3 - <<PY
import random
r = random.Random(42)
ids = [r.randint(1, 100000) for _ in range($N)]
open('plain.sql', 'w').write(''.join('SELECT abalance FROM accounts WHERE aid = %d;\n' % i for i in ids))
c = " /*controller='accounts',framework='django%3A4.2',route='%5Eapi/accounts/',traceparent='00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'*/"
open('commented.sql', 'w').write(''.join('SELECT abalance FROM accounts WHERE aid = %d%s;\n' % (i, c) for i in ids))
m = " /*application:Shop,controller:accounts,action:show,line:/app/controllers/accounts_controller.rb:12:in \`show'*/"
open('marginalia.sql', 'w').write(''.join('SELECT abalance FROM accounts WHERE aid = %d%s;\n' % (i, m) for i in ids))
open('empty.sql', 'w').write('')
PY
for lib in ${LIBS:-none n1}; do
  for f in ${FILES:-empty plain commented marginalia}; do
    rm -rf run; cp -a data run
    opts="-c compute_query_id=on -c jit=off"
    [ $lib = n1 ] && opts="$opts -c shared_preload_libraries=n1detect -c n1detect.save=off"
    valgrind --tool=callgrind --callgrind-out-file=cg.$lib.$f.out $B/postgres --single -D run $opts postgres < $f.sql >/dev/null 2>cg.$lib.$f.err
    echo "$lib $f $(grep ^summary: cg.$lib.$f.out | cut -d' ' -f2)"
  done
done
