# Django + Django REST Framework through psycopg2 (literal SQL): nested
# serializers over forward, reverse and many-to-many relations, a per-row
# .count(), two levels of nesting, .iterator() over a server-side cursor, each
# naive and fixed; traps that are not N+1s; and an application's own Django test
# suite failing on an N+1 when n1detect.action = error is set for its role.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use N1Clients;

my $node = N1Clients::shop_node('django');
my $py = 'django_client.py';

# Django's text of a query and of its parent, as n1_offenders normalizes it.
my $books_list = qr/^SELECT "books"\."id", .* FROM "books" ORDER BY "books"\."id" ASC LIMIT \$1$/;
my $authors_list = qr/^SELECT "authors"\."id", "authors"\."name" FROM "authors" ORDER BY "authors"\."id" ASC LIMIT \$1$/;
my $author_by_id = qr/^SELECT "authors"\."id", "authors"\."name" FROM "authors" WHERE "authors"\."id" = \$1 LIMIT \$2$/;
my $books_by_author = qr/^SELECT "books"\."id", .* FROM "books" WHERE "books"\."author_id" = \$1 ORDER BY "books"\."id" ASC$/;

# forward foreign keys, two per row: author and publisher are siblings of one
# loop, both children of the book list, neither the other's parent
N1Clients::check_pair($node, python => $py, 'books', [
	{ kind => 'n_plus_one', query => $author_by_id, parent => $books_list, calls => 8 },
	{ kind => 'n_plus_one', query => qr/^SELECT "publishers"\..* WHERE "publishers"\."id" = \$1 LIMIT \$2$/,
	  parent => $books_list, calls => 8 },
], 'run');

# reverse foreign key (fixed with prefetch_related)
N1Clients::check_pair($node, python => $py, 'author_books', [
	{ kind => 'n_plus_one', query => $books_by_author, parent => $authors_list, calls => 8 },
], 'run');

# a per-row .count() (fixed with annotate(Count))
N1Clients::check_pair($node, python => $py, 'author_count', [
	{ kind => 'n_plus_one', query => qr/^SELECT COUNT\(\*\) AS "__count" FROM "books" WHERE "books"\."author_id" = \$1$/,
	  parent => $authors_list, calls => 8 },
], 'run');

# many-to-many (fixed with prefetch_related)
N1Clients::check_pair($node, python => $py, 'book_tags', [
	{ kind => 'n_plus_one',
	  query => qr/^SELECT "tags"\."id", "tags"\."name" FROM "tags" INNER JOIN "book_tags" .* WHERE "book_tags"\."book_id" = \$1 /,
	  parent => $books_list, calls => 8 },
], 'run');

# nested loops: authors -> books of each author -> reviews of each book; each
# level's parent is the level above
N1Clients::check_pair($node, python => $py, 'deep', [
	{ kind => 'n_plus_one', query => $books_by_author, parent => $authors_list, calls => 6 },
	{ kind => 'n_plus_one', query => qr/^SELECT "reviews"\..* FROM "reviews" WHERE "reviews"\."book_id" = \$1 /,
	  parent => $books_by_author, calls => 24 },
], 'run');

# .iterator(chunk_size=3): a server-side cursor, FETCH FORWARD 3 between the
# per-row queries.  In autocommit the cursor is WITH HOLD (its query runs
# whole when DECLARE commits); in atomic() each FETCH runs it a chunk further,
# and the cursor is the first thing the connection does.
# The cursor's text is its SELECT (not the DECLARE, whose name changes per process).
my $cursor_of_books = qr/^SELECT "books"\..* FROM "books" WHERE "books"\."id" <= \$1 /;
N1Clients::check_pair($node, python => $py, 'iterator', [
	{ kind => 'n_plus_one', query => $author_by_id, parent => $cursor_of_books, calls => 12 },
], 'run');
N1Clients::check_pair($node, python => $py, 'iterator_atomic', [
	{ kind => 'n_plus_one', query => $author_by_id, parent => $cursor_of_books, calls => 12 },
], 'run');

# trap: the same setting looked up once per row, same parameters: a duplicate
# (its key is a constant, in no result: no parent)
N1Clients::check_pair($node, python => $py, 'duplicate', [
	{ kind => 'duplicate', query => qr/^SELECT "site_settings"\..* WHERE "site_settings"\."key" = \$1 LIMIT \$2$/,
	  parent => undef, calls => 8 },
], 'run');

# trap: an import job's find-or-create loop over its input (keys not from a query)
N1Clients::reset_offenders($node);
N1Clients::run_client($node, python => $py, 'run', 'find_or_create', 'trap');
N1Clients::expect_offenders($node, 'find_or_create', [
	{ kind => 'loop', query => qr/^SELECT "authors"\..* WHERE "authors"\."name" = \$1 LIMIT \$2$/, parent => undef },
]);

# trap: keyset pages, each with one IN-list batch load of its tags
# (prefetch_related): page query and batch loader run once per page.
# From 18 on the query id ignores the list's length, and the text squashes it.
my $tag_batch = $node->pg_version >= 18 ? qr{IN \(\$1 /\*, \.\.\. \*/\)} : qr/IN \(\$1, \$2, \$3, \$4, \$5, \$6\)/;
N1Clients::reset_offenders($node);
N1Clients::run_client($node, python => $py, 'run', 'paginated_prefetch', 'trap');
N1Clients::expect_offenders($node, 'paginated_prefetch', [
	{ kind => 'loop', query => qr/^SELECT "books"\..* WHERE "books"\."id" > \$1 ORDER BY "books"\."id" ASC LIMIT \$2$/,
	  parent => undef },
	{ kind => 'loop', query => qr/^SELECT \("book_tags"\."book_id"\) .* WHERE "book_tags"\."book_id" $tag_batch/,
	  parent => undef },
]);

# An application's test suite (Django's runner, its own test database), run as
# a role for which n1detect.action = error: the naive endpoint's test fails
# with n1detect's error, the fixed one passes.
$node->safe_psql('postgres', q{
	CREATE ROLE app_tests LOGIN CREATEDB;
	ALTER ROLE app_tests SET n1detect.action = 'error';
});
my ($code, $out, $err) = N1Clients::run_client($node, python => $py, 'test', 'n1shop.tests.NaiveBookListTest',
	{ user => 'app_tests', database => 'postgres', expect_failure => 1 });
isnt($code, 0, 'action=error: the naive test fails');
like($err, qr/^ERROR: test_book_list \(n1shop\.tests\.NaiveBookListTest/m, 'action=error: the naive test errors');
like($err, qr/DatabaseError: n1detect: N\+1 query, 5 calls of one query driven by the rows of another/,
	'action=error: with the n1detect error');
like($err, qr/DETAIL:  Query "SELECT "authors"\..* WHERE "authors"\."id" = \$1 LIMIT \$2" ran 5 times .* once per row of parent query "SELECT "books"\./,
	'action=error: naming the query and its parent');
like($err, qr/HINT:  .*select_related/, 'action=error: with a hint');
($code, $out, $err) = N1Clients::run_client($node, python => $py, 'test', 'n1shop.tests.FixedBookListTest',
	{ user => 'app_tests', database => 'postgres', expect_failure => 1 });
is($code, 0, 'action=error: the fixed test passes') or diag($err);
like($err, qr/^Ran 1 test .*\n\nOK$/m, 'action=error: Django reports OK');

done_testing();
