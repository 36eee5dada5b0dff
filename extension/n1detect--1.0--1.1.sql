/* extension/n1detect--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "ALTER EXTENSION n1detect UPDATE TO '1.1'" to load this file. \quit

-- The result must equal a fresh install of n1detect--1.1.sql (test/t/235_upgrade.pl
-- compares them), and objects users built on the views must keep working.
-- So a view is never dropped: a view whose function gains columns is
-- redirected with CREATE OR REPLACE VIEW (which may only append columns) to
-- a new function made under a temporary name; the old function is dropped
-- and the new one takes its name.  The recipe, for view V over function F:
--
--   CREATE FUNCTION F_1_1(<old arguments>, <old OUT columns>, <new OUT columns>)
--     ... AS 'MODULE_PATHNAME', 'F_1_1' ...;
--   CREATE OR REPLACE VIEW V AS SELECT * FROM F_1_1(<arguments>) AS V;
--   DROP FUNCTION F(<old argument types>);
--   ALTER FUNCTION F_1_1(<argument types>) RENAME TO F;
--
-- with the view written "SELECT * FROM F(<arguments>) AS V" in
-- n1detect--1.1.sql.  A function whose columns do not change only moves to
-- its 1.1 entry point (CREATE OR REPLACE FUNCTION).

------------------------------------------------------------------------
-- n1_offenders: the request's tags (new columns)
------------------------------------------------------------------------
CREATE FUNCTION n1_offenders_1_1(
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

CREATE OR REPLACE VIEW n1_offenders AS
  SELECT * FROM n1_offenders_1_1(true) AS n1_offenders;

DROP FUNCTION n1_offenders(boolean);
ALTER FUNCTION n1_offenders_1_1(boolean) RENAME TO n1_offenders;

------------------------------------------------------------------------
-- n1_bursts: the request's tags and trace id (new columns)
------------------------------------------------------------------------
CREATE FUNCTION n1_bursts_1_1(
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

CREATE OR REPLACE VIEW n1_bursts AS
  SELECT * FROM n1_bursts_1_1() AS n1_bursts;

DROP FUNCTION n1_bursts();
ALTER FUNCTION n1_bursts_1_1() RENAME TO n1_bursts;

------------------------------------------------------------------------
-- n1_info: the detector's own counters (new columns)
------------------------------------------------------------------------
CREATE FUNCTION n1_info_1_1(
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

CREATE OR REPLACE VIEW n1_info AS
  SELECT * FROM n1_info_1_1() AS n1_info;

DROP FUNCTION n1_info();
ALTER FUNCTION n1_info_1_1() RENAME TO n1_info;
