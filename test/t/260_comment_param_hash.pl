# The parameter hash of a statement with a trailing query comment: the
# comment is no parameter and is not hashed.  The same constants are one
# parameter set (duplicate) whatever the comments; other constants are others
# (loop); a statement that ends with a comment inside a multi-statement
# string hashes as the same statement sent alone.  OpenTelemetry's
# sqlcommenter puts a new span id in every statement's traceparent (one span
# per query): the same lookup repeated in one request is a duplicate, not a
# loop (it was a loop while comments were hashed).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use N1Test;

my $node = N1Test::new_node('comment_hash', conf => "n1detect.max_gap = '1h'\n");
my $postmaster = N1Test::postmaster_pid($node);
N1Test::create_schema($node);

my $c1 = q{/*controller='books',framework='django%3A4.2',route='%5Eapi/books/'*/};
my $c2 = q{/*controller='books',framework='django%3A5.0',route='%5Eapi/books/'*/};

# One unit (a transaction block) of the given statements; the row of
# n1_offenders for the authors query afterwards.
sub unit_of
{
	my (@stmts) = @_;
	$node->safe_psql('postgres', 'SELECT n1_reset()');
	$node->safe_psql('postgres', join("\n", 'BEGIN;', @stmts, 'COMMIT;'));
	return $node->safe_psql('postgres',
		q{SELECT kind, calls, distinct_params FROM n1_bursts});
}

is(unit_of(("SELECT name FROM authors WHERE id = 7 $c1;") x 6),
	'duplicate|6|1', 'same constants, same comment: one parameter set');
is(unit_of(map { "SELECT name FROM authors WHERE id = $_ $c1;" } 1 .. 6),
	'loop|6|6', 'other constants, same comment: six sets');
is(unit_of(map { "SELECT name FROM authors WHERE id = 7 " . ($_ % 2 ? $c1 : $c2) . ";" } 1 .. 6),
	'duplicate|6|1', 'same constants, two comments: one parameter set');
my $trace = '0af7651916cd43dd8448eb211c80319c';
is(unit_of(map { sprintf("SELECT name FROM authors WHERE id = 7 /*traceparent='00-%s-%016x-01'*/;", $trace, 0xb7ad6b7169203331 + $_) } 1 .. 6),
	'duplicate|6|1', 'same constants, a new span id per statement (one trace): a duplicate');
is(unit_of(map { sprintf("SELECT name FROM authors WHERE id = %d /*traceparent='00-%s-%016x-01'*/;", $_, $trace, 0xb7ad6b7169203331 + $_) } 1 .. 6),
	'loop|6|6', 'other constants, a new span id per statement: a loop of six sets');
is(unit_of(map { "SELECT name FROM authors WHERE id = 7 $c1\\; SELECT 1;" } 1 .. 6),
	'duplicate|6|1', 'in a multi-statement string: one parameter set');
is(unit_of(map { $_ % 2 ? "SELECT name FROM authors WHERE id = 7 $c1;"
		: "SELECT name FROM authors WHERE id = 7 $c1\\; SELECT 1;" } 1 .. 6),
	'duplicate|6|1', 'alone or in a multi-statement string: the same parameter set');
is(unit_of(map { "SELECT name FROM authors WHERE id = $_ /* a */ $c1;" } 1 .. 6),
	'loop|6|6', 'a comment before the trailing one: still six sets');

N1Test::server_survived($node, $postmaster, 'after commented statements');
done_testing();
