# Traps driven from the server's own tools: pgbench -S point lookups (simple
# and prepared protocol) are never an N+1, and a PL/pgSQL function that loops
# internally is invisible at n1detect.track = top and caught at track = all.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use N1Clients;

my $node = N1Clients::shop_node('server_traps');

# pgbench select-only: a stream of independent point lookups, 2 clients
$node->safe_psql('postgres', 'CREATE DATABASE bench');
$node->command_ok([ 'pgbench', '-i', '-s', '1', '-q', 'bench' ], 'pgbench -i');
for my $mode (qw(simple prepared))
{
	N1Clients::reset_offenders($node);
	$node->command_ok([ 'pgbench', '-S', '-n', '-c', '2', '-j', '2', '-t', '300', '-M', $mode, 'bench' ],
		"pgbench -S -M $mode");
	N1Clients::wait_for_clients($node);
	my $rows = $node->safe_psql('shop', q{
		SELECT kind, count(*), sum(calls), bool_and(parent_queryid IS NULL)
		FROM n1_offenders WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'bench')
		GROUP BY kind ORDER BY kind});
	is($rows, 'loop|1|600|t', "pgbench -S -M $mode: one loop without parent, 600 calls, no n_plus_one");
}

# A PL/pgSQL function looping over a query, one lookup per row
$node->safe_psql('shop', q{
	CREATE FUNCTION author_names() RETURNS SETOF text LANGUAGE plpgsql AS $$
	DECLARE
		b record;
		n text;
	BEGIN
		FOR b IN SELECT id, author_id FROM books WHERE id % 4 = 1 ORDER BY id LOOP
			SELECT name INTO n FROM authors WHERE id = b.author_id;
			RETURN NEXT n;
		END LOOP;
	END $$;
});

N1Clients::reset_offenders($node);
is($node->safe_psql('shop', 'SELECT count(*) FROM author_names()'), '12', 'plpgsql loop ran');
N1Clients::expect_offenders($node, 'plpgsql at track=top', []);

N1Clients::reset_offenders($node);
$node->safe_psql('shop', q{
	SET n1detect.track = 'all';
	SELECT count(*) FROM author_names();
});
N1Clients::expect_offenders($node, 'plpgsql at track=all', [
	{ kind => 'n_plus_one', query => qr/^SELECT name FROM authors WHERE id = b\.author_id$/,
	  parent => qr/^SELECT id, author_id FROM books WHERE id % \$1 = \$2 ORDER BY id$/, calls => 12 },
]);

done_testing();
