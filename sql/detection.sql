--
-- N+1 detection in one session: kinds, parents, unit boundaries, actions.
-- Each scenario runs in a transaction block, whose end ends the unit of work.
--
CREATE EXTENSION n1detect;
SET n1detect.max_gap = '10s';  -- units end only where this test says so

CREATE TABLE authors (id int PRIMARY KEY, name text);
CREATE TABLE books (id int PRIMARY KEY, author_id int REFERENCES authors, title text);
CREATE TABLE reviews (id int PRIMARY KEY, book_id int REFERENCES books, stars int);
INSERT INTO authors SELECT g, 'author ' || g FROM generate_series(1, 20) g;
INSERT INTO books SELECT g, (g % 20) + 1, 'book ' || g FROM generate_series(1, 100) g;
INSERT INTO reviews SELECT g, (g % 100) + 1, g % 5 + 1 FROM generate_series(1, 300) g;
SELECT n1_reset();

CREATE VIEW offenders AS
  SELECT kind, query, parent_query, bursts, calls, max_calls, max_distinct_params,
         max_parent_rows, cardinality(sample_params) AS samples
  FROM n1_offenders ORDER BY query, kind;

-- The classic N+1 with literal SQL (simple protocol): a list, then one
-- query per row.
BEGIN;
SELECT id, author_id FROM books WHERE id <= 6 ORDER BY id;
SELECT name FROM authors WHERE id = 2;
SELECT name FROM authors WHERE id = 3;
SELECT name FROM authors WHERE id = 4;
SELECT name FROM authors WHERE id = 5;
-- below n1detect.min_calls (5): nothing yet
SELECT count(*) FROM n1_offenders;
SELECT name FROM authors WHERE id = 6;
-- visible while the unit is still open, and growing
SELECT kind, query, parent_query, calls FROM n1_offenders;
SELECT name FROM authors WHERE id = 7;
SELECT kind, calls, in_progress, parent_rows FROM n1_bursts;
COMMIT;
SELECT * FROM offenders;
SELECT kind, calls, distinct_params, parent_calls, parent_rows, in_progress,
       ended_at >= started_at AS timed
  FROM n1_bursts;
SELECT n1_reset();

-- The same N+1 with bound parameters (PREPARE/EXECUTE).
PREPARE author_by_id(int) AS SELECT name FROM authors WHERE id = $1;
BEGIN;
SELECT id, author_id FROM books WHERE id <= 6 ORDER BY id;
EXECUTE author_by_id(2);
EXECUTE author_by_id(3);
EXECUTE author_by_id(4);
EXECUTE author_by_id(5);
EXECUTE author_by_id(6);
EXECUTE author_by_id(7);
COMMIT;
SELECT kind, query, parent_query, calls, sample_params FROM n1_offenders;
SELECT n1_reset();

-- The same parameters every time: duplicate.
BEGIN;
SELECT id FROM books WHERE id <= 3;
SELECT name FROM authors WHERE id = 1;
SELECT name FROM authors WHERE id = 1;
SELECT name FROM authors WHERE id = 1;
SELECT name FROM authors WHERE id = 1;
SELECT name FROM authors WHERE id = 1;
COMMIT;
SELECT kind, query, calls, max_distinct_params FROM offenders;
SELECT n1_reset();

-- Distinct parameters but no list before them: a loop, not an N+1.
BEGIN;
SELECT name FROM authors WHERE id = 1;
SELECT name FROM authors WHERE id = 2;
SELECT name FROM authors WHERE id = 3;
SELECT name FROM authors WHERE id = 4;
SELECT name FROM authors WHERE id = 5;
COMMIT;
SELECT kind, query, parent_query, calls FROM offenders;
SELECT n1_reset();

-- Siblings of one loop (per book: its author, then its reviews, which
-- return several rows) are never each other's parent.
BEGIN;
SELECT id, author_id FROM books WHERE id <= 5 ORDER BY id;
SELECT name FROM authors WHERE id = 2;
SELECT stars FROM reviews WHERE book_id = 1;
SELECT name FROM authors WHERE id = 3;
SELECT stars FROM reviews WHERE book_id = 2;
SELECT name FROM authors WHERE id = 4;
SELECT stars FROM reviews WHERE book_id = 3;
SELECT name FROM authors WHERE id = 5;
SELECT stars FROM reviews WHERE book_id = 4;
SELECT name FROM authors WHERE id = 6;
SELECT stars FROM reviews WHERE book_id = 5;
COMMIT;
SELECT kind, query, parent_query, calls FROM offenders;
SELECT n1_reset();

