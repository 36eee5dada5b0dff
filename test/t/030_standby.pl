# An N+1 on a read replica is detected there, and its views work there.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use N1Test;

my $primary = N1Test::new_node('primary', allows_streaming => 1);
N1Test::create_schema($primary);
$primary->backup('backup');

my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'backup', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby);

is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'standby is in recovery');
$standby->safe_psql('postgres', N1Test::n_plus_one_sql(list_size => 6) =~ s/^BEGIN;\n//r =~ s/COMMIT;\n$//r);
is($standby->safe_psql('postgres', 'SELECT kind, query, parent_query, calls FROM n1_offenders'),
	"n_plus_one|SELECT name FROM authors WHERE id = \$1|SELECT id, author_id FROM books WHERE id BETWEEN \$1 AND \$2 ORDER BY id|6",
	'the N+1 run on the standby is reported on the standby');
is($primary->safe_psql('postgres', 'SELECT count(*) FROM n1_offenders'), '0',
	'and not on the primary, where it did not run');
is($standby->safe_psql('postgres', "SELECT kind, calls FROM n1_bursts"), "n_plus_one|6",
	'n1_bursts works on the standby');
$standby->safe_psql('postgres', 'SELECT n1_reset()');
is($standby->safe_psql('postgres', 'SELECT count(*) FROM n1_offenders'), '0',
	'n1_reset() works on the standby');

$standby->stop;
$primary->stop;
done_testing();
