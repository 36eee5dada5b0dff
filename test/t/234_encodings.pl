# n1_offenders shows the rows of every database: texts recorded in a LATIN1
# database are not valid UTF-8, and reading them from a UTF-8 database must
# not fail (bytes invalid in the reader's encoding are shown as '?').
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use N1Test;

my $node = N1Test::new_node('encodings');
$node->safe_psql('postgres', q{CREATE EXTENSION n1detect;
	CREATE DATABASE lat ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0});
is($node->safe_psql('postgres', 'SHOW server_encoding'), 'UTF8', 'the reader database is UTF-8');

# An N+1 whose query names a table "caf\xe9" (LATIN1 bytes) in the LATIN1 database.
my $sql = "CREATE EXTENSION n1detect;\nSET client_encoding = 'LATIN1';\n"
  . "CREATE TABLE \"caf\xe9\" (id int PRIMARY KEY, \"n\xe9\" text);\n"
  . "INSERT INTO \"caf\xe9\" SELECT g, 'x' FROM generate_series(1, 20) g;\n"
  . "BEGIN;\nSELECT id FROM \"caf\xe9\" WHERE id <= 10 ORDER BY id;\n";
$sql .= "SELECT \"n\xe9\" FROM \"caf\xe9\" WHERE id = $_;\n" for 1 .. 6;
$sql .= "COMMIT;\n";
$node->safe_psql('lat', $sql);

my ($ret, $out, $err) = $node->psql('postgres',
	"SET client_encoding = 'LATIN1'; SELECT query, parent_query FROM n1_offenders");
is($ret, 0, 'read from a UTF-8 database and sent as LATIN1: no error') or diag($err);
is($out, 'SELECT "n?" FROM "caf?" WHERE id = $1|SELECT id FROM "caf?" WHERE id <= $1 ORDER BY id',
	'the bytes invalid in UTF-8 show as ?');
($ret, $out, $err) = $node->psql('lat', "SET client_encoding = 'LATIN1'; SELECT query FROM n1_offenders");
is($out, "SELECT \"n\xe9\" FROM \"caf\xe9\" WHERE id = \$1", 'the LATIN1 database sees its own text intact');

$node->stop;
done_testing();
