/*
 * fast_count_sample.c
 *		Block sampling for fast_count: estimates the number of rows of a
 *		relation tree that satisfy a filter from a simple random sample of
 *		its blocks, with a 95% confidence interval.
 *
 * Owns:
 *	 - the fast_count_blocks TABLESAMPLE method, which reads exactly the
 *	   blocks this file chose for the current batch (in random order), stops
 *	   at the deadline, and refuses to run for anyone else.  A scan finds
 *	   its sampler in its own state (node->tsm_state), which the batch
 *	   fills in for the scans of its own plan between ExecutorStart and the
 *	   first row; there is no global "current sampler", so a scan opened
 *	   anywhere else (a user's query, a cursor opened by a function in the
 *	   filter, a nested fast_count) cannot reach this sampler's arrays;
 *	 - the choice of blocks: distinct, uniform over the union of the leaves'
 *	   blocks, batch after batch (rejection sampling while less than half the
 *	   blocks are chosen, then a shuffled list of the rest);
 *	 - the batch loop: a pilot, then batches sized from the pilot's
 *	   variance so the interval meets n1detect.fast_count_max_error within
 *	   the time left, or every block (an exact count) when that fits;
 *	 - the estimator: T = B * mean(y) over sampled blocks (y = matching live
 *	   rows per block, zeros included), Var = B^2 (1 - m/B) s^2 / m.
 *
 * Rows are read by the executor through a normal SELECT on the relation as
 * the caller named it, with the filter as its WHERE clause and no columns,
 * so visibility, privileges (column privileges as for count(*)) and
 * row-level security are the executor's.  Each matching row reaches the
 * receiver while its scan is on the block it came from, so it is counted
 * for the block the scan returned last.
 *
 * Each batch runs under the budget guard (fast_count_exec.c), so a filter
 * that is slow per row cannot keep it past the hard deadline.
 *
 * Must never: keep a pointer to a sampler anywhere but in the state of
 * the scans of that sampler's own plan, or write outside its arrays.
 */
#include "postgres.h"

#include <math.h>

#include "access/relscan.h"
#include "access/tsmapi.h"
#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "storage/itemptr.h"
#include "tcop/dest.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "fast_count.h"

PG_FUNCTION_INFO_V1(n1_fast_count_blocks_handler);

/* Blocks in the first batch, whose variance sizes the rest. */
#define FC_PILOT_BLOCKS 64
/* Fewer matching rows than this in the sample: try an exact count. */
#define FC_FEW_MATCHES 30
/* Blocks read before the deadline may stop the very first batch. */
#define FC_MIN_BLOCKS 8
/* Read everything once a sample would cover this fraction of the blocks. */
#define FC_READ_ALL_FRACTION 0.7

typedef struct FcBlockKey
{
	Oid			relid;
	BlockNumber blkno;
} FcBlockKey;


typedef struct FcLeafState
{
	Oid			relid;
	BlockNumber nblocks;
	uint64		offset;			/* first index of this leaf in the union */
	/* the current batch: block numbers and their per-block indexes */
	BlockNumber *batch;
	int32	   *batch_idx;
	int			nbatch;
	int			capbatch;
	int			pos;			/* next entry of batch to return */
	bool		begun;			/* the executor scanned it in this batch */
} FcLeafState;

typedef struct FcSampler
{
	FcLeafState *leaves;		/* in union order */
	int			nleaves;
	uint64		B;				/* blocks in the union */
	uint64		nchosen;
	HTAB	   *chosen;			/* set of FcBlockKey chosen so far */
	/* per chosen block */
	int64	   *n_match;
	bool	   *in_sample;
	int32		nblk;
	int32		capblk;
	/* once more than half is chosen: the rest, shuffled */
	uint64	   *rest;
	uint64		nrest;
	uint64		restpos;
	pg_prng_state rng;
	TimestampTz deadline;
	bool		cut;			/* the deadline stopped the current batch */
	int64		batch_returned; /* blocks returned in the current batch */
	bool		have_sample;	/* an earlier batch completed */
	int32		cur_idx;		/* block the running scan returned last */
} FcSampler;

