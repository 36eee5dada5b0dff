# ActiveRecord 6.1 with marginalia (issue 10): a real controller request
# whose queries carry /*application:Shop,controller:posts,action:index,
# line:...*/.  The N+1 row carries the controller, the action and the
# application line of the loop; the fixed request is not reported.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use N1Clients;

my $node = N1Clients::shop_node('marginalia');
my $rb = 'activerecord_tagged_client.rb';
my $source = slurp_file("$N1Clients::clients_dir/$rb");
my ($loop_line) = grep { (split /\n/, $source)[ $_ - 1 ] =~ /# LOOP$/ } 1 .. scalar(split /\n/, $source);

like(N1Clients::run_client($node, ruby => $rb, 'naive'), qr/^\[\["Book 1","Author 1"\]/, 'the naive request answers');
my $rows = $node->safe_psql('shop', q{SELECT kind, calls, source, code_line, query FROM n1_offenders});
my @row = split /\|/, $rows, 5;
is_deeply([ @row[0 .. 2] ], [ 'n_plus_one', 8, 'controller=posts action=index' ],
	'the N+1 row carries the controller and the action')
  or diag($rows);
like($row[3], qr{/activerecord_tagged_client\.rb:$loop_line:in `block in index'$},
	"and the application line of the loop (line $loop_line)");
# the text kept is the first this backend saw of the query (the warm-up's)
like($row[4], qr{^SELECT "authors"\.\* FROM "authors" WHERE "authors"\."id" = \$1 LIMIT \$2 /\*application:Shop,line:[^*]*:in `<main>'\*/$},
	'the query, as marginalia sent it the first time');

N1Clients::reset_offenders($node);
like(N1Clients::run_client($node, ruby => $rb, 'fixed'), qr/^\[\["Book 1","Author 1"\]/, 'the fixed request answers');
is($node->safe_psql('shop', q{SELECT count(*) FROM n1_offenders}), '0', 'the fixed request is not reported');

done_testing();
