# Parents proven by values: the parent of a burst is the earlier query whose
# result rows hold the child's parameter values, not the most recent one; a
# loop over constants has no parent; one statement whose parameter types vary
# (int2/int4/int8) is one query; n1detect.strict reports a 2-row N+1 (and
# action = error fails on it) and stays silent on the fixed code; an idle
# backend shows every burst of its open unit.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use N1Test;

my $node = N1Test::new_node('parent_values');
N1Test::create_schema($node);
my $pid = N1Test::postmaster_pid($node);

# a long max_gap: units end at COMMIT, however slow the machine
my $unit = sub { "SET n1detect.max_gap = '10min';\nBEGIN;\n" . join(";\n", @_) . ";\nCOMMIT;\n" };
my $authors_of = sub { map { "SELECT name FROM authors WHERE id = $_" } @_ };
my $books = 'SELECT id, author_id FROM books WHERE id BETWEEN 1 AND 6 ORDER BY id';

sub offenders
{
	return $node->safe_psql('postgres',
		"SELECT kind, query, coalesce(parent_query, '-'), calls FROM n1_offenders ORDER BY query");
}

# The list, then an unrelated 6-row query (a sidebar), then the loop over the
# list's author ids 2..7: the list is the parent.
$node->safe_psql('postgres', 'SELECT n1_reset()');
$node->safe_psql('postgres', $unit->($books,
	'SELECT id, name FROM authors WHERE id BETWEEN 90 AND 95',
	$authors_of->(2 .. 7)));
is(offenders(), 'n_plus_one|SELECT name FROM authors WHERE id = $1|'
	. 'SELECT id, author_id FROM books WHERE id BETWEEN $1 AND $2 ORDER BY id|6',
	'the parent is the query whose rows hold the ids, not the latest multi-row query');

# A loop over constants after a list: a loop, never an N+1.
$node->safe_psql('postgres', 'SELECT n1_reset()');
$node->safe_psql('postgres', $unit->($books, $authors_of->(50 .. 55)));
is(offenders(), 'loop|SELECT name FROM authors WHERE id = $1|-|6',
	'ids from no result: loop without parent');
is($node->safe_psql('postgres', q{SELECT count(*) FROM n1_bursts WHERE kind = 'loop' AND parent_evidence IS NULL}),
	'1', 'a loop without parent: n1_bursts.parent_evidence is NULL');

# Text keys: names from a list drive the loop.
$node->safe_psql('postgres', 'SELECT n1_reset()');
$node->safe_psql('postgres', $unit->('SELECT id, name FROM authors WHERE id <= 6 ORDER BY id',
	map { "SELECT count(*) FROM books WHERE author_id IN (SELECT id FROM authors WHERE name = 'author $_')" } 1 .. 6));
like(offenders(), qr{^n_plus_one\|SELECT count\(\*\) FROM books WHERE .*\|SELECT id, name FROM authors WHERE id <= \$1 ORDER BY id\|6$},
	'short texts of the list prove the parent');

# A query id that returned at most 1 row in its first 8 runs (a point lookup)
# is not captured any more, until a run of several rows: that run's values
# are unknown, so the timing rule names its parent (here the right one, the
# most recent candidate), and the next runs are captured again.  One backend:
# the history is per backend.
my $point = $node->background_psql('postgres');
$point->query_safe($unit->(map { "SELECT id, author_id FROM books WHERE id BETWEEN $_ AND $_ ORDER BY id" } 1 .. 10));
for my $run ('first', 'next')
{
	$node->safe_psql('postgres', 'SELECT n1_reset()');
	$point->query_safe($unit->('SELECT id, name FROM authors WHERE id BETWEEN 90 AND 95',
		$books, $authors_of->(2 .. 7)));
	is(offenders(), 'n_plus_one|SELECT name FROM authors WHERE id = $1|'
		. 'SELECT id, author_id FROM books WHERE id BETWEEN $1 AND $2 ORDER BY id|6',
		"point lookup turned list, $run run: the list is the parent");
	is($node->safe_psql('postgres', q{SELECT parent_evidence FROM n1_bursts}),
		$run eq 'first' ? 'timing' : 'values',
		"point lookup turned list, $run run: named by " . ($run eq 'first' ? 'timing (its rows were not captured)' : 'values'));
}
$point->quit;

# A chain: the list gives book ids; each book is fetched by id (1 row), then
# each book's author by the book's author_id.  The authors' parent is the
# book lookup (its rows, not the list's, hold the author ids); the lookup's
# parent is the list.  One backend, twice: the second time the lookup is a
# point lookup no longer wrapped (8 runs of 1 row), and is wrapped again
# because the detector asks for its rows.
my $chain = $node->background_psql('postgres');
for my $run ('first', 'second')
{
	$node->safe_psql('postgres', 'SELECT n1_reset()');
	$chain->query_safe($unit->('SELECT id FROM books WHERE id BETWEEN 101 AND 106 ORDER BY id',
		(map { "SELECT id, author_id, title FROM books WHERE id = $_" } 101 .. 106),
		$authors_of->(2 .. 7)));
	is(offenders(), "n_plus_one|SELECT id, author_id, title FROM books WHERE id = \$1|"
		. "SELECT id FROM books WHERE id BETWEEN \$1 AND \$2 ORDER BY id|6\n"
		. "n_plus_one|SELECT name FROM authors WHERE id = \$1|SELECT id, author_id, title FROM books WHERE id = \$1|6",
		"chain, $run run: the lookup is the parent of the loop its rows drive");
	is($node->safe_psql('postgres', q{SELECT string_agg(DISTINCT parent_evidence, ',') FROM n1_bursts}),
		'values', "chain, $run run: both parents proven by values (n1_bursts.parent_evidence)");
}
$chain->quit;

