# N1Clients: workload tests through real client libraries (test/clients/).
#
#   my $node = N1Clients::shop_node('django');      # n1detect preloaded, database "shop"
#   my $out = N1Clients::run_client($node, 'python', 'django_client.py', 'run', 'books', 'naive');
#   N1Clients::expect_offenders($node, 'books naive', [
#       { kind => 'n_plus_one', query => qr/FROM "authors"/, parent => qr/FROM "books"/ } ]);
#
# Each client run is a process of its own with a connection of its own, so each
# scenario is its own unit of work; between two runs the offenders are reset
# once the previous client's backend has exited (a backend records the bursts
# of its last unit when it exits).
package N1Clients;

use strict;
use warnings;
use File::Basename qw(dirname);
use File::Spec;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use N1Test;

our $clients_dir = File::Spec->rel2abs(File::Spec->catdir(dirname(__FILE__), '..', 'clients'));

# Debian's interpreters, where python3-django, ruby-activerecord... are installed
# (a python3 earlier on PATH, such as a pyenv one, would not see them).
my %interpreter = (
	python => $ENV{N1_PYTHON} // '/usr/bin/python3',
	ruby => $ENV{N1_RUBY} // '/usr/bin/ruby',
);

# A started node with n1detect preloaded and the bookshop of
# test/clients/schema.sql in database "shop".
sub shop_node
{
	my ($name, %opts) = @_;
	my $node = N1Test::new_node($name, %opts);
	$node->safe_psql('postgres', 'CREATE DATABASE shop');
	$node->safe_psql('shop', 'CREATE EXTENSION n1detect');
	my ($ret, $out, $err) = $node->psql('shop', undef,
		extra_params => [ '-v', 'ON_ERROR_STOP=1', '-f', "$clients_dir/schema.sql" ]);
	die "loading schema.sql failed: $err" if $ret != 0;
	return $node;
}

# Runs one client program of test/clients/ against the node's "shop" database
# (libpq environment) and returns its standard output; a non-zero exit fails
# the test unless expect_failure is set, and then (exit code, stdout, stderr)
# is returned instead.
sub run_client
{
	my ($node, $lang, $script, @args) = @_;
	my %opts = ref $args[-1] eq 'HASH' ? %{ pop @args } : ();
	my ($stdout, $stderr) = ('', '');
	my $ok;
	{
		local %ENV = %ENV;
		$ENV{PGHOST} = $node->host;
		$ENV{PGPORT} = $node->port;
		$ENV{PGDATABASE} = $opts{database} // 'shop';
		$ENV{PGUSER} = $opts{user} if $opts{user};
		delete $ENV{PGUSER} unless $opts{user};
		$ENV{PYTHONDONTWRITEBYTECODE} = 1;
		$ok = IPC::Run::run([ $interpreter{$lang}, "$clients_dir/$script", @args ],
			'<', \undef, '>', \$stdout, '2>', \$stderr,
			IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	}
	my $code = $? >> 8;
	wait_for_clients($node);
	return ($code, $stdout, $stderr) if $opts{expect_failure};
	if (!$ok)
	{
		fail("$script @args exited with $code");
		diag($stderr);
	}
	chomp $stdout;
	return $stdout;
}

# Waits until no client backend but ours is left (they report their bursts on exit).
sub wait_for_clients
{
	my ($node) = @_;
	$node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")
	  or die "client backends did not exit";
	return;
}

sub reset_offenders
{
	my ($node) = @_;
	wait_for_clients($node);
	$node->safe_psql('shop', 'SELECT n1_reset()');
	return;
}

# Rows of n1_offenders as hashes.
sub offenders
{
	my ($node) = @_;
	my $out = $node->safe_psql('shop', q{
		SELECT kind, calls, max_distinct_params, max_parent_rows,
		       regexp_replace(query, '\s+', ' ', 'g'), regexp_replace(coalesce(parent_query, ''), '\s+', ' ', 'g'),
		       application_name
		FROM n1_offenders ORDER BY queryid, kind},
		extra_params => [ '-F', "\x1f" ]);
	my @rows;
	for my $line (split /\n/, $out)
	{
		my @f = split /\x1f/, $line, -1;
		push @rows, {
			kind => $f[0], calls => $f[1], distinct => $f[2], parent_rows => $f[3],
			query => $f[4], parent => $f[5], application_name => $f[6] };
	}
	return @rows;
}

sub describe
{
	return join("\n", map {
		"  $_->{kind} calls=$_->{calls} distinct=$_->{distinct} parent_rows=$_->{parent_rows}\n"
		  . "    query:  $_->{query}\n    parent: $_->{parent}"
	} @_) || '  (none)';
}

# Asserts that n1_offenders holds exactly the expected rows.  Each expectation:
# kind, query (regexp on the child's normalized text), parent (regexp on the
# parent's, or undef for no parent), and optionally calls (exact).
sub expect_offenders
{
	my ($node, $name, $expected) = @_;
	my @rows = offenders($node);
	my $ok = is(scalar @rows, scalar @$expected, "$name: " . scalar(@$expected) . " offender(s)");
	for my $e (@$expected)
	{
		my $what = "$e->{kind} " . ($e->{parent} ? "with parent" : "without parent");
		my @match = grep {
			$_->{kind} eq $e->{kind}
			  && $_->{query} =~ $e->{query}
			  && (defined $e->{parent} ? $_->{parent} =~ $e->{parent} : $_->{parent} eq '')
			  && (!defined $e->{calls} || $_->{calls} == $e->{calls})
		} @rows;
		$ok = is(scalar @match, 1, "$name: $what: $e->{query}") && $ok;
	}
	diag("$name: n1_offenders has:\n" . describe(@rows)) unless $ok;
	return $ok;
}

# Asserts that no offender is an N+1 (traps); returns the rows.
sub expect_no_n_plus_one
{
	my ($node, $name) = @_;
	my @rows = offenders($node);
	my @n1 = grep { $_->{kind} eq 'n_plus_one' } @rows;
	is(scalar @n1, 0, "$name: no n_plus_one")
	  or diag("$name: n1_offenders has:\n" . describe(@rows));
	return @rows;
}

# Runs a naive/fixed pair: the naive endpoint must be reported as expected,
# the fixed one must leave n1_offenders empty and return the same output.
sub check_pair
{
	my ($node, $lang, $script, $scenario, $expected, @prefix) = @_;
	my $name = "$script $scenario";

	reset_offenders($node);
	my $naive = run_client($node, $lang, $script, @prefix, $scenario, 'naive');
	expect_offenders($node, "$name naive", $expected);

	reset_offenders($node);
	my $fixed = run_client($node, $lang, $script, @prefix, $scenario, 'fixed');
	expect_offenders($node, "$name fixed", []);

	isnt($naive, '', "$name: the endpoint returned something");
	is($fixed, $naive, "$name: the fixed endpoint returns what the naive one did");
	return;
}

1;
