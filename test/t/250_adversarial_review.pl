# A fresh adversarial review of issue 7's "Done when" (fast_count in odd
# contexts and on odd relations, statements run as another user inside
# SECURITY DEFINER functions, parameter samples across database encodings,
# the stats file replaced by something that is not a regular file), as an
# ordinary role unless noted.  Every case asserts a clean error or the right
# answer, and every group that the server survived.
use strict;
use warnings;
use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use N1Test;

my $node = N1Test::new_node('adv_review');
N1Test::create_schema($node);
my $role = N1Test::create_plain_role($node);
my $postmaster = N1Test::postmaster_pid($node);

$node->safe_psql('postgres', qq{
	CREATE TABLE secret(id int, ssn text);
	INSERT INTO secret SELECT g, 'ssn-' || g FROM generate_series(1, 100) g;
	CREATE TABLE pub(x text);
	GRANT SELECT ON pub TO $role;
	CREATE TABLE nums(a int, b text);
	INSERT INTO nums SELECT g, 'b' || (g % 10) FROM generate_series(1, 20000) g;
	ANALYZE nums;
	GRANT SELECT ON nums TO $role;
	CREATE SEQUENCE sq;
	CREATE INDEX nums_a ON nums(a);
	CREATE TYPE comp AS (a int);
	CREATE TABLE parted(a int) PARTITION BY RANGE (a);
	GRANT SELECT ON parted TO $role;
	CREATE MATERIALIZED VIEW unpopulated AS SELECT 1 AS a WITH NO DATA;
	GRANT SELECT ON unpopulated TO $role;
	-- a definer function reading what the caller cannot, and passing it as
	-- parameters of a query on a table the caller can read
	CREATE FUNCTION definer_loop() RETURNS int LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = public AS \$\$
	DECLARE r record;
	BEGIN
		FOR r IN SELECT ssn FROM secret WHERE id <= 8 ORDER BY id LOOP
			PERFORM 1 FROM pub WHERE x = r.ssn;
		END LOOP;
		RETURN 1;
	END\$\$;
	GRANT EXECUTE ON FUNCTION definer_loop() TO $role;
	-- exact counts, however loaded the machine: no sample stopped by the budget
	ALTER ROLE $role SET n1detect.fast_count_budget = '5min';
});

# psql as the plain role: (stdout, stderr) of one script.
sub as_plain
{
	my ($sql) = @_;
	my ($out, $err) = ('', '');
	$node->psql('postgres', $sql, stdout => \$out, stderr => \$err,
		on_error_stop => 0, extra_params => [ '-U', $role, '-v', 'VERBOSITY=terse' ]);
	return ($out, $err);
}

