# Smoke variant of bench/realapp: HyperKitty (Debian's python3-django-hyperkitty)
# on a small seeded archive, five of its pages driven with Django's test
# client, the truth adjudicated from the application's call stacks, and
# n1detect's rows scored against it.  Asserts that the harness finds the real
# N+1s of those pages (with their parents) and that n1detect reports every one
# of them that runs 5 times or more, with no false row.  A unit of work is
# given 1 s of idle time (max_gap) so that a busy machine's scheduling pauses
# cannot split a page: the pause between pages grows to match.
use strict;
use warnings;
use File::Basename qw(dirname);
use File::Spec;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use N1Test;

my $py = $ENV{N1_PYTHON} // '/usr/bin/python3';
my $bench = File::Spec->rel2abs(File::Spec->catdir(dirname(__FILE__), '..', '..', 'bench', 'realapp'));
plan skip_all => 'python3-django-hyperkitty and python3-django-debug-toolbar are not installed (tools/install-deps)'
	unless system($py, '-c', 'import hyperkitty, debug_toolbar, whoosh') == 0;

my $node = N1Test::new_node('realapp');
my $pid = N1Test::postmaster_pid($node);
$node->safe_psql('postgres', 'CREATE ROLE hyperkitty LOGIN');
$node->safe_psql('postgres', 'CREATE DATABASE hk OWNER hyperkitty');
$node->safe_psql('hk', 'CREATE EXTENSION n1detect');

my $work = "$PostgreSQL::Test::Utils::tmp_check/realapp";
mkdir $work;
my %env = (
	RA_PGHOST => $node->host, RA_PGPORT => $node->port, RA_DB => 'hk',
	RA_PGUSER => 'hyperkitty', RA_WORK => $work, RA_SCALE => '0.05',
	RA_PGOPTIONS => '-c n1detect.max_gap=1s', RA_PAUSE_MS => '1300',
	RA_ADMIN_DSN => 'host=' . $node->host . ' port=' . $node->port . ' dbname=hk',
	# index, latest archives, longest thread (anonymous, logged in), threads API
	RA_PAGES => '0,13,17,18,40',
	DJANGO_SETTINGS_MODULE => 'hkproject.settings', PYTHONPATH => $bench,
	PYTHONDONTWRITEBYTECODE => '1');

sub run_py
{
	my ($what, @cmd) = @_;
	my ($out, $err) = ('', '');
	my $ok;
	{
		local %ENV = (%ENV, %env);
		$ok = IPC::Run::run([ $py, @cmd ], '<', \undef, '>', \$out, '2>', \$err,
			IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	}
	ok($ok, $what) or diag($err);
	return $out;
}

run_py('migrate', '-m', 'django', 'migrate', '-v0');
like(run_py('seed the archive', "$bench/seed.py"), qr/^seed: 4 lists, \d+ threads, \d+ emails/m, 'archive seeded');
run_py('drive the pages', "$bench/drive.py", "$work/trace.json");
my $summary = decode_json(run_py('adjudicate', "$bench/adjudicate.py", '--json', "smoke=$work/trace.json"));

is_deeply([ map { $_->{status} } @{ $summary->{pages} } ], [ (200) x 5 ], 'every page answered 200');

# the truth: the per-email vote lookup of a thread page, driven by the
# thread's email list (views/thread.py, _get_thread_replies)
my ($thread) = grep { $_->{name} eq 'thread: longest' } @{ $summary->{pages} };
my ($votes) = grep { $_->{query} =~ /^SELECT "hyperkitty_vote"\."value" FROM "hyperkitty_vote" WHERE "hyperkitty_vote"\."email_id" = \?$/ }
	@{ $thread->{truth} };
ok($votes, 'truth: the votes of each email of a thread are an N+1');
is($votes->{kind}, 'n_plus_one', 'truth: ... with a parent');
like($votes->{parent} // '', qr/^SELECT "hyperkitty_email"\."id", .* FROM "hyperkitty_email" .*ORDER BY/,
	'truth: ... the thread\'s email list');
cmp_ok($summary->{total}{truth5}, '>=', 5, 'truth: at least 5 N+1 patterns of N >= 5 on these pages');

# n1detect against it
my $t = $summary->{total};
is($t->{found5}, $t->{truth5}, 'n1detect reports every N+1 run 5 times or more');
is($t->{fp_n_plus_one} + $t->{fp_loop}, 0, 'n1detect reports no false n_plus_one or loop row');
is($t->{tb_found5}, $t->{truth5}, 'django-debug-toolbar groups every one of them as similar');

N1Test::server_survived($node, $pid, 'after the pages');
done_testing();
