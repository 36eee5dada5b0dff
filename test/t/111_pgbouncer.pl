# Behind PgBouncer in transaction mode (issue 10).
# Pool size 1: one server backend serves 4 client processes at once, each
# running a naive request (an N+1) and a fixed one (= ANY), every statement
# tagged with its request's sqlcommenter traceparent and route.  Every naive
# request's N+1 is caught, with its parent and route, and no fixed request
# is reported.  Without comments, the README's limits: the clients'
# statements fall in one unit of work (one burst summing every client's
# loop), or, with an application_name per client, every switch of client
# ends the unit (no loop caught).
# Pool size 2: the same 4 clients' requests spread over two server backends,
# some in transaction blocks (a backend each, two at once), the others in
# autocommit interleaved on the backend left free; every naive request is
# caught, on both backends, and no fixed request is reported.
# The interleaving is the test's: it hands each client its next statement
# and waits for the answer (no timing), and never asks for more servers
# than the pool has free, so PgBouncer's choice of backend is forced.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use N1Test;

my $pgbouncer = '/usr/sbin/pgbouncer';
plan skip_all => 'pgbouncer is not installed (tools/install-deps)' unless -x $pgbouncer;

my $node = N1Test::new_node('bouncer', conf => "n1detect.max_gap = '1h'\n");
my $postmaster = N1Test::postmaster_pid($node);
N1Test::create_schema($node);
my $user = $node->safe_psql('postgres', 'SELECT current_user');

my $dir = PostgreSQL::Test::Utils::tempdir();
my $port = PostgreSQL::Test::Cluster::get_free_port();
PostgreSQL::Test::Utils::append_to_file("$dir/users.txt", qq{"$user" ""\n});
sub configure_bouncer
{
	my ($pool_size) = @_;
	unlink "$dir/pgbouncer.ini";
	PostgreSQL::Test::Utils::append_to_file("$dir/pgbouncer.ini", <<"EOC");
[databases]
postgres = host=@{[ $node->host ]} port=@{[ $node->port ]} dbname=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/users.txt
pool_mode = transaction
default_pool_size = $pool_size
max_client_conn = 20
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
EOC
}

# pgbouncer runs until stop_bouncer; stopping it closes the server
# connections, whose backends then record their open units.
my $bouncer;
sub start_bouncer
{
	$bouncer = IPC::Run::start([ $pgbouncer, "$dir/pgbouncer.ini" ],
		'<', \undef, '>', "$dir/out.txt", '2>', "$dir/err.txt");
	# wait until it accepts connections
	for (1 .. 600)
	{
		my ($ret) = run_psql('SELECT 1');
		return if $ret == 0;
		sleep 0.1;
	}
	BAIL_OUT('pgbouncer did not start: ' . slurp_file("$dir/pgbouncer.log"));
}
sub stop_bouncer
{
	$bouncer->signal('INT');
	$bouncer->finish;
	# the server backends of the pool exit and record their units
	$node->poll_query_until('postgres',
		q{SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()})
	  or die 'the pooled backends did not exit';
}
sub run_psql
{
	my ($sql) = @_;
	my ($out, $err);
	my $ret = IPC::Run::run([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', $port,
		'-U', $user, '-d', 'postgres', '-c', $sql ], '>', \$out, '2>', \$err) ? 0 : 1;
	return ($ret, $out, $err);
}

# A request of client $c: naive (a list of 6 books, then each author, one
# query per row) or fixed (the authors with one = ANY query), each statement
# with the request's comment; autocommit statements, or one transaction
# block with $block.
sub request
{
	my ($c, $naive, $tagged, $block) = @_;
	my $first = $c * 10 + ($naive ? 1 : 100);
	my $last = $first + 5;
	my $trace = sprintf('%032x', $c * 2 + ($naive ? 1 : 0) + 1);
	my $route = $naive ? 'api/naive/' : 'api/fixed/';
	my $comment = $tagged ?
	  " /*controller='books',route='$route',traceparent='00-$trace-b7ad6b7169203331-01'*/" : '';
	my $sql = "SELECT id, author_id FROM books WHERE id BETWEEN $first AND $last ORDER BY id$comment;\n";
	if ($naive)
	{
		$sql .= "SELECT name FROM authors WHERE id = " . (($_ % 100) + 1) . "$comment;\n"
		  for ($first .. $last);
	}
	else
	{
		$sql .= "SELECT id, name FROM authors WHERE id = ANY ('{" . join(',', map { ($_ % 100) + 1 } $first .. $last)
		  . "}'::int[])$comment;\n";
	}
	$sql = "BEGIN;\n${sql}COMMIT;\n" if $block;
	return ([ split /(?<=;\n)/, $sql ], $trace);
}