/* ----------------------------------------------------------------
 * The fast_count_blocks TABLESAMPLE method
 * ----------------------------------------------------------------
 */

typedef struct FcTsmScan
{
	FcSampler  *s;				/* set by the batch for its own scans only */
	FcLeafState *leaf;			/* NULL: nothing to read in this relation */
	OffsetNumber lt;			/* last offset returned */
} FcTsmScan;

static void
fc_tsm_size(PlannerInfo *root pg_attribute_unused(), RelOptInfo *baserel, List *paramexprs pg_attribute_unused(),
			BlockNumber *pages, double *tuples)
{
	double		npages = Min((double) baserel->pages, 1000.0);

	*pages = (BlockNumber) clamp_row_est(npages);
	if (baserel->pages > 0 && baserel->tuples > 0)
		*tuples = clamp_row_est(baserel->tuples / baserel->pages * npages);
	else
		*tuples = clamp_row_est(npages * 50);
}

static void
fc_tsm_init(SampleScanState *node, int eflags pg_attribute_unused())
{
	node->tsm_state = palloc0(sizeof(FcTsmScan));
}

static void
fc_tsm_begin(SampleScanState *node, Datum *params pg_attribute_unused(), int nparams pg_attribute_unused(), uint32 seed pg_attribute_unused())
{
	FcTsmScan  *scan = (FcTsmScan *) node->tsm_state;
	Oid			relid = RelationGetRelid(node->ss.ss_currentRelation);
	FcSampler  *s = scan->s;
	int			i;

	if (s == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("tablesample method fast_count_blocks can only be used by fast_count"),
				 errhint("Use TABLESAMPLE SYSTEM or BERNOULLI in queries.")));

	scan->lt = InvalidOffsetNumber;
	scan->leaf = NULL;
	for (i = 0; i < s->nleaves; i++)
	{
		if (s->leaves[i].relid == relid)
		{
			scan->leaf = &s->leaves[i];
			break;
		}
	}
	/*
	 * Leaves counted from the catalog are not read.  A leaf is read once per
	 * batch, by one scan, never rescanned.
	 */
	if (scan->leaf != NULL && scan->leaf->begun)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("tablesample method fast_count_blocks can only be used by fast_count")));
	if (scan->leaf != NULL)
		scan->leaf->begun = true;

	node->use_pagemode = true;
	node->use_bulkread = false;
}

static BlockNumber
fc_tsm_next_block(SampleScanState *node, BlockNumber nblocks)
{
	FcTsmScan  *scan = (FcTsmScan *) node->tsm_state;
	FcLeafState *leaf = scan->leaf;
	FcSampler  *s = scan->s;

	CHECK_FOR_INTERRUPTS();
	scan->lt = InvalidOffsetNumber;
	if (leaf == NULL || s == NULL)
		return InvalidBlockNumber;

	while (leaf->pos < leaf->nbatch)
	{
		BlockNumber blk = leaf->batch[leaf->pos];
		int32		idx = leaf->batch_idx[leaf->pos];

		if (s->cut)
			return InvalidBlockNumber;
		if ((s->have_sample || s->batch_returned >= FC_MIN_BLOCKS) &&
			GetCurrentTimestamp() >= s->deadline)
		{
			s->cut = true;
			return InvalidBlockNumber;
		}
		leaf->pos++;
		s->batch_returned++;
		Assert(idx >= 0 && idx < s->nblk);
		s->in_sample[idx] = true;
		s->cur_idx = idx;
		/* a block past the end (cannot happen under our lock) has no rows */
		if (blk < nblocks)
			return blk;
	}
	return InvalidBlockNumber;
}

