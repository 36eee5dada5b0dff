/*
 * fast_count.c
 *		fast_count(): fast approximate row counts that are honest about their
 *		error.  SQL entry points, settings, argument validation, and the
 *		decision between the catalog, an exact count, a block sample and the
 *		planner's estimate.
 *
 *	 fast_count(rel)			 live rows of a table, materialized view,
 *								 partitioned table or inheritance tree
 *	 fast_count(rel, filter)	 rows of rel satisfying a boolean expression
 *	 fast_count_query(query)	 rows a read-only SELECT returns
 *	 fast_count_info(...), fast_count_query_info(query)
 *								 the same with bounds, method, pages, time
 *
 * Unfiltered counts come from the catalog the way the planner sizes a heap
 * (reltuples / relpages scaled to the current number of blocks), per leaf
 * of the tree, unless a leaf was never analyzed, is empty in the catalog or
 * is clearly stale (the cumulative statistics' live-row count disagrees by
 * more than FC_STALE_FRACTION), or row-level security applies to the caller:
 * then the rows are counted by fast_count_sample.c, exactly when that fits
 * in the budget, else from a block sample.  Filters and single-table
 * queries are sampled; other queries are counted exactly within the budget
 * or else estimated by the planner.
 *
 * Filters and queries are parsed here and only ever travel as parse trees:
 * exactly one expression / one SELECT of at most FC_MAX_TEXT_BYTES, nothing
 * that writes, locks rows or calls volatile functions (as written and with
 * views, rules and policies expanded); every internal statement also runs
 * with transaction_read_only forced on.
 *
 * Must never: return any number (catalog, sample, exact, planner) before
 * the executor's privilege checks on the equivalent count(*) passed, use
 * the catalog when row-level security applies, or leave the error context
 * stack pointing into its own frame.
 */
#include "postgres.h"

#include <math.h>

#include "access/relation.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "commands/defrem.h"
#include "common/keywords.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "parser/analyze.h"
#include "parser/parser.h"
#include "parser/scanner.h"
#include "pgstat.h"
#include "rewrite/rewriteHandler.h"
#include "storage/bufmgr.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/rls.h"

#include "fast_count.h"

PG_FUNCTION_INFO_V1(n1_fast_count);
PG_FUNCTION_INFO_V1(n1_fast_count_filter);
PG_FUNCTION_INFO_V1(n1_fast_count_query);
PG_FUNCTION_INFO_V1(n1_fast_count_info);
PG_FUNCTION_INFO_V1(n1_fast_count_info_filter);
PG_FUNCTION_INFO_V1(n1_fast_count_query_info);

/* The catalog is stale when the live-row statistics differ this much. */
#define FC_STALE_FRACTION 0.2
#define FC_STALE_MIN_ROWS 100
/* Longest filter or query text accepted (README, "Privileges and safety"). */
#define FC_MAX_TEXT_BYTES (128 * 1024)

double		n1_fast_count_max_error = 0.02;
int			n1_fast_count_budget_ms = 50;
int			n1_fast_count_seed = -1;

