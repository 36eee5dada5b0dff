# Per-backend memory stays bounded by bytes (issue 7, defects 5 and 7).
#
# In one backend: 50,000 distinct query ids, IN-lists of 100 KB and 10 MB and
# a 10 MB literal; then n1detect's memory contexts stay under their documented
# ceiling (README, Security and limits > Memory), the backend's memory does
# not grow with what it saw, shared memory is unchanged, and the texts and
# samples kept are bounded prefixes (valid UTF-8).
# Large parameters: a prepared statement with a 270 MB bytea parameter
# succeeds on every call (the sample capture used to convert the whole value:
# "invalid memory alloc request size"), and with 30 MB the calls that capture
# a sample take no more memory than those that do not.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use N1Test;

# Core logs bound parameters in full with log_statement = all: not here.
my $node = N1Test::new_node('memory', conf => "log_parameter_max_length = 0\n");
my $postmaster = N1Test::postmaster_pid($node);
$node->safe_psql('postgres', "CREATE DATABASE u8 ENCODING 'UTF8' LOCALE 'C' TEMPLATE template0");
N1Test::create_schema($node, 'u8');
$node->safe_psql('u8', 'CREATE TABLE blobs (id int PRIMARY KEY); INSERT INTO blobs VALUES (1); ANALYZE blobs');

# The ceiling of n1detect's contexts, as the README states it: 1 MB of texts
# (1024 texts of N1_QUERY_TEXT_LEN bytes), 36 KB for their index, the context
# and allocator headers, 8 bytes per n1detect.max_offenders (default 1000).
my $ceiling = 1024 * 1024 + 36 * 1024 + 8 * 1000;

my $session = $node->background_psql('u8');

sub memory
{
	my ($out) = $session->query_safe(q{
		SELECT coalesce(sum(total_bytes) FILTER (WHERE name LIKE 'n1detect%'), 0),
		       sum(total_bytes)
		FROM pg_backend_memory_contexts});
	return split /\|/, $out;
}

sub shmem
{
	return $session->query_safe(q{
		SELECT string_agg(format('%s=%s/%s', coalesce(name, '<free>'), size, allocated_size), ', ' ORDER BY name)
		FROM pg_shmem_allocations WHERE name LIKE 'n1detect%' OR name IN ('<anonymous>')});
}

$session->query_safe("SET n1detect.track = 'all'");
# parsing a 10 MB statement may take longer than the default gap
$session->query_safe("SET n1detect.max_gap = '1h'");
# warm up the catalog caches this backend will use
$session->query_safe(q{DO $$BEGIN EXECUTE 'SELECT id FROM authors WHERE id = 1'; END$$});
my ($n1_before, $all_before) = memory();
my $shmem_before = shmem();
note "before: n1detect contexts $n1_before bytes, all contexts $all_before bytes";

# 50,000 distinct query ids: a target list spelling i in binary with id/name.
$session->query_safe(q{
	DO $$
	DECLARE cols text;
	BEGIN
		FOR i IN 1..50000 LOOP
			cols := '';
			FOR b IN 0..15 LOOP
				cols := cols || CASE WHEN (i >> b) & 1 = 1 THEN 'id, ' ELSE 'name, ' END;
			END LOOP;
			EXECUTE 'SELECT ' || cols || '1 FROM authors WHERE id = 1';
		END LOOP;
	END$$});
my ($n1_ids, $all_ids) = memory();
note "after 50,000 ids: n1detect contexts $n1_ids bytes, all contexts $all_ids bytes";
cmp_ok($n1_ids, '<=', $ceiling, "50,000 distinct query ids: n1detect's contexts ($n1_ids bytes) stay under the ceiling ($ceiling)");