# ---------------------------------------------------------------------------
# fast_count on relations of other kinds, and in odd contexts
# ---------------------------------------------------------------------------
for my $case (
	[ 'sq', qr/"sq" is not a table/ ],
	[ 'nums_a', qr/"nums_a" is not a table/ ],
	[ 'comp', qr/"comp" is not a table/ ],
	[ 'unpopulated', qr/has not been populated/ ],
	[ "(SELECT reltoastrelid FROM pg_class WHERE relname = 'secret')::regclass", qr/is not a table/ ])
{
	my ($rel, $want) = @$case;
	my $arg = $rel =~ /^\(/ ? $rel : "'$rel'";
	my (undef, $err) = as_plain("SELECT fast_count($arg)");
	like($err, $want, "fast_count($rel): a clean error");
}
my ($out, $err) = as_plain("SELECT fast_count('parted'), fast_count('parted', 'a > 1')");
is($out, '0|0', 'a partitioned table without partitions counts 0');

# in a CHECK constraint, a column default, a trigger, a deferred constraint
# trigger (it runs inside COMMIT), a cursor WITH HOLD (materialized at
# COMMIT), a SCROLL cursor fetched backward, a prepared statement after the
# table changed, EXPLAIN ANALYZE
($out, $err) = as_plain(q{
	CREATE TABLE ck(a int CHECK (fast_count('nums', 'a > 0') >= 0),
		c bigint DEFAULT fast_count('nums', 'a > 10'));
	INSERT INTO ck(a) VALUES (1), (2);
	SELECT count(*), min(c), max(c) FROM ck;
	CREATE FUNCTION trg() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN NEW.c := fast_count_query('SELECT DISTINCT b FROM nums'); RETURN NEW; END$$;
	CREATE TRIGGER t BEFORE INSERT ON ck FOR EACH ROW EXECUTE FUNCTION trg();
	CREATE FUNCTION trg2() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN PERFORM fast_count('nums', 'a > ' || NEW.a); RETURN NULL; END$$;
	CREATE CONSTRAINT TRIGGER t2 AFTER INSERT ON ck DEFERRABLE INITIALLY DEFERRED
		FOR EACH ROW EXECUTE FUNCTION trg2();
	BEGIN; INSERT INTO ck(a) VALUES (3); COMMIT;
	SELECT c FROM ck WHERE a = 3;
	BEGIN;
	DECLARE hc CURSOR WITH HOLD FOR
		SELECT g, fast_count('nums', 'a > ' || g) FROM generate_series(1, 3) g;
	COMMIT;
	FETCH ALL FROM hc;
	CLOSE hc;
	BEGIN;
	DECLARE sc SCROLL CURSOR FOR
		SELECT g, fast_count('nums', 'a > ' || g) FROM generate_series(1, 3) g;
	FETCH ALL FROM sc;
	FETCH BACKWARD 2 FROM sc;
	ROLLBACK;
	CREATE TABLE mine AS SELECT * FROM nums;
	PREPARE ps AS SELECT fast_count('mine', 'a > 5'), fast_count_query('SELECT b FROM mine WHERE a > 5');
	EXECUTE ps;
	ALTER TABLE mine DROP COLUMN b;
	EXECUTE ps;
	ALTER TABLE mine ADD COLUMN b text;
	EXECUTE ps;
	EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF, BUFFERS OFF) SELECT fast_count('nums', 'a > 5');
	SELECT 'end';
});
is($out, join("\n", '2|19990|19990', '10', '1|19999', '2|19998', '3|19997',
		'1|19999', '2|19998', '3|19997', '3|19997', '2|19998',
		'19995|19995', '19995|19995',
		# 18 shows fractional row counts
		'Result (actual rows=' . ($node->pg_version >= 18 ? '1.00' : '1') . ' loops=1)', 'end'),
	'fast_count in constraints, defaults, triggers, cursors, prepared statements, EXPLAIN ANALYZE');
like($err, qr/column "b" does not exist/, 'the prepared statement whose filter lost its column: a clean error');

# parallel query: fast_count is PARALLEL UNSAFE; called through a function
# that lies about it, it refuses to run in the parallel part
($out, $err) = as_plain(q{
	SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0;
	SET min_parallel_table_scan_size = 0; SET force_parallel_mode = on;
	SELECT count(*), fast_count('nums') FROM nums;
	CREATE FUNCTION liar(r regclass) RETURNS bigint LANGUAGE plpgsql PARALLEL SAFE
		AS $$BEGIN RETURN fast_count(r, 'a > 5'); END$$;
	SELECT count(*) FROM nums WHERE liar('nums') > 0;
	SELECT 'end';
});
is($out, "20000|20000\nend", 'parallel query: the right count, or');
like($err, qr/fast_count cannot run in a parallel worker/, '... a clean error in a parallel worker');

# recursion through filters ends at the stack limit, not in a crash
($out, $err) = as_plain(q{
	SET n1detect.fast_count_budget = '1min';
	CREATE FUNCTION rec(n int) RETURNS bigint LANGUAGE plpgsql STABLE AS $$
	BEGIN
		IF n = 0 THEN RETURN 0; END IF;
		RETURN fast_count('nums', 'rec(' || (n - 1) || ') >= 0');
	END$$;
	SELECT rec(100000);
});
like($err, qr/stack depth limit exceeded/, 'fast_count recursing through its filter: stack depth limit');

# deeply nested filters: the parser's and planner's limits, cleanly
for my $filter (q{repeat('(', 60000) || 'true' || repeat(')', 60000)},
	q{repeat('NOT ', 30000) || 'true'}, q{'a > ' || repeat('1+', 60000) || '1'})
{
	(undef, $err) = as_plain("SELECT fast_count('nums', $filter)");
	like($err, qr/memory exhausted|stack depth limit exceeded/, "deeply nested filter $filter: a clean error");
}
N1Test::server_survived($node, $postmaster, 'fast_count in odd contexts');