void
n1_fast_count_define_gucs(void)
{
	DefineCustomRealVariable("n1detect.fast_count_max_error",
							 "Relative error fast_count aims for when it samples, at 95% confidence.",
							 "A sample stops growing once its 95% confidence interval is within this fraction of the estimate, or when the budget runs out.",
							 &n1_fast_count_max_error,
							 0.02, 0.001, 1.0,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("n1detect.fast_count_budget",
							"Time one fast_count call may spend counting or sampling.",
							"Exact counts that do not finish within it are abandoned; samples stop at it, past it by at most one block.",
							&n1_fast_count_budget_ms,
							50, 1, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("n1detect.fast_count_seed",
							"Seed of fast_count's block sampling; -1 draws a new one for every call.",
							"Set it to make samples reproducible, e.g. in tests.",
							&n1_fast_count_seed,
							-1, -1, INT_MAX,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
}

/* ----------------------------------------------------------------
 * Helpers
 * ----------------------------------------------------------------
 */

typedef struct FcCall
{
	TimestampTz start;
	TimestampTz deadline;		/* start + budget: counting stops here */
	TimestampTz hard_deadline;	/* start + 2 budgets: a batch is cancelled */
	Oid			tsm_namespace;
	const char *source_text;	/* text error positions refer to */
} FcCall;

/*
 * The budget starts when the call does (parsing and planning use it up
 * too).  A call made inside another one (from a function in its filter or
 * query) also ends by the enclosing call's deadline.
 */
static void
fc_call_init(FcCall *call, FunctionCallInfo fcinfo)
{
	TimestampTz budget = (TimestampTz) n1_fast_count_budget_ms * 1000;

	call->start = GetCurrentTimestamp();
	call->deadline = n1_fc_enclosing_deadline(call->start + budget);
	call->hard_deadline = n1_fc_enclosing_deadline(call->start + 2 * budget);
	call->tsm_namespace = get_func_namespace(fcinfo->flinfo->fn_oid);
	call->source_text = NULL;
}

static void
fc_result_init(FcResult *res)
{
	memset(res, 0, sizeof(*res));
	initStringInfo(&res->note);
}

static void
fc_note(FcResult *res, const char *fmt,...) pg_attribute_printf(2, 3);

static void
fc_note(FcResult *res, const char *fmt,...)
{
	va_list		args;

	if (res->note.len > 0)
		appendStringInfoString(&res->note, "; ");
	for (;;)
	{
		int			needed;

		va_start(args, fmt);
		needed = appendStringInfoVA(&res->note, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(&res->note, needed);
	}
}

/*
 * Error positions inside a filter or query refer to that text, not to the
 * statement that called fast_count: report them as internal positions.
 */
static void
fc_error_callback(void *arg)
{
	FcCall	   *call = (FcCall *) arg;
	int			pos;

	if (call->source_text == NULL)
		return;
	pos = geterrposition();
	if (pos > 0)
	{
		errposition(0);
		internalerrposition(pos);
		internalerrquery(call->source_text);
	}
}

static void
fc_reject_null(FunctionCallInfo fcinfo, int argno, const char *what)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
}

/*
 * A filter or query as a C string, refused above FC_MAX_TEXT_BYTES: parse
 * analysis and planning are not interruptible by the budget and grow with
 * the text (a 1.1 MB filter of OR'ed comparisons takes seconds to plan).
 */
static char *
fc_text_arg(FunctionCallInfo fcinfo, int argno, const char *what)
{
	text	   *t = PG_GETARG_TEXT_PP(argno);

	if (VARSIZE_ANY_EXHDR(t) > FC_MAX_TEXT_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("fast_count %s is too long", what),
				 errdetail("The %s is %zu bytes; at most %d are accepted.",
						   what, (size_t) VARSIZE_ANY_EXHDR(t), FC_MAX_TEXT_BYTES),
				 errhint("Count such queries with count(*).")));
	return text_to_cstring(t);
}

/* ----------------------------------------------------------------
 * Validation of filters and queries
 * ----------------------------------------------------------------
 */

static bool
fc_readonly_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Query))
	{
		Query	   *q = (Query *) node;

		if (q->commandType != CMD_SELECT || q->utilityStmt != NULL ||
			q->hasModifyingCTE)
			ereport(ERROR,
					(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
					 errmsg("fast_count accepts only read-only queries"),
					 errdetail("The %s contains a data-modifying statement.",
							   (const char *) context)));
		if (q->rowMarks != NIL)
			ereport(ERROR,
					(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
					 errmsg("fast_count accepts only read-only queries"),
					 errdetail("The %s locks rows with FOR UPDATE or FOR SHARE.",
							   (const char *) context)));
		return query_tree_walker(q, fc_readonly_walker, context, 0);
	}
	return expression_tree_walker(node, fc_readonly_walker, context);
}

/* Rejects, before anything runs, what could write or change between calls. */
static void
fc_check_readonly(Query *q, const char *what)
{
	fc_readonly_walker((Node *) q, (void *) what);
	if (contain_volatile_functions((Node *) q))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("fast_count does not accept volatile functions"),
				 errdetail("The %s calls a volatile function, which could write or return different rows on every call.",
						   what),
				 errhint("Count such queries with count(*).")));
}