# $n psql client processes connected through pgbouncer.  With $own_names
# each client has its own application_name, which PgBouncer sets on the
# backend at every switch of client.
sub start_clients
{
	my ($n, $own_names) = @_;
	my @clients;
	for my $c (1 .. $n)
	{
		my %client = (in => '', out => '', err => '', step => 0);
		$client{h} = IPC::Run::start([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1',
			'-h', '127.0.0.1', '-p', $port, '-U', $user, '-d', 'postgres', '-f', '-' ],
			'<', \$client{in}, '>', \$client{out}, '2>', \$client{err},
			init => sub { $ENV{PGAPPNAME} = $own_names ? "client $c" : 'client' });
		push @clients, \%client;
	}
	return @clients;
}

# Runs a schedule, a list of [client, statement]: hands each statement to
# its client and waits for its answer before the next.
sub drive
{
	my ($clients, @schedule) = @_;
	my $timer = IPC::Run::timer($PostgreSQL::Test::Utils::timeout_default);
	for my $item (@schedule)
	{
		my ($client, $sql) = ($clients->[ $item->[0] - 1 ], $item->[1]);
		my $step = ++$client->{step};
		$client->{in} .= $sql . "\\echo done $step\n";
		$timer->start($PostgreSQL::Test::Utils::timeout_default);
		$client->{h}->pump until $client->{out} =~ /done $step\n/ || $timer->is_expired
		  || !$client->{h}->pumpable;
		die "client $item->[0]: no answer to $sql: $client->{err}" unless $client->{out} =~ /done $step\n/;
	}
	return;
}

sub finish_clients
{
	for my $client (@_)
	{
		$client->{in} .= "\\q\n";
		ok($client->{h}->finish, 'client ran its requests through pgbouncer')
		  or diag($client->{err});
	}
	return;
}

# Round robin: statement 1 of every request, then statement 2, ...; a list
# of requests, each [client, statements].
sub round_robin
{
	my @requests = @_;
	my @schedule;
	for (my $step = 0; grep { $step < @{ $_->[1] } } @requests; $step++)
	{
		push @schedule, map { $step < @{ $_->[1] } ? [ $_->[0], $_->[1][$step] ] : () } @requests;
	}
	return @schedule;
}

# Pool size 1: 4 client processes at once, each a naive and a fixed
# request (half of them fixed first), interleaved statement by statement on
# the one server backend.
sub run_clients
{
	my ($tagged, $own_names) = @_;
	my (@requests, %naive_traces, %fixed_traces);
	for my $c (1 .. 4)
	{
		my ($naive, $nt) = request($c, 1, $tagged);
		my ($fixed, $ft) = request($c, 0, $tagged);
		$naive_traces{$nt} = 1;
		$fixed_traces{$ft} = 1;
		push @requests, [ $c, $c % 2 ? [ @$naive, @$fixed ] : [ @$fixed, @$naive ] ];
	}
	my @clients = start_clients(4, $own_names);
	drive(\@clients, round_robin(@requests));
	finish_clients(@clients);
	return (\%naive_traces, \%fixed_traces);
}

configure_bouncer(1);
start_bouncer();
my ($naive, $fixed) = run_clients(1, 1);
stop_bouncer();

is($node->safe_psql('postgres',
	q{SELECT string_agg(trace_id, ',' ORDER BY trace_id) FROM n1_bursts}),
	join(',', sort keys %$naive), 'one burst per naive request, none for a fixed one');
# The distinct kinds, calls, sources, queries and parents of the bursts.
my $bursts_sql = q{
	SELECT string_agg(DISTINCT format('%s|%s|%s|%s|%s', b.kind, b.calls, b.source,
	                                  split_part(o.query, ' /*', 1), split_part(o.parent_query, ' /*', 1)), ',')
	FROM n1_bursts b JOIN n1_offenders o USING (queryid, parent_queryid, kind)};