# A table rewritten (ALTER COLUMN TYPE) while fast_count waits for its lock:
# the rewritten rows are new to a snapshot taken before the wait, so a count
# with the calling statement's snapshot said "exactly 0" (fast_count is
# VOLATILE: like a volatile function's statements, it counts with a snapshot
# taken once the relation is locked, as a SELECT naming the table would).
$node->safe_psql('postgres', qq{
	CREATE TABLE rewritten AS SELECT g AS a FROM generate_series(1, 20000) g;
	ANALYZE rewritten;
	ALTER TABLE rewritten OWNER TO $role;
});
my $locker = $node->background_psql('postgres', extra_params => [ '-U', $role ]);
my $waiter = $node->background_psql('postgres', extra_params => [ '-U', $role ]);
$locker->query_safe('BEGIN; LOCK TABLE rewritten IN ACCESS EXCLUSIVE MODE;');
$waiter->query_until(qr/sent/, qq{\\echo sent\nSELECT fast_count('rewritten', 'a::int > 10'), fast_count_query('SELECT a FROM rewritten WHERE a::int > 5');\n});
$node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM pg_stat_activity
	WHERE wait_event_type = 'Lock' AND query LIKE 'SELECT fast_count(''rewritten''%'})
  or die 'fast_count does not wait for the lock';
$locker->query_safe('ALTER TABLE rewritten ALTER COLUMN a TYPE text; COMMIT;');
like($waiter->query_safe(q{SELECT 'done'}), qr/^19990\|19995\ndone$/m,
	'a table rewritten while fast_count waited for it: counted as it is now');
$locker->quit;
$waiter->quit;
N1Test::server_survived($node, $postmaster, 'table rewritten during fast_count');

# ---------------------------------------------------------------------------
# Statements run as another user inside a SECURITY DEFINER function
# ---------------------------------------------------------------------------
# With track = all the definer's statements are recorded in the caller's
# slot.  Their parameters are values the caller cannot read (secret.ssn):
# neither their hash (easily inverted for short values by hashing guesses)
# nor samples of them may reach the caller, as pg_stat_statements keeps a
# statement run inside a SECURITY DEFINER function with the definer.
$node->safe_psql('postgres', q{ALTER SYSTEM SET n1detect.track = 'all'; SELECT pg_reload_conf();});
$node->poll_query_until('postgres', q{SELECT current_setting('n1detect.track') = 'all'})
  or die 'track = all not applied';

my $caller = $node->background_psql('postgres', extra_params => [ '-U', $role ]);
$caller->query_safe(q{SELECT x FROM pub WHERE x = 'mine'});
$caller->query_safe(q{SELECT definer_loop()});
is($caller->query_safe(q{SELECT nesting_level, count(*), count(param_hash) FROM n1_backend_statements
	WHERE pid = pg_backend_pid() GROUP BY 1 ORDER BY 1}), "0|1|1\n1|9|0",
	'n1_backend_statements: no parameter hash of the statements run as the definer (own statements keep theirs)');
is($node->safe_psql('postgres', qq{SELECT count(param_hash) FROM n1_backend_statements
	WHERE userid = '$role'::regrole AND nesting_level = 1}), '9', 'a superuser still sees them');
$caller->quit;

{
	# Repro: a burst that crosses n1detect.min_calls in the caller's own
	# function goes on inside the definer's, whose parameters (secret.ssn)
	# are then sampled into the caller's row of n1_offenders.
	$node->safe_psql('postgres', 'SELECT n1_reset()');
	($out, $err) = as_plain(q{
		CREATE FUNCTION own_loop() RETURNS int LANGUAGE plpgsql AS $$
		DECLARE r record;
		BEGIN
			FOR r IN SELECT 'a' || g AS ssn FROM generate_series(1, 6) g LOOP
				PERFORM 1 FROM pub WHERE x = r.ssn;
			END LOOP;
			RETURN 1;
		END$$;
		SELECT own_loop() + definer_loop();
		SELECT count(*) FROM n1_offenders
		WHERE array_to_string(sample_params, ' ') LIKE '%ssn-%';
	});
	is($out, "2\n0", "the definer's parameters are not sampled into the caller's burst");
}
$node->safe_psql('postgres', q{ALTER SYSTEM RESET n1detect.track; SELECT pg_reload_conf();});
N1Test::server_survived($node, $postmaster, 'SECURITY DEFINER');

