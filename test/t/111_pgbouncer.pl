# Behind PgBouncer in transaction mode (issue 10): one server backend
# (pool size 1) serves 4 client processes at once, each running a naive
# request (an N+1) and a fixed one (= ANY), every statement tagged with its
# request's sqlcommenter traceparent and route.  Every naive request's N+1
# is caught, with its parent and route, and no fixed request is reported.
# Without comments, the README's limit: the clients' statements fall in one
# unit of work (one burst summing every client's loop).
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
default_pool_size = 1
max_client_conn = 20
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
EOC

# pgbouncer runs until stop_bouncer; stopping it closes the server
# connection, whose backend then records its open units.
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
	# the server backend of the pool exits and records its units
	$node->poll_query_until('postgres',
		q{SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name LIKE 'client%' AND pid <> pg_backend_pid()})
	  or die 'the pooled backend did not exit';
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
# query per row) or fixed (the authors with one = ANY query), autocommit
# statements, each with the request's comment.
sub request
{
	my ($c, $naive, $tagged) = @_;
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
	return ($sql, $trace);
}

# 4 client processes at once, each a naive and a fixed request (half of
# them fixed first), interleaved statement by statement on the one server
# backend: the test hands each client its next statement in turn and waits
# for its answer (deterministic interleaving, no timing).  With $own_names
# each client has its own application_name, which PgBouncer sets on the
# backend at every switch of client.
sub run_clients
{
	my ($tagged, $own_names) = @_;
	my (@clients, %naive_traces, %fixed_traces);
	for my $c (1 .. 4)
	{
		my ($naive, $nt) = request($c, 1, $tagged);
		my ($fixed, $ft) = request($c, 0, $tagged);
		$naive_traces{$nt} = 1;
		$fixed_traces{$ft} = 1;
		my %client = (in => '', out => '', err => '',
			statements => [ split /(?<=;\n)/, $c % 2 ? $naive . $fixed : $fixed . $naive ]);
		$client{h} = IPC::Run::start([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1',
			'-h', '127.0.0.1', '-p', $port, '-U', $user, '-d', 'postgres', '-f', '-' ],
			'<', \$client{in}, '>', \$client{out}, '2>', \$client{err},
			init => sub { $ENV{PGAPPNAME} = $own_names ? "client $c" : 'client' });
		push @clients, \%client;
	}
	my $timer = IPC::Run::timer($PostgreSQL::Test::Utils::timeout_default);
	my ($steps) = sort { $b <=> $a } map { scalar @{ $_->{statements} } } @clients;
	for my $step (0 .. $steps - 1)
	{
		for my $client (@clients)
		{
			my $sql = $client->{statements}[$step] // next;
			$client->{in} .= $sql . "\\echo done $step\n";
			$timer->start($PostgreSQL::Test::Utils::timeout_default);
			$client->{h}->pump until $client->{out} =~ /done $step\n/ || $timer->is_expired
			  || !$client->{h}->pumpable;
			die "client: no answer: $client->{err}" unless $client->{out} =~ /done $step\n/;
		}
	}
	for my $client (@clients)
	{
		$client->{in} .= "\\q\n";
		ok($client->{h}->finish, 'client ran its requests through pgbouncer')
		  or diag($client->{err});
	}
	return (\%naive_traces, \%fixed_traces);
}

start_bouncer();
my ($naive, $fixed) = run_clients(1, 1);
stop_bouncer();

is($node->safe_psql('postgres',
	q{SELECT string_agg(trace_id, ',' ORDER BY trace_id) FROM n1_bursts}),
	join(',', sort keys %$naive), 'one burst per naive request, none for a fixed one');
is($node->safe_psql('postgres', q{
	SELECT string_agg(DISTINCT format('%s|%s|%s|%s|%s', b.kind, b.calls, b.source,
	                                  split_part(o.query, ' /*', 1), split_part(o.parent_query, ' /*', 1)), ',')
	FROM n1_bursts b JOIN n1_offenders o USING (queryid, parent_queryid, kind)}),
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

N1Test::server_survived($node, $postmaster, 'clients behind pgbouncer');
$node->stop;
done_testing();
