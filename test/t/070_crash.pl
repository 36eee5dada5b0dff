# A backend killed with SIGKILL in the middle of a burst: the server
# restarts, and the views work afterwards (recording starts afresh).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use N1Test;

my $node = N1Test::new_node('crash', conf => "restart_after_crash = on\n");
N1Test::create_schema($node);

my $victim = $node->background_psql('postgres', on_error_stop => 0);
my $pid = $victim->query_safe('SELECT pg_backend_pid()');
$victim->query_safe(N1Test::n_plus_one_sql(list_size => 8) =~ s/COMMIT;\n$//r);
is($node->safe_psql('postgres', 'SELECT kind, calls, in_progress FROM n1_bursts'),
	'n_plus_one|8|t', 'a burst is in progress in the victim backend');

kill 'KILL', $pid;
$victim->{run}->kill_kill;
$victim->{run}->finish;

$node->poll_query_until('postgres', 'SELECT 1', '1')
  or die 'server did not come back';
ok($node->log_contains("terminated by signal 9: Killed"), 'the postmaster saw the kill and reinitialized');
is($node->safe_psql('postgres', 'SELECT count(*) FROM n1_bursts'), '0',
	'after crash recovery the views work and start empty');

$node->safe_psql('postgres', N1Test::n_plus_one_sql(list_size => 6));
is($node->safe_psql('postgres', 'SELECT kind, calls FROM n1_offenders'), 'n_plus_one|6',
	'and detection works again');

$node->stop;
done_testing();
