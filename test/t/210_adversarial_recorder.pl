# Adversarial recorder: after every transaction-control path (COMMIT and
# ROLLBACK in procedures and DO blocks, savepoints and exception blocks at any
# depth, errors at any level, portals and cursors of every kind, more open
# statements than the recorder tracks), the session's next real N+1 is still
# detected as n_plus_one with the right parent, and the server survives.
# Runs as an unprivileged role.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use N1Test;

my $node = N1Test::new_node('recorder', conf => "max_prepared_transactions = 2\n");
N1Test::create_schema($node);
my $role = N1Test::create_plain_role($node);
my $role_all = N1Test::create_plain_role($node, 'plain_all');
$node->safe_psql('postgres', qq{
	GRANT SELECT ON authors, books TO $role, $role_all;
	ALTER ROLE $role_all SET n1detect.track = 'all';
});
my $pid = N1Test::postmaster_pid($node);

# What the plain role uses below: procedures and DO blocks with transaction
# control, deep recursion with exception blocks, cursors, triggers.
$node->safe_psql('postgres', q{
	CREATE PROCEDURE p_rollback() LANGUAGE plpgsql AS $$
	BEGIN
		PERFORM count(*) FROM books;
		ROLLBACK;
	END $$;
	CREATE PROCEDURE p_commit() LANGUAGE plpgsql AS $$
	BEGIN
		PERFORM count(*) FROM books;
		COMMIT;
	END $$;
	CREATE PROCEDURE p_chain() LANGUAGE plpgsql AS $$
	BEGIN
		PERFORM count(*) FROM books;
		COMMIT AND CHAIN;
		PERFORM count(*) FROM authors;
		ROLLBACK AND CHAIN;
	END $$;
	CREATE PROCEDURE p_nested() LANGUAGE plpgsql AS $$
	BEGIN
		CALL p_rollback();
		CALL p_commit();
		DO $d$BEGIN ROLLBACK; END$d$;
	END $$;
	CREATE PROCEDURE p_commit_then_error() LANGUAGE plpgsql AS $$
	BEGIN
		COMMIT;
		PERFORM 1 / (count(*) - count(*))::int FROM books;
	END $$;
	CREATE PROCEDURE p_loop_rollback() LANGUAGE plpgsql AS $$
	DECLARE b record;
	BEGIN
		FOR b IN SELECT id FROM books WHERE id <= 5 LOOP
			PERFORM title FROM books WHERE id = b.id;
			ROLLBACK;
		END LOOP;
	END $$;
	-- an error n levels down, re-raised by every exception block up to
	-- catch_depth (never caught when 0)
	CREATE FUNCTION deep(n int, catch_depth int) RETURNS int LANGUAGE plpgsql AS $$
	BEGIN
		IF n = 0 THEN
			RETURN (SELECT 1 / (count(*) - count(*))::int FROM books);
		END IF;
		BEGIN
			RETURN deep(n - 1, catch_depth) + 1;
		EXCEPTION WHEN division_by_zero THEN
			IF n = catch_depth THEN
				RETURN -1;
			END IF;
			RAISE;
		END;
	END $$;
	-- n nested statements open at once (each level's SELECT runs the next)
	CREATE FUNCTION nest(n int) RETURNS int LANGUAGE plpgsql AS $$
	BEGIN
		IF n = 0 THEN
			RETURN 0;
		END IF;
		RETURN (SELECT nest(n - 1) + count(*)::int FROM books WHERE id = n);
	END $$;
	CREATE FUNCTION open_cursor(name refcursor) RETURNS refcursor LANGUAGE plpgsql AS $$
	BEGIN
		OPEN name FOR SELECT id, author_id FROM books WHERE id <= 10 ORDER BY id;
		RETURN name;
	END $$;
	GRANT ALL ON FUNCTION deep(int, int), nest(int), open_cursor(refcursor) TO PUBLIC;
});

# The session's N+1 after $sql (run first, errors and all, in the same
# session) must be n_plus_one with the list as its parent.
sub after_path
{
	my ($name, $sql, %opts) = @_;
	my $as = $opts{role} // $role;
	$node->safe_psql('postgres', 'SELECT n1_reset()');
	my $script = "SET n1detect.max_gap = '10s';\n$sql\n"
	  . N1Test::n_plus_one_sql(list_size => 6)
	  . q{SELECT kind || ' / ' || coalesce(parent_query, '-') FROM n1_offenders
			WHERE query = 'SELECT name FROM authors WHERE id = $1';} . "\n";
	my ($ret, $out, $err) = $node->psql('postgres', $script,
		on_error_stop => 0, extra_params => [ '-U', $as ]);
	my @lines = split /\n/, $out;
	is($lines[-1] // '', 'n_plus_one / SELECT id, author_id FROM books WHERE id BETWEEN $1 AND $2 ORDER BY id',
		"$name: the next N+1 is n_plus_one with its parent")
	  or diag("stderr: $err");
	N1Test::server_survived($node, $pid, $name);
	return;
}

# Transaction control in procedures and DO blocks.
after_path('ROLLBACK in a DO block', q{DO $$BEGIN ROLLBACK; END$$;});
after_path('COMMIT in a DO block', q{DO $$BEGIN PERFORM count(*) FROM books; COMMIT; END$$;});
after_path('procedure that rolls back', 'CALL p_rollback();');
after_path('procedure that commits', 'CALL p_commit();');
after_path('COMMIT AND CHAIN, ROLLBACK AND CHAIN', 'CALL p_chain();');
after_path('nested procedures and DO blocks with transaction control', 'CALL p_nested();');
after_path('error after COMMIT in a procedure', 'CALL p_commit_then_error();');
after_path('ROLLBACK in a procedure FOR loop', 'CALL p_loop_rollback();');
after_path('several of them in a row',
	"CALL p_rollback();\nDO \$\$BEGIN ROLLBACK; END\$\$;\nCALL p_nested();\nCALL p_rollback();");

# Savepoints and exception blocks beyond any fixed depth, errors at depth.
my $savepoints = join("\n", map { "SAVEPOINT s$_;" } 1 .. 65);
after_path('65 savepoints and an error',
	"BEGIN;\n$savepoints\nSELECT 1 / (id - id) FROM authors;\nROLLBACK TO s65;\nCOMMIT;");
$savepoints = join("\n", map { "SAVEPOINT s$_;" } 1 .. 300);
after_path('300 savepoints, an error, rollback to the middle',
	"BEGIN;\n$savepoints\nSELECT deep(3, 0);\nROLLBACK TO s150;\nSELECT deep(3, 0);\nROLLBACK TO s1;\nCOMMIT;");
after_path('exception blocks 70 deep, error caught at the bottom', 'SELECT deep(70, 1);');
after_path('exception blocks 70 deep, error re-raised to the top block', 'SELECT deep(70, 70);');
after_path('exception blocks 70 deep, error to the client', 'SELECT deep(70, 0);');
after_path('exception blocks 200 deep in a savepoint',
	"BEGIN;\nSAVEPOINT a;\nSELECT deep(200, 0);\nROLLBACK TO a;\nSELECT deep(200, 100);\nCOMMIT;");

# Errors in other places: a cursor's FETCH, EXPLAIN ANALYZE, COPY, timeouts.
after_path('error in a FETCH inside a savepoint', q{
	BEGIN;
	DECLARE e CURSOR FOR SELECT 1 / (id - 5) FROM authors ORDER BY id;
	SAVEPOINT a;
	FETCH 10 FROM e;
	ROLLBACK TO a;
	CLOSE e;
	COMMIT;});
after_path('error inside EXPLAIN ANALYZE and COPY', q{
	EXPLAIN ANALYZE SELECT 1 / (id - id) FROM authors;
	COPY (SELECT 1 / (id - id) FROM authors) TO STDOUT;
	EXPLAIN ANALYZE SELECT deep(40, 0);});
after_path('statement timeout in a nested statement', q{
	SET statement_timeout = '20ms';
	SELECT nest(3), pg_sleep(0.2);
	RESET statement_timeout;});

# Cursors: WITH HOLD across transactions, one opened in a function, more
# statements open at once than the recorder tracks (32).
after_path('WITH HOLD cursor across transactions', q{
	DECLARE h CURSOR WITH HOLD FOR SELECT id, title FROM books WHERE id <= 10;
	FETCH 2 FROM h;
	BEGIN;
	FETCH 2 FROM h;
	COMMIT;
	FETCH 2 FROM h;
	CLOSE h;});
after_path('FETCH from a cursor opened in a function', q{
	BEGIN;
	SELECT open_cursor('fc');
	FETCH 3 FROM fc;
	CLOSE fc;
	COMMIT;});
my $cursors = join("\n", map { "DECLARE c$_ CURSOR FOR SELECT title FROM books WHERE id > $_;\nFETCH 1 FROM c$_;" } 1 .. 40);
after_path('40 cursors open at once', "BEGIN;\n$cursors\nCOMMIT;");
after_path('40 cursors open, then an error', "BEGIN;\n$cursors\nSELECT 1 / (id - id) FROM authors;\nROLLBACK;");
# beyond 32 open at once, the deepest are not recorded, never the client's own
is($node->safe_psql('postgres', q{
		SELECT nest(40) FROM authors WHERE id = 1;
		SELECT nesting_level FROM n1_backend_statements WHERE pid = pg_backend_pid()
			ORDER BY seq DESC LIMIT 1;}, extra_params => [ '-U', $role_all ]),
	"40\n0", '40 nested statements at track = all: the client statement is recorded');
after_path('40 nested statements at track = all', 'SELECT nest(40);', role => $role_all);
after_path('40 nested statements, an error at the bottom, at track = all',
	'SELECT deep(40, 0);', role => $role_all);
after_path('ROLLBACK in a DO block at track = all', q{DO $$BEGIN ROLLBACK; END$$;}, role => $role_all);
after_path('parallel query', q{
	SET parallel_setup_cost = 0;
	SET parallel_tuple_cost = 0;
	SET min_parallel_table_scan_size = 0;
	SET max_parallel_workers_per_gather = 2;
	SELECT count(*) FROM books WHERE title LIKE 'book%';
	RESET max_parallel_workers_per_gather;});

# Loaded but switched off, then on again (n1detect.track is superuser's).
after_path('track = none across transaction control', q{
	SET n1detect.track = 'none';
	DO $$BEGIN ROLLBACK; END$$;
	SELECT deep(70, 1);
	BEGIN; SAVEPOINT a; SELECT 1 / 0; ROLLBACK TO a; COMMIT;
	RESET n1detect.track;}, role => $node->safe_psql('postgres', 'SELECT current_user'));

# Errors thrown inside the executor's own steps, in triggers and event
# triggers, and by n1detect.action itself, caught by an exception block.
$node->safe_psql('postgres', qq{
	CREATE TABLE secret (x int);
	CREATE TABLE trig_t (x int);
	GRANT ALL ON trig_t TO $role, $role_all;
	CREATE FUNCTION trig_fail() RETURNS trigger LANGUAGE plpgsql AS \$\$
	BEGIN
		PERFORM count(*) FROM books WHERE id = NEW.x;
		IF NEW.x < 0 THEN
			RAISE EXCEPTION 'negative';
		END IF;
		RETURN NULL;
	END \$\$;
	CREATE TRIGGER trig_fail AFTER INSERT ON trig_t FOR EACH ROW EXECUTE FUNCTION trig_fail();
	CREATE FUNCTION et_query() RETURNS event_trigger LANGUAGE plpgsql AS \$\$
	BEGIN
		PERFORM count(*) FROM books;
		IF tg_tag = 'CREATE SEQUENCE' THEN
			RAISE EXCEPTION 'no sequences';
		END IF;
	END \$\$;
	CREATE EVENT TRIGGER et_query ON ddl_command_end EXECUTE FUNCTION et_query();
	CREATE FUNCTION catch_n1() RETURNS int LANGUAGE plpgsql AS \$\$
	DECLARE
		b record;
		caught int := 0;
	BEGIN
		FOR b IN SELECT id, author_id FROM books WHERE id <= 8 ORDER BY id LOOP
			BEGIN
				PERFORM upper(name) FROM authors WHERE id = b.author_id;
			EXCEPTION WHEN SQLSTATE 'N1001' THEN
				caught := caught + 1;
			END;
		END LOOP;
		RETURN caught;
	END \$\$;
});
after_path('permission denied at ExecutorStart, at two levels', q{
	SELECT * FROM secret;
	DO $$BEGIN PERFORM * FROM secret; END$$;});
after_path('error in an AFTER trigger, and in a savepoint', q{
	INSERT INTO trig_t VALUES (1), (-1);
	BEGIN;
	SAVEPOINT a;
	INSERT INTO trig_t VALUES (2), (-2);
	ROLLBACK TO a;
	INSERT INTO trig_t VALUES (3);
	COMMIT;});
after_path('event triggers, one of them failing', q{
	CREATE TABLE et_t (x int);
	DROP TABLE et_t;
	CREATE SEQUENCE et_s;});
after_path('event triggers at track = all', q{
	CREATE TABLE et_t (x int);
	DROP TABLE et_t;
	CREATE SEQUENCE et_s;}, role => $role_all);
is($node->safe_psql('postgres', "SET n1detect.action = 'error'; SELECT catch_n1();",
		extra_params => [ '-U', $role_all ]),
	'1', 'action = error raises inside a function at track = all, where an exception block can catch it');
after_path('action = error caught by an exception block at track = all', q{
	SET n1detect.action = 'error';
	SELECT catch_n1();
	RESET n1detect.action;}, role => $role_all);
$node->safe_psql('postgres', 'DROP EVENT TRIGGER et_query');

# Statements that deferred triggers run at COMMIT are not the client's: not
# recorded at track = top (they ran at the client's level before).
$node->safe_psql('postgres', qq{
	CREATE TABLE deferred_t (author_id int);
	GRANT ALL ON deferred_t TO $role;
	CREATE FUNCTION deferred_lookup() RETURNS trigger LANGUAGE plpgsql AS \$\$
	BEGIN
		PERFORM upper(name) FROM authors WHERE id = NEW.author_id;
		RETURN NULL;
	END \$\$;
	CREATE CONSTRAINT TRIGGER deferred_lookup AFTER INSERT ON deferred_t
		DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION deferred_lookup();
	SELECT n1_reset();
});
$node->psql('postgres', q{
	SET n1detect.max_gap = '10s';
	BEGIN;
	SELECT id, author_id FROM books WHERE id <= 6 ORDER BY id;
	INSERT INTO deferred_t SELECT g FROM generate_series(1, 6) g;
	COMMIT;}, extra_params => [ '-U', $role ]);
is($node->safe_psql('postgres', q{SELECT count(*) FROM n1_offenders WHERE query LIKE '%upper(name)%'}),
	'0', 'deferred triggers at COMMIT are not client statements');
after_path('deferred triggers at COMMIT', q{
	BEGIN;
	INSERT INTO deferred_t SELECT g FROM generate_series(1, 6) g;
	COMMIT;});

# PREPARE TRANSACTION ends the unit of work, as COMMIT does.
$node->safe_psql('postgres', 'SELECT n1_reset()');
my $out = $node->safe_psql('postgres', q{
	SET n1detect.max_gap = '10s';
	BEGIN;
	SELECT id, author_id FROM books WHERE id <= 6 ORDER BY id;
	SELECT name FROM authors WHERE id = 2;
	SELECT name FROM authors WHERE id = 3;
	SELECT name FROM authors WHERE id = 4;
	SELECT name FROM authors WHERE id = 5;
	SELECT name FROM authors WHERE id = 6;
	PREPARE TRANSACTION 'n1_prepared';
	SELECT string_agg(kind || ' ' || in_progress, ',') FROM n1_bursts WHERE pid = pg_backend_pid();
	COMMIT PREPARED 'n1_prepared';}, extra_params => [ '-U', $role ]);
is((split /\n/, $out)[-1], 'n_plus_one false', 'PREPARE TRANSACTION ends the unit of work');
N1Test::server_survived($node, $pid, 'PREPARE TRANSACTION');

# n1detect.action = error with the extended protocol (psycopg 3 binds every
# parameter): the statement that crosses fails, not the next Bind or the
# COMMIT, whose ExecutorEnd of the previous portal used to raise and roll
# the transaction back.
SKIP:
{
	my $python = $ENV{N1_PYTHON} // '/usr/bin/python3';
	skip 'no psycopg 3', 2 if system("$python -c 'import psycopg' 2>/dev/null") != 0;
	$node->safe_psql('postgres', qq{
		CREATE TABLE action_log (note text);
		GRANT ALL ON action_log TO $role;
		SELECT n1_reset();
	});
	my $client = $node->basedir . '/action_client.py';
	PostgreSQL::Test::Utils::append_to_file($client, <<'PY');
import sys
import psycopg
conn = psycopg.connect(host=sys.argv[1], port=sys.argv[2], dbname="postgres", user=sys.argv[3])
cur = conn.cursor()
cur.execute("SET n1detect.action = 'error'")
cur.execute("SET n1detect.max_gap = '10s'")
cur.execute("INSERT INTO action_log VALUES (%s)", ("inserted",))
cur.execute("SELECT id, author_id FROM books WHERE id <= %s ORDER BY id", (6,))
books = cur.fetchall()
where = "commit"
try:
    for i, (book_id, author_id) in enumerate(books[:5]):
        where = "call %d" % (i + 1)
        cur.execute("SELECT name FROM authors WHERE id = %s", (author_id,))
        cur.fetchall()
    where = "commit"
    conn.commit()
    print("no error")
except psycopg.Error as e:
    print("%s at %s" % (e.sqlstate, where))
PY
	my ($stdout, $stderr);
	IPC::Run::run([ $python, $client, $node->host, $node->port, $role ], '>', \$stdout, '2>', \$stderr);
	is($stdout, "N1001 at call 5\n", 'extended protocol: the fifth call fails, not the COMMIT')
	  or diag($stderr);
	N1Test::server_survived($node, $pid, 'action = error with the extended protocol');
}

# Parameters that are pointers to their value: a PL/pgSQL array variable is
# an expanded object, rebuilt at each iteration.  The same value in every
# call is one parameter set (a duplicate), however its storage moves.
# (A TOAST pointer is hashed by its value's identity; PL/pgSQL variables
# arrive detoasted, so no test here reaches that path.)
for my $case (
	[ 'an expanded array variable', q{
		DO $$DECLARE arr int[]; n bigint;
		BEGIN
			FOR i IN 1..6 LOOP
				arr := ARRAY[1, 2, 3];
				arr[4] := 4;
				SELECT count(*) INTO n FROM books WHERE author_id = ANY (arr);
			END LOOP;
		END$$;}, 'duplicate 6 1' ],
	[ 'expanded arrays of different values', q{
		DO $$DECLARE arr int[]; n bigint;
		BEGIN
			FOR i IN 1..6 LOOP
				arr := ARRAY[1, 2, 3];
				arr[4] := 10 + i;
				SELECT count(*) INTO n FROM books WHERE author_id = ANY (arr);
			END LOOP;
		END$$;}, 'loop 6 6' ])
{
	my ($what, $sql, $expect) = @$case;
	$node->safe_psql('postgres', 'SELECT n1_reset()');
	$node->safe_psql('postgres', "SET n1detect.max_gap = '10min';\nSET n1detect.track = 'all';\nSET ROLE plain_all;\n$sql");
	is($node->safe_psql('postgres',
		q{SELECT kind || ' ' || calls || ' ' || max_distinct_params FROM n1_offenders WHERE query LIKE '%FROM books WHERE%'}),
		$expect, "$what: parameter sets counted by value");
}
N1Test::server_survived($node, $pid, 'parameters held by pointer');

done_testing();