# Long statements: 30 distinct IN-lists of about 100 KB, one of 10 MB, and a
# query with a 10 MB literal ('a' then 5 million 'é') run as a burst of 6,
# and one IN-list of 100 KB run as a burst of 5 (their texts and samples are
# kept).
$session->query_safe(q{
	DO $$
	DECLARE big text := 'a' || repeat('é', 5000000);
	BEGIN
		FOR i IN 1..30 LOOP
			EXECUTE 'SELECT count(*) FROM authors WHERE id IN ('
				|| (SELECT string_agg(g::text, ', ') FROM generate_series(1, 15000 + i) g) || ')';
		END LOOP;
		EXECUTE 'SELECT count(*) FROM authors WHERE id IN ('
			|| (SELECT string_agg(g::text, ', ') FROM generate_series(1, 1100000) g) || ')';
		FOR i IN 1..6 LOOP
			EXECUTE 'SELECT count(*) FROM authors WHERE name = ''' || big || ''' AND id <> ' || i;
		END LOOP;
		FOR i IN 1..5 LOOP
			EXECUTE 'SELECT count(*) FROM books WHERE id IN ('
				|| (SELECT string_agg((g + i)::text, ', ') FROM generate_series(1, 15000) g) || ')';
		END LOOP;
	END$$});
my ($n1_after, $all_after) = memory();
note "after 10 MB statements: n1detect contexts $n1_after bytes, all contexts $all_after bytes";
cmp_ok($n1_after, '<=', $ceiling,
	"10 MB statements: n1detect's contexts ($n1_after bytes) stay under the ceiling ($ceiling)");
my $growth = $all_after - $all_before;
cmp_ok($growth, '<=', $ceiling + 4 * 1024 * 1024,
	"the backend's memory contexts grew by $growth bytes: n1detect's ceiling plus 4 MB of core caches at most");
is(shmem(), $shmem_before, 'shared memory allocations are the same before and after');
$session->quit;

# Texts and samples kept are bounded prefixes, in valid UTF-8 (convert_from
# checks it and fails otherwise).
sub query_ok
{
	my ($sql, $expected, $what) = @_;
	my ($ret, $out, $err) = $node->psql('u8', $sql);
	is($out . $err, $expected, $what);
	return;
}
query_ok(q{
	SELECT kind, convert_from(textsend(query), 'UTF8'),
	       (SELECT max(octet_length(s)) BETWEEN 120 AND 127 FROM unnest(sample_params) s),
	       (SELECT bool_and(convert_from(textsend(s), 'UTF8') LIKE '''aéé%')
	        FROM unnest(sample_params) s)
	FROM n1_offenders WHERE query LIKE 'SELECT count(*) FROM authors WHERE name%'},
	"loop|SELECT count(*) FROM authors WHERE name = \$1 AND id <> \$2|t|t",
	'10 MB literal: normalized text, samples cut at 127 bytes on a character boundary');
# (18 squashes a list of constants: its text is the list's first $n and a marker)
my $books_in = $node->pg_version >= 18
  ? q{'^SELECT count\(\*\) FROM books WHERE id IN \(\$1 /\*, \.\.\. \*/\)$'}
  : q{'^SELECT count\(\*\) FROM books WHERE id IN \(\$1, \$2, \$3, .*\$\d+,? ?$'};
query_ok(qq{
	SELECT kind, octet_length(query) <= 1023, query ~ $books_in,
	       (SELECT max(octet_length(s)) FROM unnest(sample_params) s) <= 127
	FROM n1_offenders WHERE query LIKE 'SELECT count(*) FROM books WHERE id IN%'},
	'loop|t|t|t', 'IN-list of 100 KB: its text is a prefix of at most 1023 bytes ending after a whole $n');