static OffsetNumber
fc_tsm_next_tuple(SampleScanState *node, BlockNumber blockno pg_attribute_unused(),
				  OffsetNumber maxoffset)
{
	FcTsmScan  *scan = (FcTsmScan *) node->tsm_state;
	OffsetNumber t = scan->lt;

	if (t == InvalidOffsetNumber)
		t = FirstOffsetNumber;
	else
		t++;
	if (t > maxoffset)
		t = InvalidOffsetNumber;
	scan->lt = t;
	return t;
}

Datum
n1_fast_count_blocks_handler(PG_FUNCTION_ARGS)
{
	TsmRoutine *tsm = makeNode(TsmRoutine);

	tsm->parameterTypes = list_make1_oid(INT4OID);
	tsm->repeatable_across_queries = true;
	tsm->repeatable_across_scans = true;
	tsm->SampleScanGetSampleSize = fc_tsm_size;
	tsm->InitSampleScan = fc_tsm_init;
	tsm->BeginSampleScan = fc_tsm_begin;
	tsm->NextSampleBlock = fc_tsm_next_block;
	tsm->NextSampleTuple = fc_tsm_next_tuple;
	tsm->EndSampleScan = NULL;
	PG_RETURN_POINTER(tsm);
}

/* ----------------------------------------------------------------
 * Choosing blocks
 * ----------------------------------------------------------------
 */

static FcLeafState *
fc_leaf_of(FcSampler *s, uint64 g)
{
	int			lo = 0,
				hi = s->nleaves - 1;

	while (lo < hi)
	{
		int			mid = (lo + hi + 1) / 2;

		if (s->leaves[mid].offset <= g)
			lo = mid;
		else
			hi = mid - 1;
	}
	return &s->leaves[lo];
}

/* Records block g of the union as chosen for the current batch. */
static void
fc_add_block(FcSampler *s, FcLeafState *leaf, BlockNumber blk)
{
	int32		idx;

	if (s->nblk >= s->capblk)
	{
		s->capblk = Max(256, s->capblk * 2);
		s->n_match = repalloc_huge(s->n_match, sizeof(int64) * s->capblk);
		s->in_sample = repalloc_huge(s->in_sample, sizeof(bool) * s->capblk);
	}
	idx = s->nblk++;
	s->n_match[idx] = 0;
	s->in_sample[idx] = false;

	if (leaf->nbatch >= leaf->capbatch)
	{
		leaf->capbatch = Max(16, leaf->capbatch * 2);
		if (leaf->batch == NULL)
		{
			leaf->batch = palloc(sizeof(BlockNumber) * leaf->capbatch);
			leaf->batch_idx = palloc(sizeof(int32) * leaf->capbatch);
		}
		else
		{
			leaf->batch = repalloc(leaf->batch, sizeof(BlockNumber) * leaf->capbatch);
			leaf->batch_idx = repalloc(leaf->batch_idx, sizeof(int32) * leaf->capbatch);
		}
	}
	leaf->batch[leaf->nbatch] = blk;
	leaf->batch_idx[leaf->nbatch] = idx;
	leaf->nbatch++;
	s->nchosen++;
}

/* Tries to choose block g; false if it was chosen before. */
static bool
fc_try_choose(FcSampler *s, uint64 g)
{
	FcLeafState *leaf = fc_leaf_of(s, g);
	FcBlockKey	key;
	bool		found;

	key.relid = leaf->relid;
	key.blkno = (BlockNumber) (g - leaf->offset);
	(void) hash_search(s->chosen, &key, HASH_ENTER, &found);
	if (found)
		return false;
	fc_add_block(s, leaf, key.blkno);
	return true;
}

