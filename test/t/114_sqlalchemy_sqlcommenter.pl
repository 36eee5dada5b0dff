# SQLAlchemy 1.4 with sqlcommenter-format comments (issue 10): a worker
# process serves requests one after another over one pooled connection; a
# before_cursor_execute listener tags every statement with the request's
# route and traceparent (URL-encoded).  Each naive request's lazy-loading
# N+1 is a burst of its own with the request's trace id, its row carries the
# route and the proven parent, and the fixed requests (selectinload,
# joinedload) report nothing.  max_gap is an hour so that no stall of a
# loaded machine splits a loop.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use N1Clients;

my $node = N1Clients::shop_node('sqla_commenter', conf => "n1detect.max_gap = '1h'\n");
my $py = 'sqlalchemy_sqlcommenter_client.py';
my %trace = map { $_ => sprintf('4bf92f3577b34da6a3ce929d0e0e47%02d', $_) } 1 .. 5;

# The offenders as kind|calls|bursts|source|query|parent, texts without
# their comment and on one line.
sub offenders
{
	return $node->safe_psql('shop', q{
		SELECT format('%s|%s|%s|%s|%s|%s', kind, calls, bursts, source,
		              regexp_replace(split_part(query, ' /*', 1), '\s+', ' ', 'g'),
		              regexp_replace(split_part(parent_query, ' /*', 1), '\s+', ' ', 'g'))
		FROM n1_offenders ORDER BY source});
}

# Five requests of one worker: two endpoints, naive and fixed.
my $out = N1Clients::run_client($node, python => $py,
	"author_books:naive:$trace{1}", "author_books:fixed:$trace{2}", "author_books:naive:$trace{3}",
	"book_author:naive:$trace{4}", "book_author:fixed:$trace{5}");
my @out = $out =~ /^\[(\[\[.*\]\]), (\[\[.*\]\]), (\[\[.*\]\]), (\[\[.*\]\]), (\[\[.*\]\])\]$/;
ok(@out == 5 && $out[0] =~ /^\[\["Author 1", \["Book 1",/ && $out[3] =~ /^\[\["Book 1", "Author 1"\]/,
	'the worker served the five requests') or diag($out);
is($out[1], $out[0], 'the fixed author_books request answers as the naive one');
is($out[4], $out[3], 'the fixed book_author request answers as the naive one');

my @rows = split /\n/, offenders();
is(scalar @rows, 2, 'one offender row per endpoint') or diag(join("\n", @rows));
like($rows[0] // '',
	qr{^n_plus_one\|16\|2\|route=/authors/<int:page>/books\|SELECT books\.id AS books_id, .* FROM books WHERE \$1 = books\.author_id ORDER BY books\.id\|SELECT authors\.id AS authors_id, authors\.name AS authors_name FROM authors ORDER BY authors\.id LIMIT \$1$},
	'author_books: an N+1 of the books of each author, 2 bursts of 8, the route URL-decoded, the list of authors as parent');
like($rows[1] // '',
	qr{^n_plus_one\|12\|1\|route=/books/authors\|SELECT authors\.id AS authors_id, .* FROM authors WHERE authors\.id = \$1\|SELECT books\.id AS books_id, .* FROM books WHERE books\.id % \$1 = \$2 ORDER BY books\.id$},
	'book_author: an N+1 of the author of each book, the list of books as parent');
is($node->safe_psql('shop', q{SELECT string_agg(format('%s|%s|%s', trace_id, kind, calls), ',' ORDER BY trace_id) FROM n1_bursts}),
	"$trace{1}|n_plus_one|8,$trace{3}|n_plus_one|8,$trace{4}|n_plus_one|12",
	'one burst per naive request, with its trace id; nothing from the fixed requests');
my $t1 = $trace{1};
like($node->safe_psql('shop', q{SELECT query FROM n1_offenders WHERE source LIKE 'route=/authors/%'}),
	qr{ /\*db_driver='psycopg2',db_framework='sqlalchemy%3A[0-9.]+',route='%2Fauthors%2F%3Cint%3Apage%3E%2Fbooks',traceparent='00-$t1-[0-9a-f]{16}-01'\*/$},
	'the statements carry the comment as the listener wrote it (psycopg2 read its %% as %)');

# The same worker without traceparent (route only): each request is still
# a unit of its own, as the session's COMMIT ends it (the end of a
# transaction block ends a unit of work), and its rows carry the route.
N1Clients::reset_offenders($node);
N1Clients::run_client($node, python => $py, 'author_books:naive:', 'author_books:fixed:', 'author_books:naive:');
is($node->safe_psql('shop', q{SELECT string_agg(format('%s|%s|%s|%s', kind, calls, source, trace_id IS NULL), ',') FROM n1_bursts}),
	'n_plus_one|8|route=/authors/<int:page>/books|t,n_plus_one|8|route=/authors/<int:page>/books|t',
	'without trace ids: one burst per naive request all the same (each request is a transaction), with the route');

done_testing();
