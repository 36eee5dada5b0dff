# Adversarial fast_count: every repro of issue 7 that concerns fast_count,
# and the classes of input around them, run as an unprivileged role.  Each
# case asserts a clean error (SQLSTATE and message) or the right answer, and
# each group ends with N1Test::server_survived (no backend died, same
# postmaster, server answers).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use N1Test;

# log_lock_waits: a lock wait logs while fast_count's error context is set
my $node = N1Test::new_node('adversarial_fc',
	conf => "log_lock_waits = on\ndeadlock_timeout = '100ms'\n");
my $pm = N1Test::postmaster_pid($node);
my $role = N1Test::create_plain_role($node);

$node->safe_psql('postgres', qq{
	CREATE EXTENSION n1detect;
	CREATE TABLE secret (id int, ssn text);
	INSERT INTO secret SELECT g, 'ssn-' || (g % 50) FROM generate_series(1, 20000) g;
	ANALYZE secret;
	CREATE TABLE colpriv (id int, hidden int);
	INSERT INTO colpriv SELECT g, g % 7 FROM generate_series(1, 1000) g;
	ANALYZE colpriv;
	GRANT SELECT (id) ON colpriv TO $role;
	CREATE TABLE rls (id int, owner_id int);
	INSERT INTO rls SELECT g, g % 4 FROM generate_series(1, 4000) g;
	ANALYZE rls;
	GRANT SELECT ON rls TO $role;
	ALTER TABLE rls ENABLE ROW LEVEL SECURITY;
	CREATE POLICY mine ON rls FOR SELECT TO $role USING (owner_id = 1);
	CREATE TABLE t_locked (id int);
	GRANT SELECT ON t_locked TO $role;
});

# As the plain role: the answer (or its errors, so that a failure shows
# them and the remaining cases still run), or (ok, stdout, stderr) with
# SQLSTATEs.
sub answer
{
	my ($sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', $sql,
		extra_params => [ '-U', $role, '-v', 'ON_ERROR_STOP=1' ], timeout => 120);
	return $ret == 0 ? $out : "failed ($ret): $err";
}

sub run
{
	my ($sql, %opts) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n$sql",
		extra_params => [ '-U', $role ], timeout => $opts{timeout} // 120);
	return ($ret, $out, $err);
}

# Fails with that SQLSTATE and message (a regexp), and nothing else.
sub fails
{
	my ($sql, $state, $msg, $name) = @_;
	my ($ret, $out, $err) = run($sql);
	like($err, qr/ERROR:  $state: $msg/, $name);
	unlike($err, qr/server closed|terminating connection/, "$name: no crash");
	return;
}

answer(q{
	CREATE TABLE tt (a text, id int);
	INSERT INTO tt SELECT g::text, g FROM generate_series(1, 1000) g;
	ANALYZE tt;
	CREATE TABLE big AS SELECT g AS id, g % 100 AS a FROM generate_series(1, 3000) g;
	CREATE TABLE tiny AS SELECT g AS id FROM generate_series(1, 50) g;
	ANALYZE big, tiny;
	CREATE TABLE race AS SELECT g % 5000 AS a FROM generate_series(1, 20000) g;
	ANALYZE race;
});

# ---------------------------------------------------------------------------
# 1. error_context_stack after a successful call: the next notice, error or
# log line in the same statement must work.
is(answer(q{
	CREATE TEMP TABLE tmp1 (a int);
	DO $$DECLARE n bigint; BEGIN n := fast_count('pg_temp.tmp1'); RAISE NOTICE 'n=%', n; END$$;
	SELECT 'alive'}), 'alive', '1: notice after fast_count in a DO block');
is(answer(q{SELECT fast_count('tt'), fast_count('tt', 'a = ''x''')}), '1000|0',
	'1: two calls in one statement');
