/*
 * fast_count_exec.c
 *		Running fast_count's internal statements.
 *
 * Owns everything that turns a raw parse tree built by fast_count (never SQL
 * text put together from strings) into rows: parse analysis and rewriting
 * (which applies row-level security and expands views), the executor's
 * privilege checks, planning (never parallel, never JIT), execution with the
 * caller's snapshot and privileges, the budget guard (a phase that must end
 * at the budget runs in a rolled-back subtransaction that a timer cancels;
 * see below), the exact count, and the planner's row estimate used when the
 * count does not fit.
 *
 * Must never: leave a cancel pending that the caller did not ask for, take
 * a user's cancel or statement_timeout for the budget's, move or disarm an
 * enclosing call's budget, or return an estimate for a query before the
 * executor's privilege checks on it passed.
 *
 * Statements run through the standard executor entry points, not the hooks,
 * so that fast_count's own statements are not reported by statistics
 * extensions (or by n1detect's detector) as the application's queries.
 */
#include "postgres.h"

#include <errno.h>
#include <math.h>
#include <signal.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "jit/jit.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
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

/*
 * Plans a query without parallelism (the sampler's state is backend-local)
 * and without JIT: LLVM compiles a large expression for minutes without
 * ever checking for interrupts, which neither the budget nor a cancel or
 * terminate request could stop.
 */
PlannedStmt *
n1_fc_plan(Query *query, const char *source_text)
{
	PlannedStmt *plan = pg_plan_query(copyObject(query), source_text, 0, NULL);

	plan->jitFlags = PGJIT_NONE;
	return plan;
}

/*
 * Checks the caller's privileges on every relation of a planned statement,
 * exactly as the executor does when it starts (column privileges included);
 * raises "permission denied" otherwise.
 */
void
n1_fc_check_plan_permissions(PlannedStmt *plan)
{
#if PG_VERSION_NUM >= 160000
	ExecCheckPermissions(plan->rtable, plan->permInfos, true);
#else
	ExecCheckRTPerms(plan->rtable, true);
#endif
}

static bool
fc_permissions_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Query))
	{
		Query	   *q = (Query *) node;

#if PG_VERSION_NUM >= 160000
		ExecCheckPermissions(q->rtable, q->rteperminfos, true);
#else
		ExecCheckRTPerms(q->rtable, true);
#endif
		return query_tree_walker(q, fc_permissions_walker, context, 0);
	}
	return expression_tree_walker(node, fc_permissions_walker, context);
}

/*
 * The same check on an analyzed and rewritten query, before it is planned:
 * every range table of the query and of its subqueries, sublinks and CTEs,
 * views expanded (a view is checked for the caller, its tables for the
 * view's owner, as the executor does).  Row-level security was applied by
 * the rewriter, which raises an error when row_security is off and a
 * policy applies.
 */
void
n1_fc_check_query_permissions(Query *query)
{
	fc_permissions_walker((Node *) query, NULL);
}

/*
 * Runs a plan to completion, sending rows to dest.  attach, if given, sees
 * the plan's state tree after ExecutorStart and before any row is read.
 * The snapshot is the transaction's as a VOLATILE function's statements get
 * it (a new one in READ COMMITTED, the caller's own earlier commands
 * visible), taken now that the relations are locked: the calling
 * statement's snapshot may predate a wait for a lock held by a table
 * rewrite, whose new rows it would not see at all (a count of 0).  Errors
 * propagate; the snapshot pushed here is popped by (sub)transaction abort
 * in that case.
 */
