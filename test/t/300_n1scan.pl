# n1scan against a real server: one server preloads n1detect and writes its
# log as stderr (with a prefix holding %c and %Q), csvlog and jsonlog, with
# log_min_duration_statement = 0.  Workloads: an N+1 in literal SQL, the same
# through pgbench -M prepared (extended protocol, "parameters:" lines), fixed
# pages (IN list, = ANY), a duplicate, a loop over constants, a short loop.
# n1scan on each log format must report the n_plus_one rows n1_offenders
# reports (same child and parent text), nothing for the fixed pages, and the
# same report whatever the format (the golden output is the server's own
# n1_offenders, and each format's report is compared with the others').
# Then the common providers' prefixes (Debian, RDS, Azure) are detected
# without --prefix, gzip and standard input are read, --fail-on sets the exit
# status, and broken input (truncated lines, binary junk, a 10 MB statement,
# an unknown prefix) gives messages with file:line, never a crash (under ASan).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;
use File::Copy;
use IO::Socket::UNIX;
use N1Test;

my $prefix = '%m [%p] %q[%c] %a %Q ';
my $node = N1Test::new_node('n1scan', conf => N1Test::n1scan_log_conf(
	name => 'scan', destinations => 'stderr,csvlog,jsonlog', prefix => $prefix,
	extra => "n1detect.max_gap = '10min'\n"));
N1Test::create_schema($node);
my $pid = N1Test::postmaster_pid($node);
my $logdir = $node->data_dir . '/log';
my $bindir = $node->config_data('--bindir');
my ($n1scan, $asan) = N1Test::n1scan_programs($node);
ok(-x $n1scan, 'n1scan is installed beside the server programs');

my $connstr = $node->connstr('postgres');

# The extended protocol's row limit: one Execute of a portal with at most one
# row, then more Executes of the same portal (JDBC's fetchSize does this),
# which the server logs as "execute fetch from": one execution, never a
# duplicate.  No client here sets a row limit, so this speaks the protocol
# itself over the server's socket: Parse, Bind (6 rows), 7 x Execute (1
# row), Sync.  Returns the number of PortalSuspended messages (6).
sub fetch_in_pieces
{
	my ($node) = @_;
	my $sock = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => $node->host . '/.s.PGSQL.' . $node->port)
	  or die "cannot connect: $!";
	my $msg = sub { my ($type, $body) = @_; return $type . pack('N', length($body) + 4) . $body; };
	my $until_ready = sub {
		my $suspended = 0;
		for (;;)
		{
			my ($head, $body) = ('', '');
			read($sock, $head, 5) == 5 or die 'connection closed';
			my ($type, $len) = unpack('a N', $head);
			read($sock, $body, $len - 4) if $len > 4;
			die "server error: $body" if $type eq 'E';
			$suspended++ if $type eq 's';
			return $suspended if $type eq 'Z';
		}
	};
	my $startup = pack('N', 196608) . "user\0" . ($ENV{PGUSER} // scalar getpwuid($<))
	  . "\0database\0postgres\0application_name\0fetch_in_pieces\0\0";
	print $sock pack('N', length($startup) + 4) . $startup;
	$until_ready->();
	print $sock $msg->('P', "\0SELECT id, title FROM books WHERE id <= \$1 ORDER BY id\0" . pack('n', 0))
	  . $msg->('B', "\0\0" . pack('n', 0) . pack('n', 1) . pack('N', 1) . '6' . pack('n', 0))
	  . join('', map { $msg->('E', "\0" . pack('N', 1)) } 1 .. 7)
	  . $msg->('S', '');
	my $suspended = $until_ready->();
	print $sock $msg->('X', '');
	close $sock;
	return $suspended;
}
is(fetch_in_pieces($node), 6, 'a portal fetched a row at a time');

# literal SQL: the list of books 1..6, then the author of each
$node->safe_psql('postgres', N1Test::n_plus_one_sql(list_size => 6));
# the fixed pages: one IN list, one = ANY
$node->safe_psql('postgres', "BEGIN;\nSELECT id, author_id FROM books WHERE id BETWEEN 11 AND 16 ORDER BY id;\n"
	. "SELECT id, name FROM authors WHERE id IN (12, 13, 14, 15, 16, 17);\nCOMMIT;\n");
