# Statements of one query id whose leading comments differ in length (Rails
# query log tags or sqlcommenter prepended, with a controller or trace id
# per request): where the literal constants start is counted after the
# leading comment, so the constants of every call are hashed and read as
# values whatever the comment's length.  The first text of the query seen
# in the backend has a long comment; the loop's have short ones: the loop's
# values must still prove its parent.  Before the fix, the cached offset
# could also point past the end of a shorter text, and the value scan read
# the leftover bytes of an earlier message there; these checks do not make
# that read visible (two of them passed before the fix), the duplicate case
# and the short-then-long case failed.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use N1Test;

my $node = N1Test::new_node('leading_comments');
my $postmaster = N1Test::postmaster_pid($node);
N1Test::create_schema($node);

my $long = "/*application:Library,controller:authors,action:index,line:/app/controllers/authors_controller.rb:12:in `index'*/";
my @short = map { "/*controller:a$_*/" } 2 .. 7;

sub loop_unit
{
	my ($first, @comments) = @_;
	my $sql = "SELECT n1_reset();\n$first SELECT name FROM authors WHERE id = 1;\n"
	  . "BEGIN; COMMIT;\n"    # (ends the unit: the loop's unit begins with the list)
	  . "BEGIN;\nSELECT id, author_id FROM books WHERE id <= 6 ORDER BY id;\n";
	my $id = 2;
	$sql .= "$_ SELECT name FROM authors WHERE id = " . $id++ . ";\n" for @comments;
	$sql .= "COMMIT;\nSELECT kind, calls, distinct_params, parent_evidence FROM n1_bursts;\n";
	return $node->safe_psql('postgres', $sql);
}

like(loop_unit($long, @short), qr/^n_plus_one\|6\|6\|values$/m,
	'short leading comments after a long one: six values, the parent proven by them');
like(loop_unit('/*x*/', map { $long } 1 .. 6), qr/^n_plus_one\|6\|6\|values$/m,
	'long leading comments after a short one: the same');
like(loop_unit('', @short), qr/^n_plus_one\|6\|6\|values$/m,
	'leading comments after none: the same');
# a duplicate: the same key, comments of every length
my $sql = "SELECT n1_reset();\nBEGIN;\n";
$sql .= "/*" . ('c' x (3 * $_)) . "*/ SELECT name FROM authors WHERE id = 9;\n" for 1 .. 6;
$sql .= "COMMIT;\nSELECT kind, calls, distinct_params FROM n1_bursts;\n";
like($node->safe_psql('postgres', $sql), qr/^duplicate\|6\|1$/m,
	'the same key behind leading comments of six lengths: a duplicate');

N1Test::server_survived($node, $postmaster, 'after statements with leading comments');
$node->stop;
done_testing();