/* Plans the next batch: k more distinct blocks, uniformly at random. */
static int64
fc_plan_batch(FcSampler *s, int64 k)
{
	int			i;
	int64		done = 0;

	for (i = 0; i < s->nleaves; i++)
	{
		s->leaves[i].nbatch = 0;
		s->leaves[i].pos = 0;
		s->leaves[i].begun = false;
	}
	s->cut = false;
	s->batch_returned = 0;

	if ((uint64) k > s->B - s->nchosen)
		k = (int64) (s->B - s->nchosen);
	if (k <= 0)
		return 0;

	if (s->rest == NULL && (s->nchosen + (uint64) k) * 2 > s->B)
	{
		/* list what is left and shuffle it */
		uint64		g;

		s->rest = palloc_extended(sizeof(uint64) * Max(s->B - s->nchosen, 1),
								  MCXT_ALLOC_HUGE);
		s->nrest = 0;
		for (g = 0; g < s->B; g++)
		{
			FcLeafState *leaf = fc_leaf_of(s, g);
			FcBlockKey	key;

			key.relid = leaf->relid;
			key.blkno = (BlockNumber) (g - leaf->offset);
			if (hash_search(s->chosen, &key, HASH_FIND, NULL) == NULL)
				s->rest[s->nrest++] = g;
			if ((g & 0xFFFF) == 0)
				CHECK_FOR_INTERRUPTS();
		}
		for (g = s->nrest; g > 1; g--)
		{
			uint64		j = pg_prng_uint64_range(&s->rng, 0, g - 1);
			uint64		tmp = s->rest[g - 1];

			s->rest[g - 1] = s->rest[j];
			s->rest[j] = tmp;
		}
		s->restpos = 0;
	}

	while (done < k)
	{
		if (s->rest != NULL)
		{
			if (s->restpos >= s->nrest)
				break;
			if (fc_try_choose(s, s->rest[s->restpos++]))
				done++;
		}
		else if (fc_try_choose(s, pg_prng_uint64_range(&s->rng, 0, s->B - 1)))
			done++;
	}
	return done;
}

/* ----------------------------------------------------------------
 * Receiving rows of a batch
 * ----------------------------------------------------------------
 */

typedef struct FcSampleReceiver
{
	DestReceiver pub;
	FcSampler  *s;
} FcSampleReceiver;

static bool
fc_sample_receive(TupleTableSlot *slot pg_attribute_unused(), DestReceiver *self)
{
	FcSampler  *s = ((FcSampleReceiver *) self)->s;

	if (s->cur_idx < 0 || s->cur_idx >= s->nblk)
		elog(ERROR, "fast_count: a sampled row before any sampled block");
	s->n_match[s->cur_idx]++;
	return true;
}

static void
fc_sample_startup(DestReceiver *self pg_attribute_unused(), int operation pg_attribute_unused(), TupleDesc typeinfo pg_attribute_unused())
{
}

static void
fc_sample_noop(DestReceiver *self pg_attribute_unused())
{
}

/* ----------------------------------------------------------------
 * The sampling statement
 * ----------------------------------------------------------------
 */

/*
 * SELECT FROM from_rel TABLESAMPLE schema.fast_count_blocks(0) [WHERE filter]
 *
 * No column is selected: the privileges needed are count(*)'s (the
 * filter's columns, or any column).  Only matching rows reach the receiver.
 * Partitions that the filter prunes are never scanned: their blocks count
 * as sampled, with no matching rows.
 */
static RawStmt *
fc_build_sample_stmt(FcSampleJob *job)
{
	SelectStmt *sel = makeNode(SelectStmt);
	RangeTableSample *rts = makeNode(RangeTableSample);
	A_Const    *zero = makeNode(A_Const);

	zero->val.ival.type = T_Integer;
	zero->val.ival.ival = 0;
	zero->location = -1;

	rts->relation = (Node *) copyObject(job->from_rel);
	rts->method = list_make2(makeString(get_namespace_name(job->tsm_namespace)),
							 makeString(pstrdup("fast_count_blocks")));
	rts->args = list_make1(zero);
	rts->repeatable = NULL;
	rts->location = -1;

	sel->targetList = NIL;
	sel->whereClause = copyObject(job->filter);
	sel->fromClause = list_make1(rts);
#if PG_VERSION_NUM < 170000
	sel->limitOption = LIMIT_OPTION_DEFAULT;
#endif
	sel->op = SETOP_NONE;
	return n1_fc_make_raw((Node *) sel);
}

