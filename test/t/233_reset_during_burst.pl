# n1_reset() in the middle of a burst: the burst counts again from its next
# call, and only once it has n1detect.min_calls calls since the reset; its
# counts stay consistent (calls >= distinct_params), in progress and once
# recorded.  Deterministic interleaving: one session holds a unit open in a
# transaction block while another resets.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use N1Test;

my $node = N1Test::new_node('reset_burst');
N1Test::create_schema($node);
my $postmaster = N1Test::postmaster_pid($node);

my $consistent_offenders = q{SELECT count(*) FROM n1_offenders
	WHERE calls < max_calls OR max_calls < max_distinct_params OR max_calls < 5 OR calls < 5 * bursts};
my $consistent_bursts = q{SELECT count(*) FROM n1_bursts WHERE calls < distinct_params OR calls < 5};

sub children
{
	my ($from, $n) = @_;
	return join('', map { "SELECT name FROM authors WHERE id = $_;\n" } $from .. $from + $n - 1);
}

my $session = $node->background_psql('postgres');
$session->set_query_timer_restart();
# the checks from other sessions take time: no unit may end on an idle gap
$session->query_safe(q{SET n1detect.max_gap = '1h'});

# A burst of 6 calls in progress (unit held open by the transaction block).
$session->query_safe("BEGIN;\nSELECT id FROM books WHERE id <= 20 ORDER BY id;\n" . children(1, 6));
is($node->safe_psql('postgres', 'SELECT calls, distinct_params, in_progress FROM n1_bursts'), '6|6|t',
	'a burst in progress');
$node->safe_psql('postgres', 'SELECT n1_reset()');
is($node->safe_psql('postgres', 'SELECT count(*) FROM n1_bursts'), '0', 'n1_reset() removes it');

# One call after the reset: below min_calls, so no burst yet.
$session->query_safe(children(7, 1));
is($node->safe_psql('postgres', 'SELECT count(*) FROM n1_bursts'), '0',
	'one call after the reset is not a burst');
is($node->safe_psql('postgres', 'SELECT count(*) FROM n1_offenders'), '0', 'nor an offender');
$session->query_safe('COMMIT');
is($node->safe_psql('postgres', 'SELECT count(*) FROM n1_bursts'), '0',
	'its unit ends: no burst below min_calls is recorded');
is($node->safe_psql('postgres', 'SELECT count(*) FROM n1_offenders'), '0', 'and no offender');

# Again, with min_calls calls after the reset: a burst of those calls only.
$session->query_safe("BEGIN;\nSELECT id FROM books WHERE id <= 20 ORDER BY id;\n" . children(1, 8));
$node->safe_psql('postgres', 'SELECT n1_reset()');
$session->query_safe(children(9, 4));
is($node->safe_psql('postgres', 'SELECT count(*) FROM n1_bursts'), '0', '4 calls after the reset: not yet');
$session->query_safe(children(13, 1));
my ($calls, $distinct) = split /\|/, $node->safe_psql('postgres',
	'SELECT calls, distinct_params FROM n1_bursts WHERE in_progress');
is($calls, 5, 'the fifth call after the reset makes it a burst again, of 5 calls');
cmp_ok($distinct, '<=', $calls, 'distinct_params <= calls');
is($node->safe_psql('postgres', $consistent_bursts), '0', 'n1_bursts is consistent while in progress');
is($node->safe_psql('postgres', $consistent_offenders), '0', 'n1_offenders too');
$session->query_safe('COMMIT');
is($node->safe_psql('postgres', 'SELECT bursts, calls, max_calls FROM n1_offenders'), '1|5|5',
	'recorded with the calls after the reset');
is($node->safe_psql('postgres', $consistent_bursts), '0', 'n1_bursts is consistent once recorded');
is($node->safe_psql('postgres', $consistent_offenders), '0', 'n1_offenders too');

$session->quit;
N1Test::server_survived($node, $postmaster, 'n1_reset() during bursts');
$node->stop;
done_testing();