$node->safe_psql('postgres', "BEGIN;\nSELECT id, author_id FROM books WHERE id BETWEEN 21 AND 26 ORDER BY id;\n"
	. "SELECT id, name FROM authors WHERE id = ANY('{22,23,24,25,26,27}'::int[]);\nCOMMIT;\n");
# a duplicate: the same query, the same constant, 6 times
$node->safe_psql('postgres', "BEGIN;\n" . ("SELECT title FROM books WHERE id = 7;\n" x 6) . "COMMIT;\n");
# a short loop (4 calls, under min_calls): nothing
$node->safe_psql('postgres', "BEGIN;\nSELECT id, author_id FROM books WHERE id BETWEEN 31 AND 34 ORDER BY id;\n"
	. join('', map { "SELECT title FROM books WHERE author_id = $_ ORDER BY id;\n" } 32 .. 35) . "COMMIT;\n");

# "= $1", "IN (...)" and "= ANY(...)" share a libpg_query fingerprint: 3 calls
# of each in one unit must not add up to a burst of 6 (n1scan keys on the shape too)
$node->safe_psql('postgres', "BEGIN;\nSELECT id, author_id FROM books WHERE id BETWEEN 61 AND 66 ORDER BY id;\n"
	. join('', map { "SELECT id, name FROM authors WHERE id = $_;\n" } 62 .. 64)
	. join('', map { "SELECT id, name FROM authors WHERE id IN ($_, 1);\n" } 65 .. 67)
	. join('', map { "SELECT id, name FROM authors WHERE id = ANY('{$_,1}'::int[]);\n" } 68 .. 70) . "COMMIT;\n");

# extended protocol: pgbench -M prepared, the children's ids from the list's rows
my $script = $node->basedir . '/nplus1.sql';
open(my $fh, '>', $script) or die;
print $fh "\\set b random(1, 900)\n";
print $fh "\\set a$_ ((:b + $_) % 100) + 1\n" for 0 .. 5;
print $fh "BEGIN;\nSELECT id, author_id FROM books WHERE id BETWEEN :b AND :b + 5 ORDER BY id;\n";
print $fh "SELECT name FROM authors WHERE id = :a$_;\n" for 0 .. 5;
print $fh "COMMIT;\n";
close $fh;
$node->command_ok([ 'pgbench', '-n', '-M', 'prepared', '-t', '3', '-f', $script, $connstr ],
	'pgbench -M prepared runs the N+1');

my $server = $node->safe_psql('postgres', q{
	SELECT string_agg(kind || ' | ' || query || ' | ' || coalesce(parent_query, '-'), E'\n'
	                  ORDER BY kind, query, parent_query)
	FROM n1_offenders});
like($server, qr/n_plus_one \| SELECT name FROM authors WHERE id = \$1 \| SELECT id, author_id FROM books WHERE id BETWEEN \$1 AND \$2 ORDER BY id/,
	'the server sees the literal N+1');
like($server, qr/n_plus_one \| SELECT name FROM authors WHERE id = \$1 \| SELECT id, author_id FROM books WHERE id BETWEEN \$1 AND \$2 \+ \$3 ORDER BY id/,
	'the server sees the prepared N+1');
my @server_n1 = grep { /^n_plus_one/ } split /\n/, $server;

# wait until the collector wrote the last statement to all three files
N1Test::log_marker($node, 'postgres', 'n1scan end marker');
for my $f ('scan.log', 'scan.csv', 'scan.json')
{
	ok(N1Test::wait_for_log("$logdir/$f", 'n1scan end marker'), "$f written");
}

# run n1scan; returns (exit status, stdout, stderr)
sub scan
{
	my (@args) = @_;
	my ($out, $err) = ('', '');
	my $in = '';
	if (ref $args[0] eq 'SCALAR') { $in = ${ shift @args }; }
	IPC::Run::run([@args], '<', \$in, '>', \$out, '2>', \$err);
	return ($? >> 8, $out, $err, $?);
}