/*
 * Parse analysis and rewriting of a statement built by fast_count or given
 * by the caller: read-only and free of volatile functions both as written
 * and rewritten (views, rules and row-level security policies expanded),
 * and the executor's privilege checks on every relation it reads.  Returns
 * the one rewritten query.
 */
static Query *
fc_analyze_checked(RawStmt *raw, const char *source_text, const char *what,
				   Query **as_written)
{
	Query	   *q;
	List	   *rewritten;

	q = parse_analyze_fixedparams(copyObject(raw), source_text, NULL, 0, NULL);
	fc_check_readonly(q, what);
	if (as_written)
		*as_written = copyObject(q);
	rewritten = QueryRewrite(q);
	if (list_length(rewritten) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("fast_count cannot count a query that rules rewrite into several")));
	q = linitial_node(Query, rewritten);
	fc_check_readonly(q, what);
	n1_fc_check_query_permissions(q);
	return q;
}

/*
 * Parses a filter: exactly one expression, no semicolon, no FROM, no alias.
 * Returns its raw parse tree.
 */
static Node *
fc_parse_filter(const char *filter)
{
	core_yyscan_t yyscanner;
	core_yy_extra_type yyextra;
	core_YYSTYPE yylval;
	YYLTYPE		yylloc;
	bool		empty = true;
	List	   *raw;
	SelectStmt *sel;
	ResTarget  *rt;

	/* a second statement: refuse it in so many words, not as a syntax error */
	yyscanner = scanner_init(filter, &yyextra, &ScanKeywords, ScanKeywordTokens);
	for (;;)
	{
		int			tok = core_yylex(&yylval, &yylloc, yyscanner);

		if (tok == 0)
			break;
		empty = false;
		if (tok == ';')
		{
			scanner_finish(yyscanner);
			ereport(ERROR,
					(errcode(ERRCODE_SYNTAX_ERROR),
					 errmsg("fast_count filter must be a single expression"),
					 errdetail("The filter contains a semicolon, which would end the expression and start another statement.")));
		}
	}
	scanner_finish(yyscanner);
	if (empty)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("fast_count filter must not be empty"),
				 errhint("Use fast_count(rel) to count every row.")));

	raw = raw_parser(filter, RAW_PARSE_PLPGSQL_EXPR);
	if (list_length(raw) != 1 ||
		!IsA(linitial_node(RawStmt, raw)->stmt, SelectStmt))
		elog(ERROR, "fast_count: unexpected parse of a filter");
	sel = (SelectStmt *) linitial_node(RawStmt, raw)->stmt;
	if (list_length(sel->targetList) != 1 || sel->fromClause != NIL ||
		sel->whereClause != NULL || sel->groupClause != NIL ||
		sel->havingClause != NULL || sel->windowClause != NIL ||
		sel->sortClause != NIL || sel->limitCount != NULL ||
		sel->limitOffset != NULL || sel->lockingClause != NIL ||
		sel->distinctClause != NIL || sel->withClause != NULL ||
		sel->intoClause != NULL || sel->valuesLists != NIL ||
		sel->op != SETOP_NONE ||
		((ResTarget *) linitial(sel->targetList))->name != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("fast_count filter must be a single expression"),
				 errdetail("Write only the condition of a WHERE clause, without FROM, GROUP BY, ORDER BY, an alias or a second expression.")));
	rt = (ResTarget *) linitial(sel->targetList);
	return rt->val;
}

/* SELECT FROM rv [WHERE filter] */
static RawStmt *
fc_select_from(RangeVar *rv, Node *filter, bool count)
{
	SelectStmt *sel = makeNode(SelectStmt);

	if (count)
	{
		ResTarget  *rt = makeNode(ResTarget);

		rt->val = n1_fc_count_star();
		rt->location = -1;
		sel->targetList = list_make1(rt);
	}
	sel->fromClause = list_make1(copyObject(rv));
	sel->whereClause = copyObject(filter);
#if PG_VERSION_NUM < 170000
	sel->limitOption = LIMIT_OPTION_DEFAULT;
#endif
	sel->op = SETOP_NONE;
	return n1_fc_make_raw((Node *) sel);
}

