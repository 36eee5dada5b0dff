# Privileges as pg_stat_statements: other users' rows without query text or
# parameters unless the reader has pg_read_all_stats; n1_reset() is not
# granted to PUBLIC.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use N1Test;

my $node = N1Test::new_node('privileges');
N1Test::create_schema($node);
$node->safe_psql('postgres', q{
	CREATE ROLE alice LOGIN;
	CREATE ROLE bob LOGIN;
	CREATE ROLE monitor LOGIN IN ROLE pg_read_all_stats;
	GRANT SELECT ON authors, books TO alice, bob;
});

for my $user ('alice', 'bob')
{
	$node->psql('postgres', N1Test::n_plus_one_sql(list_size => 6), extra_params => [ '-U', $user ],
		on_error_die => 1);
}

my $q = q{SELECT r.rolname, o.query, o.parent_query, o.sample_params IS NULL
	FROM n1_offenders o JOIN pg_roles r ON r.oid = o.userid ORDER BY 1};
is($node->safe_psql('postgres', $q, extra_params => [ '-U', 'alice' ]),
	"alice|SELECT name FROM authors WHERE id = \$1|SELECT id, author_id FROM books WHERE id BETWEEN \$1 AND \$2 ORDER BY id|f\n"
	  . "bob|<insufficient privilege>|<insufficient privilege>|t",
	'alice sees her own texts and samples, not bob\'s');
is($node->safe_psql('postgres', $q, extra_params => [ '-U', 'monitor' ]),
	"alice|SELECT name FROM authors WHERE id = \$1|SELECT id, author_id FROM books WHERE id BETWEEN \$1 AND \$2 ORDER BY id|f\n"
	  . "bob|SELECT name FROM authors WHERE id = \$1|SELECT id, author_id FROM books WHERE id BETWEEN \$1 AND \$2 ORDER BY id|f",
	'a member of pg_read_all_stats sees everything');
is($node->safe_psql('postgres', "SELECT count(*) FROM n1_bursts", extra_params => [ '-U', 'alice' ]),
	'2', 'n1_bursts (no texts) lists every burst');

my ($ret, $stdout, $stderr) = $node->psql('postgres', 'SELECT n1_reset()', extra_params => [ '-U', 'alice' ]);
like($stderr, qr{permission denied for function n1_reset}, 'n1_reset() is not granted to PUBLIC');
$node->safe_psql('postgres', 'GRANT EXECUTE ON FUNCTION n1_reset() TO monitor');
$node->safe_psql('postgres', 'SELECT n1_reset()', extra_params => [ '-U', 'monitor' ]);
is($node->safe_psql('postgres', 'SELECT count(*) FROM n1_offenders'), '0', 'a granted role can reset');

$node->stop;
done_testing();