is($node->safe_psql('postgres', $bursts_sql),
	q{n_plus_one|6|controller=books route=api/naive/|SELECT name FROM authors WHERE id = $1|SELECT id, author_id FROM books WHERE id BETWEEN $1 AND $2 ORDER BY id},
	'each an N+1 of 6 calls with the list of books as parent, and the naive route');
is($node->safe_psql('postgres', q{SELECT source, bursts, calls FROM n1_offenders}),
	'controller=books route=api/naive/|4|24', 'one offender row for the naive endpoint');
N1Test::server_survived($node, $postmaster, 'tagged clients behind pgbouncer');

# Without comments: the limit the README states.  The backend cannot tell
# the clients (of one application_name) apart: their statements form one
# unit of work.
$node->safe_psql('postgres', 'SELECT n1_reset()');
start_bouncer();
run_clients(0, 0);
stop_bouncer();
is($node->safe_psql('postgres', q{SELECT calls, source IS NULL FROM n1_bursts ORDER BY calls DESC}),
	"24|t\n8|t",
	'without comments the 4 clients\' loops merge in one burst of 24 calls, and the 8 requests\' list queries make a burst of 8');
# and with a name per client, PgBouncer's switch of name ends the unit at
# every switch of client: the interleaved loops are cut, none is caught
$node->safe_psql('postgres', 'SELECT n1_reset()');
start_bouncer();
run_clients(0, 1);
stop_bouncer();
is($node->safe_psql('postgres', q{SELECT count(*) FROM n1_bursts}), '0',
	'without comments, clients of distinct application_names: the interleaved loops are cut, none caught');

N1Test::server_survived($node, $postmaster, 'clients behind pgbouncer');

# Pool size 2, tagged, each client with its own application_name.  Client
# 1's naive request is a transaction block (it holds a backend from BEGIN to
# COMMIT) while clients 2-4 run a request each in autocommit, interleaved
# statement by statement on the other backend (client 3's naive); then
# clients 2 and 4 run their naive requests in transaction blocks at once,
# one on each backend, interleaved; then client 1's fixed request (a
# block) beside client 3's (autocommit).
$node->safe_psql('postgres', 'SELECT n1_reset()');
configure_bouncer(2);
start_bouncer();
my @clients = start_clients(4, 1);
my @naive_traces;
# each phase a list of requests [client, naive, in a block], run at once
for my $phase ([ [ 1, 1, 1 ], [ 2, 0, 0 ], [ 3, 1, 0 ], [ 4, 0, 0 ] ],
	[ [ 2, 1, 1 ], [ 4, 1, 1 ] ],
	[ [ 1, 0, 1 ], [ 3, 0, 0 ] ])
{
	my @requests;
	for my $r (@$phase)
	{
		my ($c, $naive, $block) = @$r;
		my ($statements, $trace) = request($c, $naive, 1, $block);
		push @naive_traces, $trace if $naive;
		push @requests, [ $c, $statements ];
	}
	drive(\@clients, round_robin(@requests));
}
finish_clients(@clients);
stop_bouncer();

is($node->safe_psql('postgres',
	q{SELECT string_agg(trace_id, ',' ORDER BY trace_id) FROM n1_bursts}),
	join(',', sort @naive_traces), 'pool of 2: one burst per naive request, none for a fixed one');
is($node->safe_psql('postgres', $bursts_sql),
	q{n_plus_one|6|controller=books route=api/naive/|SELECT name FROM authors WHERE id = $1|SELECT id, author_id FROM books WHERE id BETWEEN $1 AND $2 ORDER BY id},
	'each an N+1 of 6 calls with the list of books as parent, and the naive route');
is($node->safe_psql('postgres', q{SELECT count(DISTINCT pid) FROM n1_bursts}), '2',
	'caught on both backends of the pool');
is($node->safe_psql('postgres', q{SELECT source, bursts, calls FROM n1_offenders}),
	'controller=books route=api/naive/|4|24', 'one offender row for the naive endpoint');

N1Test::server_survived($node, $postmaster, 'clients behind a pool of 2');
$node->stop;
done_testing();
