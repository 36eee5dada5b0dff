# Request tags from query comments (issue 10): n1_offenders and n1_bursts
# show the source (controller/action, route) and the code line of the
# statement's comment, marginalia, Rails 7 query log tags or sqlcommenter,
# one offender row per endpoint; n1detect.action = error names them; a
# change of trace id ends the unit of work whatever the gap; statements
# without comments show NULL.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use N1Test;

my $node = N1Test::new_node('comments', conf => "n1detect.max_gap = '1h'\n");
my $postmaster = N1Test::postmaster_pid($node);
N1Test::create_schema($node);

# The N+1 of n_plus_one_sql, each statement tagged with $comment (trailing,
# before the semicolon, as marginalia and sqlcommenter put it; leading with
# leading => 1).
sub tagged
{
	my ($comment, %opts) = @_;
	my $leading = delete $opts{leading};
	my $sql = N1Test::n_plus_one_sql(%opts);
	if ($leading)
	{
		$sql =~ s/^(SELECT[^\n]*);$/$comment $1;/mg;
	}
	else
	{
		$sql =~ s/^(SELECT[^\n]*);$/$1 $comment;/mg;
	}
	return $sql;
}

my $marginalia = q{/*application:Shop,controller:posts,action:index,line:/app/views/posts/index.html.erb:7:in `block in _app_views_posts_index'*/};
$node->safe_psql('postgres', tagged($marginalia));
is($node->safe_psql('postgres', q{SELECT kind, calls, source, code_line FROM n1_offenders}),
	"n_plus_one|6|controller=posts action=index|/app/views/posts/index.html.erb:7:in `block in _app_views_posts_index'",
	'marginalia: the row carries controller, action and the line of the loop');
is($node->safe_psql('postgres', q{SELECT source, code_line, trace_id IS NULL FROM n1_bursts}),
	"controller=posts action=index|/app/views/posts/index.html.erb:7:in `block in _app_views_posts_index'|t",
	'and so does its burst (no trace id in that comment)');

# The same N+1 from another endpoint: a row of its own.
$node->safe_psql('postgres', tagged(q{/*application:Shop,controller:feed,action:show*/}, first_id => 20));
is($node->safe_psql('postgres', q{SELECT source, calls, code_line IS NULL FROM n1_offenders ORDER BY source}),
	"controller=feed action=show|6|t\ncontroller=posts action=index|6|f",
	'one row per endpoint');
# and again from the first: added to its row
$node->safe_psql('postgres', tagged($marginalia, first_id => 40));
is($node->safe_psql('postgres', q{SELECT source, bursts FROM n1_offenders ORDER BY source}),
	"controller=feed action=show|1\ncontroller=posts action=index|2",
	'a second burst of an endpoint adds to its row');

# sqlcommenter (Django's middleware format): URL-decoded route, trace id.
my $trace = '0af7651916cd43dd8448eb211c80319c';
$node->safe_psql('postgres', tagged(
	qq{/*controller='post_list',framework='django%3A4.2',route='%5Eapi/posts/',traceparent='00-$trace-b7ad6b7169203331-01'*/},
	first_id => 60));
is($node->safe_psql('postgres', q{SELECT source, trace_id FROM n1_bursts ORDER BY ended_at DESC LIMIT 1}),
	"controller=post_list route=^api/posts/|$trace", 'sqlcommenter: route and trace id');

# Rails 7 query log tags (config.active_record.query_log_tags_enabled).
# Debian 12 has no Rails 7 package (ActiveRecord 6.1 only), so the
# statements carry the comments Rails 7 writes: 7.0 the legacy format
# (marginalia's), here prepended (query_log_tags_prepend_comment) and with a
# request_id tag of the application's own; 7.1+ with query_log_tags_format
# = :sqlcommenter, keys sorted, values URL-encoded and quoted.
my $request_id = '8f3c2a1e-55d4-4c1f-9f0e-6a1b2c3d4e5f';
$node->safe_psql('postgres', tagged(
	"/*application:Shop,controller:orders,action:index,request_id:$request_id*/", first_id => 140, leading => 1));
is($node->safe_psql('postgres', q{SELECT source, trace_id FROM n1_bursts ORDER BY ended_at DESC LIMIT 1}),
	"controller=orders action=index|$request_id", 'Rails 7.0 query log tags: controller, action and request id');
$node->safe_psql('postgres', tagged(
	"/*action='show',application='Shop',controller='orders',request_id='${request_id}'*/", first_id => 160));