sub rows_of
{
	my ($json) = @_;
	my $rows = eval { decode_json($json) };
	return ('invalid JSON: ' . $@) unless $rows;
	return map { "$_->{kind} | $_->{query} | " . ($_->{parent_query} // '-') } @$rows;
}

my $tmp = PostgreSQL::Test::Utils::tempdir;
my @good = split /\n/, slurp_file("$logdir/scan.log");
sub write_file { my ($path, $data) = @_; open(my $o, '>', $path) or die; binmode $o; print $o $data; close $o; }

my %reports;
for my $f ('scan.log', 'scan.csv', 'scan.json')
{
	my @p = $f eq 'scan.log' ? ("--prefix=$prefix") : ();
	my ($rc, $out, $err, $raw) = scan($asan, @p, '--format=json', "$logdir/$f");
	is($raw & 127, 0, "$f: n1scan did not crash");
	is($rc, 0, "$f: exit status 0 without --fail-on") or diag($err);
	unlike($err, qr/ERROR: AddressSanitizer|runtime error/, "$f: clean under ASan");
	unlike($err, qr/:\d+: /, "$f: every line read (no file:line message)");
	my @rows = rows_of($out);
	my @n1 = sort grep { /^n_plus_one/ } @rows;
	is(join("\n", @n1), join("\n", sort @server_n1), "$f: the same n_plus_one rows as n1_offenders (child and parent)");
	ok(!(grep { /IN \(|ANY\(/ } @rows), "$f: nothing for the fixed pages");
	ok((grep { /^duplicate \| SELECT title FROM books WHERE id = \$1 \| -$/ } @rows), "$f: the duplicate");
	ok(!(grep { /author_id = \$1 ORDER BY id/ } @rows), "$f: nothing for a loop under min_calls");
	ok(!(grep { /SELECT id, name FROM authors/ } @rows), "$f: = \$1, IN (...) and = ANY(...) are three queries");
	ok(!(grep { /WHERE id <= / } @rows), "$f: a portal fetched in pieces is one execution");
	my $rows = decode_json($out);
	my ($lit) = grep { $_->{kind} eq 'n_plus_one' && $_->{parent_query} =~ /AND \$2 ORDER/ } @$rows;
	is_deeply([ sort keys %$lit ], [ sort qw(kind query parent_query queryid parent_queryid fingerprint bursts calls
		max_calls distinct_params total_ms first_seen last_seen application_name source code_line sample_params log_file log_line) ],
		"$f: the JSON keys the README lists");
	is($lit->{calls}, 6, "$f: calls of the literal N+1");
	is($lit->{distinct_params}, 6, "$f: distinct parameters");
	like($lit->{queryid}, qr/^-?[1-9][0-9]*$/, "$f: the logged query_id");
	is($lit->{application_name}, $ENV{PGAPPNAME} // 'psql', "$f: application name");
	my @lines = split /\n/, slurp_file("$logdir/$f");
	like($lines[ $lit->{log_line} - 1 ], qr/SELECT name FROM authors WHERE id = /, "$f: log_line points at the first call");
	my ($prep) = grep { $_->{kind} eq 'n_plus_one' && $_->{parent_query} =~ /\+ \$3/ } @$rows;
	is($prep->{calls}, 18, "$f: calls of the prepared N+1 (3 transactions)");
	like($prep->{sample_params}[0], qr/^\$1 = '\d+'$/, "$f: sample parameters from the DETAIL line");
	# the text report, without file names and lines, is the same for every format
	(undef, my $text) = scan($n1scan, @p, "$logdir/$f");
	$text =~ s/first burst at .*//g;
	$reports{$f} = $text;
}
is($reports{'scan.csv'}, $reports{'scan.log'}, 'csvlog and stderr give the same report');
is($reports{'scan.json'}, $reports{'scan.log'}, 'jsonlog and stderr give the same report');

# unit boundaries n1scan sees in the statements: a new traceparent in the
# comment, a change of application_name (autocommit, one session, no gap)
my $loop = sub {
	my ($tag) = @_;
	return join('', map { "SELECT name FROM authors WHERE id = $_ " . $tag->($_) . ";\n" } 72 .. 77);
};
my $tp = sub { my $t = $_[0] < 75 ? 'a' : 'b'; "/*traceparent='00-" . ($t x 32) . "-" . ('1' x 16) . "-01'*/" };
write_file("$tmp/trace.sql", "SELECT id, author_id FROM books WHERE id BETWEEN 71 AND 76 ORDER BY id;\n" . $loop->($tp));
write_file("$tmp/notrace.sql", "SELECT id, author_id FROM books WHERE id BETWEEN 71 AND 76 ORDER BY id;\n" . $loop->(sub { '' }));
write_file("$tmp/app.sql", "SELECT id, author_id FROM books WHERE id BETWEEN 71 AND 76 ORDER BY id;\n"
	. join('', map { ($_ == 75 ? "SET application_name = 'other';\n" : '') . "SELECT name FROM authors WHERE id = $_;\n" } 72 .. 77));
$node->append_conf('postgresql.conf', "log_filename = 'units.log'\n");
$node->reload;
$node->poll_query_until('postgres', "SELECT current_setting('log_filename') = 'units.log'") or die;
for my $sql ('notrace', 'trace', 'app')
{
	$node->command_ok([ 'psql', '-X', '-q', '-f', "$tmp/$sql.sql", '-d', $connstr ], "$sql unit runs");
}
N1Test::log_marker($node, 'postgres', 'n1scan units marker');
N1Test::wait_for_log("$logdir/units.log", 'n1scan units marker');
my (undef, $units) = scan($asan, "--prefix=$prefix", '--max-gap=600000', '--min-calls=4', '--format=json', "$logdir/units.log");
my @units = grep { /authors WHERE id = \$1/ } rows_of($units);
is(scalar(@units), 1, 'one N+1 in the three sessions: a new traceparent (a unit of its own) and a new application_name end the unit');
like($units[0], qr/^n_plus_one \| SELECT name FROM authors WHERE id = \$1 \| SELECT id, author_id FROM books/, 'the session without either');
is(decode_json($units)->[0]{calls}, 6, 'with its 6 calls');
is(decode_json($units)->[0]{bursts}, 1, 'in one burst');

# bound values not logged (log_parameter_max_length = 0): the prepared loop
# is still an N+1, never a duplicate
$node->append_conf('postgresql.conf', "log_parameter_max_length = 0\nlog_filename = 'noparams.log'\n");
$node->reload;
$node->poll_query_until('postgres', "SELECT current_setting('log_filename') = 'noparams.log'") or die;
$node->command_ok([ 'pgbench', '-n', '-M', 'prepared', '-t', '1', '-f', $script, $connstr ], 'pgbench without logged parameters');
N1Test::log_marker($node, 'postgres', 'n1scan noparams marker');
N1Test::wait_for_log("$logdir/noparams.log", 'n1scan noparams marker');
my (undef, $noparams) = scan($asan, "--prefix=$prefix", '--format=json', "$logdir/noparams.log");
is(join("\n", grep { /authors/ } rows_of($noparams)), 'n_plus_one | SELECT name FROM authors WHERE id = $1 | '
	. 'SELECT id, author_id FROM books WHERE id BETWEEN $1 AND $2 + $3 ORDER BY id',
	'parameters not logged: an N+1, not a duplicate');
$node->append_conf('postgresql.conf', "log_parameter_max_length = -1\n");
$node->reload;

# log_min_duration_statement alone (log_statement = none; the test cluster's
# default is all, used above): each execute line is logged once it ran, with
# its duration and its bound values (DETAIL "parameters:" up to 17,
# "Parameters:" from 18), in every format: the prepared loop over distinct
# values is an N+1 with its values, the same value six times a duplicate
my $dup_script = $node->basedir . '/duplicate.sql';
write_file($dup_script, "\\set a 9\nBEGIN;\n" . ("SELECT author_id FROM books WHERE id = :a;\n" x 6) . "COMMIT;\n");
$node->append_conf('postgresql.conf', "log_statement = none\nlog_filename = 'durations.log'\n");
$node->reload;
$node->poll_query_until('postgres', "SELECT current_setting('log_filename') = 'durations.log'") or die;
$node->command_ok([ 'pgbench', '-n', '-M', 'prepared', '-t', '1', '-f', $script, $connstr ], 'pgbench N+1, durations only');
$node->command_ok([ 'pgbench', '-n', '-M', 'prepared', '-t', '1', '-f', $dup_script, $connstr ], 'pgbench duplicate, durations only');
is(fetch_in_pieces($node), 6, 'a portal fetched a row at a time, durations only');
N1Test::log_marker($node, 'postgres', 'n1scan durations marker');
for my $f ('durations.log', 'durations.csv', 'durations.json')
{
	N1Test::wait_for_log("$logdir/$f", 'n1scan durations marker');
	my @p = $f =~ /\.log$/ ? ("--prefix=$prefix") : ();
	my ($rc, $out, $err) = scan($asan, @p, '--format=json', "$logdir/$f");
	is($rc, 0, "$f: exit 0") or diag($err);
	like(slurp_file("$logdir/$f"), qr/duration: [0-9.]+ ms  execute [^:]+: SELECT name FROM authors/, "$f: the execute lines carry their duration");
	like(slurp_file("$logdir/$f"), qr/duration: [0-9.]+ ms  execute fetch from <unnamed>: SELECT id, title FROM books WHERE id <= /, "$f: and the fetches theirs");
	is(join("\n", grep { /authors|author_id FROM books WHERE id = / } rows_of($out)),
		"n_plus_one | SELECT name FROM authors WHERE id = \$1 | SELECT id, author_id FROM books WHERE id BETWEEN \$1 AND \$2 + \$3 ORDER BY id\n"
		. 'duplicate | SELECT author_id FROM books WHERE id = $1 | -',
		"$f: the prepared N+1 and the prepared duplicate");
	ok(!(grep { /WHERE id <= / } rows_of($out)), "$f: a portal fetched in pieces is one execution");
	my ($n1) = grep { $_->{kind} eq 'n_plus_one' } @{ decode_json($out) };
	like($n1->{sample_params}[0], qr/^\$1 = '\d+'$/, "$f: sample parameters of the execute line");
	is($n1->{distinct_params}, 6, "$f: six distinct values");
}
$node->append_conf('postgresql.conf', "log_statement = all\n");
$node->reload;

# --follow: a growing file is read until SIGTERM, then reported (what was
# written before the signal is read first)
write_file("$tmp/follow.log", '');
my ($fout, $ferr) = ('', '');
my $h = IPC::Run::start([ $asan, "--prefix=$prefix", '--follow', '--format=json', "$tmp/follow.log" ],
	'<', \undef, '>', \$fout, '2>', \$ferr);
my $fpid = $h->{KIDS}[0]{PID};
my $opened = 0;
for (1 .. 3000)
{
	$opened = grep { (readlink($_) // '') =~ /follow\.log$/ } glob("/proc/$fpid/fd/*");
	last if $opened;
	select(undef, undef, undef, 0.01);
}
ok($opened, '--follow: the file is open');
open(my $fa, '>>', "$tmp/follow.log") or die;
print $fa "$_\n" for @good;
close $fa;
$h->signal('TERM');
$h->finish;
is($h->result(0), 0, '--follow: exit 0 after SIGTERM') or diag($ferr);
is(join("\n", sort grep { /^n_plus_one/ } rows_of($fout)), join("\n", sort @server_n1), '--follow: the N+1s appended to the file');

# --fail-on
my ($rc) = scan($n1scan, '--quiet', '--fail-on=n_plus_one', "$logdir/scan.csv");
is($rc, 1, '--fail-on=n_plus_one: exit 1 when an N+1 is found');
($rc) = scan($n1scan, '--quiet', '--fail-on=loop', "$logdir/scan.csv");
is($rc, 0, '--fail-on=loop: exit 0 when no loop is found');
($rc, undef, my $err) = scan($n1scan, '--fail-on=bogus', "$logdir/scan.csv");
is($rc, 2, 'an unknown kind is a usage error');
like($err, qr/unknown kind "bogus"/, 'and says so');

# gzip and standard input
copy("$logdir/scan.csv", "$tmp/scan.csv") or die;
system('gzip', '-k', "$tmp/scan.csv") == 0 or die;
(undef, my $gz) = scan($n1scan, '--format=json', "$tmp/scan.csv.gz");
is(join("\n", sort grep { /^n_plus_one/ } rows_of($gz)), join("\n", sort @server_n1), 'gzip input');
my $csv = slurp_file("$logdir/scan.csv");
(undef, my $stdin) = scan(\$csv, $n1scan, '--format=json');
is(join("\n", sort grep { /^n_plus_one/ } rows_of($stdin)), join("\n", sort @server_n1), 'standard input');

# the providers' prefixes, detected without --prefix
my %providers = (debian => '%m [%p] %q%u@%d ', rds => '%t:%r:%u@%d:[%p]:', azure => '%t-%c-',
	cloudsql => '%m [%p]: [%l-1] db=%d,user=%u ');
for my $name (sort keys %providers)
{
	$node->append_conf('postgresql.conf', "log_line_prefix = '$providers{$name}'\nlog_filename = '$name.log'\n");
	$node->reload;
	$node->poll_query_until('postgres', "SELECT current_setting('log_line_prefix') = '$providers{$name}'")
	  or die;
	$node->safe_psql('postgres', N1Test::n_plus_one_sql(list_size => 6, first_id => 41));
	N1Test::log_marker($node, 'postgres', "n1scan $name marker");
	N1Test::wait_for_log("$logdir/$name.log", "n1scan $name marker");
	my ($rc, $out, $err) = scan($asan, '--format=json', "$logdir/$name.log");
	is($rc, 0, "$name prefix: exit 0") or diag($err);
	my @n1 = grep { /^n_plus_one/ } rows_of($out);
	is(join("\n", @n1), 'n_plus_one | SELECT name FROM authors WHERE id = $1 | '
		. 'SELECT id, author_id FROM books WHERE id BETWEEN $1 AND $2 ORDER BY id',
		"$name prefix '$providers{$name}' detected, the N+1 found");
	next unless $name eq 'cloudsql';
	# Cloud SQL's export: Cloud Logging entries, one JSON object a line, the
	# log line in textPayload
	open(my $o, '>', "$tmp/cloudsql.json") or die;
	print $o encode_json({ insertId => "i$_", logName => 'projects/p/logs/cloudsql.googleapis.com%2Fpostgres.log',
		resource => { type => 'cloudsql_database', labels => { database_id => 'p:db', region => 'x' } },
		severity => 'INFO', textPayload => $_, timestamp => '2026-12-06T02:00:00.123456Z' }) . "\n"
	  for split /\n/, slurp_file("$logdir/$name.log");
	close $o;
	($rc, $out, $err) = scan($asan, '--format=json', "$tmp/cloudsql.json");
	is($rc, 0, "Cloud SQL export: exit 0") or diag($err);
	is(join("\n", grep { /^n_plus_one/ } rows_of($out)), 'n_plus_one | SELECT name FROM authors WHERE id = $1 | '
		. 'SELECT id, author_id FROM books WHERE id BETWEEN $1 AND $2 ORDER BY id', 'Cloud SQL export: the N+1 found');
}

# broken input

# truncated lines: every statement line cut in half in the first half of the file, the file cut mid-line
my $cut = join("\n", map { $_ < @good / 2 && $good[$_] =~ /statement: / ? substr($good[$_], 0, length($good[$_]) / 2) : $good[$_] } 0 .. $#good);
$cut = substr($cut, 0, length($cut) - 17);
write_file("$tmp/cut.log", $cut);
my ($rc2, $out2, $err2, $raw2) = scan($asan, "--prefix=$prefix", "$tmp/cut.log");
is($raw2 & 127, 0, 'truncated lines: no crash');
ok($rc2 == 0 || $rc2 == 1, 'truncated lines: a report') or diag($err2);
unlike($err2, qr/AddressSanitizer|runtime error/, 'truncated lines: clean under ASan');

# binary junk in the middle of a log: messages with file:line, the N+1s after it still found
my $junk = join('', map { chr(int(rand(256))) } 1 .. 200_000);
write_file("$tmp/junk.log", join("\n", @good[0 .. 9]) . "\n$junk\n" . join("\n", @good[10 .. $#good]) . "\n");
my ($rc3, $out3, $err3, $raw3) = scan($asan, "--prefix=$prefix", '--format=json', "$tmp/junk.log");
is($raw3 & 127, 0, 'binary junk: no crash');
is($rc3, 0, 'binary junk: exit 0') or diag($err3);
like($err3, qr{junk\.log:1[1-9]\d*: line does not match the log_line_prefix}, 'binary junk: file:line of an unreadable line');
is(join("\n", sort grep { /^n_plus_one/ } rows_of($out3)), join("\n", sort @server_n1), 'binary junk: the N+1s still found');
unlike($err3, qr/AddressSanitizer|runtime error/, 'binary junk: clean under ASan');

# a 10 MB statement, run by the real server, then an N+1
$node->append_conf('postgresql.conf', "log_line_prefix = '$prefix'\nlog_filename = 'big.log'\n");
$node->reload;
$node->poll_query_until('postgres', "SELECT current_setting('log_line_prefix') = '$prefix'") or die;
$node->safe_psql('postgres', "SELECT length('" . ('x' x (10 * 1024 * 1024)) . "') /* 10 MB */");
$node->safe_psql('postgres', N1Test::n_plus_one_sql(list_size => 6, first_id => 51));
N1Test::log_marker($node, 'postgres', 'n1scan big marker');
N1Test::wait_for_log("$logdir/big.log", 'n1scan big marker');
ok(-s "$logdir/big.log" > 10 * 1024 * 1024, 'the server logged the 10 MB statement');
my ($rc4, $out4, $err4, $raw4) = scan($asan, "--prefix=$prefix", '--format=json', "$logdir/big.log");
is($raw4 & 127, 0, '10 MB statement: no crash');
is($rc4, 0, '10 MB statement: exit 0') or diag($err4);
is(scalar(grep { /^n_plus_one \| SELECT name FROM authors/ } rows_of($out4)), 1, '10 MB statement: the N+1 after it found');
my $line_full = decode_json($out4)->[0]{log_line};
unlike($err4, qr/AddressSanitizer|runtime error/, '10 MB statement: clean under ASan');
# and with an entry limit below its size: a message with file:line, carrying on
($rc4, $out4, $err4, $raw4) = scan($asan, "--prefix=$prefix", '--max-entry=1000000', '--format=json', "$logdir/big.log");
is($raw4 & 127, 0, '10 MB statement over --max-entry: no crash');
like($err4, qr{big\.log:\d+: (line|entry) longer than}, '10 MB statement over --max-entry: file:line');
is(scalar(grep { /^n_plus_one \| SELECT name FROM authors/ } rows_of($out4)), 1, '10 MB statement over --max-entry: the N+1 after it found');
is(decode_json($out4)->[0]{log_line}, $line_full, '10 MB statement over --max-entry: line numbers after it unchanged');

# an unknown prefix: a clear message, exit 2, no crash
write_file("$tmp/unknown.log", join('', map { "<<$_>> something LOG:  duration: 0.1 ms  statement: SELECT 1\n" } 1 .. 50));
my ($rc5, $out5, $err5, $raw5) = scan($asan, "$tmp/unknown.log");
is($raw5 & 127, 0, 'unknown prefix: no crash');
is($rc5, 2, 'unknown prefix: exit 2');
like($err5, qr/unknown\.log:1: line does not match any known log_line_prefix \(give it with --prefix\)/, 'unknown prefix: file:line and what to do');
like($err5, qr/cannot recognise the log_line_prefix/, 'unknown prefix: says it once for the file');
unlike($err5, qr/AddressSanitizer|runtime error/, 'unknown prefix: clean under ASan');
# a statement libpg_query (PostgreSQL 15's grammar) cannot parse, such as
# PostgreSQL 16's IS JSON: keyed by its text, still detected, and counted
my $t0 = '2026-12-06 03:00:00.';
write_file("$tmp/newsyntax.log", join('',
	"${t0}100 UTC [42] [6b14c000.2a] app 0 LOG:  duration: 0.100 ms  statement: SELECT id, doc FROM docs ORDER BY id LIMIT 6\n",
	map({ "${t0}1" . (10 + $_) . " UTC [42] [6b14c000.2a] app 0 LOG:  duration: 0.050 ms  statement: SELECT doc IS JSON OBJECT FROM docs WHERE id = $_\n" } 1 .. 6),
	"${t0}200 UTC [42] [6b14c000.2a] app 0 LOG:  disconnection: session time: 0:00:00.100 user=a database=b host=[local]\n"));
my ($rc7, $out7, $err7) = scan($asan, "--prefix=$prefix", '--format=json', "$tmp/newsyntax.log");
is(join("\n", rows_of($out7)), 'n_plus_one | select doc is json object from docs where id = ? | SELECT id, doc FROM docs ORDER BY id LIMIT $1',
	'newer syntax: keyed by its normalized text, the N+1 found');
like($err7, qr/, 1 not parseable \(keyed by their text\)/, 'newer syntax: counted');

# a missing file
my ($rc6, undef, $err6) = scan($asan, "$tmp/missing.log");
is($rc6, 2, 'missing file: exit 2');
like($err6, qr/could not open ".*missing\.log": No such file/, 'missing file: says so');

N1Test::server_survived($node, $pid, 'n1scan workloads');
done_testing();
