# n1detect.strict = on for a Django test suite (Django's runner, its own test
# database) with n1detect.action = error: the test of a page of 2 books that
# loads each book's author with its own query (an N+1 of 2 calls) fails; the
# same test on the fixed view (select_related) passes, although the test data
# set-up and the page run loops of 2 (a duplicate publisher lookup) too.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use N1Clients;

my $node = N1Clients::shop_node('django_strict');
my $py = 'django_client.py';

$node->safe_psql('postgres', q{
	CREATE ROLE app_strict LOGIN CREATEDB;
	ALTER ROLE app_strict SET n1detect.action = 'error';
	ALTER ROLE app_strict SET n1detect.strict = on;
});
my ($code, $out, $err) = N1Clients::run_client($node, python => $py, 'test', 'n1shop.tests.StrictNaiveTwoBooksTest',
	{ user => 'app_strict', database => 'postgres', expect_failure => 1 });
isnt($code, 0, 'strict: the naive test of 2 books fails');
like($err, qr/DatabaseError: n1detect: N\+1 query, 2 calls of one query driven by the rows of another/,
	'strict: with the n1detect error at the 2nd call');
like($err, qr/DETAIL:  Query "SELECT "authors"\..* WHERE "authors"\."id" = \$1 LIMIT \$2" ran 2 times /,
	'strict: naming the author lookup');
($code, $out, $err) = N1Clients::run_client($node, python => $py, 'test', 'n1shop.tests.StrictFixedTwoBooksTest',
	{ user => 'app_strict', database => 'postgres', expect_failure => 1 });
is($code, 0, 'strict: the fixed test passes') or diag($err);
like($err, qr/^Ran 1 test .*\n\nOK$/m, 'strict: Django reports OK');

# The same naive test without strict mode passes (2 calls < min_calls 5).
$node->safe_psql('postgres', 'ALTER ROLE app_strict SET n1detect.strict = off');
($code, $out, $err) = N1Clients::run_client($node, python => $py, 'test', 'n1shop.tests.StrictNaiveTwoBooksTest',
	{ user => 'app_strict', database => 'postgres', expect_failure => 1 });
is($code, 0, 'without strict mode the 2-row N+1 is not reported') or diag($err);

done_testing();
