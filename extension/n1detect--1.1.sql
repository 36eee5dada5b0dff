/* extension/n1detect--1.1.sql: the full install script of version 1.1 */

-- Editing: a new column goes at the END of its function's OUT list, here
-- and in n1detect--1.0--1.1.sql (whose comments say how), and at the end of
-- the row the newest C entry point builds (src/server/views.c).

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION n1detect" to load this file. \quit

------------------------------------------------------------------------
-- N+1 detection (needs shared_preload_libraries = 'n1detect')
------------------------------------------------------------------------

CREATE FUNCTION n1_offenders(
    IN showtext boolean,
    OUT userid oid,
    OUT dbid oid,
    OUT queryid bigint,
    OUT parent_queryid bigint,
    OUT kind text,
    OUT query text,
    OUT parent_query text,
    OUT bursts bigint,
    OUT calls bigint,
    OUT max_calls bigint,
    OUT max_distinct_params bigint,
    OUT max_parent_rows bigint,
    OUT total_exec_time double precision,
    OUT first_seen timestamptz,
    OUT last_seen timestamptz,
    OUT application_name text,
    OUT sample_params text[],
    -- 1.1
    OUT source text,
    OUT code_line text
)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'n1_offenders_1_1'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

CREATE VIEW n1_offenders AS
  SELECT * FROM n1_offenders(true) AS n1_offenders;

GRANT SELECT ON n1_offenders TO PUBLIC;

CREATE FUNCTION n1_bursts(
    OUT pid integer,
    OUT userid oid,
    OUT dbid oid,
    OUT started_at timestamptz,
    OUT ended_at timestamptz,
    OUT in_progress boolean,
    OUT queryid bigint,
    OUT parent_queryid bigint,
    OUT kind text,
    OUT calls bigint,
    OUT distinct_params bigint,
    OUT parent_calls bigint,
    OUT parent_rows bigint,
    OUT exec_time double precision,
    OUT application_name text,
    -- 1.1
    OUT source text,
    OUT code_line text,
    OUT trace_id text,
    OUT parent_evidence text
)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'n1_bursts_1_1'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

CREATE VIEW n1_bursts AS
  SELECT * FROM n1_bursts() AS n1_bursts;

GRANT SELECT ON n1_bursts TO PUBLIC;

CREATE FUNCTION n1_backend_statements(
    OUT pid integer,
    OUT userid oid,
    OUT dbid oid,
    OUT seq bigint,
    OUT queryid bigint,
    OUT param_hash bigint,
    OUT nesting_level integer,
    OUT started_at timestamptz,
    OUT exec_time double precision,
    OUT rows bigint
)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'n1_backend_statements'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

CREATE VIEW n1_backend_statements AS
  SELECT * FROM n1_backend_statements();

GRANT SELECT ON n1_backend_statements TO PUBLIC;

CREATE FUNCTION n1_info(
    OUT offenders bigint,
    OUT max_offenders bigint,
    OUT dealloc bigint,
    OUT bursts_total bigint,
    OUT stats_reset timestamptz,
    -- 1.1
    OUT units bigint,
    OUT bursts_dropped bigint,
    OUT queries_evicted bigint,
    OUT texts_evicted bigint,
    OUT slots_skipped bigint
)
RETURNS record
AS 'MODULE_PATHNAME', 'n1_info_1_1'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

CREATE VIEW n1_info AS
  SELECT * FROM n1_info() AS n1_info;

GRANT SELECT ON n1_info TO PUBLIC;

CREATE FUNCTION n1_reset()
RETURNS void
AS 'MODULE_PATHNAME', 'n1_reset'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

REVOKE ALL ON FUNCTION n1_reset() FROM PUBLIC;

------------------------------------------------------------------------
-- fast_count (works without preloading)
------------------------------------------------------------------------
-- BEGIN fast_count
-- fast_count(): approximate row counts with their 95% interval.  None needs
-- preloading.  Not STRICT: a NULL argument is an error, not a NULL count.
-- VOLATILE (samples differ between calls) and PARALLEL UNSAFE (they run
-- statements of their own, in subtransactions).

-- The TABLESAMPLE method fast_count uses to read the blocks it chose; it
-- refuses to run for anything else.
CREATE FUNCTION fast_count_blocks(internal)
RETURNS tsm_handler
AS 'MODULE_PATHNAME', 'n1_fast_count_blocks_handler'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION fast_count(rel regclass)
RETURNS bigint
AS 'MODULE_PATHNAME', 'n1_fast_count'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION fast_count(rel regclass, filter text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'n1_fast_count_filter'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION fast_count_query(query text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'n1_fast_count_query'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION fast_count_info(
    rel regclass,
    OUT estimate bigint,
    OUT lower_bound bigint,
    OUT upper_bound bigint,
    OUT method text,
    OUT pages_read bigint,
    OUT pages_total bigint,
    OUT elapsed_ms double precision,
    OUT note text
)
RETURNS record
AS 'MODULE_PATHNAME', 'n1_fast_count_info'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION fast_count_info(
    rel regclass,
    filter text,
    OUT estimate bigint,
    OUT lower_bound bigint,
    OUT upper_bound bigint,
    OUT method text,
    OUT pages_read bigint,
    OUT pages_total bigint,
    OUT elapsed_ms double precision,
    OUT note text
)
RETURNS record
AS 'MODULE_PATHNAME', 'n1_fast_count_info_filter'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION fast_count_query_info(
    query text,
    OUT estimate bigint,
    OUT lower_bound bigint,
    OUT upper_bound bigint,
    OUT method text,
    OUT pages_read bigint,
    OUT pages_total bigint,
    OUT elapsed_ms double precision,
    OUT note text
)
RETURNS record
AS 'MODULE_PATHNAME', 'n1_fast_count_query_info'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
-- END fast_count
