# Without shared_preload_libraries: CREATE EXTENSION works, every detection
# function and view raises a clear error, fast_count still works.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use N1Test;

my $node = N1Test::new_node('no_preload', preload => 0);
my ($cret, $cout, $cerr) = $node->psql('postgres', 'CREATE EXTENSION n1detect');
is($cret, 0, 'CREATE EXTENSION works without preloading');
is($cerr, '', 'without a warning');
is($node->safe_psql('postgres', q{SELECT extversion, (SELECT count(*) FROM pg_views
	WHERE viewname IN ('n1_offenders', 'n1_bursts', 'n1_backend_statements', 'n1_info'))
	FROM pg_extension WHERE extname = 'n1detect'}), '1.1|4', 'the extension and its views are there');

for my $sql ('SELECT * FROM n1_offenders', 'SELECT * FROM n1_bursts',
	'SELECT * FROM n1_backend_statements', 'SELECT * FROM n1_info', 'SELECT n1_reset()')
{
	my ($ret, $stdout, $stderr) = $node->psql('postgres', $sql);
	like($stderr,
		qr{ERROR:  n1detect must be loaded via shared_preload_libraries\n.*HINT:  Add n1detect to shared_preload_libraries in postgresql.conf and restart the server\.}s,
		"$sql: clear error with a hint");
}

$node->safe_psql('postgres', 'CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g');
is($node->safe_psql('postgres', "SELECT fast_count('t')"), '1000', 'fast_count works without preloading');
is($node->safe_psql('postgres', "SELECT fast_count('t'); SHOW n1detect.fast_count_budget"), "1000\n50ms",
	'its settings exist once the library is loaded');

$node->stop;
done_testing();