void
n1_fc_run_plan(PlannedStmt *plan, const char *source_text, DestReceiver *dest,
			   void (*attach) (PlanState *, void *), void *attach_arg)
{
	QueryDesc  *qd;

	PushCopiedSnapshot(GetTransactionSnapshot());
	UpdateActiveSnapshotCommandId();
	qd = CreateQueryDesc(plan, source_text, GetActiveSnapshot(),
						 InvalidSnapshot, dest, NULL, NULL, 0);
	standard_ExecutorStart(qd, 0);
	if (attach)
		attach(qd->planstate, attach_arg);
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
 * The budget guard
 *
 * The only thing that stops a running executor wherever it is (a sort, a
 * hash build, a slow function) is an interrupt, so a phase that must end
 * at the budget (an exact count, a sample batch) runs with a timer that
 * raises a query cancel, inside a subtransaction that is always rolled
 * back.  That is the mechanism of statement_timeout; what makes it safe
 * here:
 *
 *	 - Levels nest (a fast_count inside a filter function of another): each
 *	   level's deadline is at most its enclosing level's, one timer is
 *	   always armed for the innermost level, and leaving a level re-arms it
 *	   for the enclosing one.  An inner call never moves or disarms an
 *	   outer budget.
 *	 - The timer repeats every FC_REFIRE_MS past the deadline, so a cancel
 *	   swallowed by user code (an EXCEPTION WHEN query_canceled block)
 *	   comes again.
 *	 - A cancel is the budget's only if the timer fired during the level,
 *	   the level's deadline has passed, the error is the plain "canceling
 *	   statement due to user request" (statement_timeout, lock_timeout and
 *	   recovery conflicts report otherwise) and no SIGINT reached the
 *	   backend meanwhile: SIGINT (a cancel request, or statement_timeout,
 *	   which signals itself) is counted by a handler chained in front of
 *	   PostgreSQL's.  A user's cancel is therefore never taken for the
 *	   budget's and swallowed.
 *	 - A timer that fired after the work finished leaves a cancel pending
 *	   for the caller's statement: on leaving a level, a pending cancel
 *	   that the timer set, with no SIGINT since, is withdrawn (cleared
 *	   first, then the SIGINT count read again, so that a SIGINT arriving
 *	   meanwhile is kept).
 * ----------------------------------------------------------------
 */

#define FC_REFIRE_MS 10
#define FC_CANCEL_MSGID "canceling statement due to user request"

typedef struct FcGuard
{
	TimestampTz deadline;
	sig_atomic_t fires_at_start;
	sig_atomic_t sigints_at_start;
	struct FcGuard *outer;
} FcGuard;

static FcGuard *fc_guard_top = NULL;
static TimeoutId fc_timeout_id = MAX_TIMEOUTS;
static volatile sig_atomic_t fc_fires = 0;
static volatile sig_atomic_t fc_sigints = 0;
#ifndef WIN32
static struct sigaction fc_prev_sigint;
#endif

static void
fc_budget_timeout_handler(void)
{
	fc_fires++;
	InterruptPending = true;
	QueryCancelPending = true;
	SetLatch(MyLatch);
}

#ifndef WIN32
static void
fc_sigint_handler(int signo, siginfo_t *info, void *context)
{
	int			save_errno = errno;

	fc_sigints++;
	errno = save_errno;
	if (fc_prev_sigint.sa_flags & SA_SIGINFO)
		fc_prev_sigint.sa_sigaction(signo, info, context);
	else if (fc_prev_sigint.sa_handler != SIG_IGN &&
			 fc_prev_sigint.sa_handler != SIG_DFL)
		fc_prev_sigint.sa_handler(signo);
}
#endif

/*
 * Counts SIGINTs from now on: chains fc_sigint_handler in front of the
 * backend's handler (again if something replaced it since).  A process
 * that ignores SIGINT receives no cancel that could be confused.  (Windows
 * has no sigaction: there a user's cancel that coincides with the budget's
 * is taken for it.)
 */
static void
fc_watch_sigint(void)
{
#ifndef WIN32
	struct sigaction cur;
	struct sigaction act;

	if (sigaction(SIGINT, NULL, &cur) != 0)
		return;
	if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == fc_sigint_handler)
		return;
	if (!(cur.sa_flags & SA_SIGINFO) &&
		(cur.sa_handler == SIG_IGN || cur.sa_handler == SIG_DFL))
		return;
	fc_prev_sigint = cur;
	act = cur;
	act.sa_flags = cur.sa_flags | SA_SIGINFO;
	act.sa_sigaction = fc_sigint_handler;
	sigaction(SIGINT, &act, NULL);
#endif
}

/* Arms the timer for the innermost level, or disarms it. */
static void
fc_arm(void)
{
	if (fc_guard_top == NULL)
		disable_timeout(fc_timeout_id, false);
	else
		enable_timeout_every(fc_timeout_id, fc_guard_top->deadline, FC_REFIRE_MS);
}

/* Withdraws a cancel the timer set during level g, keeping any user's. */
static void
fc_forget_budget_cancel(FcGuard *g)
{
	if (fc_fires == g->fires_at_start || fc_sigints != g->sigints_at_start)
		return;
	QueryCancelPending = false;
	if (fc_sigints != g->sigints_at_start)
	{
		/* a SIGINT came between the test and the clearing */
		QueryCancelPending = true;
		InterruptPending = true;
	}
}

/* The error is the budget's cancel of level g (see above). */
static bool
fc_is_budget_cancel(ErrorData *edata, FcGuard *g)
{
	return edata->sqlerrcode == ERRCODE_QUERY_CANCELED &&
		edata->message_id != NULL &&
		strcmp(edata->message_id, FC_CANCEL_MSGID) == 0 &&
		fc_fires != g->fires_at_start &&
		fc_sigints == g->sigints_at_start &&
		GetCurrentTimestamp() >= g->deadline;
}

