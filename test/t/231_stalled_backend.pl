# A backend stopped in the middle of writing its slot (SIGSTOP, a debugger,
# a page-fault storm) must not freeze anyone else: readers of the views skip
# its busy slot after a bounded number of retries (and count it in
# n1_info.slots_skipped), never spin while holding n1detect's lock, and
# sessions running N+1s keep recording.  A backend stopped while it holds the
# lock exclusively (ending a burst) makes readers wait, but that wait honours
# cancel and terminate.
#
# The stop is made deterministic by n1detect.debug_stop_in_slot_write (only
# in builds with N1_ASSERT=1, as tools/test builds): the backend SIGSTOPs
# itself with its change count odd.  Hangs are detected with the suite's
# default timeout (180 s), never timed.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use N1Test;

my $node = N1Test::new_node('stalled');
N1Test::create_schema($node);
my $postmaster = N1Test::postmaster_pid($node);

my ($ret, $out, $err) = $node->psql('postgres', 'SHOW n1detect.debug_stop_in_slot_write');
if ($ret != 0)
{
	$node->stop;
	plan skip_all => 'needs a build with N1_ASSERT=1 (n1detect.debug_stop_in_slot_write)';
}

# Runs $sql in a new session; a hang shows as timed_out after the default timeout.
sub bounded_psql
{
	my ($sql) = @_;
	my ($stdout, $stderr, $timed_out) = ('', '', 0);
	my $r = $node->psql('postgres', $sql, stdout => \$stdout, stderr => \$stderr,
		timeout => $PostgreSQL::Test::Utils::timeout_default, timed_out => \$timed_out);
	return ($r, $stdout, $stderr, $timed_out);
}

# Waits until process $pid is stopped (state T in /proc); false if it never is.
sub wait_stopped
{
	my ($pid) = @_;
	for (1 .. 10 * $PostgreSQL::Test::Utils::timeout_default)
	{
		open(my $fh, '<', "/proc/$pid/stat") or return 0;
		my $stat = <$fh>;
		close $fh;
		return 1 if $stat =~ /^\d+ \(.*\) T /;
		select undef, undef, undef, 0.1;
	}
	return 0;
}

# Waits until backend $pid is active and waiting on something.
sub wait_waiting
{
	my ($pid) = @_;
	return $node->poll_query_until('postgres', qq{
		SELECT wait_event_type IS NOT NULL FROM pg_stat_activity
		WHERE pid = $pid AND state = 'active'});
}

# One finished offender row, so that readers have something to merge.
$node->safe_psql('postgres', N1Test::n_plus_one_sql(list_size => 6));

# ---- 1. a backend stopped mid-write of a statement (no lock held) ----
my $stalled = $node->background_psql('postgres');
$stalled->set_query_timer_restart();
my $stalled_pid = $stalled->query_safe('SELECT pg_backend_pid()');
$stalled->query_safe(q{SET n1detect.debug_stop_in_slot_write = 'event'});
$stalled->{stdin} .= "SELECT count(*) FROM authors;\n";
$stalled->{run}->pump_nb();
ok(wait_stopped($stalled_pid), 'the backend stopped itself in the middle of a slot write');

for my $view ('n1_offenders', 'n1_bursts', 'n1_backend_statements', 'n1_info')
{
	my ($r, $o, $e, $to) = bounded_psql("SELECT count(*) >= 0 FROM $view");
	ok(!$to && $r == 0 && $o eq 't', "$view returns while a slot is being written by a stopped backend")
	  or diag("ret $r, timed out $to, stderr $e");
}
my ($r, $o, $e, $to) = bounded_psql(N1Test::n_plus_one_sql(list_size => 7, first_id => 40)
	  . q{SELECT bursts, calls, max_calls FROM n1_offenders;});
ok(!$to && $r == 0, 'a session running an N+1 is not blocked') or diag("ret $r, timed out $to, stderr $e");
like($o, qr/^2\|13\|7$/m, 'and its burst is recorded');
($r, $o, $e, $to) = bounded_psql('SELECT slots_skipped > 0 FROM n1_info');
is($o, 't', 'n1_info counts the busy slot readers skipped');

kill 'CONT', $stalled_pid;
is($stalled->query_safe('SELECT 42'), "100\n42", 'the stopped backend resumes where it was');
$stalled->query_safe(q{RESET n1detect.debug_stop_in_slot_write});

