# N1Test: shared set-up for n1detect's TAP tests.
#
#   my $node = N1Test::new_node('primary');       # n1detect preloaded, started
#   N1Test::create_schema($node);                 # authors / books / reviews
#   $node->safe_psql('postgres', N1Test::n_plus_one_sql(list_size => 6));
#
# Servers run as the invoking user (tools/test runs TAP as `postgres`).
package N1Test;

use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;

# A node with n1detect preloaded (unless preload => 0), started.
sub new_node
{
	my ($name, %opts) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(allows_streaming => $opts{allows_streaming} ? 1 : 0);
	my $conf = "compute_query_id = on\n";
	$conf .= "shared_preload_libraries = 'n1detect'\n" unless defined $opts{preload} && !$opts{preload};
	$conf .= $opts{conf} if $opts{conf};
	$node->append_conf('postgresql.conf', $conf);
	$node->start;
	return $node;
}

sub create_schema
{
	my ($node, $db) = @_;
	$db //= 'postgres';
	$node->safe_psql($db, q{
		CREATE EXTENSION IF NOT EXISTS n1detect;
		CREATE TABLE authors (id int PRIMARY KEY, name text);
		CREATE TABLE books (id int PRIMARY KEY, author_id int REFERENCES authors, title text);
		INSERT INTO authors SELECT g, 'author ' || g FROM generate_series(1, 100) g;
		INSERT INTO books SELECT g, (g % 100) + 1, 'book ' || g FROM generate_series(1, 1000) g;
		ANALYZE;
	});
	return;
}

# One unit of work with an N+1: a list of list_size books, then the author of
# each book, one query per row (literal SQL), in a transaction block.
sub n_plus_one_sql
{
	my (%opts) = @_;
	my $n = $opts{list_size} // 6;
	my $first = $opts{first_id} // 1;
	my $last = $first + $n - 1;
	my $sql = "BEGIN;\nSELECT id, author_id FROM books WHERE id BETWEEN $first AND $last ORDER BY id;\n";
	for my $id ($first .. $last)
	{
		my $author = ($id % 100) + 1;
		$sql .= "SELECT name FROM authors WHERE id = $author;\n";
	}
	return $sql . "COMMIT;\n";
}


# An unprivileged login role (no superuser, no createrole, default grants
# only), for tests that act as an ordinary user: adversarial suites run as it.
sub create_plain_role
{
	my ($node, $role) = @_;
	$role //= 'plain';
	$node->safe_psql('postgres', qq{
		DO \$\$BEGIN
			IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$role') THEN
				CREATE ROLE $role LOGIN;
			END IF;
		END\$\$;
		GRANT CREATE ON SCHEMA public TO $role;
	});
	return $role;
}

# The postmaster's pid now (from postmaster.pid).
sub postmaster_pid
{
	my ($node) = @_;
	open(my $fh, '<', $node->data_dir . '/postmaster.pid') or die "no postmaster.pid: $!";
	my $pid = <$fh>;
	close $fh;
	chomp $pid;
	return $pid;
}

# Asserts that the server never crashed since $pid was read: same postmaster,
# no child "terminated by signal" nor "terminated by exception" in the log,
# no PANIC, and it still answers.  Adversarial tests call it after each group.
sub server_survived
{
	my ($node, $pid, $what) = @_;
	my $log = PostgreSQL::Test::Utils::slurp_file($node->logfile);
	my @bad = grep { /terminated by signal|terminated by exception|PANIC:|exited with exit code [^01]|double free|corrupted/ }
	  split /\n/, $log;
	Test::More::is(join("\n", @bad), '', "$what: no backend died (server log)");
	Test::More::is(postmaster_pid($node), $pid, "$what: same postmaster, no restart");
	Test::More::is($node->safe_psql('postgres', 'SELECT 1'), '1', "$what: server answers");
	return;
}

# ---- n1scan tests: the server's own logs as input ----

# Logging settings for an n1scan test: every statement with its duration
# and parameters, to the destinations given (e.g. 'stderr,csvlog'), in
# log/NAME.log, .csv, .json, with the log_line_prefix given, disconnections
# logged; extra settings appended.
sub n1scan_log_conf
{
	my (%o) = @_;
	return "log_min_duration_statement = 0\n"
	  . "logging_collector = on\n"
	  . "log_destination = '$o{destinations}'\n"
	  . "log_directory = 'log'\n"
	  . "log_filename = '$o{name}.log'\n"
	  . "log_rotation_size = 0\n"
	  . "log_line_prefix = '$o{prefix}'\n"
	  . "log_disconnections = on\n"
	  . ($o{extra} // '');
}

# n1scan as installed beside the server programs, and the same built under
# ASan and UBSan in the source tree when there is one (else n1scan again),
# with the sanitizers set to fail the run: ($n1scan, $asan).
sub n1scan_programs
{
	my ($node) = @_;
	my $n1scan = $node->config_data('--bindir') . '/n1scan';
	$ENV{ASAN_OPTIONS} = 'exitcode=99:detect_leaks=1';
	$ENV{UBSAN_OPTIONS} = 'halt_on_error=1:exitcode=99';
	return ($n1scan, -x 'src/scan/n1scan-asan' ? 'src/scan/n1scan-asan' : $n1scan);
}

# Logs a statement holding the text MARKER, for wait_for_log.
sub log_marker
{
	my ($node, $db, $marker) = @_;
	$node->safe_psql($db, "SELECT '$marker'");
	return;
}

# Waits (up to 30 s) until the log collector has written the statement of
# log_marker(MARKER) to the file PATH, so that all that was logged before is
# there too; false if it never came.
sub wait_for_log
{
	my ($path, $marker) = @_;
	for (1 .. 300)
	{
		return 1 if -f $path && PostgreSQL::Test::Utils::slurp_file($path) =~ /'\Q$marker\E'/;
		select(undef, undef, undef, 0.1);
	}
	return 0;
}

1;