# ---------------------------------------------------------------------------
# Parameter samples recorded in a LATIN1 database, read from a UTF-8 one
# ---------------------------------------------------------------------------
# Samples were sent as they were stored: with a client encoding other than
# the database's, reading n1_offenders failed ("invalid byte sequence for
# encoding UTF8") for the monitoring roles; bytes invalid in the reader's
# encoding now show as '?', as in query texts (test 234).
$node->safe_psql('postgres', q{CREATE DATABASE lat ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'
	TEMPLATE template0});
$node->safe_psql('lat', "CREATE EXTENSION n1detect; CREATE TABLE words(id int, w text);
	GRANT SELECT ON words TO $role; SELECT n1_reset();");
my $latin = "SET client_encoding = 'LATIN1';\nBEGIN;\nSELECT id FROM words WHERE id <= 6;\n";
$latin .= "SELECT id FROM words WHERE w = 'caf\xe9$_';\n" for 1 .. 6;
$node->psql('lat', $latin . "COMMIT;\n", extra_params => [ '-U', $role ]);
my ($ret, $samples, $stderr) = $node->psql('postgres',
	q{SET client_encoding = 'LATIN1'; SELECT array_to_string(sample_params, ' ') FROM n1_offenders});
is($ret, 0, 'samples of a LATIN1 database read from a UTF-8 one, sent as LATIN1: no error') or diag($stderr);
like($samples, qr/'caf\?\d'/, 'the bytes invalid in UTF-8 show as ?');
N1Test::server_survived($node, $postmaster, 'samples across encodings');

# ---------------------------------------------------------------------------
# The stats file replaced by a FIFO (the data directory's owner only)
# ---------------------------------------------------------------------------
# Opening a FIFO blocks until a writer comes: at start the postmaster hung
# there for good (pg_ctl stop ignored), at shutdown on n1detect.stat.tmp.
# Now the first is a LOG line (nothing loaded), and the second is replaced
# by a new file.
my $stat_dir = $node->data_dir . '/pg_stat';
{
	# an unfixed server would hang: give up on it after 30 s, not 180
	local $ENV{PGCTLTIMEOUT} = 30;

	$node->stop;
	unlink "$stat_dir/n1detect.stat";
	POSIX::mkfifo("$stat_dir/n1detect.stat", 0600) or die "mkfifo: $!";
	my $started = $node->start(fail_ok => 1);
	ok($started, 'the server starts with a FIFO in place of the stats file');
	if (!$started)
	{
		# unblock the postmaster: open the FIFO for writing
		open(my $w, '>', "$stat_dir/n1detect.stat");
		close $w if $w;
		$node->stop('immediate');
		$node->start;
	}
	like(slurp_file($node->logfile), qr/ignoring n1detect file "pg_stat\/n1detect.stat": it is not a regular file/,
		'the FIFO is reported');
	$postmaster = N1Test::postmaster_pid($node);
	N1Test::server_survived($node, $postmaster, 'FIFO at start');

	$node->safe_psql('postgres', N1Test::n_plus_one_sql(list_size => 6));
	unlink "$stat_dir/n1detect.stat";
	POSIX::mkfifo("$stat_dir/n1detect.stat.tmp", 0600) or die "mkfifo: $!";
	my $rc = $node->stop('fast', fail_ok => 1);
	ok($rc, 'the server stops with a FIFO in place of the temporary stats file');
	if (!$rc)
	{
		open(my $r, '<', "$stat_dir/n1detect.stat.tmp");
		close $r if $r;
		$node->stop('immediate', fail_ok => 1);
	}
	ok(-f "$stat_dir/n1detect.stat" && !-p "$stat_dir/n1detect.stat", 'saved to a new regular file');
	if (-p "$stat_dir/n1detect.stat")
	{
		unlink "$stat_dir/n1detect.stat";
	}
	unlink "$stat_dir/n1detect.stat.tmp";
	$node->start;
	is($node->safe_psql('postgres', 'SELECT count(*) FROM n1_offenders'), '1', 'and loaded at the next start');
	$postmaster = N1Test::postmaster_pid($node);
	N1Test::server_survived($node, $postmaster, 'FIFO at shutdown');
}

done_testing();
