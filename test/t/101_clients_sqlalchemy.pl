# SQLAlchemy's ORM (psycopg2, literal SQL): lazy relationships, fixed with
# selectinload and joinedload.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use N1Clients;

my $node = N1Clients::shop_node('sqlalchemy');
my $py = 'sqlalchemy_client.py';

# one-to-many, fixed with selectinload
N1Clients::check_pair($node, python => $py, 'author_books', [
	{ kind => 'n_plus_one', query => qr/^SELECT books\.id AS books_id, .* FROM books WHERE \$1 = books\.author_id ORDER BY books\.id$/,
	  parent => qr/^SELECT authors\.id AS authors_id, .* FROM authors ORDER BY authors\.id\s+LIMIT \$1$/, calls => 8 },
]);

# one-to-many, fixed with joinedload
N1Clients::check_pair($node, python => $py, 'book_reviews', [
	{ kind => 'n_plus_one', query => qr/^SELECT reviews\.id AS reviews_id, .* FROM reviews WHERE \$1 = reviews\.book_id ORDER BY reviews\.id$/,
	  parent => qr/^SELECT books\.id AS books_id, .* FROM books ORDER BY books\.id\s+LIMIT \$1$/, calls => 8 },
]);

# many-to-one over books of distinct authors (no identity-map hits), fixed with joinedload
N1Clients::check_pair($node, python => $py, 'book_author', [
	{ kind => 'n_plus_one', query => qr/^SELECT authors\.id AS authors_id, .* FROM authors WHERE authors\.id = \$1$/,
	  parent => qr/^SELECT books\.id AS books_id, .* FROM books WHERE books\.id % \$1 = \$2 ORDER BY books\.id$/, calls => 12 },
]);

done_testing();