# uuid keys: the list returns uuids, the loop gets them as string literals
# (simple protocol): a uuid and its text hash alike.
$node->safe_psql('postgres', q{
	CREATE TABLE docs (id uuid PRIMARY KEY, title text);
	INSERT INTO docs SELECT ('00000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, 'doc ' || g
	FROM generate_series(1, 6) g;
	SELECT n1_reset();
});
$node->safe_psql('postgres', $unit->('SELECT id FROM docs ORDER BY id',
	map { sprintf("SELECT title FROM docs WHERE id = '00000000-0000-4000-8000-%012d'", $_) } 1 .. 6));
is(offenders(), 'n_plus_one|SELECT title FROM docs WHERE id = $1|SELECT id FROM docs ORDER BY id|6',
	'uuid keys prove the parent');

# psycopg 3 binds a Python int as int2, int4 or int8 by magnitude: one
# statement, three query ids; still one query, one N+1 (bound parameters).
$node->safe_psql('postgres', q{
	CREATE TABLE big (id bigint PRIMARY KEY, name text);
	INSERT INTO big VALUES (7, 'a'), (40000, 'b'), (5000000000, 'c'), (8, 'd'), (50000, 'e'), (6000000000, 'f');
	SELECT n1_reset();
});
my $connstr = $node->connstr('postgres');
my $script = <<'PY';
import sys, psycopg
with psycopg.connect(sys.argv[1]) as conn:
    conn.execute("SET n1detect.max_gap = '10min'")
    with conn.transaction():
        ids = [r[0] for r in conn.execute("SELECT id FROM big ORDER BY id % 10, id").fetchall()]
        for i in ids:
            conn.execute("SELECT name FROM big WHERE id = %s", [i]).fetchone()
print("ok")
PY
my ($out, $err);
IPC::Run::run([ '/usr/bin/python3', '-c', $script, $connstr ], '>', \$out, '2>', \$err);
is($out, "ok\n", 'psycopg 3 client ran') or diag($err);
is(offenders(), 'n_plus_one|SELECT name FROM big WHERE id = $1|SELECT id FROM big ORDER BY id % $1, id|6',
	'int2, int4 and int8 parameters: one query, one N+1');

# Strict mode for a test suite: a 2-row N+1 fails, the fixed code and loops
# of 2 over constants or duplicates pass.
$node->safe_psql('postgres', q{
	CREATE ROLE test_suite LOGIN;
	GRANT SELECT ON authors, books TO test_suite;
	ALTER ROLE test_suite SET n1detect.action = 'error';
	ALTER ROLE test_suite SET n1detect.strict = on;
	SELECT n1_reset();
});
my $two = 'SELECT id, author_id FROM books WHERE id BETWEEN 1 AND 2 ORDER BY id';
my ($ret, $stdout, $stderr) = $node->psql('postgres', $unit->($two, $authors_of->(2, 3)),
	extra_params => [ '-U', 'test_suite', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose' ]);
isnt($ret, 0, 'strict: a 2-row N+1 fails');
like($stderr, qr{ERROR:  N1001: n1detect: N\+1 query, 2 calls of one query driven by the rows of another},
	'strict: at its 2nd call, with SQLSTATE N1001');
for my $case (
	[ 'the fixed code', $unit->($two, q{SELECT id, name FROM authors WHERE id = ANY ('{2,3}'::int[])}) ],
	[ 'a loop of 2 over constants', $unit->($two, $authors_of->(50, 51)) ],
	[ 'a duplicate of 2', $unit->($two, $authors_of->(2, 2)) ],
	[ 'two lookups of ids from no result', $unit->($authors_of->(2, 3)) ])
{
	($ret, $stdout, $stderr) = $node->psql('postgres', $case->[1],
		extra_params => [ '-U', 'test_suite', '-v', 'ON_ERROR_STOP=1' ]);
	is($ret, 0, "strict: $case->[0] passes") or diag($stderr);
}

# An idle backend shows every burst of its open unit (16), not 8.
$node->safe_psql('postgres', 'SELECT n1_reset()');
my $idle = $node->background_psql('postgres');
my @loops;
for my $k (0 .. 19)
{
	my $cols = join('', map { ", id" } 1 .. $k);
	push @loops, map { "SELECT name$cols FROM authors WHERE id = $_" } 1 .. 5;
}
$idle->query_safe("SET n1detect.max_gap = '10min'; BEGIN; " . join('; ', @loops) . ';');
is($node->safe_psql('postgres', 'SELECT count(*) FROM n1_bursts WHERE in_progress'), '16',
	'all 16 bursts of the idle unit are visible');
$idle->query_safe('COMMIT');
is($node->safe_psql('postgres', 'SELECT count(*) FROM n1_bursts WHERE NOT in_progress'), '16',
	'and recorded when it ends');
$idle->quit;

N1Test::server_survived($node, $pid, 'parent values');
done_testing();