# Large parameters.  n1detect.min_calls = 2: the calls 2 to 4 of a query in a
# unit capture samples.  First a 30 MB bytea bound by a real driver (psycopg
# 3, extended protocol, binary): every call succeeds, and the peak resident
# size of the backend (VmHWM) after the calls that capture samples is that
# after the first call, which did not (converting the value took 4 times its
# size).
my $client = <<'PY';
import sys, psycopg
size, calls = int(sys.argv[1]), int(sys.argv[2])
def hwm(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
with psycopg.connect(autocommit=True) as conn:
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    conn.execute("SET n1detect.min_calls = 2")
    conn.execute("SET n1detect.max_gap = '1h'")
    value = bytearray(b"\xab" * size)
    for i in range(calls):
        value[-1] = i
        try:
            n = conn.execute("SELECT length(%b::bytea) FROM blobs WHERE id = 1",
                             (bytes(value),), prepare=True).fetchone()[0]
            print(f"call {i + 1} ok {n} {hwm(pid)}", flush=True)
        except psycopg.Error as e:
            print(f"call {i + 1} error {e}".replace("\n", " "), flush=True)
PY

$node->safe_psql('u8', 'SELECT n1_reset()');
my $size = 30_000_000;
my ($out, $err) = ('', '');
{
	local $ENV{PGHOST} = $node->host;
	local $ENV{PGPORT} = $node->port;
	local $ENV{PGDATABASE} = 'u8';
	IPC::Run::run([ $ENV{N1_PYTHON} // '/usr/bin/python3', '-c', $client, $size, 4 ],
		'<', \undef, '>', \$out, '2>', \$err,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default))
	  or diag("client: $err");
}
my @lines = split /\n/, $out;
is(join(', ', map { /^(call \d+ ok \d+)/ ? $1 : $_ } @lines),
	join(', ', map { "call $_ ok $size" } 1 .. 4), '30 MB bytea: every call succeeds');
my @hwm = map { /^call \d+ ok \d+ (\d+)$/ ? $1 : 0 } @lines;
my $rise = ($hwm[-1] // 0) - ($hwm[0] // 0);
note "VmHWM after each call: @hwm";
cmp_ok($rise, '<', $size / 2,
	"30 MB bytea: calls that capture samples raise the backend's peak memory by $rise bytes, less than half the value");
is($node->safe_psql('u8', q{
	SELECT calls, cardinality(sample_params),
	       (SELECT bool_and(starts_with(s, 'E''\\\\xabab') AND octet_length(s) <= 127) FROM unnest(sample_params) s)
	FROM n1_offenders WHERE query LIKE 'SELECT length(%'}),
	'4|3|t', '30 MB bytea: the samples are short prefixes of the value');

# A 270 MB bytea (made by the server: a driver takes minutes to send it):
# its quoted text would be over 1 GB, "invalid memory alloc request size"
# on the calls that capture samples.
$node->safe_psql('u8', 'SELECT n1_reset()');
my $big = q{convert_to(repeat(repeat('a', 1000), 269999) || repeat('a', 999) || 'N', 'UTF8')};
my $script = "SET n1detect.min_calls = 2;\nSET n1detect.max_gap = '1h';\n"
  . "PREPARE big(bytea) AS SELECT length(\$1) FROM blobs WHERE id = 1;\n"
  . join('', map { "EXECUTE big(" . ($big =~ s/N/$_/r) . ");\n" } 1 .. 3);
my ($ret, $stdout, $stderr) = $node->psql('u8', $script);
is("$stdout|$stderr", "270000000\n270000000\n270000000|", '270 MB bytea: every call succeeds');
is($node->safe_psql('u8', q{
	SELECT calls, cardinality(sample_params),
	       (SELECT bool_and(starts_with(s, 'E''\\\\x616161') AND octet_length(s) <= 127) FROM unnest(sample_params) s)
	FROM n1_offenders WHERE query LIKE 'SELECT length(%'}),
	'3|2|t', '270 MB bytea: the burst is recorded, its samples are short prefixes of the value');

# An array of 400 KB held by PL/pgSQL (an expanded object) is not converted:
# its sample says what it is.
$node->safe_psql('u8', 'SELECT n1_reset()');
$node->safe_psql('u8', q{
	SET n1detect.track = 'all';
	SET n1detect.min_calls = 2;
	SET n1detect.max_gap = '1h';
	DO $$
	DECLARE ids int[] := ARRAY(SELECT generate_series(1, 100000));
	BEGIN
		FOR i IN 1..3 LOOP
			PERFORM count(*) FROM authors WHERE id = ANY(ids) AND id <> i;
		END LOOP;
	END$$});
is($node->safe_psql('u8', q{
	SELECT calls, cardinality(sample_params),
	       (SELECT bool_and(s LIKE '%<integer[], 400020 bytes>, _') FROM unnest(sample_params) s)
	FROM n1_offenders WHERE query LIKE 'SELECT count(*) FROM authors WHERE id = ANY%'}),
	'3|2|t', 'array of 400 KB: a placeholder in its samples');

N1Test::server_survived($node, $postmaster, 'memory bounds');
$node->stop;
done_testing();
