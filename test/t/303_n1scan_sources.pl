# n1scan's sources (issue 10 in the log front end): statements tagged with
# query comments give n1scan rows with the request's source and code line,
# one row per endpoint, the rows n1_offenders has on the server that wrote
# the log (stderr, csvlog and jsonlog, with log_min_duration_statement = 0):
# - ActiveRecord 6.1 with marginalia (controller, action, the line of the
#   loop) and Django with sqlcommenter comments (route, controller,
#   traceparent), both real clients of test/clients/, and their fixed
#   requests (nothing);
# - psql: one N+1 from two actions (two rows), the same action twice with
#   another code line (one row, the latest burst's line), two requests in
#   one session told apart by their traceparent alone (two bursts), two
#   requests interleaved statement by statement in one session, as a
#   transaction-mode pooler does (one unit per trace id: two bursts), and
#   no comment (no source).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;
use N1Clients;

my $prefix = '%m [%p] %q[%c] %a %Q ';
# an idle gap of 400 ms ends a unit (the ActiveRecord client sleeps 500 ms
# between its warm-up and its request; nothing else pauses that long)
my $node = N1Clients::shop_node('scan_sources', conf => N1Test::n1scan_log_conf(
	name => 'sources', destinations => 'stderr,csvlog,jsonlog', prefix => $prefix,
	extra => "log_statement = none\nn1detect.max_gap = '400ms'\n"));
my $logdir = $node->data_dir . '/log';
my $bindir = $node->config_data('--bindir');
my ($n1scan, $asan) = N1Test::n1scan_programs($node);