-- Nested loops: authors, then books per author, then reviews per book.
BEGIN;
SELECT id FROM authors WHERE id <= 2 ORDER BY id;
SELECT id FROM books WHERE author_id = 1 AND id <= 60 ORDER BY id;
SELECT count(*) FROM reviews WHERE book_id = 20;
SELECT count(*) FROM reviews WHERE book_id = 40;
SELECT count(*) FROM reviews WHERE book_id = 60;
SELECT id FROM books WHERE author_id = 2 AND id <= 60 ORDER BY id;
SELECT count(*) FROM reviews WHERE book_id = 1;
SELECT count(*) FROM reviews WHERE book_id = 21;
SELECT count(*) FROM reviews WHERE book_id = 41;
COMMIT;
SELECT kind, query, parent_query, calls FROM offenders;
SELECT n1_reset();

-- Statements that read no table, and the extension's own queries, are
-- never offenders; neither is a query below n1detect.min_calls.
BEGIN;
SELECT 1;
SELECT 1;
SELECT 1;
SELECT 1;
SELECT 1;
SELECT now() IS NOT NULL;
SELECT now() IS NOT NULL;
SELECT now() IS NOT NULL;
SELECT now() IS NOT NULL;
SELECT now() IS NOT NULL;
SELECT count(*) FROM n1_bursts;
SELECT count(*) FROM n1_bursts;
SELECT count(*) FROM n1_bursts;
SELECT count(*) FROM n1_bursts;
SELECT count(*) FROM n1_bursts;
SELECT id FROM books WHERE id <= 4;
SELECT name FROM authors WHERE id = 1;
SELECT name FROM authors WHERE id = 2;
SELECT name FROM authors WHERE id = 3;
SELECT name FROM authors WHERE id = 4;
COMMIT;
SELECT count(*) FROM n1_offenders;

-- A unit ends at the end of a transaction block, at an idle gap longer
-- than n1detect.max_gap, and when application_name changes.
BEGIN;
SELECT name FROM authors WHERE id = 1;
SELECT name FROM authors WHERE id = 2;
SELECT name FROM authors WHERE id = 3;
COMMIT;
BEGIN;
SELECT name FROM authors WHERE id = 4;
SELECT name FROM authors WHERE id = 5;
COMMIT;
SET application_name = 'one_app';
SELECT name FROM authors WHERE id = 1;
SELECT name FROM authors WHERE id = 2;
SELECT name FROM authors WHERE id = 3;
SET application_name = 'another_app';
SELECT name FROM authors WHERE id = 4;
SELECT name FROM authors WHERE id = 5;
RESET application_name;
SET n1detect.max_gap = '50ms';
SELECT name FROM authors WHERE id = 1;
SELECT name FROM authors WHERE id = 2;
SELECT name FROM authors WHERE id = 3;
SELECT pg_sleep(0.2);
BEGIN;
SELECT name FROM authors WHERE id = 4;
SELECT name FROM authors WHERE id = 5;
COMMIT;
SET n1detect.max_gap = '10s';
SELECT count(*) FROM n1_offenders;

-- min_calls is per session.
SET n1detect.min_calls = 3;
BEGIN;
SELECT id FROM books WHERE id <= 3;
SELECT name FROM authors WHERE id = 1;
SELECT name FROM authors WHERE id = 2;
SELECT name FROM authors WHERE id = 3;
COMMIT;
SELECT kind, query, calls FROM offenders;
RESET n1detect.min_calls;
SELECT n1_reset();

-- A cursor's rows drive the loop (children interleaved with FETCH).
BEGIN;
DECLARE book_cursor CURSOR FOR SELECT id, author_id FROM books WHERE id <= 6 ORDER BY id;
FETCH 3 FROM book_cursor;
SELECT name FROM authors WHERE id = 2;
SELECT name FROM authors WHERE id = 3;
SELECT name FROM authors WHERE id = 4;
FETCH 3 FROM book_cursor;
SELECT name FROM authors WHERE id = 5;
SELECT name FROM authors WHERE id = 6;
SELECT name FROM authors WHERE id = 7;
CLOSE book_cursor;
COMMIT;
SELECT kind, query, parent_query, calls, max_parent_rows FROM offenders;
SELECT n1_reset();

-- So do a cursor's rows when a function opened it and the client fetches it
-- (a returned refcursor), at track = top too.
CREATE FUNCTION open_books(c refcursor) RETURNS refcursor LANGUAGE plpgsql AS $$
BEGIN
  OPEN c FOR SELECT id, author_id FROM books WHERE id <= 6 ORDER BY id;
  RETURN c;
