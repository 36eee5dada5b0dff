# n1scan with auto_explain's plans in the log (log_analyze = on): the actual
# rows of each statement make only multi-row queries parent candidates, as
# in the extension, so a one-row query run between the list and the loop is
# not taken for the parent; without plans (auto_explain off for the session)
# n1scan falls back to timing and names that one-row query.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;
use N1Test;

my $node = N1Test::new_node('scan_explain', conf => q{
shared_preload_libraries = 'n1detect,auto_explain'
auto_explain.log_min_duration = 0
auto_explain.log_analyze = on
log_min_duration_statement = 0
log_statement = none
logging_collector = on
log_destination = 'stderr,csvlog'
log_directory = 'log'
log_filename = 'explain.log'
log_line_prefix = '%m [%p] %q[%c] %a '
n1detect.max_gap = '10min'
});
N1Test::create_schema($node);
my $n1scan = $node->config_data('--bindir') . '/n1scan';
my $logdir = $node->data_dir . '/log';

my $unit = "BEGIN;\nSELECT id, author_id FROM books WHERE id BETWEEN 1 AND 6 ORDER BY id;\n"
  . "SELECT count(*) FROM books;\n"
  . join('', map { "SELECT name FROM authors WHERE id = $_;\n" } 2 .. 7) . "COMMIT;\n";
$node->safe_psql('postgres', $unit);
$node->safe_psql('postgres', "SET auto_explain.log_min_duration = -1;\n$unit");
N1Test::log_marker($node, 'postgres', 'n1scan explain marker');
N1Test::wait_for_log("$logdir/$_", 'n1scan explain marker') for ('explain.log', 'explain.csv');
like(slurp_file("$logdir/explain.log"), qr/plan:\n\s*Query Text: SELECT count/, 'auto_explain logged the plans');

is($node->safe_psql('postgres', q{SELECT string_agg(query || ' | ' || parent_query || ' | ' || calls, E'\n') FROM n1_offenders}),
	'SELECT name FROM authors WHERE id = $1 | SELECT id, author_id FROM books WHERE id BETWEEN $1 AND $2 ORDER BY id | 12',
	'the extension: the list is the parent of both loops (values)');

for my $f ('explain.log', 'explain.csv')
{
	my @p = $f =~ /\.log$/ ? ('--prefix=%m [%p] %q[%c] %a ') : ();
	my ($out, $err) = ('', '');
	IPC::Run::run([ $n1scan, @p, '--format=json', "$logdir/$f" ], '>', \$out, '2>', \$err);
	my @rows = sort map { "$_->{query} | $_->{parent_query} | $_->{calls}" }
	  grep { $_->{kind} eq 'n_plus_one' } @{ decode_json($out) };
	is(join("\n", @rows),
		"SELECT name FROM authors WHERE id = \$1 | SELECT count(*) FROM books | 6\n"
		. 'SELECT name FROM authors WHERE id = $1 | SELECT id, author_id FROM books WHERE id BETWEEN $1 AND $2 ORDER BY id | 6',
		"$f: with plans the list is the parent (rows), without them the latest query (timing)") or diag($err);
}
done_testing();
