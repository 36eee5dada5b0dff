# n1detect.action: a role whose test suite must fail on an N+1 gets an
# ERROR at the call that crosses n1detect.min_calls; others are untouched;
# action = log writes the LOG line.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use N1Test;

my $node = N1Test::new_node('action');
N1Test::create_schema($node);
$node->safe_psql('postgres', q{
	CREATE ROLE test_suite LOGIN;
	GRANT SELECT ON authors, books TO test_suite;
	ALTER ROLE test_suite SET n1detect.action = 'error';
});

my ($ret, $stdout, $stderr) = $node->psql('postgres', N1Test::n_plus_one_sql(list_size => 6),
	extra_params => [ '-U', 'test_suite', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose' ]);
isnt($ret, 0, 'the naive code fails for the role with action = error');
like($stderr, qr{ERROR:  N1001: n1detect: N\+1 query, 5 calls of one query driven by the rows of another},
	'with SQLSTATE N1001 at the fifth call');
like($stderr, qr{DETAIL:  Query "SELECT name FROM authors WHERE id = \$1" ran 5 times with 5 different parameter sets, once per row of parent query "SELECT id, author_id FROM books WHERE id BETWEEN \$1 AND \$2 ORDER BY id" \(6 rows\)\.},
	'naming the query, its parent and the count');
like($stderr, qr{HINT:  Load the related rows with one query}, 'with a hint');

# The fixed code (one query with = ANY) passes for the same role.
($ret, $stdout, $stderr) = $node->psql('postgres', q{
	BEGIN;
	SELECT id, author_id FROM books WHERE id BETWEEN 1 AND 6 ORDER BY id;
	SELECT id, name FROM authors WHERE id = ANY ('{2,3,4,5,6,7}'::int[]);
	COMMIT;}, extra_params => [ '-U', 'test_suite', '-v', 'ON_ERROR_STOP=1' ]);
is($ret, 0, 'the fixed code passes');

# Other roles are untouched: same N+1, no error, but recorded.
($ret, $stdout, $stderr) = $node->psql('postgres', N1Test::n_plus_one_sql(list_size => 6),
	extra_params => [ '-v', 'ON_ERROR_STOP=1' ]);
is($ret, 0, 'a role without the setting runs the N+1 without error');
is($node->safe_psql('postgres', q{SELECT r.rolname, o.kind, o.calls FROM n1_offenders o
	JOIN pg_roles r ON r.oid = o.userid ORDER BY 1}),
	"postgres|n_plus_one|6\ntest_suite|n_plus_one|5", 'both bursts are recorded, per role');

# action = log: a LOG line in the server log, nothing for the client.
$node->safe_psql('postgres', q{ALTER SYSTEM SET n1detect.action = 'log'; SELECT pg_reload_conf();});
my $offset = -s $node->logfile;
($ret, $stdout, $stderr) = $node->psql('postgres', N1Test::n_plus_one_sql(list_size => 6, first_id => 30));
is($stderr, '', 'action = log sends nothing to the client');
$node->wait_for_log(qr{LOG:  n1detect: N\+1 query, 5 calls of one query driven by the rows of another}, $offset);
my $log = substr(PostgreSQL::Test::Utils::slurp_file($node->logfile), $offset);
like($log, qr{LOG:  n1detect: N\+1 query, 5 calls of one query driven by the rows of another\n[^\n]*DETAIL:  Query "SELECT name FROM authors WHERE id = \$1" ran 5 times with 5 different parameter sets},
	'action = log writes the LOG line, with its detail');
is(() = $log =~ /LOG:  n1detect: /g, 1, 'once, at the call that crossed min_calls');

$node->stop;
done_testing();