is($node->safe_psql('postgres', q{SELECT source, trace_id FROM n1_bursts ORDER BY ended_at DESC LIMIT 1}),
	"controller=orders action=show|$request_id", 'Rails 7.1 query log tags (sqlcommenter format): the same');
# Rails 7.2+'s source_location tag is marginalia's line
$node->safe_psql('postgres', tagged(
	"/*action='show',application='Shop',controller='orders',"
	  . "source_location='app%2Fcontrollers%2Forders_controller.rb%3A12%3Ain%20%60show%27'*/", first_id => 180));
my ($source, $code_line) = split /\|/,
  $node->safe_psql('postgres', q{SELECT source, code_line FROM n1_bursts ORDER BY ended_at DESC LIMIT 1}), 2;
is($source, 'controller=orders action=show', 'Rails 7.2 query log tags: controller and action');
is($code_line, "app/controllers/orders_controller.rb:12:in `show'", 'Rails 7.2 source_location: the code line');

# Without comments: NULL, as before.
$node->safe_psql('postgres', N1Test::n_plus_one_sql(first_id => 80));
is($node->safe_psql('postgres', q{SELECT count(*) FROM n1_offenders WHERE source IS NULL AND code_line IS NULL}),
	'1', 'statements without comments: source and code_line NULL');

# A comment inside a string literal is no tag.
$node->safe_psql('postgres', q{SELECT n1_reset()});
my $in_string = N1Test::n_plus_one_sql(first_id => 100);
$in_string =~ s/^(SELECT name FROM authors WHERE id = \d+);$/$1 AND name <> '\/*controller:evil*\/';/mg;
$node->safe_psql('postgres', $in_string);
is($node->safe_psql('postgres', q{SELECT kind, source IS NULL FROM n1_offenders}),
	'n_plus_one|t', 'a comment inside a string literal is not read');

# n1detect.action = error names the source and the code line.
$node->safe_psql('postgres', q{SELECT n1_reset()});
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	"SET n1detect.action = 'error';\n" . tagged($marginalia, first_id => 120),
	extra_params => [ '-v', 'ON_ERROR_STOP=1' ]);
isnt($ret, 0, 'action = error fails the naive request');
like($stderr, qr{CONTEXT:  request controller=posts action=index, code line /app/views/posts/index.html.erb:7:in `block in _app_views_posts_index'},
	'its message names the request and the code line');

# Request boundaries: two requests of 3 calls each, back to back outside
# any transaction block and well within max_gap, with different trace ids,
# are two units (6 calls of one unit would be an N+1 at min_calls 5).
$node->safe_psql('postgres', q{SELECT n1_reset()});
my $requests = '';
for my $r (1, 2)
{
	my $tp = sprintf("/*traceparent='00-%032x-b7ad6b7169203331-01'*/", $r);
	my ($first, $last) = (($r - 1) * 3 + 1, $r * 3);
	$requests .= "SELECT id, author_id FROM books WHERE id BETWEEN $first AND $last ORDER BY id $tp;\n";
	# each book's author, as n_plus_one_sql
	$requests .= "SELECT name FROM authors WHERE id = " . (($_ % 100) + 1) . " $tp;\n" for ($first .. $last);
}
$node->safe_psql('postgres', $requests);
is($node->safe_psql('postgres', q{SELECT count(*) FROM n1_bursts}), '0',
	'a change of trace id ends the unit: two requests of 3 calls make no burst');
# the same without trace ids is one unit (what the boundary prevents)
(my $untagged = $requests) =~ s{ /\*traceparent='[^']*'\*/}{}g;
$node->safe_psql('postgres', q{SELECT n1_reset()});
$node->safe_psql('postgres', $untagged);
is($node->safe_psql('postgres', q{SELECT kind, calls FROM n1_bursts}), 'n_plus_one|6',
	'without trace ids the two requests make one unit');
# statements without a trace id inside a request do not end it
(my $mixed = $requests) =~ s{(WHERE id = [34]) /\*traceparent='[^']*'\*/}{$1}g;
$mixed =~ s{/\*traceparent='[^']*2-b7ad[^']*'\*/}{/*traceparent='00-00000000000000000000000000000001-b7ad6b7169203331-01'*/}g;
$node->safe_psql('postgres', q{SELECT n1_reset()});
$node->safe_psql('postgres', $mixed);
is($node->safe_psql('postgres', q{SELECT kind, calls, trace_id FROM n1_bursts}),
	'n_plus_one|6|00000000000000000000000000000001',
	'statements of one trace id, some untagged, stay one unit');

N1Test::server_survived($node, $postmaster, 'query comments');
$node->stop;
done_testing();
