-- fast_count benchmark: exact count(*), fast_count and the EXPLAIN-based
-- estimate (the PostgreSQL wiki's count_estimate) side by side.
-- Run by bench/fast_count/run.sh in a throwaway server; tables are built by
-- setup.sql first.
\set ON_ERROR_STOP on
SET client_min_messages = warning;

-- The wiki's count_estimate (https://wiki.postgresql.org/wiki/Count_estimate).
CREATE OR REPLACE FUNCTION count_estimate(query text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  rec record;
  rows bigint;
BEGIN
  FOR rec IN EXECUTE 'EXPLAIN ' || query LOOP
    rows := substring(rec."QUERY PLAN" FROM ' rows=([[:digit:]]+)');
    EXIT WHEN rows IS NOT NULL;
  END LOOP;
  RETURN rows;
END
$$;

CREATE TEMP TABLE results (
  n serial, case_name text, rows_in_table bigint, predicate text,
  exact bigint, exact_ms float8,
  fast bigint, fast_method text, fast_ms float8, fast_lo bigint, fast_hi bigint,
  explain_est bigint, explain_ms float8);

-- Times the best of `reps` runs of each, in ms.
CREATE OR REPLACE FUNCTION bench_case(case_name text, tbl text, predicate text, reps int DEFAULT 3)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  t0 timestamptz; best_exact float8 := 1e18; best_fast float8 := 1e18; best_explain float8 := 1e18;
  ex bigint; fa record; ee bigint; total bigint; q text; i int;
BEGIN
  q := format('SELECT * FROM %I', tbl) || CASE WHEN predicate IS NULL THEN '' ELSE ' WHERE ' || predicate END;
  EXECUTE format('SELECT count(*) FROM %I', tbl) INTO total;
  FOR i IN 1..reps LOOP
    t0 := clock_timestamp();
    EXECUTE 'SELECT count(*) FROM (' || q || ') s' INTO ex;
    best_exact := least(best_exact, extract(epoch FROM clock_timestamp() - t0) * 1000);
  END LOOP;
  FOR i IN 1..reps LOOP
    t0 := clock_timestamp();
    IF predicate IS NULL THEN
      SELECT * INTO fa FROM fast_count_info(tbl::regclass);
    ELSE
      SELECT * INTO fa FROM fast_count_info(tbl::regclass, predicate);
    END IF;
    best_fast := least(best_fast, extract(epoch FROM clock_timestamp() - t0) * 1000);
  END LOOP;
  FOR i IN 1..reps LOOP
    t0 := clock_timestamp();
    ee := count_estimate(q);
    best_explain := least(best_explain, extract(epoch FROM clock_timestamp() - t0) * 1000);
  END LOOP;
  INSERT INTO results (case_name, rows_in_table, predicate, exact, exact_ms, fast, fast_method,
                       fast_ms, fast_lo, fast_hi, explain_est, explain_ms)
  VALUES (case_name, total, coalesce(predicate, '(none)'), ex, best_exact, fa.estimate, fa.method,
          best_fast, fa.lower_bound, fa.upper_bound, ee, best_explain);
END
$$;

-- Catalog path: the mean of many calls (one is too short to time alone).
CREATE OR REPLACE FUNCTION catalog_ms(tbl text, calls int DEFAULT 1000) RETURNS float8
LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz; x bigint; i int;
BEGIN
  t0 := clock_timestamp();
  FOR i IN 1..calls LOOP
    x := fast_count(tbl::regclass);
  END LOOP;
  RETURN extract(epoch FROM clock_timestamp() - t0) * 1000 / calls;
END
$$;

-- 100 seeded runs of a filtered count.
CREATE TEMP TABLE seeded (
  case_name text, predicate text, rows_in_table bigint, truth bigint, runs int, within_3pct int, covered int,
  sampled int, mean_ms float8, max_ms float8, mean_pages float8, pages_total bigint, exact_ms float8);
CREATE OR REPLACE FUNCTION bench_seeded(case_name text, tbl text, predicate text, runs int DEFAULT 100)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  truth bigint; r record; t0 timestamptz; ms float8; sum_ms float8 := 0; max_ms float8 := 0;
  w int := 0; c int := 0; s int := 0; pages float8 := 0; total bigint; ex_ms float8 := 1e18; i int;
  nrows bigint;
BEGIN
  EXECUTE format('SELECT count(*) FROM %I', tbl) INTO nrows;
  FOR i IN 1..3 LOOP
    t0 := clock_timestamp();
    EXECUTE format('SELECT count(*) FROM %I WHERE ', tbl) || predicate INTO truth;
    ex_ms := least(ex_ms, extract(epoch FROM clock_timestamp() - t0) * 1000);
  END LOOP;
  FOR i IN 1..runs LOOP
    PERFORM set_config('n1detect.fast_count_seed', i::text, true);
    t0 := clock_timestamp();
    SELECT * INTO r FROM fast_count_info(tbl::regclass, predicate);
    ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
    sum_ms := sum_ms + ms; max_ms := greatest(max_ms, ms);
    IF abs(r.estimate - truth) <= 0.03 * truth THEN w := w + 1; END IF;
    IF r.lower_bound <= truth AND truth <= r.upper_bound THEN c := c + 1; END IF;
    IF r.method = 'sample' THEN s := s + 1; END IF;
    pages := pages + r.pages_read; total := r.pages_total;
  END LOOP;
  PERFORM set_config('n1detect.fast_count_seed', '-1', true);
  INSERT INTO seeded VALUES (case_name, predicate, nrows, truth, runs, w, c, s, sum_ms / runs, max_ms,
                             pages / runs, total, ex_ms);
END
$$;

\echo == settings
SELECT version();
SELECT name, setting, unit FROM pg_settings
 WHERE name IN ('n1detect.fast_count_budget', 'n1detect.fast_count_max_error', 'shared_buffers',
                'max_parallel_workers_per_gather')
 ORDER BY name;

-- warm the caches
\o /dev/null
SELECT count(*) FROM uniform_1m; SELECT count(*) FROM uniform_5m;
SELECT count(*) FROM clustered_5m; SELECT count(*) FROM partitioned_5m;
\o

DO $$ BEGIN
  PERFORM bench_case('uniform 1M', 'uniform_1m', NULL);
  PERFORM bench_case('uniform 5M', 'uniform_5m', NULL);
  PERFORM bench_case('clustered+bloated 5M', 'clustered_5m', NULL);
  PERFORM bench_case('partitioned 5M (10 leaves)', 'partitioned_5m', NULL);
  PERFORM bench_case('uniform 5M, grown 3x since ANALYZE', 'grown_5m', NULL);
  PERFORM bench_case('uniform 5M, 90% deleted, no VACUUM', 'deleted_5m', NULL);
  PERFORM bench_case('never analyzed 5M', 'fresh_5m', NULL);
  PERFORM bench_case('uniform 1M', 'uniform_1m', 'a < 10');
  PERFORM bench_case('uniform 5M', 'uniform_5m', 'a = 42');
  PERFORM bench_case('uniform 5M', 'uniform_5m', 'a < 10');
  PERFORM bench_case('uniform 5M', 'uniform_5m', 'a < 50');
  PERFORM bench_case('clustered+bloated 5M', 'clustered_5m', 'a < 10');
  PERFORM bench_case('clustered+bloated 5M', 'clustered_5m', 'b < 100');
  PERFORM bench_case('partitioned 5M (10 leaves)', 'partitioned_5m', 'a < 10');
  PERFORM bench_case('correlated pair 5M', 'uniform_5m', 'x <= 50 AND y <= 50');
  PERFORM bench_case('correlated pair 5M', 'uniform_5m', 'x < 50 AND y < 50');
END $$;

\echo
\echo == side by side (best of 3 runs each; errors relative to count(*))
SELECT case_name AS "case", predicate, exact AS "count(*)", round(exact_ms::numeric, 1) AS "ms",
       fast AS fast_count, fast_method AS method, round(fast_ms::numeric, 3) AS "ms ",
       round((exact_ms / nullif(fast_ms, 0))::numeric, 0) AS "x faster",
       CASE WHEN exact = 0 THEN CASE WHEN fast = 0 THEN '0' ELSE 'n/a' END
            ELSE to_char(100.0 * (fast - exact) / exact, 'FM990.00') || '%' END AS "error",
       CASE WHEN fast_lo IS NULL THEN '-' ELSE '[' || fast_lo || ', ' || fast_hi || ']' END AS "95% interval",
       explain_est AS "EXPLAIN",
       CASE WHEN exact = 0 THEN CASE WHEN explain_est = 0 THEN '0' ELSE 'n/a' END
            ELSE to_char(100.0 * (explain_est - exact) / exact, 'FM999990.0') || '%' END AS "EXPLAIN error"
  FROM results ORDER BY n;

\echo
\echo == catalog path: mean of 1000 calls vs best count(*)
SELECT case_name AS "case", round(exact_ms::numeric, 1) AS "count(*) ms",
       round(catalog_ms(t)::numeric, 4) AS "fast_count ms",
       round((exact_ms / catalog_ms(t))::numeric, 0) AS "x faster",
       to_char(100.0 * (fast - exact) / exact, 'FM990.00') || '%' AS "error"
  FROM results r JOIN (VALUES ('uniform 1M', 'uniform_1m'), ('uniform 5M', 'uniform_5m'),
                              ('clustered+bloated 5M', 'clustered_5m'),
                              ('partitioned 5M (10 leaves)', 'partitioned_5m'),
                              ('uniform 5M, grown 3x since ANALYZE', 'grown_5m')) v(c, t)
    ON r.case_name = v.c AND r.predicate = '(none)'
 ORDER BY n;

DO $$ BEGIN
  PERFORM bench_seeded('uniform 5M', 'uniform_5m', 'a = 42');
  PERFORM bench_seeded('uniform 5M', 'uniform_5m', 'a < 5');
  PERFORM bench_seeded('uniform 5M', 'uniform_5m', 'a < 10');
  PERFORM bench_seeded('uniform 5M', 'uniform_5m', 'a < 50');
  PERFORM bench_seeded('uniform 1M', 'uniform_1m', 'a = 42');
  PERFORM bench_seeded('clustered+bloated 5M', 'clustered_5m', 'b < 100');
  PERFORM bench_seeded('partitioned 5M (10 leaves)', 'partitioned_5m', 'a < 10');
  PERFORM bench_seeded('correlated pair 5M', 'uniform_5m', 'x <= 50 AND y <= 50');
END $$;

\echo
\echo == filtered path: 100 seeded runs each (targets: >= 10x faster, >= 95 within 3%, >= 93 covered)
SELECT case_name AS "case", predicate, truth,
       to_char(100.0 * truth / rows_in_table, 'FM990.0') || '%' AS selectivity,
       within_3pct AS "|err|<=3%", covered AS "covered", sampled,
       round(mean_pages::numeric, 0) || ' / ' || pages_total AS "pages read",
       round(mean_ms::numeric, 1) AS "mean ms", round(max_ms::numeric, 1) AS "max ms",
       round(exact_ms::numeric, 1) AS "count(*) ms",
       round((exact_ms / mean_ms)::numeric, 1) AS "x faster"
  FROM seeded;
