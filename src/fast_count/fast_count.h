/*
 * fast_count.h
 *		fast_count(): fast approximate row counts that state their error.
 *
 * Shared declarations of the fast_count files:
 *	 fast_count.c		  SQL entry points, GUCs, argument validation and the
 *						  choice between catalog, exact, sample and planner;
 *	 fast_count_sample.c  block sampling: the fast_count_blocks TABLESAMPLE
 *						  method, block choice, batches and the estimator;
 *	 fast_count_exec.c	  running internal statements built from validated
 *						  raw parse trees: planning, execution, the time-boxed
 *						  exact count and the planner's estimate.
 *
 * Include postgres.h first.
 */
#ifndef N1_FAST_COUNT_H
#define N1_FAST_COUNT_H

#include "lib/stringinfo.h"
#include "nodes/parsenodes.h"
#include "nodes/execnodes.h"
#include "nodes/plannodes.h"
#include "tcop/dest.h"
#include "storage/block.h"
#include "utils/timestamp.h"

/* Called by the module's _PG_init; safe without shared_preload_libraries. */
extern void n1_fast_count_define_gucs(void);

/* GUCs (fast_count.c) */
extern double n1_fast_count_max_error;
extern int	n1_fast_count_budget_ms;
extern int	n1_fast_count_seed;

/*
 * z of the reported "95%" interval and of the precision target: 1.96 widened
 * by 10% (a normal 96.8% interval), which absorbs the error of the variance
 * estimate and of stopping as soon as the target is met.  Measured coverage
 * is in bench/fast_count/results.txt.
 */
#define FC_Z95 (1.959963984540054 * 1.1)

typedef enum FcMethod
{
	FC_METHOD_EXACT,
	FC_METHOD_CATALOG,
	FC_METHOD_SAMPLE,
	FC_METHOD_PLANNER
} FcMethod;

/* What every form reports (fast_count_info's columns). */
typedef struct FcResult
{
	double		estimate;
	bool		bounds_known;	/* false for catalog and planner */
	double		lower;
	double		upper;
	FcMethod	method;
	int64		pages_read;
	int64		pages_total;
	double		elapsed_ms;
	StringInfoData note;		/* why this method; appended to as we go */
} FcResult;

/* One leaf relation (with storage) whose blocks the sampler may read. */
typedef struct FcLeaf
{
	Oid			relid;
	BlockNumber nblocks;
} FcLeaf;

/*
 * A sampling job.  The sampler builds, from raw parse trees only,
 *	 SELECT tableoid, ctid, (filter) IS TRUE
 *	 FROM <from_rel> TABLESAMPLE <schema>.fast_count_blocks(0)
 * and runs it in batches; the executor applies privileges and row-level
 * security of from_rel exactly as for the caller's own query.
 */
typedef struct FcSampleJob
{
	RangeVar   *from_rel;		/* root relation as written (alias, ONLY) */
	Node	   *filter;			/* raw boolean expression, or NULL */
	const char *source_text;	/* text the raw trees' locations refer to */
	Oid			tsm_namespace;	/* schema holding fast_count_blocks */
	FcLeaf	   *leaves;			/* leaves to sample (nblocks > 0) */
	int			nleaves;
	TimestampTz deadline;		/* sampling stops at a block boundary here */
	TimestampTz hard_deadline;	/* the budget guard cancels a batch here */
	double		max_error;
	RawStmt    *exact_stmt;		/* SELECT count(*) ... for the exact try */
} FcSampleJob;

/* What the sampler found about the leaves it was given. */
typedef struct FcSampleOut
{
	bool		exact;			/* every block read, or exact count ran */
	double		estimate;
	double		lower;
	double		upper;
	int64		pages_read;
	int64		pages_total;
	int64		rows_matched;	/* in the sample */
	bool		budget_cut;		/* the deadline stopped it */
	bool		no_sample;		/* stopped before any batch completed */
} FcSampleOut;

/* fast_count_sample.c */
extern void n1_fc_sample(FcSampleJob *job, FcSampleOut *out, StringInfo note);

/* fast_count_exec.c */
extern List *n1_fc_analyze(RawStmt *raw, const char *source_text);
extern PlannedStmt *n1_fc_plan(Query *query, const char *source_text);
extern void n1_fc_check_query_permissions(Query *query);
extern void n1_fc_check_plan_permissions(PlannedStmt *plan);
extern void n1_fc_run_plan(PlannedStmt *plan, const char *source_text,
						   DestReceiver *dest,
						   void (*attach) (PlanState *, void *),
						   void *attach_arg);
extern TimestampTz n1_fc_enclosing_deadline(TimestampTz deadline);
extern bool n1_fc_run_guarded(void (*fn) (void *), void *arg,
							  TimestampTz deadline);
extern bool n1_fc_exact_count(RawStmt *count_stmt, const char *source_text,
							  TimestampTz deadline, int64 *count);
extern double n1_fc_planner_rows(Query *query, const char *source_text);
extern RawStmt *n1_fc_make_raw(Node *stmt);
extern Node *n1_fc_count_star(void);

#endif							/* N1_FAST_COUNT_H */
