# Ruby's ActiveRecord (ruby-pg, prepared statements with $1 parameters):
# belongs_to and has_many, fixed with includes.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use N1Clients;

my $node = N1Clients::shop_node('activerecord');
my $rb = 'activerecord_client.rb';

N1Clients::check_pair($node, ruby => $rb, 'book_author', [
	{ kind => 'n_plus_one', query => qr/^SELECT "authors"\.\* FROM "authors" WHERE "authors"\."id" = \$1 LIMIT \$2$/,
	  parent => qr/^SELECT "books"\.\* FROM "books" WHERE "books"\."id" BETWEEN \$1 AND \$2 ORDER BY "books"\."id" ASC$/,
	  calls => 8 },
]);

N1Clients::check_pair($node, ruby => $rb, 'author_books', [
	{ kind => 'n_plus_one', query => qr/^SELECT "books"\.\* FROM "books" WHERE "books"\."author_id" = \$1 ORDER BY "books"\."id" ASC$/,
	  parent => qr/^SELECT "authors"\.\* FROM "authors" ORDER BY "authors"\."id" ASC LIMIT \$1$/,
	  calls => 8 },
]);

done_testing();
