/*
 * fast_count_exec.c
 *		Running fast_count's internal statements.
 *
 * Owns everything that turns a raw parse tree built by fast_count (never SQL
 * text put together from strings) into rows: parse analysis and rewriting
 * (which applies row-level security and expands views), planning, execution
 * with the caller's snapshot and privileges, the exact count that must
 * finish within a time budget (run in a subtransaction that a timer cancels),
 * and the planner's row estimate used when it does not.
 *
 * Statements run through the standard executor entry points, not the hooks,
 * so that fast_count's own statements are not reported by statistics
 * extensions (or by n1detect's detector) as the application's queries.
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/plannodes.h"
#include "storage/latch.h"
#include "tcop/dest.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"

#include "fast_count.h"

/* ----------------------------------------------------------------
 * Building blocks of raw statements
 * ----------------------------------------------------------------
 */

RawStmt *
n1_fc_make_raw(Node *stmt)
{
	RawStmt    *raw = makeNode(RawStmt);

	raw->stmt = stmt;
	raw->stmt_location = -1;
	raw->stmt_len = 0;
	return raw;
}

/* pg_catalog.count(*) */
Node *
n1_fc_count_star(void)
{
	FuncCall   *fc;

	fc = makeFuncCall(list_make2(makeString("pg_catalog"), makeString("count")),
					  NIL, COERCE_EXPLICIT_CALL, -1);
	fc->agg_star = true;
	return (Node *) fc;
}

/* ----------------------------------------------------------------
 * Analysis, planning and execution
 * ----------------------------------------------------------------
 */

/*
 * Parse analysis and rewriting of a raw statement; the raw tree is copied
 * first because analysis may scribble on it.
 */
List *
n1_fc_analyze(RawStmt *raw, const char *source_text)
{
	return pg_analyze_and_rewrite_fixedparams(copyObject(raw), source_text,
											  NULL, 0, NULL);
}

/* Plans a query without parallelism (the sampler's state is backend-local). */
PlannedStmt *
n1_fc_plan(Query *query, const char *source_text)
{
	return pg_plan_query(copyObject(query), source_text, 0, NULL);
}

/*
 * Runs a plan to completion with the caller's snapshot (its own earlier
 * commands visible), sending rows to dest.  Errors propagate; the snapshot
 * pushed here is popped by (sub)transaction abort in that case.
 */
void
n1_fc_run_plan(PlannedStmt *plan, const char *source_text, DestReceiver *dest)
{
	QueryDesc  *qd;

	PushCopiedSnapshot(GetActiveSnapshot());
	UpdateActiveSnapshotCommandId();
	qd = CreateQueryDesc(plan, source_text, GetActiveSnapshot(),
						 InvalidSnapshot, dest, NULL, NULL, 0);
	standard_ExecutorStart(qd, 0);
#if PG_VERSION_NUM >= 180000
	standard_ExecutorRun(qd, ForwardScanDirection, 0);
#else
	standard_ExecutorRun(qd, ForwardScanDirection, 0, true);
#endif
	standard_ExecutorFinish(qd);
	standard_ExecutorEnd(qd);
	FreeQueryDesc(qd);
	PopActiveSnapshot();
}

/* A receiver that keeps the first column of the first row as an int8. */
typedef struct FcCountReceiver
{
	DestReceiver pub;
	bool		got;
	int64		value;
} FcCountReceiver;

static bool
fc_count_receive(TupleTableSlot *slot, DestReceiver *self)
{
	FcCountReceiver *r = (FcCountReceiver *) self;
	bool		isnull;
	Datum		d;

	if (!r->got)
	{
		d = slot_getattr(slot, 1, &isnull);
		r->value = isnull ? 0 : DatumGetInt64(d);
		r->got = true;
	}
	return true;
}

static void
fc_count_startup(DestReceiver *self pg_attribute_unused(), int operation pg_attribute_unused(), TupleDesc typeinfo pg_attribute_unused())
{
}

static void
fc_count_shutdown(DestReceiver *self pg_attribute_unused())
{
}

static void
fc_count_destroy(DestReceiver *self pg_attribute_unused())
{
}

/* ----------------------------------------------------------------
 * The time-boxed exact count
 * ----------------------------------------------------------------
 */

static TimeoutId fc_timeout_id = MAX_TIMEOUTS;
static volatile sig_atomic_t fc_timeout_fired = false;

/* Timer handler: cancel the running statement like a cancel request. */
static void
fc_budget_timeout_handler(void)
{
	fc_timeout_fired = true;
	InterruptPending = true;
	QueryCancelPending = true;
	SetLatch(MyLatch);
}

/*
 * Runs count_stmt (one row, one int8 column) and stores its result in
 * *count.  Returns false, having undone everything it did, when it could not
 * finish within budget_ms.  Any other error (including statement_timeout and
 * the user's cancel) propagates.
 */
bool
n1_fc_exact_count(RawStmt *count_stmt, const char *source_text,
				  double budget_ms, int64 *count)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	bool		stmt_timeout_armed;
	volatile bool finished = false;
	FcCountReceiver recv;

	if (budget_ms < 1)
		return false;

	if (fc_timeout_id == MAX_TIMEOUTS)
		fc_timeout_id = RegisterTimeout(USER_TIMEOUT, fc_budget_timeout_handler);

	memset(&recv, 0, sizeof(recv));
	recv.pub.receiveSlot = fc_count_receive;
	recv.pub.rStartup = fc_count_startup;
	recv.pub.rShutdown = fc_count_shutdown;
	recv.pub.rDestroy = fc_count_destroy;
	recv.pub.mydest = DestNone;

	stmt_timeout_armed = get_timeout_active(STATEMENT_TIMEOUT);

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);

	fc_timeout_fired = false;
	enable_timeout_after(fc_timeout_id, (int) Min(ceil(budget_ms), (double) INT_MAX));

	PG_TRY();
	{
		List	   *queries;
		PlannedStmt *plan;

		queries = n1_fc_analyze(count_stmt, source_text);
		if (list_length(queries) != 1)
			elog(ERROR, "fast_count: unexpected rewrite of an internal count");
		plan = n1_fc_plan(linitial_node(Query, queries), source_text);
		n1_fc_run_plan(plan, source_text, (DestReceiver *) &recv);

		disable_timeout(fc_timeout_id, false);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		finished = true;
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		bool		ours;

		disable_timeout(fc_timeout_id, false);
		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;

		/*
		 * Our timer, not statement_timeout (which disarms itself when it
		 * fires) nor anything else.
		 */
		ours = fc_timeout_fired &&
			edata->sqlerrcode == ERRCODE_QUERY_CANCELED &&
			!(stmt_timeout_armed && !get_timeout_active(STATEMENT_TIMEOUT));
		fc_timeout_fired = false;
		if (!ours)
			ReThrowError(edata);
		FreeErrorData(edata);
	}
	PG_END_TRY();

	fc_timeout_fired = false;
	if (finished)
	{
		*count = recv.got ? recv.value : 0;
		return true;
	}
	return false;
}

/* The planner's estimate of the number of rows a query returns. */
double
n1_fc_planner_rows(Query *query, const char *source_text)
{
	PlannedStmt *plan = n1_fc_plan(query, source_text);

	return plan->planTree ? plan->planTree->plan_rows : 0;
}
