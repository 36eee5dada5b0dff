# application_name is compared by its text, not by where core keeps it: a
# value set twice between two statements may be stored at the address of the
# one n1detect saw last (malloc reuses it), and the change must still end the
# unit of work and name the new application in n1_bursts.
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

$node->stop;
done_testing();