/* ----------------------------------------------------------------
 * The estimator
 * ----------------------------------------------------------------
 */

typedef struct FcStats
{
	int64		m;				/* blocks in the sample */
	double		matched;		/* matching rows in the sample */
	double		mean;
	double		var;			/* sample variance of per-block matches */
	double		estimate;
	double		half;			/* half-width of the 95% interval */
} FcStats;

static void
fc_stats(FcSampler *s, FcStats *st)
{
	double		sum = 0,
				sumsq = 0;
	int64		m = 0;
	int32		i;

	for (i = 0; i < s->nblk; i++)
	{
		double		y;

		if (!s->in_sample[i])
			continue;
		y = (double) s->n_match[i];
		sum += y;
		sumsq += y * y;
		m++;
	}
	st->m = m;
	st->matched = sum;
	st->mean = m > 0 ? sum / m : 0;
	st->var = m > 1 ? Max(0.0, (sumsq - m * st->mean * st->mean) / (m - 1)) : 0;

	/*
	 * A sample of nearly equal blocks says little about the blocks it missed:
	 * if a fraction q of blocks differed (by up to the mean), m blocks would
	 * all miss them with probability (1-q)^m, so at 95% q < 3/m.  Never
	 * assume less variance than such blocks would add.
	 */
	if (m > 0)
		st->var = Max(st->var, 3.0 * st->mean * st->mean / (double) m);
	st->estimate = (double) s->B * st->mean;
	if (m > 0 && (uint64) m < s->B)
		st->half = FC_Z95 * sqrt((double) s->B * (double) s->B *
								 (1.0 - (double) m / (double) s->B) *
								 st->var / (double) m);
	else
		st->half = 0;
}

static double
fc_ms_since(TimestampTz t)
{
	return (double) (GetCurrentTimestamp() - t) / 1000.0;
}

/* Gives the scans of this sampler's own plan their sampler. */
static bool
fc_attach_walker(PlanState *ps, void *context)
{
	if (ps == NULL)
		return false;
	if (IsA(ps, SampleScanState))
	{
		SampleScanState *ss = (SampleScanState *) ps;

		if (ss->tsmroutine != NULL &&
			ss->tsmroutine->NextSampleBlock == fc_tsm_next_block &&
			ss->tsm_state != NULL)
			((FcTsmScan *) ss->tsm_state)->s = (FcSampler *) context;
	}
	return planstate_tree_walker(ps, fc_attach_walker, context);
}

static void
fc_attach(PlanState *ps, void *arg)
{
	fc_attach_walker(ps, arg);
}

typedef struct FcBatchRun
{
	FcSampler  *s;
	PlannedStmt *plan;
	const char *src;
} FcBatchRun;

static void
fc_batch_run(void *arg)
{
	FcBatchRun *run = (FcBatchRun *) arg;
	FcSampleReceiver recv;

	memset(&recv, 0, sizeof(recv));
	recv.pub.receiveSlot = fc_sample_receive;
	recv.pub.rStartup = fc_sample_startup;
	recv.pub.rShutdown = fc_sample_noop;
	recv.pub.rDestroy = fc_sample_noop;
	recv.pub.mydest = DestNone;
	recv.s = run->s;
	n1_fc_run_plan(run->plan, run->src, (DestReceiver *) &recv,
				   fc_attach, run->s);
}

/*
 * Runs one batch.  Returns the time it took in ms.  After a deadline cut
 * that left a batch spread over several leaves partly read (the executor
 * reads leaves one after another, so the part read is not a uniform sample)
 * the batch is dropped, unless nothing else was read.  A batch stopped by
 * the hard deadline (the budget guard cancelled it) is dropped whole.
 */
