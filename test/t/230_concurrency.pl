# Concurrency: sessions running N+1 units while others read the views,
# reset them, and churn the table past n1detect.max_offenders; a reader
# stopped in the middle of reading the slots, a cursor over n1_offenders left
# open, a writer stopped in the middle of writing its slot.  Asserts that
# every read is consistent (calls >= max_calls >= max_distinct_params,
# at least min_calls calls per burst), that the bursts seen never go down
# while nothing resets or evicts (a burst moving from its slot to the table
# is never counted twice nor missed), that each unit run is counted once
# (sum of bursts = units run, less what eviction removed, reported in
# dealloc), and that nothing blocks (every session ends; hangs are caught
# by the suite's default timeout, nothing is timed).
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use N1Test;

my $node = N1Test::new_node('concurrency',
	conf => "n1detect.max_offenders = 100\nmax_connections = 30\n");
N1Test::create_schema($node);
my $postmaster = N1Test::postmaster_pid($node);
my $timeout = $PostgreSQL::Test::Utils::timeout_default;
my ($ret, $out, $err) = $node->psql('postgres', 'SHOW n1detect.debug_stop_in_slot_write');
my $can_stop = $ret == 0;

# One N+1 unit whose child query has its own id per shape (an IN list of
# `shape` zeros): one burst of 5 to 7 calls.
sub unit
{
	my ($shape, $calls) = @_;
	# (its first element an expression: 18 would squash a list of constants into one query id)
	my $zeros = join(', ', '0 + 0', (0) x ($shape - 1));
	my $sql = "BEGIN;\nSELECT id, author_id FROM books WHERE id BETWEEN 1 AND 10 ORDER BY id;\n";
	$sql .= "SELECT name FROM authors WHERE id = $_ AND id NOT IN ($zeros);\n" for 1 .. $calls;
	return $sql . "COMMIT;\n";
}

