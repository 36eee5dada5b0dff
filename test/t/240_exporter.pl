# Monitoring: Debian's postgres_exporter (prometheus-postgres-exporter), run
# with monitoring/postgres_exporter/n1detect.yaml against a test server after
# an N+1, serves the offender with its queryid, parent and calls, and the
# n1_info counters on /metrics; no more than 100 offenders are exported.
use strict;
use warnings;
use File::Basename qw(dirname);
use HTTP::Tiny;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use N1Test;

my $exporter = '/usr/bin/prometheus-postgres-exporter';
my $queries = dirname(__FILE__) . '/../../monitoring/postgres_exporter/n1detect.yaml';
ok(-x $exporter, "$exporter is installed (tools/install-deps)") or BAIL_OUT("no exporter");
ok(-r $queries, 'queries file is there');

# units end at COMMIT only, however loaded the machine (no 100 ms gap splits one)
my $node = N1Test::new_node('exporter', conf => "n1detect.max_gap = '10s'\n");
N1Test::create_schema($node);
# the exporter connects as a monitoring role, as the README says
$node->safe_psql('postgres', q{
	CREATE ROLE n1_exporter LOGIN;
	GRANT pg_monitor TO n1_exporter;
});
$node->safe_psql('postgres', N1Test::n_plus_one_sql(list_size => 6));
my ($queryid, $parent, $calls) = split /\|/, $node->safe_psql('postgres', q{
	SELECT queryid, parent_queryid, calls FROM n1_offenders WHERE kind = 'n_plus_one'});
is($calls, '6', 'the N+1 is in n1_offenders with 6 calls');

# Starts the exporter on a free port; returns its handle, the port and its stderr.
sub start_exporter
{
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	local $ENV{DATA_SOURCE_NAME} = sprintf('host=%s port=%d user=n1_exporter dbname=postgres sslmode=disable',
		$node->host, $node->port);
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ $exporter, "--web.listen-address=127.0.0.1:$port", "--extend.query-path=$queries",
		  '--disable-default-metrics', '--disable-settings-metrics', '--log.level=warn' ],
		'>', \$out, '2>', \$err);
	return ($h, $port, \$err);
}

# GET /metrics, retrying while the exporter starts (bounded: about 60 s)
sub scrape
{
	my ($port) = @_;
	my $http = HTTP::Tiny->new(timeout => 30);
	for (1 .. 120)
	{
		my $r = $http->get("http://127.0.0.1:$port/metrics");
		return $r->{content} if $r->{success};
		select(undef, undef, undef, 0.5);
	}
	return '';
}

# all samples of one metric, as hashes of labels plus value
sub samples
{
	my ($metrics, $name) = @_;
	my @s;
	for my $line (split /\n/, $metrics)
	{
		next unless $line =~ /^\Q$name\E\{(.*)\} (\S+)$/;
		my ($labels, $value) = ($1, $2);
		my %l = $labels =~ /(\w+)="((?:[^"\\]|\\.)*)"/g;
		push @s, { %l, value => $value };
	}
	return @s;
}

my ($h, $port, $err) = start_exporter();
END { $h->kill_kill if $h && $h->pumpable; }
my $metrics = scrape($port);
isnt($metrics, '', "exporter answers on /metrics (port $port)") or diag($$err);

my @mine = grep { $_->{queryid} eq $queryid } samples($metrics, 'n1detect_offenders_calls');
is(scalar(@mine), 1, 'one n1detect_offenders_calls series for the N+1 queryid')
  or diag(join "\n", grep { /n1detect|error/ } split /\n/, $metrics);
is($mine[0]{value}, '6', 'n1detect_offenders_calls is the calls of n1_offenders');
is(join(',', map { $mine[0]{$_} // '' } qw(kind parent_queryid datname rolname)),
	"n_plus_one,$parent,postgres,postgres", 'labels: kind, parent queryid, database, role');
is((samples($metrics, 'n1detect_offenders_bursts'))[0]{value}, '1', 'n1detect_offenders_bursts');
my ($time) = grep { $_->{queryid} eq $queryid } samples($metrics, 'n1detect_offenders_exec_time_seconds');
ok(defined $time && $time->{value} > 0 && $time->{value} < 60, 'exec time in seconds');
like($metrics, qr/^n1detect_info_bursts_total\{[^}]*\} 1$/m, 'n1_info: bursts_total');
like($metrics, qr/^n1detect_info_offenders\{[^}]*\} 1$/m, 'n1_info: offenders');
like($metrics, qr/^n1detect_info_max_offenders\{[^}]*\} 1000$/m, 'n1_info: max_offenders');
unlike($metrics, qr/^pg_exporter_last_scrape_error(\{[^}]*\})? 1$/m, 'no scrape error');

# Cardinality: 105 more offenders (a loop over each of 105 tables, one unit of
# work each); the exporter exports the 100 with the most calls.
my $ddl = join '', map { "CREATE TABLE t$_ (id int PRIMARY KEY); INSERT INTO t$_ VALUES (1);\n" } 1 .. 105;
$node->safe_psql('postgres', $ddl);
my $loops = '';
for my $t (1 .. 105)
{
	$loops .= "BEGIN;\n" . join('', map { "SELECT id FROM t$t WHERE id = $_;\n" } 1 .. 5) . "COMMIT;\n";
}
$node->safe_psql('postgres', $loops);
is($node->safe_psql('postgres', 'SELECT count(*) FROM n1_offenders'), '106', '106 offenders in n1_offenders');
$metrics = scrape($port);
my @all = samples($metrics, 'n1detect_offenders_calls');
is(scalar(@all), 100, 'the exporter exports 100 of them');
ok((grep { $_->{queryid} eq $queryid } @all), 'the one with the most calls is among them');
like($metrics, qr/^n1detect_info_offenders\{[^}]*\} 106$/m, 'n1detect_info_offenders counts all of them');

$h->kill_kill;
ok(!$h->pumpable, 'exporter stopped');
$node->stop;
done_testing();