for my $form (
	q{fast_count('tt')}, q{fast_count('tt', 'id > 5')},
	q{fast_count_query('SELECT * FROM tt WHERE id > 5')},
	q{fast_count_query('SELECT DISTINCT a FROM tt')},
	q{(fast_count_info('tt', 'id > 5')).estimate})
{
	is(answer(qq{DO \$\$DECLARE n bigint; BEGIN n := $form; RAISE NOTICE 'n=%', n;
		BEGIN PERFORM 1/0; EXCEPTION WHEN division_by_zero THEN RAISE NOTICE 'caught'; END; END\$\$;
		SELECT 'alive'}), 'alive', "1: notice and a caught error after $form");
	# an error inside fast_count, caught, then a notice and another error
	my ($ret, $out, $err) = run(qq{DO \$\$BEGIN
		BEGIN PERFORM fast_count_query('SELECT * FROM secret WHERE id = 1'); EXCEPTION WHEN insufficient_privilege THEN RAISE NOTICE 'denied'; END;
		PERFORM $form; RAISE NOTICE 'after'; PERFORM 1/0; END\$\$});
	like($err, qr/NOTICE:  00000: denied.*NOTICE:  00000: after.*ERROR:  22012: division by zero/s,
		"1: error paths around $form");
}
# a lock wait logged (log_lock_waits) in a statement that ran fast_count
my $locker = $node->background_psql('postgres');
$locker->query_safe('BEGIN; LOCK TABLE t_locked IN ACCESS EXCLUSIVE MODE;');
my $waiter = $node->background_psql('postgres', on_error_stop => 0, extra_params => [ '-U', $role ]);
$waiter->query_until(qr/started/,
	"\\echo started\nSELECT x, fast_count(x) FROM (VALUES ('tt'::regclass), ('t_locked'::regclass)) v(x);\n");
$node->poll_query_until('postgres',
	"SELECT count(*) > 0 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND usename = '$role'");
$node->wait_for_log(qr/still waiting for AccessShareLock/);
$locker->query_safe('COMMIT');
is($waiter->query('SELECT 1'), "tt|1000\nt_locked|0\n1", '1: a lock wait logged during the statement');
$waiter->quit;
$locker->quit;
N1Test::server_survived($node, $pm, 'error context');

# ---------------------------------------------------------------------------
# 2. The budget timer: no stray cancel when a count ends as the timer fires
# (budgets around the count's duration), nested calls never move or disarm
# the outer budget.
is(answer(q{
	DO $$BEGIN
	  FOR i IN 1..200 LOOP
	    PERFORM set_config('n1detect.fast_count_budget', (1 + i % 25)::text, true);
	    PERFORM fast_count_query('SELECT DISTINCT a FROM race');
	    PERFORM count(*) FROM tiny;
	    PERFORM fast_count('race', 'a < 2500');
	    PERFORM count(*) FROM tiny;
	  END LOOP;
	END$$;
	SELECT count(*) FROM race}), '20000', '2: 200 counts and samples ending around the budget, no stray cancel');
answer(q{
	CREATE FUNCTION inner_fc(int) RETURNS bigint STABLE LANGUAGE plpgsql AS $$
	BEGIN RETURN fast_count_query('SELECT * FROM tiny a JOIN tiny b USING (id)'); END$$;
	CREATE FUNCTION slow(int) RETURNS bool STABLE LANGUAGE plpgsql AS $$
	BEGIN PERFORM pg_sleep(0.002); RETURN true; END$$;
});
is(answer(q{
	SET n1detect.fast_count_budget = 50; SET statement_timeout = '60s';
	SELECT method, note LIKE '%did not fit%' FROM fast_count_query_info(
	  'SELECT * FROM big x JOIN big y ON x.id = y.id + 0 WHERE inner_fc(x.id) > 0')}),
	'planner|t', '2: nested exact counts do not disarm the outer budget');
is(answer(q{
	SET n1detect.fast_count_budget = 50; SET statement_timeout = '60s';
	SELECT method, note LIKE '%budget%' FROM fast_count_info('big', 'slow(id)')}),
	'planner|t', '2: a filter slow per row is stopped by the budget (sample batch cancelled)');
is(answer(q{
	SET n1detect.fast_count_budget = 50; SET statement_timeout = '60s';
	SELECT method FROM fast_count_query_info(
	  'SELECT * FROM big x JOIN tiny t ON x.id = t.id + 0 WHERE slow(x.id)')}),
	'planner', '2: an exact count slow per row is stopped by the budget');
is(answer(q{
	SET n1detect.fast_count_budget = '30s';
	SELECT fast_count_query('SELECT * FROM tiny x JOIN big y ON x.id = y.id + 0 WHERE inner_fc(x.id) > 0')}),
	'50', '2: with room, nested calls give the exact answer');

