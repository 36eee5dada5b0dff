# Shared memory stays bounded: more distinct offenders than
# n1detect.max_offenders evicts the least used ones, and a unit with more
# distinct queries than the detector tracks does not grow memory or crash.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use N1Test;

my $node = N1Test::new_node('bounded', conf => "n1detect.max_offenders = 100\nn1detect.max_bursts = 50\n");
N1Test::create_schema($node);

# A target list that spells $i in binary with the columns id and name, so
# each $i gives a query id of its own (aliases and constants would not).
sub columns
{
	my ($i, $bits) = @_;
	return join(', ', map { ($i >> $_) & 1 ? 'id' : 'name' } 0 .. $bits - 1);
}

# 150 distinct child queries, each an N+1 of its own.
my $sql = '';
for my $i (1 .. 150)
{
	$sql .= "BEGIN;\nSELECT id, author_id FROM books WHERE id <= 5;\n";
	my $cols = columns($i, 8);
	$sql .= "SELECT $cols FROM authors WHERE id = $_;\n" for 1 .. 5;
	$sql .= "COMMIT;\n";
}
$node->safe_psql('postgres', $sql);
my ($count, $dealloc, $bursts) = split /\|/,
  $node->safe_psql('postgres', 'SELECT offenders, dealloc, bursts_total FROM n1_info');
cmp_ok($count, '<=', 100, "n1_offenders keeps at most n1detect.max_offenders rows ($count)");
cmp_ok($dealloc, '>', 0, "evictions are counted ($dealloc)");
is($bursts, 150, 'all 150 bursts were seen');
is($node->safe_psql('postgres', 'SELECT count(*) FROM n1_bursts'), '50', 'n1_bursts keeps n1detect.max_bursts');
is($node->safe_psql('postgres', 'SELECT count(*) FROM n1_offenders WHERE query IS NULL'), '0',
	'every kept row has its text');

# One unit with 2,000 distinct queries, then an N+1: still caught.
$node->safe_psql('postgres', 'SELECT n1_reset()');
$sql = "BEGIN;\n";
$sql .= "SELECT " . columns($_, 11) . " FROM authors WHERE id = 1;\n" for 1 .. 2000;
$sql .= N1Test::n_plus_one_sql(list_size => 6) =~ s/^BEGIN;\n//r;
$node->safe_psql('postgres', $sql);
is($node->safe_psql('postgres', "SELECT kind, calls FROM n1_offenders"), 'n_plus_one|6',
	'after 2,000 distinct queries in one unit an N+1 is still caught');

$node->stop;
done_testing();
