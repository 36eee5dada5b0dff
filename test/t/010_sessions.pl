# Several backends at once: each one's N+1 is caught with its own parent,
# bound parameters (pgbench -M prepared) and literal SQL (-M simple) alike;
# a burst in progress in an idle session is visible from another session;
# independent point lookups (pgbench -S) are never an N+1.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use N1Test;

my $node = N1Test::new_node('sessions');
N1Test::create_schema($node);

# An N+1 per pgbench transaction: a list of books, then each book's author.
# \sleep separates the units of work (n1detect.max_gap is 100 ms).
my $script = q{
\set first random(1, 900)
\set a1 (:first + 0) % 100 + 1
\set a2 (:first + 1) % 100 + 1
\set a3 (:first + 2) % 100 + 1
\set a4 (:first + 3) % 100 + 1
\set a5 (:first + 4) % 100 + 1
\set a6 (:first + 5) % 100 + 1
BEGIN;
SELECT id, author_id FROM books WHERE id BETWEEN :first AND :first + 5 ORDER BY id;
SELECT name FROM authors WHERE id = :a1;
SELECT name FROM authors WHERE id = :a2;
SELECT name FROM authors WHERE id = :a3;
SELECT name FROM authors WHERE id = :a4;
SELECT name FROM authors WHERE id = :a5;
SELECT name FROM authors WHERE id = :a6;
COMMIT;
};

for my $mode ('simple', 'prepared')
{
	$node->safe_psql('postgres', 'SELECT n1_reset()');
	$node->pgbench(
		"--no-vacuum --client=4 --jobs=2 --transactions=10 --protocol=$mode",
		0, [qr{processed: 40/40}], [qr{^$}],
		"pgbench N+1 workload, $mode protocol",
		{ "n1_$mode" => $script });

	my $row = $node->safe_psql('postgres', q{
		SELECT kind, query, parent_query, bursts, calls, max_calls
		FROM n1_offenders});
	like($row,
		qr{^n_plus_one\|SELECT name FROM authors WHERE id = \$1\|SELECT id, author_id FROM books WHERE id BETWEEN \$1 AND \$\d \+ \$\d ORDER BY id\|40\|240\|6$},
		"$mode protocol: one n_plus_one row with child and parent, 40 bursts of 6 calls");
	is($node->safe_psql('postgres',
			"SELECT count(DISTINCT pid), count(*), sum(calls) FROM n1_bursts WHERE kind = 'n_plus_one'"),
		"4|40|240", "$mode protocol: 40 bursts from 4 backends in n1_bursts");
}

# A burst in progress is visible from another session while its backend idles.
$node->safe_psql('postgres', 'SELECT n1_reset()');
my $idle = $node->background_psql('postgres');
# checks from other sessions come between its statements: no gap may end its unit
$idle->query_safe(q{SET n1detect.max_gap = '1h'});
$idle->query_safe(N1Test::n_plus_one_sql(list_size => 7) =~ s/COMMIT;\n$//r);
is($node->safe_psql('postgres',
		"SELECT kind, calls, in_progress FROM n1_bursts"),
	"n_plus_one|7|t", "a burst of an idle-in-transaction session is visible in progress");
like($node->safe_psql('postgres', "SELECT kind, query, calls FROM n1_offenders"),
	qr{^n_plus_one\|SELECT name FROM authors WHERE id = \$1\|7$},
	"and counted in n1_offenders before its unit ends");
$idle->query_safe("SELECT name FROM authors WHERE id = 50; SELECT name FROM authors WHERE id = 51;");
is($node->safe_psql('postgres', "SELECT calls FROM n1_offenders"), "9",
	"its counts grow while the burst runs");
$idle->query_safe("COMMIT");
is($node->safe_psql('postgres',
		"SELECT kind, calls, in_progress FROM n1_bursts"),
	"n_plus_one|9|f", "and it is recorded once when the unit ends");
is($node->safe_psql('postgres', "SELECT bursts, calls FROM n1_offenders"), "1|9",
	"n1_offenders counts it once");

# n1_reset() in the middle of a burst: the burst counts again from its next
# call, and is a burst again once it has min_calls (5) calls since.
$node->safe_psql('postgres', 'SELECT n1_reset()');
$idle->query_safe(N1Test::n_plus_one_sql(list_size => 6) =~ s/COMMIT;\n$//r);
$node->safe_psql('postgres', 'SELECT n1_reset()');
is($node->safe_psql('postgres', "SELECT count(*) FROM n1_offenders"), '0',
	'n1_reset() empties the views, bursts in progress included');
$idle->query_safe(join(' ', map { "SELECT name FROM authors WHERE id = $_;" } 60 .. 64));
is($node->safe_psql('postgres', "SELECT kind, query, calls FROM n1_offenders"),
	"n_plus_one|SELECT name FROM authors WHERE id = \$1|5",
	'a burst that goes on after the reset shows the calls made since, with its text');
$idle->query_safe("COMMIT");
is($node->safe_psql('postgres', "SELECT kind, calls, in_progress FROM n1_bursts"),
	"n_plus_one|5|f", 'and is recorded with them');
$idle->quit;

# pgbench -S: a stream of independent point lookups is a loop, never an N+1.
$node->safe_psql('postgres', 'SELECT n1_reset()');
$node->command_ok([ 'pgbench', '--initialize', '--scale=1', '--quiet', $node->connstr('postgres') ],
	'pgbench initialized');
$node->safe_psql('postgres', 'SELECT n1_reset()');
for my $mode ('simple', 'prepared')
{
	$node->command_ok(
		[ 'pgbench', '--select-only', '--no-vacuum', "--protocol=$mode",
		  '--client=2', '--jobs=2', '--transactions=2000', $node->connstr('postgres') ],
		"pgbench -S, $mode protocol");
}
is($node->safe_psql('postgres', "SELECT count(*) FROM n1_offenders WHERE kind = 'n_plus_one'"),
	'0', 'pgbench -S is never reported as n_plus_one');
like($node->safe_psql('postgres', "SELECT DISTINCT kind FROM n1_offenders"),
	qr{^loop$}, 'it is reported as a loop');

$node->stop;
done_testing();
