# fast_count without preloading, on a streaming hot standby (catalog,
# sampled, exact and planner paths; the last two run subtransactions there),
# and the error for another session's temporary table.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use N1Test;

my $primary = N1Test::new_node('fc_primary', allows_streaming => 1, preload => 0);
$primary->safe_psql('postgres', q{
	CREATE EXTENSION n1detect;
	CREATE TABLE t AS SELECT g AS id, g % 100 AS a FROM generate_series(1, 200000) g;
	CREATE TABLE fresh AS SELECT g AS id FROM generate_series(1, 50000) g;
	CREATE TABLE empty_t (id int);
	CREATE TABLE p (id int, a int) PARTITION BY RANGE (id);
	CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (50000);
	CREATE TABLE p2 PARTITION OF p FOR VALUES FROM (50000) TO (100000);
	INSERT INTO p SELECT g, g % 10 FROM generate_series(0, 99999) g;
	SELECT pg_stat_force_next_flush();
});
$primary->safe_psql('postgres', 'ANALYZE t; ANALYZE p;');
$primary->backup('backup');

my $standby = PostgreSQL::Test::Cluster->new('fc_standby');
$standby->init_from_backup($primary, 'backup', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby);

is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'standby is in recovery');
is($standby->safe_psql('postgres', 'SHOW shared_preload_libraries'), '', 'n1detect is not preloaded');

my $within = sub {
	my ($sql, $truth, $tol) = @_;
	return "SELECT abs(($sql) - $truth) <= $truth * $tol";
};

is($standby->safe_psql('postgres', "SELECT method FROM fast_count_info('t')"), 'catalog',
	'the catalog answers on the standby');
is($standby->safe_psql('postgres', $within->("SELECT fast_count('t')", 200000, 0.01)), 't',
	'catalog count within 1%');
# a 95% interval misses the truth one time in twenty: a fixed seed (and a
# budget no loaded machine reaches) makes the sample, and so the outcome, fixed
is($standby->safe_psql('postgres',
	"SET n1detect.fast_count_seed = 1; SET n1detect.fast_count_budget = '1min';
	 SELECT method, lower_bound <= 20000 AND 20000 <= upper_bound
	 FROM fast_count_info('t', 'a < 10')"), 'sample|t',
	'a filter is sampled on the standby and its interval covers the truth');
# exact counts: a budget no loaded machine reaches, so the method is not timing-dependent
is($standby->safe_psql('postgres', "SET n1detect.fast_count_budget = '1min'; SELECT fast_count('fresh')"), '50000',
	'a never-analyzed table is counted on the standby');
is($standby->safe_psql('postgres', "SELECT fast_count('empty_t')"), '0',
	'an empty never-analyzed table is 0 on the standby');
is($standby->safe_psql('postgres', $within->("SELECT fast_count('p')", 100000, 0.01)), 't',
	'a partitioned table on the standby');
is($standby->safe_psql('postgres',
	"SET n1detect.fast_count_budget = '1min';
	 SELECT fast_count_query('SELECT * FROM t JOIN p USING (id) WHERE t.id < 1000')"), '999',
	'a join is counted exactly on the standby');
is($standby->safe_psql('postgres',
	"SET n1detect.fast_count_budget = '1ms';
	 SELECT method FROM fast_count_query_info('SELECT * FROM t x, t y WHERE x.id = y.id + 0')"),
	'planner', 'an exact count over the budget falls back to the planner on the standby');
my ($ret, $out, $err) = $standby->psql('postgres',
	"SELECT fast_count_query('SELECT * FROM t FOR UPDATE')");
like($err, qr/fast_count accepts only read-only queries/, 'row locks are refused before running');

$primary->safe_psql('postgres', 'INSERT INTO t SELECT g, g % 100 FROM generate_series(200001, 400000) g');
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres', $within->("SELECT fast_count('t')", 400000, 0.02)), 't',
	'a table that grew is counted at its current size on the standby');

# Another session's temporary table.
my $other = $primary->background_psql('postgres');
$other->query_safe('CREATE TEMP TABLE mine AS SELECT g FROM generate_series(1, 100) g');
my $temp = $other->query_safe(q{SELECT pg_my_temp_schema()::regnamespace::text || '.mine'});
chomp $temp;
is($other->query_safe('SELECT fast_count(\'mine\')') =~ s/\s+//gr, '100', 'its own session counts a temporary table');
($ret, $out, $err) = $primary->psql('postgres', "SELECT fast_count('$temp')");
like($err, qr/cannot count rows of temporary tables of other sessions/,
	"another session's temporary table is an error");
($ret, $out, $err) = $primary->psql('postgres', "SELECT fast_count('$temp', 'g > 1')");
like($err, qr/cannot count rows of temporary tables of other sessions/,
	'also with a filter');
$other->quit;

$standby->stop;
$primary->stop;
done_testing();