END
$$;
BEGIN;
SELECT open_books('returned_cursor');
FETCH 3 FROM returned_cursor;
SELECT name FROM authors WHERE id = 2;
SELECT name FROM authors WHERE id = 3;
SELECT name FROM authors WHERE id = 4;
FETCH ALL FROM returned_cursor;
SELECT name FROM authors WHERE id = 5;
SELECT name FROM authors WHERE id = 6;
SELECT name FROM authors WHERE id = 7;
COMMIT;
SELECT kind, query, parent_query, calls, max_parent_rows FROM offenders;
SELECT n1_reset();
DROP FUNCTION open_books(refcursor);

-- A PL/pgSQL function that loops internally: invisible at track = top
-- (one client statement), caught at track = all.
CREATE FUNCTION author_names(n int) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
  b record;
  author_name text;
BEGIN
  FOR b IN SELECT id, author_id FROM books WHERE id <= n ORDER BY id LOOP
    SELECT name INTO author_name FROM authors WHERE id = b.author_id;
    RETURN NEXT author_name;
  END LOOP;
END
$$;
BEGIN;
SELECT count(*) FROM author_names(8);
COMMIT;
SELECT count(*) FROM n1_offenders;
SET n1detect.track = 'all';
BEGIN;
SELECT count(*) FROM author_names(8);
COMMIT;
RESET n1detect.track;
SELECT kind, query, parent_query, calls, max_parent_rows FROM offenders;
SELECT n1_reset();

-- Errors caught in the middle (a PL/pgSQL exception block, a savepoint)
-- leave the nesting level right: the client's statements after them are
-- still seen as the client's.
CREATE FUNCTION swallow_error() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  BEGIN
    PERFORM 1 / (id - id) FROM authors;
  EXCEPTION WHEN division_by_zero THEN
    RETURN 0;
  END;
  RETURN 1;
END
$$;
BEGIN;
SELECT id, author_id FROM books WHERE id <= 6 ORDER BY id;
SELECT swallow_error();
SAVEPOINT before_error;
SELECT 1 / (id - id) FROM authors;
ROLLBACK TO SAVEPOINT before_error;
SELECT name FROM authors WHERE id = 2;
SELECT name FROM authors WHERE id = 3;
SELECT name FROM authors WHERE id = 4;
SELECT name FROM authors WHERE id = 5;
SELECT name FROM authors WHERE id = 6;
COMMIT;
SELECT kind, query, parent_query, calls FROM offenders;
SELECT n1_reset();

-- n1detect.action: a WARNING, then an ERROR, at the call that crosses
-- n1detect.min_calls.
SET n1detect.action = 'warning';
BEGIN;
SELECT id, author_id FROM books WHERE id <= 6 ORDER BY id;
SELECT name FROM authors WHERE id = 2;
SELECT name FROM authors WHERE id = 3;
SELECT name FROM authors WHERE id = 4;
SELECT name FROM authors WHERE id = 5;
SELECT name FROM authors WHERE id = 6;
SELECT name FROM authors WHERE id = 7;
COMMIT;
SET n1detect.action = 'error';
BEGIN;
SELECT id, author_id FROM books WHERE id <= 6 ORDER BY id;
SELECT name FROM authors WHERE id = 2;
SELECT name FROM authors WHERE id = 3;
SELECT name FROM authors WHERE id = 4;
SELECT name FROM authors WHERE id = 5;
SELECT name FROM authors WHERE id = 6;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK;
-- duplicates and loops raise nothing unless n1detect.action_kinds says so
BEGIN;
SELECT name FROM authors WHERE id = 1;
SELECT name FROM authors WHERE id = 1;
SELECT name FROM authors WHERE id = 1;
SELECT name FROM authors WHERE id = 1;
SELECT name FROM authors WHERE id = 1;
COMMIT;
SET n1detect.action_kinds = 'duplicate, loop';
BEGIN;
SELECT name FROM authors WHERE id = 1;
SELECT name FROM authors WHERE id = 1;
SELECT name FROM authors WHERE id = 1;
SELECT name FROM authors WHERE id = 1;
SELECT name FROM authors WHERE id = 1;
ROLLBACK;
RESET n1detect.action;
RESET n1detect.action_kinds;
-- the bursts that raised are recorded all the same
SELECT kind, calls FROM offenders;
SELECT bursts_total, offenders, dealloc FROM n1_info;

