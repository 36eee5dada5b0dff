--
-- IN lists of constants or parameters.  From PostgreSQL 18 on the query id
-- ignores a list's length (core squashes lists in its jumble), so the same
-- query with lists of different lengths is one query, shown as
-- "IN ($1 /*, ... */)"; before 18 each length is a query of its own.  Either
-- way a per-row query with lists is caught and one batched query is not.
-- The output is the same on every version: the checks say which to expect.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS n1detect;
RESET client_min_messages;
SET n1detect.max_gap = '10s';  -- units end only where this test says so
CREATE TABLE il_authors (id int PRIMARY KEY, name text);
CREATE TABLE il_books (id int PRIMARY KEY, author_id int REFERENCES il_authors);
INSERT INTO il_authors SELECT g, 'author ' || g FROM generate_series(1, 20) g;
INSERT INTO il_books SELECT g, (g % 20) + 1 FROM generate_series(1, 100) g;
SELECT n1_reset();

CREATE FUNCTION il_squashed() RETURNS bool LANGUAGE sql
  AS $$ SELECT current_setting('server_version_num')::int >= 180000 $$;

-- Naive: per author, a query over the books of it and of 1 or 2 others
-- (ids from the list's rows); five of each length, so that each length alone
-- is an N+1 before 18 too.
BEGIN;
SELECT id FROM il_authors WHERE id <= 10 ORDER BY id;
SELECT count(*) FROM il_books WHERE author_id IN (1, 2);
SELECT count(*) FROM il_books WHERE author_id IN (2, 3, 4);
SELECT count(*) FROM il_books WHERE author_id IN (3, 4);
SELECT count(*) FROM il_books WHERE author_id IN (4, 5, 6);
SELECT count(*) FROM il_books WHERE author_id IN (5, 6);
SELECT count(*) FROM il_books WHERE author_id IN (6, 7, 8);
SELECT count(*) FROM il_books WHERE author_id IN (7, 8);
SELECT count(*) FROM il_books WHERE author_id IN (8, 9, 10);
SELECT count(*) FROM il_books WHERE author_id IN (9, 10);
SELECT count(*) FROM il_books WHERE author_id IN (10, 1, 2);
COMMIT;
-- 18+: one offender of 10 calls; before: one per length, 5 calls each
SELECT kind, parent_query, sum(calls) AS calls,
       count(*) = CASE WHEN il_squashed() THEN 1 ELSE 2 END AS offenders_as_expected,
       bool_and(query ~ CASE WHEN il_squashed() THEN 'IN \(\$1 /\*, \.\.\. \*/\)$'
                             ELSE 'IN \(\$1, \$2(, \$3)?\)$' END) AS text_as_expected,
       bool_and(max_distinct_params = calls) AS distinct_params
  FROM n1_offenders GROUP BY kind, parent_query;
SELECT n1_reset();

-- The same with bound parameters: lists of $n.
PREPARE il_two(int, int) AS SELECT count(*) FROM il_books WHERE author_id IN ($1, $2);
PREPARE il_three(int, int, int) AS SELECT count(*) FROM il_books WHERE author_id IN ($1, $2, $3);
BEGIN;
SELECT id FROM il_authors WHERE id <= 10 ORDER BY id;
EXECUTE il_two(1, 2);
EXECUTE il_three(2, 3, 4);
EXECUTE il_two(3, 4);
EXECUTE il_three(4, 5, 6);
EXECUTE il_two(5, 6);
EXECUTE il_three(6, 7, 8);
EXECUTE il_two(7, 8);
EXECUTE il_three(8, 9, 10);
EXECUTE il_two(9, 10);
EXECUTE il_three(10, 1, 2);
COMMIT;
SELECT kind, parent_query, sum(calls) AS calls,
       count(*) = CASE WHEN il_squashed() THEN 1 ELSE 2 END AS offenders_as_expected,
       bool_and(query ~ CASE WHEN il_squashed() THEN 'IN \(\$1 /\*, \.\.\. \*/\)$'
                             ELSE 'IN \(\$1, \$2(, \$3)?\)$' END) AS text_as_expected,
       bool_and(max_distinct_params = calls) AS distinct_params
  FROM n1_offenders GROUP BY kind, parent_query;
SELECT n1_reset();
DEALLOCATE il_two;
DEALLOCATE il_three;

-- A $n outside a squashed list keeps its number; the list's numbers follow.
-- $1 comes from the list's rows: an N+1 (the values rule looks at each
-- parameter position, so the other ids do not outvote it).
PREPARE il_mixed(int, int, int) AS
  SELECT count(*) FROM il_books WHERE author_id = $1 AND id IN ($2, $3);
