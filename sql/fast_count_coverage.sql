--
-- fast_count's statistical promise, checked small: over 100 seeded samples
-- of a 100k-row table the reported 95% interval must cover the true count
-- at least 90 times (a binomial(100, 0.95) falls below 90 about 1.5% of the
-- time for an honest interval; with the fixed seeds below the outcome is
-- deterministic).  The target error is loosened so that every run samples
-- a few hundred of the table's blocks instead of reading them all.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS n1detect;
RESET client_min_messages;
SET n1detect.fast_count_budget = '20s';

SELECT setseed(0.25);
CREATE TABLE fc_cov AS
  SELECT g AS id, floor(random() * 100)::int AS a, floor(random() * 1000)::int AS b,
         repeat('x', (random() * 40)::int) AS pad
  FROM generate_series(1, 100000) g;
-- some bloat, so that blocks hold different numbers of live rows
DELETE FROM fc_cov WHERE b < 100 AND id % 3 = 0;
SELECT pg_stat_force_next_flush();
ANALYZE fc_cov;

CREATE FUNCTION fc_cov_runs(filter text, max_error float8,
                            OUT covered int, OUT within_3pct int,
                            OUT sampled int, OUT mean_pages int)
LANGUAGE plpgsql AS $$
DECLARE
  truth bigint;
  r record;
  pages bigint := 0;
BEGIN
  EXECUTE format('SELECT count(*) FROM fc_cov WHERE %s', filter) INTO truth;
  PERFORM set_config('n1detect.fast_count_max_error', max_error::text, true);
  covered := 0; within_3pct := 0; sampled := 0;
  FOR s IN 1..100 LOOP
    PERFORM set_config('n1detect.fast_count_seed', s::text, true);
    SELECT * INTO r FROM fast_count_info('fc_cov', filter);
    IF r.lower_bound <= truth AND truth <= r.upper_bound THEN
      covered := covered + 1;
    END IF;
    IF abs(r.estimate - truth) <= 0.03 * truth THEN
      within_3pct := within_3pct + 1;
    END IF;
    IF r.method = 'sample' THEN
      sampled := sampled + 1;
    END IF;
    pages := pages + r.pages_read;
  END LOOP;
  mean_pages := pages / 100;
END
$$;

-- selectivity 10%, 5% target: intervals cover, and about three quarters of
-- the estimates are within 3% (a 5% half-width is a 2.6% standard error)
SELECT covered >= 90 AS covers, within_3pct >= 60 AS accurate, sampled = 100 AS all_sampled
  FROM fc_cov_runs('a < 10', 0.05);
-- selectivity 1%, 10% target
SELECT covered >= 90 AS covers, sampled = 100 AS all_sampled
  FROM fc_cov_runs('a = 42', 0.10);
-- correlated columns (b < 100 were thinned above): 50%, 5% target
SELECT covered >= 90 AS covers, within_3pct >= 80 AS accurate, sampled = 100 AS all_sampled
  FROM fc_cov_runs('b < 500 AND a >= 50', 0.05);
-- the unfiltered count, sampled when the catalog cannot be used
SELECT covered >= 90 AS covers, sampled = 100 AS all_sampled
  FROM fc_cov_runs('true', 0.02);

DROP FUNCTION fc_cov_runs;
DROP TABLE fc_cov;
