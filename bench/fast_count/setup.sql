-- Tables for the fast_count benchmark (bench/fast_count/run.sh).
\set ON_ERROR_STOP on
SET client_min_messages = warning;
SELECT setseed(0.42);

-- uniform: a in 0..99, b in 0..999, and a perfectly anti-correlated pair
-- (y = 100 - x) that the planner multiplies as if independent
CREATE TABLE uniform_1m AS
  SELECT g AS id, floor(random() * 100)::int AS a, floor(random() * 1000)::int AS b,
         x, 100 - x AS y, md5(g::text) AS pad
  FROM (SELECT g, floor(random() * 101)::int AS x FROM generate_series(1, 1000000) g) s;
CREATE TABLE uniform_5m AS
  SELECT g AS id, floor(random() * 100)::int AS a, floor(random() * 1000)::int AS b,
         x, 100 - x AS y, md5(g::text) AS pad
  FROM (SELECT g, floor(random() * 101)::int AS x FROM generate_series(1, 5000000) g) s;

-- clustered on a (a = id / 50000) and bloated: three quarters of the rows of
-- every other a deleted, so blocks hold very different numbers of live rows
CREATE TABLE clustered_5m AS
  SELECT g AS id, (g / 50000)::int AS a, floor(random() * 1000)::int AS b, md5(g::text) AS pad
  FROM generate_series(1, 5000000) g;
DELETE FROM clustered_5m WHERE a % 2 = 0 AND id % 4 <> 0;

-- partitioned: 10 range partitions of 500k rows
CREATE TABLE partitioned_5m (id int, a int, b int, pad text) PARTITION BY RANGE (id);
DO $$
BEGIN
  FOR i IN 0..9 LOOP
    EXECUTE format('CREATE TABLE partitioned_5m_%s PARTITION OF partitioned_5m FOR VALUES FROM (%s) TO (%s)',
                   i, i * 500000 + 1, (i + 1) * 500000 + 1);
  END LOOP;
END $$;
INSERT INTO partitioned_5m
  SELECT g, floor(random() * 100)::int, floor(random() * 1000)::int, md5(g::text)
  FROM generate_series(1, 5000000) g;

-- grown 3x after ANALYZE; 90% deleted after ANALYZE (no VACUUM); never analyzed
CREATE TABLE grown_5m AS
  SELECT g AS id, floor(random() * 100)::int AS a, md5(g::text) AS pad
  FROM generate_series(1, 1666667) g;
CREATE TABLE deleted_5m AS
  SELECT g AS id, floor(random() * 100)::int AS a, md5(g::text) AS pad
  FROM generate_series(1, 5000000) g;
CREATE TABLE fresh_5m AS
  SELECT g AS id, floor(random() * 100)::int AS a, md5(g::text) AS pad
  FROM generate_series(1, 5000000) g;

-- statistics flushed before ANALYZE, so that ANALYZE's counts are not added
-- to this session's pending ones
SELECT pg_stat_force_next_flush();
VACUUM clustered_5m;
SELECT pg_stat_force_next_flush();
ANALYZE uniform_1m, uniform_5m, clustered_5m, partitioned_5m, grown_5m, deleted_5m;
INSERT INTO grown_5m
  SELECT g, floor(random() * 100)::int, md5(g::text) FROM generate_series(1666668, 5000000) g;
DELETE FROM deleted_5m WHERE id % 10 <> 0;
CHECKPOINT;