/* ----------------------------------------------------------------
 * The relation and its leaves
 * ----------------------------------------------------------------
 */

typedef struct FcLeafInfo
{
	Oid			relid;
	char		relkind;
	BlockNumber nblocks;
	BlockNumber relpages;
	double		reltuples;
	char	   *name;
} FcLeafInfo;

/*
 * Checks the relation named by the caller and locks it.  Returns its
 * relkind.
 */
static char
fc_check_relation(Oid relid)
{
	Relation	rel;
	char		relkind;

	rel = try_relation_open(relid, AccessShareLock);
	if (rel == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	relkind = rel->rd_rel->relkind;

	switch (relkind)
	{
		case RELKIND_RELATION:
		case RELKIND_PARTITIONED_TABLE:
		case RELKIND_MATVIEW:
		case RELKIND_FOREIGN_TABLE:
			break;
		case RELKIND_VIEW:
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("cannot count rows of view \"%s\" with fast_count",
							RelationGetRelationName(rel)),
					 errdetail("A view has no rows or statistics of its own."),
					 errhint("Use fast_count_query() with the query that reads the view.")));
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("\"%s\" is not a table, materialized view, partitioned table or foreign table",
							RelationGetRelationName(rel))));
	}

	if (RELATION_IS_OTHER_TEMP(rel))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot count rows of temporary tables of other sessions")));

	if (relkind == RELKIND_MATVIEW && !RelationIsPopulated(rel))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("materialized view \"%s\" has not been populated",
						RelationGetRelationName(rel)),
				 errhint("Use the REFRESH MATERIALIZED VIEW command.")));

	relation_close(rel, NoLock);
	return relkind;
}

/* The leaves with storage (and foreign leaves) of the tree, locked. */
static List *
fc_leaves(Oid relid, bool inh)
{
	List	   *oids;
	List	   *leaves = NIL;
	ListCell   *lc;

	oids = inh ? find_all_inheritors(relid, AccessShareLock, NULL)
		: list_make1_oid(relid);
	foreach(lc, oids)
	{
		Oid			oid = lfirst_oid(lc);
		Relation	rel = try_relation_open(oid, AccessShareLock);
		FcLeafInfo *leaf;
		char		relkind;

		if (rel == NULL)
			continue;
		relkind = rel->rd_rel->relkind;
		/* the executor skips other sessions' temporary children too */
		if ((oid != relid && RELATION_IS_OTHER_TEMP(rel)) ||
			relkind == RELKIND_PARTITIONED_TABLE ||
			(relkind != RELKIND_RELATION && relkind != RELKIND_MATVIEW &&
			 relkind != RELKIND_FOREIGN_TABLE))
		{
			relation_close(rel, NoLock);
			continue;
		}
		leaf = palloc0(sizeof(FcLeafInfo));
		leaf->relid = oid;
		leaf->relkind = relkind;
		leaf->relpages = (BlockNumber) rel->rd_rel->relpages;
		leaf->reltuples = rel->rd_rel->reltuples;
		leaf->name = pstrdup(RelationGetRelationName(rel));
		if (relkind != RELKIND_FOREIGN_TABLE)
			leaf->nblocks = RelationGetNumberOfBlocks(rel);
		if (relkind == RELKIND_FOREIGN_TABLE && leaf->reltuples < 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("foreign table \"%s\" has no statistics",
							leaf->name),
					 errdetail("fast_count can only use the row count ANALYZE stores for a foreign table."),
					 errhint("Run ANALYZE on the foreign table, or count its rows with count(*).")));
		relation_close(rel, NoLock);
		leaves = lappend(leaves, leaf);
	}
	return leaves;
}

/*
 * Live rows according to the cumulative statistics (shared entry plus this
 * backend's committed but unflushed changes); false if there are none.
 */