-- A query explained, copied, materialized, prepared or declared as a
-- cursor first lends it neither its text nor the place of its constants
-- (which made a real N+1 of it a duplicate).
EXPLAIN (COSTS OFF) SELECT upper(name) FROM authors WHERE id = 9 AND name IS NOT NULL;
\o /dev/null
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
  SELECT lower(name) FROM authors WHERE id = 9 AND name IS NOT NULL;
\o
COPY (SELECT length(name) FROM authors WHERE id = 9 AND name IS NOT NULL) TO STDOUT;
CREATE TEMP TABLE ctas AS SELECT md5(name) FROM authors WHERE id = 9 AND name IS NOT NULL;
SELECT reverse(name) INTO TEMP select_into FROM authors WHERE id = 9 AND name IS NOT NULL;
CREATE TEMP VIEW a_view AS SELECT ltrim(name) FROM authors WHERE id = 9 AND name IS NOT NULL;
PREPARE literal_stmt AS SELECT rtrim(name) FROM authors WHERE id = 9 AND name IS NOT NULL;
BEGIN;
DECLARE a_cursor CURSOR FOR SELECT initcap(name) FROM authors WHERE id = 9 AND name IS NOT NULL;
CLOSE a_cursor;
COMMIT;
DEALLOCATE literal_stmt;
DROP VIEW a_view;
DROP TABLE ctas, select_into;
SELECT n1_reset();
BEGIN;
SELECT id, author_id FROM books WHERE id <= 5 ORDER BY id;
\o /dev/null
SELECT format('SELECT %s(name) FROM authors WHERE id = %s AND name IS NOT NULL', f, g + 1)
  FROM generate_series(1, 5) g,
       unnest(ARRAY['upper', 'lower', 'length', 'md5', 'reverse', 'ltrim', 'rtrim', 'initcap']) f
  ORDER BY g \gexec
\o
COMMIT;
SELECT kind, query, parent_query, calls FROM offenders;
SELECT n1_reset();

-- What EXPLAIN ANALYZE, COPY (query) TO and CREATE TABLE AS run is theirs,
-- not the application's: not recorded, even at track = all.
SET n1detect.track = 'all';
BEGIN;
SELECT id, author_id FROM books WHERE id <= 5 ORDER BY id;
\o /dev/null
SELECT format('EXPLAIN ANALYZE SELECT upper(name) FROM authors WHERE id = %s', g),
       format('COPY (SELECT lower(name) FROM authors WHERE id = %s) TO STDOUT', g),
       format('CREATE TEMP TABLE ctas_%s AS SELECT md5(name) FROM authors WHERE id = %s', g, g)
  FROM generate_series(2, 6) g \gexec
\o
COMMIT;
RESET n1detect.track;
SELECT count(*) FROM n1_offenders;

-- PL/pgSQL in a DO block or a procedure fetches a FOR loop's rows one at a
-- time (non-atomic): the loop's query is still the parent, as in a
-- function, also when the procedure commits in the loop.
CREATE PROCEDURE author_loop(n int, do_commit bool) LANGUAGE plpgsql AS $$
DECLARE
  b record;
  author_name text;
BEGIN
  FOR b IN SELECT id, author_id FROM books WHERE id <= n ORDER BY id LOOP
    SELECT upper(name) INTO author_name FROM authors WHERE id = b.author_id;
    IF do_commit THEN
      COMMIT;
    END IF;
  END LOOP;
END
$$;
SET n1detect.track = 'all';
DO $$
DECLARE
  b record;
  author_name text;
BEGIN
  FOR b IN SELECT id, author_id FROM books WHERE id <= 7 ORDER BY id LOOP
    SELECT name INTO author_name FROM authors WHERE id = b.author_id;
  END LOOP;
END
$$;
RESET n1detect.track;
SELECT kind, query, parent_query, calls, max_parent_rows FROM offenders;
SELECT n1_reset();
BEGIN; COMMIT;  -- ends the unit of work
SET n1detect.track = 'all';
CALL author_loop(6, false);
RESET n1detect.track;
SELECT kind, query, parent_query, calls, max_parent_rows FROM offenders;
SELECT n1_reset();
BEGIN; COMMIT;  -- ends the unit of work
SET n1detect.track = 'all';
CALL author_loop(6, true);
RESET n1detect.track;
SELECT kind, query, parent_query, calls, max_parent_rows FROM offenders;
SELECT n1_reset();
BEGIN; COMMIT;  -- ends the unit of work