BEGIN;
SELECT id FROM il_authors WHERE id <= 5 ORDER BY id;
EXECUTE il_mixed(1, 1, 21);
EXECUTE il_mixed(2, 2, 22);
EXECUTE il_mixed(3, 3, 23);
EXECUTE il_mixed(4, 4, 24);
EXECUTE il_mixed(5, 5, 25);
COMMIT;
-- (the text of a prepared statement is its PREPARE, as in pg_stat_statements)
SELECT kind, calls,
       query LIKE CASE WHEN il_squashed()
                       THEN '%SELECT count(*) FROM il_books WHERE author_id = $1 AND id IN ($2 /*, ... */)'
                       ELSE '%SELECT count(*) FROM il_books WHERE author_id = $1 AND id IN ($2, $3)' END
         AS text_as_expected
  FROM n1_offenders;
SELECT n1_reset();
DEALLOCATE il_mixed;

-- Fixed: one query for all the authors' books, whatever the lists' lengths
-- (IN, = ANY of an array, = ANY of a parameter): nothing to report.
BEGIN;
SELECT id FROM il_authors WHERE id <= 10 ORDER BY id;
SELECT author_id, count(*) FROM il_books WHERE author_id IN (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
  GROUP BY author_id ORDER BY author_id;
COMMIT;
BEGIN;
SELECT id FROM il_authors WHERE id <= 3 ORDER BY id;
SELECT count(*) FROM il_books WHERE author_id = ANY (ARRAY[1, 2, 3]);
COMMIT;
PREPARE il_any(int[]) AS SELECT count(*) FROM il_books WHERE author_id = ANY ($1);
BEGIN;
SELECT id FROM il_authors WHERE id <= 4 ORDER BY id;
EXECUTE il_any('{1,2,3,4}');
COMMIT;
-- and pages of it, one unit each, each with a list of its own length
BEGIN;
SELECT id FROM il_authors WHERE id <= 2 ORDER BY id;
SELECT count(*) FROM il_books WHERE author_id IN (1, 2);
COMMIT;
BEGIN;
SELECT id FROM il_authors WHERE id > 2 AND id <= 5 ORDER BY id;
SELECT count(*) FROM il_books WHERE author_id IN (3, 4, 5);
COMMIT;
SELECT count(*) AS offenders FROM n1_offenders;
DEALLOCATE il_any;

-- Many lists in one statement: from 18 on each becomes "$n /*, ... */",
-- longer than a short list (the normalized text's buffer allows for it; an
-- assert-enabled server checks for writes past it).
SELECT count(*) FROM il_books
 WHERE id IN (1,2) OR id IN (2,3) OR id IN (3,4) OR id IN (4,5) OR id IN (5,6)
    OR id IN (6,7) OR id IN (7,8) OR id IN (8,9) OR id IN (1,3) OR id IN (2,4)
    OR id IN (3,5) OR id IN (4,6) OR id IN (5,7) OR id IN (6,8) OR id IN (7,9)
    OR id IN (1,4) OR id IN (2,5) OR id IN (3,6) OR id IN (4,7) OR id IN (5,8);

DROP FUNCTION il_squashed();
DROP TABLE il_books, il_authors;
DROP EXTENSION n1detect;