static bool
fc_stat_live_rows(Oid relid, double *live)
{
	PgStat_StatTabEntry *tab;
	PgStat_TableStatus *pending;
	bool		have = false;

	*live = 0;
	if (RecoveryInProgress())
		return false;			/* a standby keeps no such counts */
	tab = pgstat_fetch_stat_tabentry(relid);
	if (tab != NULL)
	{
#if PG_VERSION_NUM >= 160000
		*live += (double) tab->live_tuples;
#else
		*live += (double) tab->n_live_tuples;
#endif
		have = true;
	}
	pending = find_tabstat_entry(relid);
	if (pending != NULL)
	{
#if PG_VERSION_NUM >= 160000
		PgStat_Counter delta = pending->counts.delta_live_tuples;
#else
		PgStat_Counter delta = pending->t_counts.t_delta_live_tuples;
#endif

		*live += (double) delta;
		have = have || delta != 0;
	}
	return have;
}

/* ----------------------------------------------------------------
 * Counting a relation (tree), with or without a filter
 * ----------------------------------------------------------------
 */

/* Exact within the budget, else the planner's estimate. */
static void
fc_exact_or_planner(FcCall *call, RawStmt *count_stmt, Query *query,
					const char *why, FcResult *res)
{
	int64		cnt;

	if (n1_fc_exact_count(count_stmt, call->source_text, call->deadline, &cnt))
	{
		res->method = FC_METHOD_EXACT;
		res->estimate = res->lower = res->upper = (double) cnt;
		res->bounds_known = true;
		fc_note(res, "%s: counted exactly", why);
		return;
	}
	res->method = FC_METHOD_PLANNER;
	res->estimate = Max(0.0, rint(n1_fc_planner_rows(query, call->source_text)));
	res->bounds_known = false;
	fc_note(res, "%s; the exact count did not fit n1detect.fast_count_budget: planner's estimate", why);
}