-- n1detect.action = error raises in the statement whose call crosses
-- n1detect.min_calls (here a FETCH running a cursor to its end), never in
-- the COMMIT that closes the cursors left open: that one warns, and commits.
CREATE TABLE action_log (note text);
SET n1detect.action = 'error';
BEGIN;
SELECT id, author_id FROM books WHERE id <= 6 ORDER BY id;
DECLARE c2 CURSOR FOR SELECT name FROM authors WHERE id = 2;
FETCH ALL FROM c2;
DECLARE c3 CURSOR FOR SELECT name FROM authors WHERE id = 3;
FETCH ALL FROM c3;
DECLARE c4 CURSOR FOR SELECT name FROM authors WHERE id = 4;
FETCH ALL FROM c4;
DECLARE c5 CURSOR FOR SELECT name FROM authors WHERE id = 5;
FETCH ALL FROM c5;
DECLARE c6 CURSOR FOR SELECT name FROM authors WHERE id = 6;
FETCH ALL FROM c6;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
INSERT INTO action_log VALUES ('committed');
SELECT id, author_id FROM books WHERE id <= 6 ORDER BY id;
-- (each cursor is read, not to its end: a cursor never read is not recorded)
DECLARE c2 CURSOR FOR SELECT name FROM authors WHERE id = 2;
FETCH 1 FROM c2;
DECLARE c3 CURSOR FOR SELECT name FROM authors WHERE id = 3;
FETCH 1 FROM c3;
DECLARE c4 CURSOR FOR SELECT name FROM authors WHERE id = 4;
FETCH 1 FROM c4;
DECLARE c5 CURSOR FOR SELECT name FROM authors WHERE id = 5;
FETCH 1 FROM c5;
DECLARE c6 CURSOR FOR SELECT name FROM authors WHERE id = 6;
FETCH 1 FROM c6;
COMMIT;
-- nor in the COMMIT that materializes WITH HOLD cursors (run to their end there)
BEGIN;
INSERT INTO action_log VALUES ('committed too');
SELECT id, author_id FROM books WHERE id <= 6 ORDER BY id;
DECLARE h2 CURSOR WITH HOLD FOR SELECT name FROM authors WHERE id = 2;
FETCH 1 FROM h2;
DECLARE h3 CURSOR WITH HOLD FOR SELECT name FROM authors WHERE id = 3;
FETCH 1 FROM h3;
DECLARE h4 CURSOR WITH HOLD FOR SELECT name FROM authors WHERE id = 4;
FETCH 1 FROM h4;
DECLARE h5 CURSOR WITH HOLD FOR SELECT name FROM authors WHERE id = 5;
FETCH 1 FROM h5;
DECLARE h6 CURSOR WITH HOLD FOR SELECT name FROM authors WHERE id = 6;
FETCH 1 FROM h6;
COMMIT;
CLOSE ALL;
RESET n1detect.action;
SELECT note FROM action_log;
SELECT kind, query, calls FROM offenders;
DROP TABLE action_log;
DROP PROCEDURE author_loop(int, bool);
SELECT n1_reset();

-- Settings are validated.
SET n1detect.action_kinds = 'n_plus_one, bogus';
SET n1detect.min_calls = 1;
SET n1detect.track = 'sometimes';
SET n1detect.max_offenders = 10;
SET n1detect.nonexistent = 1;

-- Privileges: others' rows without text; n1_reset() is not for PUBLIC.
CREATE ROLE n1_regress_user;
GRANT SELECT ON authors, books TO n1_regress_user;
SET ROLE n1_regress_user;
SELECT kind, query, calls FROM n1_offenders ORDER BY kind;
BEGIN;
SELECT id FROM books WHERE id <= 5;
SELECT name FROM authors WHERE id = 1;
SELECT name FROM authors WHERE id = 2;
SELECT name FROM authors WHERE id = 3;
SELECT name FROM authors WHERE id = 4;
SELECT name FROM authors WHERE id = 5;
COMMIT;
SELECT kind, query, calls, sample_params FROM n1_offenders
  WHERE userid = 'n1_regress_user'::regrole;
SELECT n1_reset();
RESET ROLE;
SELECT kind, query FROM n1_offenders WHERE userid = 'n1_regress_user'::regrole;
DROP OWNED BY n1_regress_user;
DROP ROLE n1_regress_user;

SELECT n1_reset();
SELECT count(*) FROM n1_offenders;
SELECT count(*) FROM n1_bursts;
DROP VIEW offenders;
DROP FUNCTION author_names(int);
DROP FUNCTION swallow_error();
DROP EXTENSION n1detect;