# ---- 2. a backend stopped while it holds the lock exclusively ----
# A session with a burst already published, its unit still open.
my $committer = $node->background_psql('postgres', on_error_stop => 0);
$committer->set_query_timer_restart();
my $committer_pid = $committer->query_safe('SELECT pg_backend_pid()');
$committer->query_safe(q{SET n1detect.max_gap = '1h'});
$committer->query_safe(N1Test::n_plus_one_sql(list_size => 6, first_id => 80) =~ s/COMMIT;\n$//r);

$stalled->query_safe(q{SET n1detect.debug_stop_in_slot_write = 'burst_end'});
$stalled->{stdin} .= N1Test::n_plus_one_sql(list_size => 6, first_id => 60);
$stalled->{run}->pump_nb();
ok(wait_stopped($stalled_pid), 'a backend stopped while it records a burst (lock held)');

# A reader waits for the lock: cancel works, and the session is usable.
my $reader = $node->background_psql('postgres', on_error_stop => 0);
$reader->set_query_timer_restart();
my $reader_pid = $reader->query_safe('SELECT pg_backend_pid()');
$reader->{stdin} .= "SELECT count(*) FROM n1_offenders;\n\\echo reader-done\n";
$reader->{run}->pump_nb();
ok(wait_waiting($reader_pid), 'a reader waits for the lock');
$node->safe_psql('postgres', "SELECT pg_cancel_backend($reader_pid)");
my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
$reader->{run}->pump_nb() until $reader->{stdout} =~ /reader-done/ || time() > $deadline;
like($reader->{stderr}, qr/canceling statement due to user request/, 'pg_cancel_backend interrupts the waiting reader');
$reader->{stdout} = '';
$reader->{stderr} = '';
is($reader->query('SELECT 1'), '1', 'and the session is usable');

# Another reader waits: pg_terminate_backend ends it.
my $victim = $node->background_psql('postgres', on_error_stop => 0);
my $victim_pid = $victim->query_safe('SELECT pg_backend_pid()');
$victim->{stdin} .= "SELECT count(*) FROM n1_info;\n";
$victim->{run}->pump_nb();
ok(wait_waiting($victim_pid), 'a second reader waits for the lock');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($victim_pid)");
ok($node->poll_query_until('postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $victim_pid"),
	'pg_terminate_backend ends it');
$victim->{run}->kill_kill;

# A statement that makes a burst waits to publish it: cancel works.
my $publisher = $node->background_psql('postgres', on_error_stop => 0);
$publisher->set_query_timer_restart();
my $publisher_pid = $publisher->query_safe('SELECT pg_backend_pid()');
$publisher->query_safe(q{SET n1detect.max_gap = '1h'});
$publisher->{stdin} .= "SELECT 1 FROM authors WHERE id = 1 AND id <> 77 AND id <> 78;\n" x 5 . "\\echo publisher-done\n";
$publisher->{run}->pump_nb();
ok(wait_waiting($publisher_pid), 'a session whose statement makes a burst waits for the lock');
$node->safe_psql('postgres', "SELECT pg_cancel_backend($publisher_pid)");
$deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
$publisher->{run}->pump_nb() until $publisher->{stdout} =~ /publisher-done/ || time() > $deadline;
like($publisher->{stderr}, qr/canceling statement due to user request/, 'pg_cancel_backend interrupts it');
$publisher->{stdout} = '';
$publisher->{stderr} = '';
is($publisher->query('SELECT 1'), '1', 'and the session is usable');

# A session whose COMMIT ends a burst waits to record it: terminate works.
$committer->{stdin} .= "COMMIT;\n";
$committer->{run}->pump_nb();
ok(wait_waiting($committer_pid), 'a session whose COMMIT records a burst waits for the lock');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($committer_pid)");
ok($node->poll_query_until('postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $committer_pid"),
	'pg_terminate_backend ends it');
$committer->{run}->kill_kill;

kill 'CONT', $stalled_pid;
$stalled->query_safe('SELECT 1');
is($node->safe_psql('postgres', q{SELECT bursts, calls FROM n1_offenders WHERE kind = 'n_plus_one'}), '3|19',
	'once resumed, the stopped backend records its burst');
$stalled->quit;
$reader->quit;
$publisher->quit;

N1Test::server_survived($node, $postmaster, 'stalled backends');
$node->stop;
done_testing();