static void
fc_count_relation(FcCall *call, Oid relid, RangeVar *rv, Node *filter,
				  const char *filter_text, FcResult *res)
{
	List	   *leaves;
	ListCell   *lc;
	bool		rls;
	bool		has_foreign = false;
	double		catalog_rows = 0;
	bool		used_catalog = false;
	FcLeaf	   *targets;
	int			ntargets = 0;
	int64		pages_total = 0;
	Query	   *filter_query = NULL;

	fc_check_relation(relid);

	/*
	 * SELECT FROM rel [WHERE filter], analyzed and rewritten: names, types,
	 * volatility (views and policies expanded), and the executor's privilege
	 * checks, as for SELECT count(*) FROM rel [WHERE filter], before any
	 * number is looked at.
	 */
	call->source_text = filter_text;
	filter_query = fc_analyze_checked(fc_select_from(rv, filter, false),
									  filter_text ? filter_text : "", "filter", NULL);

	leaves = fc_leaves(relid, rv->inh);
	rls = check_enable_rls(relid, InvalidOid, false) == RLS_ENABLED;

	targets = palloc(sizeof(FcLeaf) * Max(list_length(leaves), 1));
	foreach(lc, leaves)
	{
		FcLeafInfo *leaf = lfirst(lc);

		pages_total += leaf->nblocks;
		if (leaf->relkind == RELKIND_FOREIGN_TABLE)
		{
			has_foreign = true;
			catalog_rows += leaf->reltuples;
			used_catalog = true;
			continue;
		}
		if (leaf->nblocks == 0)
			continue;			/* no blocks, no rows */
		if (filter == NULL && !rls)
		{
			if (leaf->reltuples >= 0 && leaf->relpages > 0)
			{
				double		scaled = leaf->reltuples / leaf->relpages * leaf->nblocks;
				double		live;

				if (!fc_stat_live_rows(leaf->relid, &live) ||
					fabs(live - scaled) <= FC_STALE_FRACTION * Max(live, scaled) ||
					fabs(live - scaled) <= FC_STALE_MIN_ROWS)
				{
					catalog_rows += scaled;
					used_catalog = true;
					continue;
				}
				fc_note(res, "statistics of \"%s\" are stale (%.0f live rows counted since, %.0f in the catalog)",
						leaf->name, live, scaled);
			}
			else if (leaf->reltuples < 0)
				fc_note(res, "\"%s\" was never analyzed", leaf->name);
			else
				fc_note(res, "\"%s\" was empty when last analyzed", leaf->name);
		}
		targets[ntargets].relid = leaf->relid;
		targets[ntargets].nblocks = leaf->nblocks;
		ntargets++;
	}
	res->pages_total = pages_total;
	if (rls)
		fc_note(res, "row-level security applies: counted through the executor");

	if (has_foreign && (filter != NULL || rls))
	{
		/* foreign rows cannot be sampled by block */
		fc_exact_or_planner(call, fc_select_from(rv, filter, true), filter_query,
							"a foreign table cannot be sampled", res);
		return;
	}

	if (ntargets == 0)
	{
		res->estimate = catalog_rows;
		if (used_catalog)
		{
			res->method = FC_METHOD_CATALOG;
			res->bounds_known = false;
			fc_note(res, "reltuples per page scaled to the current size");
		}
		else
		{
			res->method = FC_METHOD_EXACT;
			res->lower = res->upper = res->estimate = 0;
			res->bounds_known = true;
			fc_note(res, "no blocks");
		}
		return;
	}
	else
	{
		FcSampleJob job;
		FcSampleOut out;
		StringInfoData snote;

		memset(&job, 0, sizeof(job));
		job.from_rel = rv;
		job.filter = filter;
		job.source_text = filter_text ? filter_text : "";
		job.tsm_namespace = call->tsm_namespace;
		job.leaves = targets;
		job.nleaves = ntargets;
		job.deadline = call->deadline;
		job.hard_deadline = call->hard_deadline;
		job.max_error = n1_fast_count_max_error;
		/* an exact count of the whole tree only helps if it all is sampled */
		job.exact_stmt = used_catalog ? NULL : fc_select_from(rv, filter, true);

		initStringInfo(&snote);
		n1_fc_sample(&job, &out, &snote);

		res->pages_read = out.pages_read;
		res->estimate = catalog_rows + out.estimate;
		if (out.no_sample)
		{
			res->method = FC_METHOD_PLANNER;
			res->estimate = Max(0.0, rint(n1_fc_planner_rows(filter_query,
															 filter_text ? filter_text : "")));
			res->bounds_known = false;
			fc_note(res, "n1detect.fast_count_budget ran out before a first sample was read: planner's estimate");
		}
		else if (used_catalog)
		{
			res->method = FC_METHOD_CATALOG;
			res->bounds_known = false;
			fc_note(res, "other leaves from the catalog; %s %lld of %lld blocks%s",
					out.exact ? "counted" : "sampled",
					(long long) out.pages_read, (long long) out.pages_total,
					snote.data);
		}
		else if (out.exact)
		{
			res->method = FC_METHOD_EXACT;
			res->lower = res->upper = res->estimate = out.estimate;
			res->bounds_known = true;
			fc_note(res, "counted %lld of %lld blocks%s",
					(long long) out.pages_read, (long long) out.pages_total,
					snote.data);
		}
		else
		{
			res->method = FC_METHOD_SAMPLE;
			res->lower = out.lower;
			res->upper = out.upper;
			res->bounds_known = true;
			fc_note(res, "sampled %lld of %lld blocks, %lld matching rows%s",
					(long long) out.pages_read, (long long) out.pages_total,
					(long long) out.rows_matched, snote.data);
		}
	}
}

/* ----------------------------------------------------------------
 * fast_count_query
 * ----------------------------------------------------------------
 */

