# application_name is compared by its text, not by where core keeps it: a
# value set twice between two statements may be stored at the address of the
# one n1detect saw last (malloc reuses it), and the change must still end the
# unit of work and name the new application in n1_bursts.
#
# n1detect learns of changes from application_name's assign hook (it counts
# them; the recorder compares the text only after one): every way the value
# changes must reach it, also those that are not a SET statement.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use N1Test;

my $node = N1Test::new_node('appname');
N1Test::create_schema($node);

my $out = $node->safe_psql('postgres', q{
	SET application_name = 'x1';
	SELECT count(*) FROM authors WHERE id = 1;
	SET application_name = 'x2';
	SET application_name = 'x3';
} . N1Test::n_plus_one_sql(list_size => 5) . q{
	SELECT application_name, kind, calls FROM n1_bursts;
});
like($out, qr/^x3\|n_plus_one\|5$/m, 'the burst is named after the application_name in force (x3)');
unlike($out, qr/^x1\|/m, 'not after the value seen before two changes (x1)');

# Three lookups, a change of application_name, three more: with min_calls = 5
# a burst of 6 means the change was missed.  Each way of changing it.
my %changes = (
	'set_config() in a SELECT' => [ q{SELECT set_config('application_name', 'b2', false);}, '' ],
	'set_config() in a DO block' =>
	  [ q{DO $$BEGIN PERFORM set_config('application_name', 'b2', false); END$$;}, '' ],
	'RESET' => [ q{RESET application_name;}, '' ],
	'SET LOCAL in a transaction block' => [ q{BEGIN; SET LOCAL application_name = 'b2';}, 'COMMIT;' ],
);
for my $how (sort keys %changes)
{
	my $lookups = sub {
		join('', map { "SELECT name FROM authors WHERE id = $_;\n" } @_);
	};
	my ($before, $after) = @{ $changes{$how} };
	$out = $node->safe_psql('postgres', q{
		SELECT n1_reset();
		SET application_name = 'b1';
		SELECT 1;
	} . $lookups->(11, 12, 13) . "$before\n" . $lookups->(14, 15, 16) . "$after\n" . q{
		SET application_name = 'end';
		SELECT count(*) FROM books WHERE id = 1;
		SELECT coalesce(max(calls), 0) FROM n1_bursts;
	});
	my @lines = split /\n/, $out;
	is($lines[-1], '0', "$how ends the unit: no burst of 6 lookups");
}

# The value a function's SET clause gives lives only inside the function:
# the same application_name before and after it, one unit, one burst.
$node->safe_psql('postgres', q{
	CREATE FUNCTION other_name() RETURNS int LANGUAGE sql
		SET application_name = 'inside' AS 'SELECT 1';
});
$out = $node->safe_psql('postgres', q{
	SELECT n1_reset();
	SET application_name = 'c1';
	SELECT 1;
	SELECT name FROM authors WHERE id = 21;
	SELECT name FROM authors WHERE id = 22;
	SELECT name FROM authors WHERE id = 23;
	SELECT other_name();
	SELECT name FROM authors WHERE id = 24;
	SELECT name FROM authors WHERE id = 25;
	SELECT name FROM authors WHERE id = 26;
	SET application_name = 'end';
	SELECT count(*) FROM books WHERE id = 1;
	SELECT application_name, max(calls) FROM n1_bursts GROUP BY 1;
});
like($out, qr/^c1\|6$/m, 'a function whose SET clause changes application_name and restores it does not cut the unit');

$node->stop;
done_testing();
