--
-- With standard_conforming_strings off (first thing in this session, before
-- n1detect reads any statement's tokens): a cursor and an N+1 with literal
-- strings are recorded, and the statements themselves run undisturbed.
--
SET standard_conforming_strings = off;
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS n1detect;
RESET client_min_messages;
SET n1detect.max_gap = '10s';  -- units end only where this test says so
CREATE TABLE ss_authors (id int PRIMARY KEY, name text);
INSERT INTO ss_authors SELECT g, 'author ' || g FROM generate_series(1, 10) g;
SELECT n1_reset();

-- a cursor over the list, and one query per row with a string literal
-- (the cursor's text is its SELECT)
BEGIN;
DECLARE ss_list CURSOR FOR SELECT id FROM ss_authors WHERE id <= 6 ORDER BY id;
FETCH 6 FROM ss_list;
SELECT name FROM ss_authors WHERE id = 1 AND name <> 'none';
SELECT name FROM ss_authors WHERE id = 2 AND name <> 'none';
SELECT name FROM ss_authors WHERE id = 3 AND name <> 'none';
SELECT name FROM ss_authors WHERE id = 4 AND name <> 'none';
SELECT name FROM ss_authors WHERE id = 5 AND name <> 'none';
SELECT name FROM ss_authors WHERE id = 6 AND name <> E'none\\';
COMMIT;
SELECT kind, query, parent_query, calls, sample_params FROM n1_offenders;

SELECT n1_reset();
DROP TABLE ss_authors;
DROP EXTENSION n1detect;