static void
fc_count_query(FcCall *call, const char *query_text, FcResult *res)
{
	List	   *raw;
	RawStmt    *rawstmt;
	SelectStmt *sel;
	Query	   *q;
	Query	   *rewritten;
	RangeTblEntry *rte = NULL;
	bool		single;

	call->source_text = query_text;
	raw = raw_parser(query_text, RAW_PARSE_DEFAULT);
	if (raw == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("fast_count_query query must not be empty")));
	if (list_length(raw) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("fast_count_query accepts exactly one statement"),
				 errdetail("The query contains %d statements.", list_length(raw))));
	rawstmt = linitial_node(RawStmt, raw);
	if (!IsA(rawstmt->stmt, SelectStmt))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("fast_count_query accepts only a SELECT statement"),
				 errdetail("The query is %s.", CreateCommandName(rawstmt->stmt))));
	sel = (SelectStmt *) rawstmt->stmt;
	if (sel->intoClause != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("fast_count accepts only read-only queries"),
				 errdetail("SELECT INTO creates a table.")));

	rewritten = fc_analyze_checked(rawstmt, query_text, "query", &q);

	/* one table, and every row that passes WHERE is returned once */
	single = q->commandType == CMD_SELECT && q->cteList == NIL &&
		!q->hasAggs && !q->hasWindowFuncs && !q->hasTargetSRFs &&
		q->groupClause == NIL && q->groupingSets == NIL &&
		q->havingQual == NULL && q->distinctClause == NIL &&
		q->limitCount == NULL && q->limitOffset == NULL &&
		q->setOperations == NULL && q->rowMarks == NIL &&
		list_length(q->rtable) == 1 && list_length(q->jointree->fromlist) == 1 &&
		sel->op == SETOP_NONE && list_length(sel->fromClause) == 1 &&
		IsA(linitial(sel->fromClause), RangeVar);
	if (single)
	{
		rte = linitial_node(RangeTblEntry, q->rtable);
		single = rte->rtekind == RTE_RELATION && rte->tablesample == NULL &&
			(rte->relkind == RELKIND_RELATION ||
			 rte->relkind == RELKIND_PARTITIONED_TABLE ||
			 rte->relkind == RELKIND_MATVIEW);
	}
	if (single)
	{
		RangeVar   *rv = linitial_node(RangeVar, sel->fromClause);

		fc_note(res, sel->whereClause ? "single-table query with WHERE" :
				"single-table query without WHERE");
		fc_count_relation(call, rte->relid, rv, sel->whereClause, query_text, res);
		return;
	}
	else
	{
		/* SELECT count(*) FROM (query) AS fast_count_q */
		SelectStmt *wrap = makeNode(SelectStmt);
		RangeSubselect *sub = makeNode(RangeSubselect);
		ResTarget  *rt = makeNode(ResTarget);

		sub->subquery = copyObject((Node *) sel);
		sub->alias = makeAlias("fast_count_q", NIL);
		rt->val = n1_fc_count_star();
		rt->location = -1;
		wrap->targetList = list_make1(rt);
		wrap->fromClause = list_make1(sub);
#if PG_VERSION_NUM < 170000
		wrap->limitOption = LIMIT_OPTION_DEFAULT;
#endif
		wrap->op = SETOP_NONE;
		fc_exact_or_planner(call, n1_fc_make_raw((Node *) wrap), rewritten,
							"not a single-table query", res);
	}
}

/* ----------------------------------------------------------------
 * SQL entry points
 * ----------------------------------------------------------------
 */

typedef enum FcForm
{
	FC_FORM_REL,
	FC_FORM_FILTER,
	FC_FORM_QUERY
} FcForm;

/* Runs one form with transaction_read_only forced on; fills res. */
static void
fc_run(FunctionCallInfo fcinfo, FcForm form, FcResult *res)
{
	FcCall		call;
	ErrorContextCallback errcb;
	bool		save_read_only = XactReadOnly;

	fc_result_init(res);
	switch (form)
	{
		case FC_FORM_REL:
			fc_reject_null(fcinfo, 0, "relation");
			break;
		case FC_FORM_FILTER:
			fc_reject_null(fcinfo, 0, "relation");
			fc_reject_null(fcinfo, 1, "filter");
			break;
		case FC_FORM_QUERY:
			fc_reject_null(fcinfo, 0, "query");
			break;
	}
	if (IsInParallelMode())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("fast_count cannot run in a parallel worker")));

	fc_call_init(&call, fcinfo);

	/*
	 * The callback is pushed before PG_TRY and popped after PG_END_TRY, never
	 * inside: PG_TRY saves error_context_stack and PG_END_TRY restores it, so
	 * popping in PG_FINALLY would be undone and leave the stack pointing at
	 * this dead frame.  On error the outer handler restores its own stack.
	 */
	errcb.callback = fc_error_callback;
	errcb.arg = &call;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	XactReadOnly = true;
	PG_TRY();
	{
		switch (form)
		{
			case FC_FORM_REL:
				{
					Oid			relid = PG_GETARG_OID(0);
					char	   *nsp;
					char	   *name;

					fc_check_relation(relid);
					nsp = get_namespace_name(get_rel_namespace(relid));
					name = get_rel_name(relid);
					fc_count_relation(&call, relid, makeRangeVar(nsp, name, -1),
									  NULL, NULL, res);
					break;
				}
			case FC_FORM_FILTER:
				{
					Oid			relid = PG_GETARG_OID(0);
					char	   *filter = fc_text_arg(fcinfo, 1, "filter");
					Node	   *expr;
					char	   *nsp;
					char	   *name;

					fc_check_relation(relid);
					call.source_text = filter;
					expr = fc_parse_filter(filter);
					nsp = get_namespace_name(get_rel_namespace(relid));
					name = get_rel_name(relid);
					fc_count_relation(&call, relid, makeRangeVar(nsp, name, -1),
									  expr, filter, res);
					break;
				}
			case FC_FORM_QUERY:
				fc_count_query(&call, fc_text_arg(fcinfo, 0, "query"), res);
				break;
		}
	}
	PG_FINALLY();
	{
		XactReadOnly = save_read_only;
	}
	PG_END_TRY();
	error_context_stack = errcb.previous;

	res->estimate = Max(0.0, rint(res->estimate));
	res->lower = Max(0.0, floor(res->lower));
	res->upper = ceil(res->upper);
	res->elapsed_ms = (double) (GetCurrentTimestamp() - call.start) / 1000.0;
}