static double
fc_run_batch(FcSampler *s, PlannedStmt *plan, const char *src,
			 TimestampTz hard_deadline)
{
	FcBatchRun	run;
	TimestampTz t0 = GetCurrentTimestamp();
	int			i;
	int			leaves_in_batch = 0;
	bool		finished;

	s->cur_idx = -1;
	run.s = s;
	run.plan = plan;
	run.src = src;
	finished = n1_fc_run_guarded(fc_batch_run, &run, hard_deadline);
	s->cur_idx = -1;

	for (i = 0; i < s->nleaves; i++)
	{
		FcLeafState *leaf = &s->leaves[i];

		if (leaf->nbatch == 0)
			continue;
		leaves_in_batch++;
		/* pruned by the filter (the executor begins every other leaf) */
		if (finished && !leaf->begun)
		{
			int			j;

			for (j = 0; j < leaf->nbatch; j++)
				s->in_sample[leaf->batch_idx[j]] = true;
		}
	}
	if (!finished)
		s->cut = true;
	if (!finished || (s->cut && leaves_in_batch > 1 && s->have_sample))
	{
		for (i = 0; i < s->nleaves; i++)
		{
			FcLeafState *leaf = &s->leaves[i];
			int			j;

			for (j = 0; j < leaf->nbatch; j++)
			{
				s->in_sample[leaf->batch_idx[j]] = false;
				s->n_match[leaf->batch_idx[j]] = 0;
			}
		}
	}
	if (!s->cut)
		s->have_sample = true;
	return fc_ms_since(t0);
}

/* ----------------------------------------------------------------
 * The batch loop
 * ----------------------------------------------------------------
 */

