# psycopg 3: parameters bound on the server (extended protocol), as unnamed
# statements, named prepared statements, psycopg's automatic preparation, and
# through a server-side cursor; fixed with = ANY($1).  Traps: keyset
# pagination, two same-shape loads, health checks, a duplicate.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use N1Clients;

my $node = N1Clients::shop_node('psycopg');
my $py = 'psycopg_client.py';

my $child = qr/^SELECT name FROM authors WHERE id = \$1$/;
my $list = qr/^SELECT id, title, author_id FROM books WHERE id % \$2 = \$3 ORDER BY id LIMIT \$1$/;

for my $scenario (qw(unnamed prepared auto))
{
	N1Clients::check_pair($node, python => $py, $scenario, [
		{ kind => 'n_plus_one', query => $child, parent => $list, calls => 8 },
	]);
}
N1Clients::check_pair($node, python => $py, 'cursor', [
	{ kind => 'n_plus_one', query => $child,
	  parent => qr/^SELECT id, title, author_id FROM books /, calls => 8 },
]);

# trap: a batch job paging with a keyset, one UPDATE per page
N1Clients::reset_offenders($node);
N1Clients::run_client($node, python => $py, 'keyset', 'trap');
N1Clients::expect_offenders($node, 'keyset', [
	{ kind => 'loop', query => qr/^SELECT id FROM books WHERE id > \$1 ORDER BY id LIMIT \$2$/, parent => undef },
	{ kind => 'loop', query => qr/^UPDATE books SET published = published WHERE id = ANY\(\$1\)$/, parent => undef },
]);

# trap: two loads of one shape, even at n1detect.min_calls = 2
N1Clients::reset_offenders($node);
N1Clients::run_client($node, python => $py, 'same_shape', 'trap');
N1Clients::expect_no_n_plus_one($node, 'same_shape');

# trap: health checks read no table: nothing at all
N1Clients::reset_offenders($node);
N1Clients::run_client($node, python => $py, 'health', 'trap');
N1Clients::expect_offenders($node, 'health', []);

# trap: the same bound parameter every time: a duplicate (a constant, in no
# result: no parent)
N1Clients::reset_offenders($node);
N1Clients::run_client($node, python => $py, 'duplicate', 'trap');
N1Clients::expect_offenders($node, 'duplicate', [
	{ kind => 'duplicate', query => qr/^SELECT value FROM site_settings WHERE key = \$1$/, parent => undef, calls => 8 },
]);

done_testing();
