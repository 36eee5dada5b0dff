# ALTER EXTENSION n1detect UPDATE from 1.0 to 1.1 (as pg_cron tests its
# upgrades): the SQL objects of 1.0 keep working with the new library; after
# the update the extension equals a fresh 1.1 install (same members, same
# definitions, privileges and dependencies, compared across two databases);
# objects users built on the views keep working.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use N1Test;

my $node = N1Test::new_node('upgrade');
my $postmaster = N1Test::postmaster_pid($node);
$node->safe_psql('postgres', 'CREATE DATABASE upgraded; CREATE DATABASE fresh');

# ---- 1.0, with objects that depend on it ----
$node->safe_psql('upgraded', q{CREATE EXTENSION n1detect VERSION '1.0'});
N1Test::create_schema($node, 'upgraded');
is($node->safe_psql('upgraded', q{SELECT extversion FROM pg_extension WHERE extname = 'n1detect'}),
	'1.0', 'version 1.0 installed');
$node->safe_psql('upgraded', q{
	CREATE VIEW my_offenders AS SELECT kind, query, calls FROM n1_offenders;
	CREATE FUNCTION my_dealloc() RETURNS bigint LANGUAGE sql AS $$SELECT dealloc FROM n1_info$$;
	CREATE FUNCTION my_bursts_total() RETURNS bigint LANGUAGE sql
		BEGIN ATOMIC SELECT bursts_total FROM n1_info; END;
	CREATE ROLE watcher;
	GRANT SELECT ON my_offenders TO watcher;
});
$node->safe_psql('upgraded', N1Test::n_plus_one_sql(list_size => 6));

# The 1.0 objects work with the new library.
is($node->safe_psql('upgraded', 'SELECT kind, calls FROM n1_offenders'), 'n_plus_one|6',
	'1.0: n1_offenders works with the new library');
is($node->safe_psql('upgraded', 'SELECT kind, calls FROM n1_bursts'), 'n_plus_one|6',
	'1.0: n1_bursts works');
is($node->safe_psql('upgraded', 'SELECT count(*) >= 0 FROM n1_backend_statements'), 't',
	'1.0: n1_backend_statements works');
is($node->safe_psql('upgraded', 'SELECT offenders, bursts_total FROM n1_info'), '1|1',
	'1.0: n1_info works (5 columns)');
is($node->safe_psql('upgraded', q{SELECT count(*) FROM pg_attribute
	WHERE attrelid = 'n1_info'::regclass AND attnum > 0}), '5', '1.0: n1_info has its 5 columns');
is($node->safe_psql('upgraded', 'SELECT kind, calls FROM my_offenders'), 'n_plus_one|6',
	'1.0: a view over n1_offenders works');
is($node->safe_psql('upgraded', 'SELECT my_dealloc(), my_bursts_total()'), '0|1',
	'1.0: functions over n1_info work');

# ---- update ----
$node->safe_psql('upgraded', 'ALTER EXTENSION n1detect UPDATE');
is($node->safe_psql('upgraded', q{SELECT extversion FROM pg_extension WHERE extname = 'n1detect'}),
	'1.1', 'updated to 1.1');
$node->safe_psql('fresh', 'CREATE EXTENSION n1detect');
is($node->safe_psql('fresh', q{SELECT extversion FROM pg_extension WHERE extname = 'n1detect'}),
	'1.1', 'a fresh install is 1.1');

# ---- the updated extension equals the fresh one ----
my $members = q{
	SELECT classid, objid, objsubid FROM pg_depend
	WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
	  AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'n1detect')};
my %compare = (
	'member objects' => qq{SELECT pg_describe_object(classid, objid, objsubid) FROM ($members) m ORDER BY 1},
	'function definitions and privileges' => qq{
		SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid), p.proacl::text,
		       pg_get_function_result(p.oid)
		FROM pg_proc p JOIN ($members) m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid
		ORDER BY 1},
	'view definitions, columns and privileges' => qq{
		SELECT c.relname, pg_get_viewdef(c.oid), c.relacl::text,
		       (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum)
		        FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0)
		FROM pg_class c JOIN ($members) m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid
		ORDER BY 1},
	'dependencies of the members and of their views\' rules' => qq{
		WITH objs AS (
			SELECT classid, objid FROM ($members) m
			UNION
			SELECT 'pg_rewrite'::regclass, r.oid FROM pg_rewrite r
			JOIN ($members) m ON m.classid = 'pg_class'::regclass AND m.objid = r.ev_class)
		SELECT pg_describe_object(d.classid, d.objid, d.objsubid) || ' -> ' ||
		       pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid) || ' (' || d.deptype::text || ')'
		FROM pg_depend d JOIN objs o ON o.classid = d.classid AND o.objid = d.objid
		WHERE d.deptype <> 'e'
		ORDER BY 1},
	'\dx+' => '\dx+ n1detect',
);
for my $what (sort keys %compare)
{
	my $updated = $node->safe_psql('upgraded', $compare{$what});
	my $fresh = $node->safe_psql('fresh', $compare{$what});
	isnt($fresh, '', "$what: not empty");
	is($updated, $fresh, "$what: the update equals a fresh install");
}

# ---- 1.1 works, and so do the objects built on 1.0 ----
is($node->safe_psql('upgraded', 'SELECT kind, calls FROM my_offenders'), 'n_plus_one|6',
	'after the update: the view over n1_offenders works');
is($node->safe_psql('upgraded', 'SET ROLE watcher; SELECT count(*) FROM my_offenders'), '1',
	'and keeps its privileges');
is($node->safe_psql('upgraded', 'SELECT my_dealloc(), my_bursts_total()'), '0|1',
	'the functions over n1_info work');
is($node->safe_psql('upgraded', 'SELECT offenders, units > 0, bursts_dropped, slots_skipped FROM n1_info'),
	'1|t|0|0', 'n1_info has the 1.1 columns');
is($node->safe_psql('fresh', 'SELECT offenders, units > 0 FROM n1_info'), '1|t',
	'a fresh install reads the same shared state');

# Back to the 1.0 objects in a third database: they still work after 1.1 exists.
$node->safe_psql('postgres', q{CREATE EXTENSION n1detect VERSION '1.0'});
is($node->safe_psql('postgres', 'SELECT offenders FROM n1_info'), '1', '1.0 and 1.1 side by side');

N1Test::server_survived($node, $postmaster, 'upgrade');
$node->stop;
done_testing();
