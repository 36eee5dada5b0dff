# n1scan agrees with the extension on real clients: one server preloads
# n1detect and writes csvlog and stderr logs with log_min_duration_statement
# = 0; each naive scenario of Django, SQLAlchemy, psycopg 3 and ActiveRecord
# runs, and n1scan on the log lines of that run (csvlog and stderr) must
# report the n_plus_one children n1_offenders reports; the fixed scenarios
# and psycopg's traps must give no n_plus_one.  Parents are compared too:
# where they differ (n1scan has no rows, it picks by timing) the test says so.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;
use N1Clients;

my $prefix = '%m [%p] %q[%c] %a %Q ';
my $node = N1Clients::shop_node('scan_clients', conf => N1Test::n1scan_log_conf(
	name => 'clients', destinations => 'stderr,csvlog', prefix => $prefix,
	extra => "log_statement = none\n"));
my $logdir = $node->data_dir . '/log';
my $n1scan = $node->config_data('--bindir') . '/n1scan';
my $tmp = PostgreSQL::Test::Utils::tempdir;
my $marker = 0;

# the log written since the offsets of %$from, once the collector has it all
sub slice
{
	my ($from) = @_;
	$marker++;
	N1Test::log_marker($node, 'shop', "n1scan marker $marker");
	my %out;
	for my $f ('clients.log', 'clients.csv')
	{
		N1Test::wait_for_log("$logdir/$f", "n1scan marker $marker");
		my $all = slurp_file("$logdir/$f");
		$out{$f} = substr($all, $from->{$f});
		open(my $o, '>', "$tmp/$f") or die;
		print $o $out{$f};
		close $o;
	}
	return;
}

sub offsets { return { map { ($_ => -s "$logdir/$_") } 'clients.log', 'clients.csv' }; }

sub scan_rows
{
	my ($f) = @_;
	my @p = $f =~ /\.log$/ ? ("--prefix=$prefix") : ();
	my ($out, $err) = ('', '');
	IPC::Run::run([ $n1scan, @p, '--format=json', "$tmp/$f" ], '>', \$out, '2>', \$err);
	my $rows = eval { decode_json($out) } // [];
	return map { { kind => $_->{kind}, query => $_->{query} =~ s/\s+/ /gr,
				   parent => ($_->{parent_query} // '') =~ s/\s+/ /gr } } @$rows;
}

my @scenarios = (
	(map { [ 'python', 'django_client.py', 'run', $_ ] } qw(books author_books author_count book_tags deep iterator iterator_atomic)),
	(map { [ 'python', 'sqlalchemy_client.py', $_ ] } qw(author_books book_reviews book_author)),
	(map { [ 'python', 'psycopg_client.py', $_ ] } qw(unnamed prepared auto cursor)),
	(map { [ 'ruby', 'activerecord_client.rb', $_ ] } qw(book_author author_books)),
);
my @parent_differs;
for my $s (@scenarios)
{
	my ($lang, $script, @args) = @$s;
	for my $variant ('naive', 'fixed')
	{
		my $name = "$script @args $variant";
		N1Clients::reset_offenders($node);
		my $from = offsets();
		N1Clients::run_client($node, $lang, $script, @args, $variant);
		slice($from);
		my @server = grep { $_->{kind} eq 'n_plus_one' } N1Clients::offenders($node);
		my $server_children = join("\n", sort map { $_->{query} } @server);
		$variant eq 'naive' ? isnt($server_children, '', "$name: the extension reports an N+1")
		  : is($server_children, '', "$name: the extension reports none");
		for my $f ('clients.csv', 'clients.log')
		{
			my @scan = grep { $_->{kind} eq 'n_plus_one' } scan_rows($f);
			is(join("\n", sort map { $_->{query} } @scan), $server_children,
				"$name ($f): n1scan reports the same n_plus_one children");
			for my $r (@server)
			{
				my ($m) = grep { $_->{query} eq $r->{query} } @scan;
				push @parent_differs, "$name: $r->{query}\n  extension: $r->{parent}\n  n1scan:    " . ($m ? $m->{parent} : '-')
				  if $f eq 'clients.csv' && (!$m || $m->{parent} ne $r->{parent});
			}
		}
	}
}
# psycopg's traps: no n_plus_one from either
for my $trap (qw(keyset same_shape health duplicate))
{
	N1Clients::reset_offenders($node);
	my $from = offsets();
	N1Clients::run_client($node, 'python', 'psycopg_client.py', $trap, 'trap');
	slice($from);
	my @server = grep { $_->{kind} eq 'n_plus_one' } N1Clients::offenders($node);
	is(scalar @server, 0, "psycopg trap $trap: the extension reports no N+1");
	for my $f ('clients.csv', 'clients.log')
	{
		my @scan = scan_rows($f);
		is(join("\n", map { "$_->{kind} | $_->{query} | $_->{parent}" } grep { $_->{kind} eq 'n_plus_one' } @scan), '',
			"psycopg trap $trap ($f): n1scan reports no N+1");
	}
}
# on these workloads the list is also the most recent multi-row query: the
# timing rule names the parent the values rule proved
is(join("\n", @parent_differs), '', 'n1scan names the parents the extension names (csvlog)');
done_testing();
