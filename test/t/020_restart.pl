# Offenders survive a clean restart (n1detect.save), not a crash; with
# n1detect.save = off they are not kept.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use N1Test;

my $node = N1Test::new_node('restart');
N1Test::create_schema($node);
$node->safe_psql('postgres', N1Test::n_plus_one_sql(list_size => 6));
$node->safe_psql('postgres', N1Test::n_plus_one_sql(list_size => 8, first_id => 20));

my $query = q{SELECT kind, query, parent_query, bursts, calls, max_calls, sample_params IS NOT NULL
	FROM n1_offenders};
my $before = $node->safe_psql('postgres', $query);
like($before, qr{^n_plus_one\|SELECT name FROM authors WHERE id = \$1\|SELECT id, author_id FROM books WHERE id BETWEEN \$1 AND \$2 ORDER BY id\|2\|14\|8\|t$},
	'two bursts recorded');

$node->restart;
is($node->safe_psql('postgres', $query), $before, 'offenders survive a clean restart');
ok(!-e $node->data_dir . '/pg_stat/n1detect.stat', 'the saved file is removed once loaded');

# A crash (the postmaster killed) does not save, and the file loaded at
# the previous start is gone, so the offenders are lost, not resurrected
# stale.
my @pids = split /\n/, $node->safe_psql('postgres',
	'SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid()');
push @pids, (split /\n/, PostgreSQL::Test::Utils::slurp_file($node->data_dir . '/postmaster.pid'))[0];
$node->kill9;
# wait until the killed postmaster and its children are gone
for (1 .. 180)
{
	last unless grep { kill 0, $_ } @pids;
	select undef, undef, undef, 0.5;
}
my $started = $node->start(fail_ok => 1);
ok($started, 'the server starts after its postmaster was killed');
is($node->safe_psql('postgres', 'SELECT count(*) FROM n1_offenders'), '0',
	'offenders are not kept across a crash');

# n1detect.save = off: nothing is kept across a clean restart.
$node->safe_psql('postgres', N1Test::n_plus_one_sql(list_size => 6));
$node->append_conf('postgresql.conf', "n1detect.save = off\n");
$node->reload;
# from 16 on a postmaster that has both a reload and a shutdown pending shuts
# down first and ignores the reload: wait until it has read the new setting
$node->poll_query_until('postgres', "SELECT current_setting('n1detect.save') = 'off'")
  or die 'n1detect.save = off was not applied';
$node->restart;
is($node->safe_psql('postgres', 'SELECT count(*) FROM n1_offenders'), '0',
	'with n1detect.save = off nothing is kept');

# A file of an unknown format is ignored with a LOG line, not loaded.
$node->stop;
PostgreSQL::Test::Utils::append_to_file($node->data_dir . '/pg_stat/n1detect.stat', 'garbage');
$node->start;
is($node->safe_psql('postgres', 'SELECT count(*) FROM n1_offenders'), '0',
	'a corrupt file is not loaded');
ok($node->log_contains('ignoring n1detect file'), 'and the log says why');

$node->stop;
done_testing();
