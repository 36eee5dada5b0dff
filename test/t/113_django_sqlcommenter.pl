# Django with sqlcommenter-format comments (issue 10): a real request cycle
# whose middleware tags each query with controller, route and traceparent
# through connection.execute_wrapper.  The N+1 rows carry the route; the
# burst the trace id; the fixed request is not reported.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use N1Clients;

my $node = N1Clients::shop_node('sqlcommenter');
my $py = 'django_sqlcommenter_client.py';
my $trace = '4bf92f3577b34da6a3ce929d0e0e4736';

my $naive = N1Clients::run_client($node, python => $py, 'naive', $trace);
like($naive, qr/^\[\{"id": 1, "title": /, 'the naive request answers');
is($node->safe_psql('shop', q{SELECT string_agg(format('%s|%s|%s', kind, calls, source), ',' ORDER BY query)
	FROM n1_offenders}),
	'n_plus_one|8|controller=book_list route=api/books/naive/,n_plus_one|8|controller=book_list route=api/books/naive/',
	'both N+1s of the request (author, publisher) carry the view and the route');
is($node->safe_psql('shop', q{SELECT DISTINCT trace_id FROM n1_bursts}), $trace, 'and their bursts the trace id');

N1Clients::reset_offenders($node);
is(N1Clients::run_client($node, python => $py, 'fixed', 'aaaabbbbccccddddeeeeffff00001111'), $naive,
	'the fixed request answers the same');
is($node->safe_psql('shop', q{SELECT count(*) FROM n1_offenders}), '0', 'and is not reported');

done_testing();