static const char *
fc_method_name(FcMethod m)
{
	switch (m)
	{
		case FC_METHOD_EXACT:
			return "exact";
		case FC_METHOD_CATALOG:
			return "catalog";
		case FC_METHOD_SAMPLE:
			return "sample";
		case FC_METHOD_PLANNER:
			return "planner";
	}
	return "unknown";
}

static Datum
fc_info_datum(FunctionCallInfo fcinfo, FcResult *res)
{
	TupleDesc	tupdesc;
	Datum		values[8];
	bool		nulls[8];

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	if (tupdesc->natts != 8)
		elog(ERROR, "fast_count_info: unexpected number of result columns");

	memset(nulls, 0, sizeof(nulls));
	values[0] = Int64GetDatum((int64) res->estimate);
	if (res->bounds_known)
	{
		values[1] = Int64GetDatum((int64) res->lower);
		values[2] = Int64GetDatum((int64) res->upper);
	}
	else
		nulls[1] = nulls[2] = true;
	values[3] = CStringGetTextDatum(fc_method_name(res->method));
	values[4] = Int64GetDatum(res->pages_read);
	values[5] = Int64GetDatum(res->pages_total);
	values[6] = Float8GetDatum(res->elapsed_ms);
	values[7] = CStringGetTextDatum(res->note.data);
	return HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls));
}

Datum
n1_fast_count(PG_FUNCTION_ARGS)
{
	FcResult	res;

	fc_run(fcinfo, FC_FORM_REL, &res);
	PG_RETURN_INT64((int64) res.estimate);
}

Datum
n1_fast_count_filter(PG_FUNCTION_ARGS)
{
	FcResult	res;

	fc_run(fcinfo, FC_FORM_FILTER, &res);
	PG_RETURN_INT64((int64) res.estimate);
}

Datum
n1_fast_count_query(PG_FUNCTION_ARGS)
{
	FcResult	res;

	fc_run(fcinfo, FC_FORM_QUERY, &res);
	PG_RETURN_INT64((int64) res.estimate);
}

Datum
n1_fast_count_info(PG_FUNCTION_ARGS)
{
	FcResult	res;

	fc_run(fcinfo, FC_FORM_REL, &res);
	return fc_info_datum(fcinfo, &res);
}

Datum
n1_fast_count_info_filter(PG_FUNCTION_ARGS)
{
	FcResult	res;

	fc_run(fcinfo, FC_FORM_FILTER, &res);
	return fc_info_datum(fcinfo, &res);
}

Datum
n1_fast_count_query_info(PG_FUNCTION_ARGS)
{
	FcResult	res;

	fc_run(fcinfo, FC_FORM_QUERY, &res);
	return fc_info_datum(fcinfo, &res);
}
