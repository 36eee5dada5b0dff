# n1_info's counters of the detector itself tell a user when detection is
# degraded: bursts dropped beyond 16 in a unit, queries evicted from a unit's
# table of 64, normalized texts evicted from a backend's cache.  They are
# summed over backends (also after those exit), kept across a clean restart
# and zeroed by n1_reset().
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use N1Test;

my $node = N1Test::new_node('info_counters');
N1Test::create_schema($node);
$node->safe_psql('postgres', 'SELECT n1_reset()');
my $counters = 'SELECT units, bursts_dropped, queries_evicted, texts_evicted, slots_skipped FROM n1_info';
is($node->safe_psql('postgres', $counters), '0|0|0|0|0', 'all zero after n1_reset()');

# A query shape of its own per k (an IN list of k zeros).
sub shape
{
	my ($k, $id) = @_;
	# (its first element an expression: 18 would squash a list of constants into one query id)
	return "SELECT name FROM authors WHERE id = $id AND id NOT IN (" . join(', ', '0 + 0', (0) x ($k - 1)) . ");\n";
}

# One unit with 17 queries called 5 times each: the 17th burst is dropped.
my $sql = "BEGIN;\n";
for my $k (1 .. 17)
{
	$sql .= shape($k, $_) for 1 .. 5;
}
$node->safe_psql('postgres', $sql . "COMMIT;\n");
my ($units, $dropped, $evicted) = split /\|/, $node->safe_psql('postgres', $counters);
is($units, 1, 'one unit of work');
is($dropped, 1, 'the 17th burst of the unit is counted as dropped');
is($node->safe_psql('postgres', 'SELECT count(*) FROM n1_offenders'), '16', 'and 16 are recorded');

# One unit with 70 distinct queries: at least 6 evicted from its table of 64.
$sql = "BEGIN;\n";
$sql .= shape($_, 1) for 101 .. 170;
$node->safe_psql('postgres', $sql . "COMMIT;\n");
(undef, undef, $evicted) = split /\|/, $node->safe_psql('postgres', $counters);
cmp_ok($evicted, '>=', 6, 'queries evicted from the unit table are counted');

# 1100 distinct query ids in one backend: more than its text cache holds (1024).
$sql = '';
$sql .= shape($_, 1) for 201 .. 1300;
$node->safe_psql('postgres', $sql);
my @c = split /\|/, $node->safe_psql('postgres', $counters);
cmp_ok($c[3], '>=', 76, 'texts evicted from the backend cache are counted');

# Counted across backends that exited, and kept across a clean restart.
my $before = $node->safe_psql('postgres', $counters);
$node->restart;
is($node->safe_psql('postgres', $counters), $before, 'the counters survive a clean restart');

$node->safe_psql('postgres', 'SELECT n1_reset()');
is($node->safe_psql('postgres', $counters), '0|0|0|0|0', 'n1_reset() zeroes them');
$node->safe_psql('postgres', N1Test::n_plus_one_sql(list_size => 6));
is($node->safe_psql('postgres', 'SELECT units, bursts_total FROM n1_info'), '1|1',
	'and they count again from there');

$node->stop;
done_testing();