# the real clients, naive and fixed
my $rb = 'activerecord_tagged_client.rb';
my $rb_text = slurp_file("$N1Clients::clients_dir/$rb");
my ($loop_line) = grep { (split /\n/, $rb_text)[ $_ - 1 ] =~ /# LOOP$/ } 1 .. scalar(split /\n/, $rb_text);
N1Clients::run_client($node, ruby => $rb, $_) for 'naive', 'fixed';
N1Clients::run_client($node, python => 'django_sqlcommenter_client.py', @$_)
  for [ 'naive', '4bf92f3577b34da6a3ce929d0e0e4736' ], [ 'fixed', 'aaaabbbbccccddddeeeeffff00001111' ];

# psql, in database shop: a list of books, then an author per row
my $mg = sub { my ($action, $line) = @_; "/*application:Shop,controller:posts,action:$action,line:/app/controllers/posts_controller.rb:$line:in `$action'*/" };
my $unit = sub {
	my ($tag) = @_;
	return "BEGIN;\nSELECT id, author_id FROM books ORDER BY id LIMIT 6 $tag;\n"
	  . join('', map { "SELECT name FROM authors WHERE id = $_ $tag;\n" } 1 .. 6) . "COMMIT;\n";
};
$node->safe_psql('shop', $unit->($mg->('index', 12)));
$node->safe_psql('shop', $unit->($mg->('show', 30)));
$node->safe_psql('shop', $unit->($mg->('index', 14)));
$node->safe_psql('shop', $unit->(''));
# two requests in one session, autocommit, no idle gap: only their trace ids part them
my $sc = sub { "/*controller='reviews',route='%2Fapi%2Freviews%2F',traceparent='00-" . ($_[0] x 32) . "-b7ad6b7169203331-01'*/" };
$node->safe_psql('shop', join('', map {
	my $tag = $sc->($_);
	"SELECT id, book_id FROM reviews ORDER BY id LIMIT 6 $tag;\n"
	  . join('', map { "SELECT title FROM books WHERE id = $_ $tag;\n" } 1 .. 6) } 'a', 'b'));
# two requests interleaved in one session, as a transaction-mode pooler
# interleaves its clients on one backend: one unit per trace id
my $sh = sub { "/*controller='shelves',route='%2Fapi%2Fshelves%2F',traceparent='00-" . ($_[0] x 32) . "-b7ad6b7169203331-01'*/" };
$node->safe_psql('shop', join('',
	(map { "SELECT id FROM books ORDER BY id LIMIT 6 " . $sh->($_) . ";\n" } 'c', 'd'),
	map { my $id = $_; map { "SELECT id, name FROM authors WHERE id = $id " . $sh->($_) . ";\n" } 'c', 'd' } 1 .. 6));
# nine requests interleaved: more than the 8 units a session keeps, so the
# unit idle the longest is ended for each new one (the same in both)
my $rk = sub { sprintf("/*controller='racks',traceparent='00-%032x-b7ad6b7169203331-01'*/", 0xabc0 + $_[0]) };
$node->safe_psql('shop', join('',
	(map { "SELECT id FROM authors ORDER BY id LIMIT 6 " . $rk->($_) . ";\n" } 0 .. 8),
	map { my $id = $_; map { "SELECT id, title FROM books WHERE id = $id " . $rk->($_) . ";\n" } 0 .. 8 } 1 .. 6));

N1Clients::wait_for_clients($node);
my $server = $node->safe_psql('shop', q{
	SELECT string_agg(concat_ws(' | ', CASE kind WHEN 'loop' THEN 'n_plus_one' ELSE kind END, regexp_replace(query, '\s*/\*.*\*/\s*$', ''),
	                            coalesce(source, '-'), coalesce(code_line, '-'), bursts, calls), E'\n'
	                  ORDER BY kind, query, source)
	FROM n1_offenders});
my @server = sort split /\n/, $server;
# (kinds n_plus_one and loop are compared as one: where the extension finds
# no parent by values, n1scan names one by timing, a difference the README
# states and 301 checks; this test is about the sources)

# the server's own rows, first: what n1scan must give
like($server, qr{^n_plus_one \| SELECT "authors"\.\* FROM "authors" WHERE "authors"\."id" = \$1 LIMIT \$2 \| controller=posts action=index \| .*/activerecord_tagged_client\.rb:$loop_line:in `block in index' \| 1 \| 8$}m,
	'the server: marginalia\'s controller, action and loop line');
like($server, qr{^n_plus_one \| .*"authors".* \| controller=book_list route=api/books/naive/ \| - \| 1 \| 8$}m,
	'the server: sqlcommenter\'s route');
like($server, qr{^n_plus_one \| SELECT name FROM authors WHERE id = \$1 \| controller=posts action=index \| /app/controllers/posts_controller\.rb:14:in `index' \| 2 \| 12$}m,
	'the server: one row for posts#index, the latest burst\'s line');
like($server, qr{^n_plus_one \| SELECT name FROM authors WHERE id = \$1 \| controller=posts action=show \| /app/controllers/posts_controller\.rb:30:in `show' \| 1 \| 6$}m,
	'the server: another for posts#show');
like($server, qr{^n_plus_one \| SELECT name FROM authors WHERE id = \$1 \| - \| - \| 1 \| 6$}m,
	'the server: one without a source');
like($server, qr{^n_plus_one \| SELECT title FROM books WHERE id = \$1 \| controller=reviews route=/api/reviews/ \| - \| 2 \| 12$}m,
	'the server: two requests of one session, parted by their trace ids');
like($server, qr{^n_plus_one \| SELECT id, name FROM authors WHERE id = \$1 \| controller=shelves route=/api/shelves/ \| - \| 2 \| 12$}m,
	'the server: two requests interleaved in one session, a unit each');

N1Test::log_marker($node, 'shop', 'n1scan sources marker');
for my $f ('sources.log', 'sources.csv', 'sources.json')
{
	N1Test::wait_for_log("$logdir/$f", 'n1scan sources marker');
	my @p = $f =~ /\.log$/ ? ("--prefix=$prefix") : ();
	my ($out, $err) = ('', '');
	IPC::Run::run([ $asan, @p, '--max-gap=400', '--format=json', "$logdir/$f" ], '>', \$out, '2>', \$err);
	is($? >> 8, 0, "$f: exit 0") or diag($err);
	unlike($err, qr/AddressSanitizer|runtime error/, "$f: clean under ASan");
	my $rows = eval { decode_json($out) } // [];
	my @scan = sort map {
		my $q = $_->{query} =~ s{\s*/\*.*\*/\s*$}{}r;
		join(' | ', $_->{kind} eq 'loop' ? 'n_plus_one' : $_->{kind}, $q, $_->{source} // '-', $_->{code_line} // '-', $_->{bursts}, $_->{calls})
	} @$rows;
	is(join("\n", @scan), join("\n", @server), "$f: the rows of n1_offenders, with their source and code line");
	ok(exists $rows->[0]{source} && exists $rows->[0]{code_line}, "$f: the JSON keys source and code_line");
	# one session at a time: one unit beyond a session's first, in all
	IPC::Run::run([ $asan, @p, '--max-sessions=1', '--format=json', "$logdir/$f" ], '>', \$out, '2>', \$err);
	is($? >> 8, 0, "$f: --max-sessions=1: exit 0") or diag($err);
	unlike($err, qr/AddressSanitizer|runtime error/, "$f: --max-sessions=1: clean under ASan");
	like($out, qr{"source": "controller=shelves route=/api/shelves/"}, "$f: --max-sessions=1: the interleaved requests still found");
	# the text report
	IPC::Run::run([ $n1scan, @p, '--max-gap=400', "$logdir/$f" ], '>', \$out, '2>', \$err);
	like($out, qr{^n_plus_one: SELECT name FROM authors WHERE id = \$1 .*\n(  .*\n)*  source:          controller=posts action=show\n  code line:       /app/controllers/posts_controller\.rb:30:in `show'\n}m,
		"$f: the text report names the source and the code line");
}

done_testing();
