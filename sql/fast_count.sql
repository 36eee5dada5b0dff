--
-- fast_count(): every form, the decision between catalog / exact / sample /
-- planner, trees, privileges and the errors.  Estimates are compared with
-- the truth within tolerances; samples use a fixed seed and a budget large
-- enough that time never decides.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS n1detect;
RESET client_min_messages;
SET n1detect.fast_count_seed = 42;
SET n1detect.fast_count_budget = '20s';

-- Estimates and bounds checked against the truth, without printing numbers
-- that a sample could change.
CREATE FUNCTION fc_check(est bigint, lo bigint, hi bigint, truth bigint, tol float8)
RETURNS text LANGUAGE sql AS $$
  SELECT CASE
    WHEN truth = 0 AND est <> 0 THEN 'wrong: ' || est || ' for 0'
    WHEN truth <> 0 AND abs(est - truth)::float8 / truth > tol
      THEN 'off by more than ' || tol
    WHEN lo IS NOT NULL AND NOT (lo <= truth AND truth <= hi)
      THEN 'interval misses the truth'
    WHEN lo IS NOT NULL AND NOT (lo <= est AND est <= hi)
      THEN 'interval misses the estimate'
    ELSE 'ok' END
$$;

-- An empty table that was never analyzed has exactly 0 rows (the planner
-- would guess 10 pages' worth).
CREATE TABLE fc_empty (id int, payload text);
SELECT estimate, lower_bound, upper_bound, method, pages_read, pages_total
  FROM fast_count_info('fc_empty');
SELECT fast_count('fc_empty'), fast_count('fc_empty', 'id > 0');

-- A small table that was never analyzed is counted exactly.
-- (INSERT, not CREATE TABLE AS: from 16 on a bulk write extends a table by
-- several pages at once, which would change the page-scaled estimates below)
CREATE TABLE fc_small (id int);
INSERT INTO fc_small SELECT g FROM generate_series(1, 1000) g;
SELECT estimate, lower_bound, upper_bound, method, pages_read = pages_total AS read_all
  FROM fast_count_info('fc_small');

-- A larger one, never analyzed: sampled (or counted) from its pages.
CREATE TABLE fc_t AS
  SELECT g AS id, g % 100 AS a, (g % 1000 * 7919) % 1000 AS b, md5(g::text) AS s
  FROM generate_series(1, 200000) g;
SELECT method IN ('sample', 'exact') AS counted, fc_check(estimate, lower_bound, upper_bound, 200000, 0.03)
  FROM fast_count_info('fc_t');

-- After ANALYZE: the catalog, scaled to the current size (statistics
-- flushed first, or ANALYZE's counts and this session's pending ones add up).
SELECT pg_stat_force_next_flush();
ANALYZE fc_t;
SELECT method, pages_read, fc_check(estimate, lower_bound, upper_bound, 200000, 0.01)
  FROM fast_count_info('fc_t');
SELECT abs(fast_count('fc_t') - 200000) <= 2000 AS within_1pct;

-- Grown 3x since ANALYZE: still the catalog, at the current size.
INSERT INTO fc_t
  SELECT g, g % 100, (g % 1000 * 7919) % 1000, md5(g::text) FROM generate_series(200001, 600000) g;
SELECT reltuples FROM pg_class WHERE relname = 'fc_t';
SELECT method, fc_check(estimate, lower_bound, upper_bound, 600000, 0.02)
  FROM fast_count_info('fc_t');

-- A mass DELETE without VACUUM: the catalog would still say 600000.
SELECT pg_stat_force_next_flush();
ANALYZE fc_t;
DELETE FROM fc_t WHERE id % 10 <> 0;
SELECT method <> 'catalog' AS not_catalog, fc_check(estimate, lower_bound, upper_bound, 60000, 0.03)
  FROM fast_count_info('fc_t');
-- this session's pending counts of the DELETE must reach the shared
-- statistics before VACUUM sets them (they are flushed at most once a second
-- otherwise, and would later be added to VACUUM's count)
SELECT pg_stat_force_next_flush();
VACUUM ANALYZE fc_t;
SELECT method, fc_check(estimate, lower_bound, upper_bound, 60000, 0.01)
  FROM fast_count_info('fc_t');

-- Filters: sampled to n1detect.fast_count_max_error, exact when small or
-- when too few rows match.
CREATE TABLE fc_f AS
  SELECT g AS id, g % 100 AS a, (g % 1000 * 7919) % 1000 AS b, md5(g::text) AS s
  FROM generate_series(1, 300000) g;
SELECT method, fc_check(estimate, lower_bound, upper_bound, 30000, 0.03),
       pages_read < pages_total AS partial
  FROM fast_count_info('fc_f', 'a < 10');
SELECT method, fc_check(estimate, lower_bound, upper_bound, 3000, 0.05)
  FROM fast_count_info('fc_f', 'a = 7');
SELECT method, estimate, lower_bound, upper_bound
  FROM fast_count_info('fc_f', 'id BETWEEN 100 AND 109');
SELECT method, estimate, lower_bound, upper_bound
  FROM fast_count_info('fc_f', 'id < 0');
SELECT method, estimate FROM fast_count_info('fc_small', 'id <= 10');
SELECT abs(fast_count('fc_f', 'a < 50') - 150000) <= 4500 AS within_3pct;
-- NULL results do not match; subqueries and stable functions are fine.
SELECT fast_count('fc_small', 'CASE WHEN id > 500 THEN true END');
SELECT fast_count('fc_small', 'id IN (SELECT id FROM fc_small WHERE id < 6)');
SELECT fast_count('fc_small', 'now() > ''2000-01-01''');
-- A tighter target reads more.
SET n1detect.fast_count_max_error = 0.005;
SELECT method IN ('sample', 'exact') AS ok, fc_check(estimate, lower_bound, upper_bound, 30000, 0.01)
  FROM fast_count_info('fc_f', 'a < 10');
RESET n1detect.fast_count_max_error;

-- fast_count_query: single-table SELECTs with WHERE are sampled, without
-- WHERE they are the table's count, anything else is counted exactly
-- within the budget or else estimated by the planner.
SELECT method, fc_check(estimate, lower_bound, upper_bound, 30000, 0.03)
  FROM fast_count_query_info('SELECT id, s FROM fc_f AS f WHERE f.a < 10 ORDER BY id');
SELECT method, fc_check(estimate, lower_bound, upper_bound, 300000, 0.03)
  FROM fast_count_query_info('SELECT * FROM fc_f');
SELECT method, estimate, lower_bound, upper_bound
  FROM fast_count_query_info('SELECT a, count(*) FROM fc_f GROUP BY a');
SELECT method, estimate
  FROM fast_count_query_info('SELECT * FROM fc_small s JOIN fc_small t USING (id) WHERE s.id <= 100');
SELECT fast_count_query('SELECT DISTINCT a FROM fc_f WHERE a < 5'),
       fast_count_query('SELECT * FROM fc_small LIMIT 7'),
       fast_count_query('VALUES (1), (2), (3)'),
       fast_count_query('WITH x AS (SELECT * FROM fc_small) SELECT * FROM x WHERE id > 990;');
-- Over the budget: the planner's estimate.
SET n1detect.fast_count_budget = '1ms';
SELECT method, lower_bound IS NULL AS no_bounds, estimate > 0 AS positive
  FROM fast_count_query_info('SELECT * FROM fc_f x, fc_f y WHERE x.id = y.id + 0 AND x.b + y.b > 3');
RESET n1detect.fast_count_budget;
SET n1detect.fast_count_budget = '20s';

-- statement_timeout and cancellation are not swallowed.
SET statement_timeout = '50ms';
SELECT fast_count_query('SELECT * FROM fc_f x, fc_f y WHERE x.id = y.id + 0 AND x.b + y.b > 3');
RESET statement_timeout;

-- Partitioned tables: leaves summed, the parent (reltuples -1) skipped.
CREATE TABLE fc_p (id int, a int) PARTITION BY RANGE (id);
CREATE TABLE fc_p1 PARTITION OF fc_p FOR VALUES FROM (0) TO (100000);
CREATE TABLE fc_p2 PARTITION OF fc_p FOR VALUES FROM (100000) TO (200000)
  PARTITION BY HASH (id);
CREATE TABLE fc_p2a PARTITION OF fc_p2 FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE fc_p2b PARTITION OF fc_p2 FOR VALUES WITH (MODULUS 2, REMAINDER 1);
CREATE TABLE fc_p3 PARTITION OF fc_p DEFAULT;
INSERT INTO fc_p SELECT g, g % 100 FROM generate_series(0, 249999) g;
SELECT method IN ('sample', 'exact') AS counted, fc_check(estimate, lower_bound, upper_bound, 250000, 0.03)
  FROM fast_count_info('fc_p');
SELECT pg_stat_force_next_flush();
ANALYZE fc_p;
SELECT method, fc_check(estimate, lower_bound, upper_bound, 250000, 0.01)
  FROM fast_count_info('fc_p');
SELECT method, fc_check(estimate, lower_bound, upper_bound, 100000, 0.01)
  FROM fast_count_info('fc_p2');
SELECT method, fc_check(estimate, lower_bound, upper_bound, 25000, 0.03)
  FROM fast_count_info('fc_p', 'a < 10');
SELECT fc_check(fast_count_query('SELECT * FROM fc_p WHERE id >= 200000 AND a = 3'), NULL, NULL, 500, 0.05);
-- A new, never-analyzed partition is counted; the others stay catalog.
CREATE TABLE fc_p4 (id int, a int);
INSERT INTO fc_p4 SELECT g, 1 FROM generate_series(300000, 304999) g;
ALTER TABLE fc_p DETACH PARTITION fc_p3;
ALTER TABLE fc_p ATTACH PARTITION fc_p3 FOR VALUES FROM (200000) TO (300000);
ALTER TABLE fc_p ATTACH PARTITION fc_p4 DEFAULT;
SELECT method, fc_check(estimate, NULL, NULL, 255000, 0.01), note LIKE '%"fc_p4" was never analyzed%' AS noted
  FROM fast_count_info('fc_p');

-- Inheritance: a parent holding rows of its own, and children.
CREATE TABLE fc_i (id int, a int);
CREATE TABLE fc_i1 () INHERITS (fc_i);
CREATE TABLE fc_i2 (extra text) INHERITS (fc_i);
INSERT INTO fc_i SELECT g, g % 10 FROM generate_series(1, 30000) g;
INSERT INTO fc_i1 SELECT g, g % 10 FROM generate_series(1, 20000) g;
INSERT INTO fc_i2 SELECT g, g % 10, 'x' FROM generate_series(1, 10000) g;
SELECT fc_check(fast_count('fc_i'), NULL, NULL, 60000, 0.03) AS never_analyzed, fast_count('fc_i1') AS child;
SELECT pg_stat_force_next_flush();
ANALYZE fc_i, fc_i1, fc_i2;
SELECT method, fc_check(estimate, lower_bound, upper_bound, 60000, 0.01)
  FROM fast_count_info('fc_i');
SELECT fc_check(fast_count('fc_i', 'a = 3'), NULL, NULL, 6000, 0.05);
SELECT fast_count_query('SELECT * FROM ONLY fc_i WHERE a = 3') AS only_parent,
       fast_count_query('SELECT * FROM ONLY fc_i') AS only_parent_all;

-- Materialized views.
CREATE MATERIALIZED VIEW fc_mv AS SELECT * FROM fc_small WHERE id <= 300;
SELECT fast_count('fc_mv'), fast_count('fc_mv', 'id > 100');
CREATE MATERIALIZED VIEW fc_mv_empty AS SELECT * FROM fc_small WITH NO DATA;
SELECT fast_count('fc_mv_empty');

-- Foreign tables: the catalog only, and only with statistics.
CREATE EXTENSION file_fdw;
CREATE SERVER fc_files FOREIGN DATA WRAPPER file_fdw;
CREATE FOREIGN TABLE fc_ft (id int) SERVER fc_files OPTIONS (filename '/dev/null');
SELECT fast_count('fc_ft');
ANALYZE fc_ft;
SELECT estimate, method FROM fast_count_info('fc_ft');
SELECT method FROM fast_count_info('fc_ft', 'id > 0');

-- Errors: NULLs, unknown relations, wrong kinds.
SELECT fast_count(NULL);
SELECT fast_count('fc_small', NULL);
SELECT fast_count(NULL, 'id > 0');
SELECT fast_count_query(NULL);
SELECT * FROM fast_count_info(NULL::regclass);
SELECT fast_count('fc_no_such_table');
SELECT fast_count(1::oid::regclass);
CREATE VIEW fc_v AS SELECT * FROM fc_small;
SELECT fast_count('fc_v');
SELECT fast_count('fc_v', 'id > 0');
SELECT fast_count_query('SELECT * FROM fc_v WHERE id > 10');
CREATE SEQUENCE fc_seq;
SELECT fast_count('fc_seq');
CREATE INDEX fc_small_idx ON fc_small (id);
SELECT fast_count('fc_small_idx');

-- Errors: a filter is one boolean expression, a query one read-only SELECT,
-- rejected before anything runs.
SELECT fast_count('fc_small', 'id > 0; DELETE FROM fc_small');
SELECT fast_count('fc_small', 'true); DELETE FROM fc_small; SELECT (1');
SELECT fast_count('fc_small', '');
SELECT fast_count('fc_small', '   ');
SELECT fast_count('fc_small', 'id > 0 FROM fc_small');
SELECT fast_count('fc_small', 'id > 0, id < 5');
SELECT fast_count('fc_small', 'id');
SELECT fast_count('fc_small', 'no_such_column > 0');
SELECT fast_count('fc_small', 'count(*) > 0');
SELECT fast_count('fc_small', 'random() < 0.5');
SELECT fast_count('fc_small', 'nextval(''fc_seq'') > 0');
SELECT fast_count('fc_small', 'id IN (WITH d AS (DELETE FROM fc_small RETURNING id) SELECT id FROM d)');
SELECT fast_count('fc_small', 'fast_count(''fc_small'') > 0');
SELECT fast_count_query('');
SELECT fast_count_query('SELECT 1; SELECT 2');
SELECT fast_count_query('SELECT 1; DELETE FROM fc_small');
SELECT fast_count_query('DELETE FROM fc_small');
SELECT fast_count_query('UPDATE fc_small SET id = id');
SELECT fast_count_query('EXPLAIN ANALYZE DELETE FROM fc_small');
SELECT fast_count_query('WITH d AS (DELETE FROM fc_small RETURNING *) SELECT * FROM d');
SELECT fast_count_query('SELECT * FROM fc_small FOR UPDATE');
SELECT fast_count_query('SELECT * INTO fc_new FROM fc_small');
SELECT fast_count_query('SELECT nextval(''fc_seq'') FROM fc_small');
SELECT fast_count_query('CREATE TABLE fc_x (id int)');
SELECT fast_count_query('SELECT * FROM fc_small WHERE id = (SELECT id FROM fc_small WHERE id = 1 FOR SHARE)');
SELECT count(*) AS still_1000 FROM fc_small;
SELECT nextval('fc_seq') AS seq_untouched;
-- The sampling method is fast_count's own.
SELECT count(*) FROM fc_small TABLESAMPLE fast_count_blocks(0);

-- Privileges: SELECT is required; row-level security is never bypassed.
CREATE ROLE regress_fc_user;
GRANT USAGE ON SCHEMA public TO regress_fc_user;
CREATE TABLE fc_secret AS SELECT g AS id, g % 4 AS owner_id FROM generate_series(1, 40000) g;
SELECT pg_stat_force_next_flush();
ANALYZE fc_secret;
SET ROLE regress_fc_user;
SELECT fast_count('fc_secret');
SELECT fast_count('fc_secret', 'id > 0');
SELECT fast_count_query('SELECT * FROM fc_secret WHERE id > 0');
SELECT fast_count_query('SELECT count(*) FROM fc_secret');
RESET ROLE;
GRANT SELECT (id) ON fc_secret TO regress_fc_user;
SET ROLE regress_fc_user;
SELECT fast_count('fc_secret') AS column_privilege_is_enough;
-- as for count(*): a filter or query on the granted column works, one on
-- another column is denied
SELECT fc_check(fast_count('fc_secret', 'id > 100'), NULL, NULL, 39900, 0.03) AS filter,
       fc_check(fast_count_query('SELECT id FROM fc_secret WHERE id > 100'), NULL, NULL, 39900, 0.03) AS query;
SELECT fast_count('fc_secret', 'owner_id = 1');
SELECT fast_count_query('SELECT owner_id FROM fc_secret');
RESET ROLE;
GRANT SELECT ON fc_secret TO regress_fc_user;
ALTER TABLE fc_secret ENABLE ROW LEVEL SECURITY;
CREATE POLICY fc_own ON fc_secret FOR SELECT TO regress_fc_user USING (owner_id = 1);
SET ROLE regress_fc_user;
SELECT method <> 'catalog' AS not_catalog, fc_check(estimate, lower_bound, upper_bound, 10000, 0.03),
       note LIKE '%row-level security%' AS noted
  FROM fast_count_info('fc_secret');
SELECT fast_count('fc_secret', 'owner_id <> 1') AS hidden_rows,
       fc_check(fast_count('fc_secret', 'id <= 20000'), NULL, NULL, 5000, 0.05);
SELECT fc_check(fast_count_query('SELECT * FROM fc_secret WHERE id > 20000'), NULL, NULL, 5000, 0.05);
SELECT fast_count_query('SELECT * FROM fc_secret s1 JOIN fc_secret s2 USING (id)') AS joined;
RESET ROLE;
-- The owner is not subject to the policy (no FORCE): the catalog.
SELECT method, fc_check(estimate, NULL, NULL, 40000, 0.01) FROM fast_count_info('fc_secret');

-- Works inside a transaction that wrote, sees its own rows, and leaves it
-- usable; also inside a subtransaction that is rolled back.
BEGIN;
INSERT INTO fc_small SELECT g FROM generate_series(1001, 1500) g;
SELECT fast_count('fc_small'), fast_count('fc_small', 'id > 1000');
SAVEPOINT s;
SET LOCAL n1detect.fast_count_budget = '1ms';
SELECT method FROM fast_count_query_info('SELECT * FROM fc_f x, fc_f y WHERE x.id = y.id + 0');
ROLLBACK TO s;
INSERT INTO fc_small VALUES (0);
SELECT fast_count('fc_small');
ROLLBACK;
SELECT fast_count('fc_small');

-- The settings.
SELECT name, setting, unit, context, vartype FROM pg_settings
  WHERE name LIKE 'n1detect.fast_count%' ORDER BY name;
SET n1detect.fast_count_max_error = 0;
-- (the error's code only: from 18 on the message shows the range with its unit)
\set VERBOSITY sqlstate
SET n1detect.fast_count_budget = 0;
\set VERBOSITY default

DROP TABLE fc_empty, fc_small, fc_t, fc_f, fc_p, fc_i CASCADE;
DROP MATERIALIZED VIEW fc_mv, fc_mv_empty;
DROP TABLE fc_secret;
DROP SEQUENCE fc_seq;
DROP FOREIGN TABLE fc_ft;
DROP SERVER fc_files;
DROP EXTENSION file_fdw;
DROP FUNCTION fc_check;
REVOKE USAGE ON SCHEMA public FROM regress_fc_user;
DROP ROLE regress_fc_user;