# cancel and statement_timeout at every phase are the caller's, never swallowed
my @phases = (
	[ 'exact count', q{SELECT fast_count_query('SELECT * FROM big x, big y, big z')} ],
	[ 'sample batch', q{SELECT fast_count('big', 'slow(id)')} ],
	[ 'nested call', q{SELECT fast_count_query('SELECT * FROM big x, big y WHERE inner_fc(x.id) > 0')} ]);
for my $p (@phases)
{
	my ($what, $sql) = @$p;
	my ($ret, $out, $err) = run("SET n1detect.fast_count_budget = '60s'; SET statement_timeout = '300ms'; $sql;
		RESET statement_timeout; SELECT 'usable'");
	like($err, qr/ERROR:  57014: canceling statement due to statement timeout/, "2: statement_timeout during $what");

	my $bg = $node->background_psql('postgres', on_error_stop => 0, extra_params => [ '-U', $role ]);
	$bg->query_safe("SET n1detect.fast_count_budget = '60s'");
	$bg->query_until(qr/started/, "\\echo started\n$sql;\n");
	$node->poll_query_until('postgres', qq{
		SELECT pg_cancel_backend(pid) FROM pg_stat_activity
		WHERE usename = '$role' AND state = 'active' AND query LIKE 'SELECT fast_count%'});
	my $one = $bg->query('SELECT 1');
	like($bg->{stderr}, qr/canceling statement due to user request/, "2: cancel during $what");
	$bg->{stderr} = '';
	is($one, '1', "2: session usable after a cancel during $what");
	is($bg->query('SELECT count(*) FROM big, tiny'), '150000', "2: no second cancel after $what");
	is($bg->{stderr}, '', "2: nothing on stderr after $what");
	$bg->quit;
}
N1Test::server_survived($node, $pm, 'budget');

# ---------------------------------------------------------------------------
# 3. The sampling method: only fast_count's own scans reach a sampler; a scan
# opened by a function in a filter, fetched in the same or another call, or a
# user's own query, is a clean error.
answer(q{
	CREATE FUNCTION opencur(int) RETURNS bool STABLE LANGUAGE plpgsql AS $$
	DECLARE c refcursor := 'fc_cur'; r record;
	BEGIN
	  IF NOT EXISTS (SELECT FROM pg_cursors WHERE name = 'fc_cur') THEN
	    OPEN c FOR SELECT * FROM big TABLESAMPLE fast_count_blocks(0);
	  END IF;
	  FETCH c INTO r;
	  RETURN true;
	END$$;
});
fails(q{BEGIN; SET n1detect.fast_count_budget = '10s';
	SELECT fast_count('big', 'opencur(id)'); SELECT fast_count('big', 'opencur(id)'); COMMIT},
	'0A000', 'tablesample method fast_count_blocks can only be used by fast_count',
	'3: a cursor on fast_count_blocks opened inside a filter');
answer(q{
	CREATE TABLE pp (id int) PARTITION BY RANGE (id);
	CREATE TABLE pp1 PARTITION OF pp FOR VALUES FROM (0) TO (1000);
	CREATE TABLE pp2 PARTITION OF pp FOR VALUES FROM (1000) TO (2000);
	INSERT INTO pp SELECT g FROM generate_series(0, 1999) g;
	CREATE FUNCTION opencur2(int) RETURNS bool STABLE LANGUAGE plpgsql AS $$
	DECLARE c refcursor := 'fc_cur2'; r record;
	BEGIN
	  IF $1 < 1000 AND NOT EXISTS (SELECT FROM pg_cursors WHERE name = 'fc_cur2') THEN
	    OPEN c FOR SELECT * FROM pp2 TABLESAMPLE fast_count_blocks(0);
	  END IF;
	  IF EXISTS (SELECT FROM pg_cursors WHERE name = 'fc_cur2') THEN
	    FETCH c INTO r;
	  END IF;
	  RETURN true;
	END$$;
});
fails(q{BEGIN; SET n1detect.fast_count_budget = '10s';
	SELECT fast_count('pp', 'opencur2(id)'); SELECT fast_count('pp', 'opencur2(id)'); COMMIT},
	'0A000', 'tablesample method fast_count_blocks can only be used by fast_count',
	'3: a cursor on a partition the same sampler has yet to read');
fails(q{SELECT count(*) FROM big TABLESAMPLE fast_count_blocks(0)},
	'0A000', 'tablesample method fast_count_blocks can only be used by fast_count', '3: a user\'s own query');
fails(q{SELECT fast_count('big', 'id IN (SELECT id FROM big TABLESAMPLE fast_count_blocks(0))')},
	'0A000', 'tablesample method fast_count_blocks can only be used by fast_count', '3: in a filter\'s subquery');
# nested samplers and cursors across calls
is(answer(q{SET n1detect.fast_count_budget = '30s';
	CREATE FUNCTION inner_sample(int) RETURNS bool STABLE LANGUAGE plpgsql AS $$
	BEGIN RETURN fast_count('big', 'a < 50') > 0; END$$;
	SELECT fast_count('tiny', 'inner_sample(id)')}), '50', '3: a sample inside a sample');
is(answer(q{BEGIN; SET LOCAL n1detect.fast_count_budget = '30s';
	DECLARE c CURSOR FOR SELECT fast_count('big', 'a < ' || g), fast_count_query('SELECT * FROM big WHERE a < ' || g)
	  FROM generate_series(10, 30, 10) g;
	FETCH 1 FROM c; SELECT fast_count('tiny', 'id > 10'); FETCH 2 FROM c; COMMIT}),
	"300|300\n40\n600|600\n900|900", '3: a cursor over fast_count fetched across other calls');
N1Test::server_survived($node, $pm, 'sampler');

# ---------------------------------------------------------------------------
# 4. Privileges on every path, planner fallback included (budget 1 ms), as
# count(*) and EXPLAIN would check them.
for my $budget ('1ms', '10s')
{
	for my $sql (q{SELECT fast_count('secret')}, q{SELECT fast_count('secret', 'ssn = ''x''')},
		q{SELECT estimate FROM fast_count_query_info('SELECT 1 FROM secret WHERE ssn = ''x'' LIMIT 100000000')},
		q{SELECT fast_count_query('SELECT * FROM secret s JOIN tt USING (id)')},
		q{SELECT fast_count_query('SELECT * FROM tt WHERE id IN (SELECT id FROM secret)')},
		q{SELECT fast_count_query('WITH s AS (SELECT * FROM secret) SELECT * FROM s, tt')})
	{
		fails("SET n1detect.fast_count_budget = '$budget'; $sql", '42501', 'permission denied for table secret',
			"4: budget $budget: $sql");
	}
}
# through an inlined SQL function and through the role's own view
answer(q{
	CREATE FUNCTION leak() RETURNS SETOF int STABLE LANGUAGE sql AS 'SELECT id FROM secret WHERE ssn = ''ssn-1''';
	CREATE VIEW leak_v AS SELECT * FROM secret;
});
for my $budget ('1ms', '10s')
{
	fails("SET n1detect.fast_count_budget = '$budget'; SELECT fast_count_query('SELECT * FROM leak() l, tt WHERE l = tt.id')",
		'42501', 'permission denied for table secret', "4: budget $budget: an inlined function");
	fails("SET n1detect.fast_count_budget = '$budget'; SELECT fast_count_query('SELECT * FROM leak_v v, tt WHERE v.id = tt.id')",
		'42501', 'permission denied for table secret', "4: budget $budget: a view");
}
# row-level security: the policy's rows, never the catalog's; row_security off is an error
is(answer(q{SET n1detect.fast_count_budget = '10s'; SELECT fast_count('rls'), fast_count('rls', 'id <= 2000'),
	fast_count_query('SELECT * FROM rls r JOIN tt USING (id)')}), '1000|500|250', '4: row-level security');
fails(q{SET row_security = off; SELECT fast_count('rls')}, '42501',
	'query would be affected by row-level security policy for table "rls"', '4: row_security off');
N1Test::server_survived($node, $pm, 'privileges');

# ---------------------------------------------------------------------------
# 11. Column privileges: what count(*) allows, fast_count allows.
is(answer(q{SELECT count(*) FROM colpriv WHERE id > 100}), '900', '11: count(*) with the granted column');
is(answer(q{SET n1detect.fast_count_budget = '10s'; SELECT fast_count('colpriv', 'id > 100'),
	fast_count_query('SELECT id FROM colpriv WHERE id > 100'), fast_count('colpriv'),
	fast_count_query('SELECT id FROM colpriv c JOIN tt USING (id)')}), '900|900|1000|1000',
	'11: filters and queries on the granted column');
fails(q{SELECT fast_count('colpriv', 'hidden > 0')}, '42501', 'permission denied for table colpriv',
	'11: a filter on an ungranted column');
fails(q{SELECT fast_count_query('SELECT hidden FROM colpriv')}, '42501', 'permission denied for table colpriv',
	'11: a query of an ungranted column');
fails(q{SET n1detect.fast_count_budget = '1ms'; SELECT fast_count_query('SELECT * FROM colpriv c JOIN tt USING (id)')},
	'42501', 'permission denied for table colpriv', '11: planner fallback on an ungranted column');
N1Test::server_survived($node, $pm, 'column privileges');

# ---------------------------------------------------------------------------
# 14. Volatile functions, also behind a view, a rule or an SQL function: no
# side effect happens.
answer(q{
	CREATE SEQUENCE s;
	CREATE VIEW vn AS SELECT nextval('s') AS n, id FROM tiny;
	CREATE VIEW vn2 AS SELECT id FROM vn;
	CREATE FUNCTION f_nv() RETURNS bigint STABLE LANGUAGE sql AS 'SELECT nextval(''s'')';
	CREATE FUNCTION f_srf() RETURNS SETOF bigint STABLE LANGUAGE sql AS 'SELECT nextval(''s'') FROM tiny';
});
fails(q{SELECT fast_count_query('SELECT * FROM vn')}, '0A000', 'fast_count does not accept volatile functions',
	'14: a view over nextval()');
fails(q{SELECT fast_count_query('SELECT id FROM vn2 WHERE id > 3')}, '0A000',
	'fast_count does not accept volatile functions', '14: a view over that view');
fails(q{SELECT fast_count('tiny', 'id IN (SELECT id FROM vn)')}, '0A000',
	'fast_count does not accept volatile functions', '14: the view in a filter');
fails(q{SELECT fast_count('tiny', 'f_nv() > 0')}, '25006', 'cannot execute nextval\(\) in a read-only transaction',
	'14: a mislabelled stable function runs read-only');
fails(q{SELECT fast_count_query('SELECT * FROM f_srf()')}, '25006',
	'cannot execute nextval\(\) in a read-only transaction', '14: a mislabelled set-returning function');
is(answer(q{SELECT last_value, is_called FROM s}), '1|f', '14: the sequence never advanced');
N1Test::server_survived($node, $pm, 'volatility');

# ---------------------------------------------------------------------------
# 15. Size cap, and odd inputs.
fails(q{SELECT fast_count('tt', repeat('id > 0 OR ', 20000) || 'true')}, '54000',
	'fast_count filter is too long', '15: a 200 kB filter');
fails(q{SELECT fast_count_query('SELECT * FROM tt WHERE ' || repeat('id > 0 OR ', 20000) || 'true')}, '54000',
	'fast_count query is too long', '15: a 200 kB query');
is(answer(q{SET n1detect.fast_count_budget = '10s';
	SELECT fast_count('tt', 'id IN (' || (SELECT string_agg(g::text, ',') FROM generate_series(1, 12000) g) || ')')}),
	'1000', '15: a 70 kB IN list is fine');
# JIT would compile a large expression for tens of seconds, deaf to cancel,
# terminate and statement_timeout (a 3000-arm OR: 34 s here): fast_count's
# statements are never compiled
is(answer(q{SET jit = on; SET jit_above_cost = 0; SET jit_optimize_above_cost = 0;
	SET statement_timeout = '20s'; SET n1detect.fast_count_budget = '10s';
	SELECT fast_count_query('SELECT * FROM tt JOIN tiny USING (id) WHERE '
	  || (SELECT string_agg(format('tt.id = %s', g), ' OR ') FROM generate_series(1, 3000) g)),
	  fast_count('tt', (SELECT string_agg(format('id = %s', g), ' OR ') FROM generate_series(1, 3000) g))}),
	'50|1000', '15: no JIT for a large filter or query');
my @bad = (
	[ q{SELECT fast_count('tt', '')}, '22023', 'fast_count filter must not be empty' ],
	[ q{SELECT fast_count('tt', '-- nothing')}, '22023', 'fast_count filter must not be empty' ],
	[ q{SELECT fast_count('tt', NULL)}, '22004', 'filter must not be null' ],
	[ q{SELECT fast_count(NULL)}, '22004', 'relation must not be null' ],
	[ q{SELECT fast_count_query(NULL)}, '22004', 'query must not be null' ],
	[ q{SELECT fast_count_query('/* */')}, '22023', 'fast_count_query query must not be empty' ],
	[ q{SELECT fast_count('tt', 'id > 0; SELECT 1')}, '42601', 'fast_count filter must be a single expression' ],
	[ q{SELECT fast_count('tt', 'id > 0 /* open')}, '42601', 'unterminated /\* comment' ],
	[ q{SELECT fast_count_query('SELECT 1; SELECT 2')}, '42601', 'fast_count_query accepts exactly one statement' ],
	[ q{SELECT fast_count('tt', 'pg_sleep(1) IS NULL')}, '0A000', 'fast_count does not accept volatile functions' ],
	[ q{SELECT fast_count('pg_authid')}, '42501', 'permission denied for table pg_authid' ],
	[ q{SELECT fast_count((SELECT reltoastrelid FROM pg_class WHERE relname = 'pg_proc')::regclass)}, '42809', '"[a-z_0-9]+" is not a table' ],
	[ q{SELECT fast_count('s')}, '42809', '"[a-z_0-9]+" is not a table' ],
	[ q{SELECT fast_count('vn')}, '42809', 'cannot count rows of view' ],
	[ q{SELECT fast_count(0::regclass)}, '42P01', 'relation with OID 0 does not exist' ],
	[ q{SELECT fast_count_query('EXPLAIN SELECT 1')}, '0A000', 'fast_count_query accepts only a SELECT statement' ],
	[ q{SELECT fast_count_query('SELECT * FROM tt FOR UPDATE')}, '25006', 'fast_count accepts only read-only queries' ]);
for my $b (@bad)
{
	my ($sql, $state, $msg) = @$b;
	fails($sql, "(?:$state)", $msg, "odd input: $sql");
}
is(answer(q{SET n1detect.fast_count_budget = '10s';
	SELECT fast_count('tt', 'a <> ''é✓'' -- trailing comment'), fast_count('tt', E'id\n>\t990'),
	fast_count_query('SELECT * FROM tt WHERE id > 990;'), fast_count_query('SELECT 1;;'),
	fast_count('pg_class') > 0}),
	'1000|10|10|1|t', 'unicode, comments, whitespace, a trailing semicolon, a catalog');
# partitioned, inherited, matviews, other sessions' temp tables
answer(q{
	CREATE TABLE p (id int, a int) PARTITION BY RANGE (id);
	CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (1000);
	CREATE TABLE p2 PARTITION OF p FOR VALUES FROM (1000) TO (2000);
	INSERT INTO p SELECT g, g % 10 FROM generate_series(0, 1999) g;
	CREATE TABLE inh (id int);
	CREATE TABLE inh1 () INHERITS (inh);
	INSERT INTO inh VALUES (1); INSERT INTO inh1 VALUES (2), (3);
	CREATE MATERIALIZED VIEW mv AS SELECT * FROM tiny;
	CREATE MATERIALIZED VIEW mv0 AS SELECT * FROM tiny WITH NO DATA;
});
is(answer(q{SET n1detect.fast_count_budget = '10s';
	SELECT fast_count('p'), fast_count('p', 'a = 3'), fast_count_query('SELECT * FROM p WHERE id >= 1500'),
	fast_count('inh'), fast_count_query('SELECT * FROM ONLY inh'), fast_count('mv', 'id > 25')}),
	'2000|200|500|3|1|25', 'partitions, inheritance, a materialized view');
fails(q{SELECT fast_count('mv0')}, '55000', 'materialized view "mv0" has not been populated', 'an unpopulated matview');
my $other = $node->background_psql('postgres');
$other->query_safe('CREATE TEMP TABLE theirs AS SELECT 1 AS x');
my $theirs = $other->query_safe(q{SELECT pg_my_temp_schema()::regnamespace::text || '.theirs'});
chomp $theirs;
$node->safe_psql('postgres', "GRANT USAGE ON SCHEMA " . ($theirs =~ s/\..*//r) . " TO $role");
fails("SELECT fast_count('$theirs', 'x > 0')", '0A000', 'cannot count rows of temporary tables of other sessions',
	"another session's temporary table");
$other->quit;
N1Test::server_survived($node, $pm, 'inputs');

$node->stop;
done_testing();