# A psql process running $sql in the background.
sub start_psql
{
	my ($sql) = @_;
	my %p = (out => '', err => '');
	$p{handle} = IPC::Run::start(
		[ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres') ],
		'<', \$sql, '>', \$p{out}, '2>', \$p{err}, IPC::Run::timeout($timeout));
	return \%p;
}

sub finish_all
{
	my ($what, @procs) = @_;
	my $i = 0;
	for my $p (@procs)
	{
		$i++;
		my $ok = eval { $p->{handle}->finish };
		ok($ok && !$@, "$what $i ended without error") or diag("error: $@ $p->{err}");
	}
	return;
}

# Writers: $units N+1 units each, over shapes from $first, cycling through $shapes.
sub writers
{
	my (%o) = @_;
	my @procs;
	for my $w (0 .. $o{writers} - 1)
	{
		my $sql = "SET n1detect.max_gap = '1h';\n";
		$sql .= unit(($w * $o{units} + $_) % $o{shapes} + 1, 5 + ($_ % 3)) for 0 .. $o{units} - 1;
		push @procs, start_psql($sql);
	}
	return @procs;
}

# Readers: $loops reads of every view, each checked; with monotonic, the
# bursts seen must never go down.
sub readers
{
	my (%o) = @_;
	my $monotonic = $o{monotonic} ? 'true' : 'false';
	my $sql = qq{DO \$\$
DECLARE prev bigint := 0; cur bigint; bad bigint;
BEGIN
  FOR i IN 1 .. $o{loops} LOOP
    SELECT count(*) FILTER (WHERE calls < max_calls OR max_calls < max_distinct_params
                                  OR max_calls < 5 OR calls < 5 * bursts),
           coalesce(sum(bursts), 0)
      INTO bad, cur FROM n1_offenders;
    IF bad > 0 THEN RAISE EXCEPTION 'inconsistent n1_offenders rows: %', bad; END IF;
    IF $monotonic AND cur < prev THEN
      RAISE EXCEPTION 'bursts seen went down from % to %', prev, cur;
    END IF;
    prev := cur;
    SELECT count(*) INTO bad FROM n1_bursts WHERE calls < distinct_params OR calls < 5;
    IF bad > 0 THEN RAISE EXCEPTION 'inconsistent n1_bursts rows: %', bad; END IF;
    SELECT count(*) INTO bad FROM n1_info WHERE offenders > max_offenders;
    IF bad > 0 THEN RAISE EXCEPTION 'n1_info: more offenders than max_offenders'; END IF;
    PERFORM count(*) FROM n1_backend_statements;
  END LOOP;
END \$\$;
};
	return map { start_psql($sql) } 1 .. $o{readers};
}

sub wait_stopped
{
	my ($pid) = @_;
	for (1 .. 10 * $timeout)
	{
		open(my $fh, '<', "/proc/$pid/stat") or return 0;
		my $stat = <$fh>;
		close $fh;
		return 1 if $stat =~ /^\d+ \(.*\) T /;
		select undef, undef, undef, 0.1;
	}
	return 0;
}

# ---- 1. bursts folding while readers read; stalled reader and writer ----
my $cursor = $node->background_psql('postgres');
$cursor->set_query_timer_restart();
$cursor->query_safe("BEGIN; DECLARE c CURSOR FOR SELECT * FROM n1_offenders; FETCH 1 FROM c;");

my ($stalled_writer, $stalled_reader);
if ($can_stop)
{
	$stalled_writer = $node->background_psql('postgres');
	$stalled_writer->set_query_timer_restart();
	$stalled_writer->{pid} = $stalled_writer->query_safe('SELECT pg_backend_pid()');
	$stalled_writer->query_safe(q{SET n1detect.debug_stop_in_slot_write = 'event'});
	$stalled_writer->{stdin} .= "SELECT count(*) FROM authors;\n";
	$stalled_writer->{run}->pump_nb();
	ok(wait_stopped($stalled_writer->{pid}), 'a writer is stopped in the middle of a slot write');

	$stalled_reader = $node->background_psql('postgres');
	$stalled_reader->set_query_timer_restart();
	$stalled_reader->{pid} = $stalled_reader->query_safe('SELECT pg_backend_pid()');
	# its own slot (claimed by a statement on a table) is one it will read
	$stalled_reader->query_safe('SELECT count(*) FROM authors');
	$stalled_reader->query_safe(q{SET n1detect.debug_stop_in_slot_write = 'read'});
	$stalled_reader->{stdin} .= "SELECT count(*) >= 0 FROM n1_offenders;\n";
	$stalled_reader->{run}->pump_nb();
	ok(wait_stopped($stalled_reader->{pid}), 'a reader is stopped in the middle of reading a slot');
}

my @w = writers(writers => 3, units => 100, shapes => 20);
my @r = readers(readers => 2, loops => 60, monotonic => 1);
finish_all('phase 1 writer', @w);
finish_all('phase 1 reader (consistent, never went down)', @r);
if ($can_stop)
{
	is($node->safe_psql('postgres', 'SELECT slots_skipped > 0 FROM n1_info'), 't',
		'readers skipped the busy slot and said so');
	kill 'CONT', $stalled_writer->{pid}, $stalled_reader->{pid};
	like($stalled_writer->query_safe('SELECT 1'), qr/^100\n1$/, 'the stopped writer resumes');
	like($stalled_reader->query_safe('SELECT 1'), qr/^t\n1$/, 'the stopped reader resumes');
}
like($cursor->query_safe('FETCH ALL FROM c; COMMIT;'), qr/n_plus_one|^$/, 'the cursor left open reads on');
is($node->safe_psql('postgres', q{SELECT sum(bursts), min(bursts) > 0, count(*) FROM n1_offenders}),
	'300|t|20', 'each of the 300 units is counted once, in its shape\'s row');
is($node->safe_psql('postgres', q{SELECT bursts_total, dealloc FROM n1_info}), '300|0',
	'n1_info: 300 bursts, no eviction');
is($node->safe_psql('postgres', q{SELECT count(*) FROM n1_bursts WHERE NOT in_progress}), '300',
	'n1_bursts: each burst once');
is($node->safe_psql('postgres', q{SELECT units >= 300, bursts_dropped, queries_evicted FROM n1_info}),
	't|0|0', 'n1_info: the detector\'s own counters');

# ---- 2. n1_reset() and eviction churn while writers write and readers read ----
my $resetter = start_psql(q{DO $$BEGIN
	FOR i IN 1 .. 15 LOOP PERFORM n1_reset(); PERFORM pg_sleep(0.02); END LOOP; END$$;});
@w = writers(writers => 3, units => 60, shapes => 150);
@r = readers(readers => 2, loops => 150, monotonic => 0);
finish_all('phase 2 resetter', $resetter);
finish_all('phase 2 writer', @w);
finish_all('phase 2 reader (consistent)', @r);
is($node->safe_psql('postgres', q{SELECT count(*) FROM n1_offenders
	WHERE calls < max_calls OR max_calls < max_distinct_params OR max_calls < 5 OR calls < 5 * bursts}),
	'0', 'after resets and eviction: every row consistent');

# ---- 3. eviction churn alone: counted once, less what eviction reports ----
$node->safe_psql('postgres', 'SELECT n1_reset()');
@w = writers(writers => 3, units => 60, shapes => 150);
@r = readers(readers => 1, loops => 100, monotonic => 0);
finish_all('phase 3 writer', @w);
finish_all('phase 3 reader (consistent)', @r);
my ($sum, $rows) = split /\|/, $node->safe_psql('postgres', 'SELECT sum(bursts), count(*) FROM n1_offenders');
my ($total, $dealloc, $offenders) = split /\|/,
	$node->safe_psql('postgres', 'SELECT bursts_total, dealloc, offenders FROM n1_info');
is($total, 180, 'n1_info: each of the 180 units recorded once');
cmp_ok($dealloc, '>', 0, '150 shapes in 100 rows: evictions are reported in dealloc');
cmp_ok($sum, '<=', 180, 'rows hold no more bursts than were recorded (the rest went with evicted rows)');
cmp_ok($sum, '>=', $rows, 'every row holds at least one burst');
cmp_ok($offenders, '<=', 100, 'the table never exceeds max_offenders');
is($node->safe_psql('postgres', q{SELECT count(*) FROM n1_bursts WHERE NOT in_progress}), '180',
	'n1_bursts: each burst once');

$cursor->quit;
if ($can_stop)
{
	$stalled_writer->quit;
	$stalled_reader->quit;
}
N1Test::server_survived($node, $postmaster, 'concurrency');
$node->stop;
done_testing();