TimestampTz
n1_fc_enclosing_deadline(TimestampTz deadline)
{
	if (fc_guard_top != NULL && fc_guard_top->deadline < deadline)
		return fc_guard_top->deadline;
	return deadline;
}

bool
n1_fc_run_guarded(void (*fn) (void *), void *arg, TimestampTz deadline)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	FcGuard		g;
	ErrorData  *volatile edata = NULL;

	deadline = n1_fc_enclosing_deadline(deadline);
	if (GetCurrentTimestamp() >= deadline)
		return false;
	if (fc_timeout_id == MAX_TIMEOUTS)
		fc_timeout_id = RegisterTimeout(USER_TIMEOUT, fc_budget_timeout_handler);
	fc_watch_sigint();

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);

	g.deadline = deadline;
	g.fires_at_start = fc_fires;
	g.sigints_at_start = fc_sigints;
	g.outer = fc_guard_top;
	fc_guard_top = &g;
	fc_arm();

	PG_TRY();
	{
		fn(arg);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
	}
	PG_END_TRY();

	/* leave the level: timer off, our cancel withdrawn, outer re-armed */
	fc_guard_top = g.outer;
	disable_timeout(fc_timeout_id, false);
	fc_forget_budget_cancel(&g);
	if (fc_guard_top != NULL)
		fc_arm();

	/*
	 * After an error, whatever ran is undone and its locks released.  After
	 * success the subtransaction is released, as a PL/pgSQL block's: what ran
	 * was read-only, and rolling back is not allowed everywhere a count may
	 * run (a deferred trigger fired by COMMIT: core asserts that the parent
	 * is in progress, which it is not while committing).
	 */
	if (edata != NULL)
		RollbackAndReleaseCurrentSubTransaction();
	else
		ReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(oldcxt);
	CurrentResourceOwner = oldowner;

	if (edata != NULL && !fc_is_budget_cancel(edata, &g))
		ReThrowError(edata);
	if (edata != NULL)
		FreeErrorData(edata);
	return edata == NULL;
}

/* ----------------------------------------------------------------
 * The exact count and the planner's estimate
 * ----------------------------------------------------------------
 */

typedef struct FcExactJob
{
	RawStmt    *stmt;
	const char *source_text;
	FcCountReceiver recv;
} FcExactJob;

static void
fc_exact_run(void *arg)
{
	FcExactJob *job = (FcExactJob *) arg;
	List	   *queries;
	PlannedStmt *plan;

	queries = n1_fc_analyze(job->stmt, job->source_text);
	if (list_length(queries) != 1)
		elog(ERROR, "fast_count: unexpected rewrite of an internal count");
	plan = n1_fc_plan(linitial_node(Query, queries), job->source_text);
	n1_fc_run_plan(plan, job->source_text, (DestReceiver *) &job->recv,
				   NULL, NULL);
}

/*
 * Runs count_stmt (one row, one int8 column) and stores its result in
 * *count.  Returns false, having undone everything it did, when it could not
 * finish by deadline.  Any other error (including statement_timeout and
 * the user's cancel) propagates.
 */
bool
n1_fc_exact_count(RawStmt *count_stmt, const char *source_text,
				  TimestampTz deadline, int64 *count)
{
	FcExactJob	job;

	memset(&job, 0, sizeof(job));
	job.stmt = count_stmt;
	job.source_text = source_text;
	job.recv.pub.receiveSlot = fc_count_receive;
	job.recv.pub.rStartup = fc_count_startup;
	job.recv.pub.rShutdown = fc_count_shutdown;
	job.recv.pub.rDestroy = fc_count_destroy;
	job.recv.pub.mydest = DestNone;

	if (!n1_fc_run_guarded(fc_exact_run, &job, deadline))
		return false;
	*count = job.recv.got ? job.recv.value : 0;
	return true;
}

/*
 * The planner's estimate of the number of rows a query returns, after the
 * executor's privilege checks on the plan (which include tables read by
 * inlined SQL functions): an estimate is never returned for a query the
 * caller could not run.
 */
double
n1_fc_planner_rows(Query *query, const char *source_text)
{
	PlannedStmt *plan;

	n1_fc_check_query_permissions(query);
	plan = n1_fc_plan(query, source_text);
	n1_fc_check_plan_permissions(plan);
	return plan->planTree ? plan->planTree->plan_rows : 0;
}
