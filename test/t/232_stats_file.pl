# pg_stat/n1detect.stat, the file n1_offenders is saved to at shutdown:
# a damaged file (garbage entries behind a valid header, a truncated file,
# a field out of range behind a valid checksum) is rejected whole with a
# clear LOG line, n1_offenders works for everyone, and the garbage is never
# saved again; nothing is saved after an immediate shutdown.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use N1Test;

my $node = N1Test::new_node('stats_file');
N1Test::create_schema($node);
my $file = $node->data_dir . '/pg_stat/n1detect.stat';

# CRC-32C (Castagnoli, reflected), as PostgreSQL's pg_crc32c.
my @crc_table = map {
	my $c = $_;
	$c = ($c & 1) ? (($c >> 1) ^ 0x82F63B78) : ($c >> 1) for 1 .. 8;
	$c
} 0 .. 255;

sub crc32c
{
	my ($data) = @_;
	my $crc = 0xFFFFFFFF;
	$crc = $crc_table[($crc ^ $_) & 0xFF] ^ ($crc >> 8) for unpack('C*', $data);
	return $crc ^ 0xFFFFFFFF;
}

sub slurp_bin
{
	open(my $fh, '<:raw', $file) or die "$file: $!";
	local $/;
	my $data = <$fh>;
	close $fh;
	return $data;
}

sub write_bin
{
	my ($data) = @_;
	open(my $fh, '>:raw', $file) or die "$file: $!";
	print $fh $data;
	close $fh;
	return;
}

# Saves two offenders with a clean stop and returns the file's bytes.
sub saved_file
{
	$node->start unless $node->{_pid};
	$node->safe_psql('postgres', 'SELECT n1_reset()');
	$node->safe_psql('postgres', N1Test::n_plus_one_sql(list_size => 6));
	$node->safe_psql('postgres', q{BEGIN; SELECT id FROM books WHERE id = 1;
		SELECT id FROM books WHERE id = 1; SELECT id FROM books WHERE id = 1;
		SELECT id FROM books WHERE id = 1; SELECT id FROM books WHERE id = 1; COMMIT;});
	is($node->safe_psql('postgres', 'SELECT count(*) FROM n1_offenders'), '2', 'two offenders before the stop');
	$node->stop;
	ok(-e $file, 'a clean stop saves the file');
	return slurp_bin();
}

# Starts with the damaged file in place; checks the views work and say nothing of it.
sub check_rejected
{
	my ($what, $reason) = @_;
	my $offset = -s $node->logfile;
	$node->start;
	my ($ret, $out, $err) = $node->psql('postgres',
		'SELECT count(*) FROM n1_offenders; SELECT count(*) FROM n1_bursts; SELECT offenders FROM n1_info');
	is($ret, 0, "$what: the views work") or diag($err);
	is($out, "0\n0\n0", "$what: nothing of the file is loaded");
	my $log = substr(PostgreSQL::Test::Utils::slurp_file($node->logfile), $offset);
	like($log, qr/LOG:  ignoring n1detect file "pg_stat\/n1detect.stat": $reason/, "$what: the log says why");
	unlike($log, qr/: Success/, "$what: no misleading errno in the log");
	# nothing of it is saved again
	$node->stop;
	ok(!-e $file || -s $file < 200, "$what: the garbage is not saved again");
	return;
}

my $good = saved_file();
my ($entry_size, $count) = unpack('x12 L q', $good);
is($count, 2, 'the file holds two entries');

# 1. A valid header, garbage entries (fixed pseudo-random bytes).
srand(42);
my $garbage = join('', map { chr(int(rand(256))) } 1 .. 2 * $entry_size);
my $header_size = length($good) - 2 * $entry_size - 4;
write_bin(substr($good, 0, $header_size) . $garbage . substr($good, -4));
check_rejected('garbage entries', qr/(its checksum does not match|entry 1: )/);

# 2. Truncated in the middle of an entry.
$good = saved_file();
write_bin(substr($good, 0, $header_size + int($entry_size / 2)));
check_rejected('a truncated file', qr/it is truncated/);

# 3. A field out of range behind a valid checksum: each field is checked.
# Offsets in an entry (x86-64): kind at 24, first_seen at 80.
for my $case ([ 'an unknown kind', 24, pack('l', 99), qr/entry 1: unknown kind/ ],
	[ 'a timestamp out of range', 80, pack('q', 9223372036854775000), qr/entry 1: timestamp out of range/ ])
{
	my ($what, $offset, $bytes, $reason) = @{$case};
	$good = saved_file();
	my $body = substr($good, 0, -4);
	substr($body, $header_size + $offset, length($bytes)) = $bytes;
	write_bin($body . pack('L', crc32c($body)));
	check_rejected($what, $reason);
}

# 4. An intact file loads (the checksum written is the one computed here).
$good = saved_file();
my $body = substr($good, 0, -4);
is(unpack('L', substr($good, -4)), crc32c($body), 'the file ends with the CRC-32C of its contents');
$node->start;
is($node->safe_psql('postgres', 'SELECT count(*) FROM n1_offenders'), '2', 'an intact file is loaded');

# 5. No save after an immediate shutdown: what shared memory held then may
# be half-written by backends killed in the middle of an update.
$node->stop('immediate');
ok(!-e $file, 'an immediate shutdown saves nothing');
$node->start;
is($node->safe_psql('postgres', 'SELECT count(*) FROM n1_offenders'), '0',
	'and the next start begins empty');
ok($node->log_contains('n1detect did not save n1_offenders: the server did not shut down cleanly'),
	'the log says why');

$node->stop;
done_testing();