void
n1_fc_sample(FcSampleJob *job, FcSampleOut *out, StringInfo note)
{
	FcSampler  *s;
	HASHCTL		ctl;
	RawStmt    *raw;
	List	   *queries;
	PlannedStmt *plan;
	FcStats		st;
	uint64		B = 0;
	int			i;
	double		sample_ms = 0;
	bool		tried_exact = false;
	double		e = job->max_error;

	memset(out, 0, sizeof(*out));

	s = palloc0(sizeof(FcSampler));
	s->nleaves = job->nleaves;
	s->leaves = palloc0(sizeof(FcLeafState) * Max(job->nleaves, 1));
	for (i = 0; i < job->nleaves; i++)
	{
		s->leaves[i].relid = job->leaves[i].relid;
		s->leaves[i].nblocks = job->leaves[i].nblocks;
		s->leaves[i].offset = B;
		B += job->leaves[i].nblocks;
	}
	s->B = B;
	out->pages_total = (int64) B;
	if (B == 0)
	{
		out->exact = true;
		return;
	}

	if (n1_fast_count_seed >= 0)
		pg_prng_seed(&s->rng, (uint64) n1_fast_count_seed);
	else
		pg_prng_seed(&s->rng, pg_prng_uint64(&pg_global_prng_state));
	s->deadline = job->deadline;
	s->capblk = 256;
	s->n_match = palloc_extended(sizeof(int64) * s->capblk, MCXT_ALLOC_HUGE);
	s->in_sample = palloc_extended(sizeof(bool) * s->capblk, MCXT_ALLOC_HUGE);

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(FcBlockKey);
	ctl.entrysize = sizeof(FcBlockKey);
	ctl.hcxt = CurrentMemoryContext;
	s->chosen = hash_create("fast_count sampled blocks", 1024, &ctl,
							HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	raw = fc_build_sample_stmt(job);
	queries = n1_fc_analyze(raw, job->source_text);
	if (list_length(queries) != 1)
		elog(ERROR, "fast_count: unexpected rewrite of the sampling query");
	plan = n1_fc_plan(linitial_node(Query, queries), job->source_text);

	/* the pilot */
	fc_plan_batch(s, Min((uint64) FC_PILOT_BLOCKS, B));
	sample_ms += fc_run_batch(s, plan, job->source_text, job->hard_deadline);

	for (;;)
	{
		double		remaining_ms;
		double		per_block_ms;
		double		need;
		int64		next;
		int64		affordable;

		fc_stats(s, &st);
		if ((uint64) st.m >= B)
		{
			out->exact = true;
			appendStringInfoString(note, "; every block read");
			break;
		}
		if (s->cut)
		{
			out->budget_cut = true;
			appendStringInfoString(note, "; stopped by n1detect.fast_count_budget");
			break;
		}

		if (st.matched < FC_FEW_MATCHES && !tried_exact && job->exact_stmt)
		{
			int64		cnt;
			TimestampTz now = GetCurrentTimestamp();

			tried_exact = true;
			if (n1_fc_exact_count(job->exact_stmt, job->source_text,
								  now + Max(job->deadline - now, 0) / 2, &cnt))
			{
				appendStringInfo(note, "; %.0f matching rows in %lld sampled blocks, too few: counted exactly",
								 st.matched, (long long) st.m);
				out->exact = true;
				out->estimate = out->lower = out->upper = (double) cnt;
				out->rows_matched = cnt;
				out->pages_read = st.m;
				return;
			}
			appendStringInfoString(note, "; exact count did not fit half the remaining budget");
		}

		if (st.matched >= FC_FEW_MATCHES && st.estimate > 0 &&
			st.half / st.estimate <= e)
		{
			appendStringInfo(note, "; reached %.2f%% relative error", 100.0 * st.half / st.estimate);
			break;
		}

		/* blocks needed for relative error e: n0 / (1 + n0 / B) */
		if (st.mean > 0 && st.matched >= FC_FEW_MATCHES)
		{
			double		cv2 = st.var / (st.mean * st.mean);
			double		n0 = FC_Z95 * FC_Z95 * cv2 / (e * e);

			need = n0 / (1.0 + n0 / (double) B);
			need = Max(need * 1.1, (double) st.m + 1);
		}
		else
			need = Max((double) st.m * 4.0, (double) st.m + FC_PILOT_BLOCKS);
		if (need >= FC_READ_ALL_FRACTION * (double) B)
			need = (double) B;

		remaining_ms = (double) (job->deadline - GetCurrentTimestamp()) / 1000.0;
		per_block_ms = sample_ms / Max(st.m, 1);
		affordable = (int64) floor(remaining_ms * 0.9 / Max(per_block_ms, 1e-4));
		next = (int64) ceil(need) - st.m;
		if (next > affordable)
		{
			/* not all that is needed fits; a larger sample still helps */
			next = affordable;
		}
		/* grow at most 8-fold per batch: the pilot's variance may be off */
		next = Min(next, Max(st.m * 8, (int64) FC_PILOT_BLOCKS));
		if (next <= 0)
		{
			out->budget_cut = true;
			appendStringInfoString(note, "; n1detect.fast_count_budget allowed no more blocks");
			break;
		}
		if (fc_plan_batch(s, next) == 0)
			break;
		sample_ms += fc_run_batch(s, plan, job->source_text, job->hard_deadline);
	}

	fc_stats(s, &st);
	out->pages_read = st.m;
	out->rows_matched = (int64) st.matched;
	out->estimate = st.estimate;
	if (!out->exact && st.m == 0)
	{
		/* the budget guard stopped the very first batch: no sample */
		out->no_sample = true;
		return;
	}
	if (out->exact || (uint64) st.m >= B)
	{
		out->exact = true;
		out->estimate = st.matched;
		out->lower = out->upper = st.matched;
	}
	else
	{
		out->lower = Max(st.estimate - st.half, st.matched);
		out->upper = st.estimate + st.half;
		if (st.matched == 0)
		{
			/*
			 * Nothing matched in the rows of m of the B blocks: by the rule of
			 * three, at 95% fewer than 3 in that many rows match, so fewer
			 * than 3 B / m in the whole relation.
			 */
			out->upper = ceil(3.0 * (double) B / (double) Max(st.m, 1));
		}
		if (s->cut && !s->have_sample && s->nleaves > 1)
			appendStringInfoString(note, "; first batch cut short, the sample may not be uniform across partitions");
	}
}
