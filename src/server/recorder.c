/*
 * recorder.c
 *		The hot path: executor, utility and parse-analysis hooks that turn
 *		each statement of this backend into an N1Statement (query id,
 *		parameter hash, timing, rows), write it to the backend's slot, and
 *		feed the detector; plus what happens when the detector reports a
 *		burst (publishing, parameter samples, n1detect.action).
 *
 * Per statement this takes no lock, allocates nothing and reads no catalog:
 * two clock readings, a hash of the parameters, a lock-free slot write and
 * one detector call.  Everything else happens only on the slow path, when a
 * query crosses n1detect.min_calls or a unit of work with bursts ends.
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/transam.h"
#include "access/xact.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/params.h"
#include "parser/analyze.h"
#include "storage/ipc.h"
#include "tcop/utility.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
#if PG_VERSION_NUM >= 160000
#include "nodes/queryjumble.h"
#else
#include "utils/queryjumble.h"
#endif

#include "n1detect.h"

/* Statements started but not ended yet (nesting, cursors), by QueryDesc. */
#define MAX_OPEN_QUERIES 32

typedef struct OpenQuery
{
	QueryDesc  *query_desc;
	TimestampTz start;
	uint64		rows;			/* summed over ExecutorRun calls (cursors run several times) */
	int			nesting_level;
} OpenQuery;

/* What this backend knows of each burst of the open unit (by N1Burst.index). */
typedef struct LocalBurst
{
	uint64		generation;		/* n1_shared->generation the counts below belong to */
	Oid			userid;
	N1Samples	samples;
	/* what the burst had counted when n1_reset() came in its middle */
	int64		reset_calls;
	int64		reset_exec_us;
	int64		reset_start_us; /* first call after that reset; 0 if none came */
} LocalBurst;

/* Type length and by-value flag per type OID, so hashing never reads the catalog twice. */
#define TYPE_CACHE_SLOTS 64
typedef struct TypeInfo
{
	Oid			typid;
	int16		typlen;
	bool		typbyval;
} TypeInfo;

static ExecutorStart_hook_type prev_ExecutorStart = NULL;
static ExecutorRun_hook_type prev_ExecutorRun = NULL;
static ExecutorFinish_hook_type prev_ExecutorFinish = NULL;
static ExecutorEnd_hook_type prev_ExecutorEnd = NULL;
static ProcessUtility_hook_type prev_ProcessUtility = NULL;
static post_parse_analyze_hook_type prev_post_parse_analyze = NULL;

static int	exec_nested_level = 0;
static OpenQuery open_queries[MAX_OPEN_QUERIES];
static int	n_open_queries = 0;

/* Nesting level of each open subtransaction when it began (see subxact_callback). */
#define MAX_SUBXACT_LEVELS 64
typedef struct SubxactLevel
{
	SubTransactionId subid;
	int			level;
} SubxactLevel;

static SubxactLevel subxact_levels[MAX_SUBXACT_LEVELS];
static int	n_subxact_levels = 0;

/* Nesting level of a statement calling an n1detect function, or -1. */
static int	own_statement_level = -1;

static N1Detector detector;
static bool detector_ready = false;
static LocalBurst local_bursts[N1_UNIT_MAX_BURSTS];
static N1BackendSlot *slot = NULL;

static const char *seen_application_name_ptr = NULL;
static char seen_application_name[NAMEDATALEN];

static TypeInfo type_cache[TYPE_CACHE_SLOTS];

/*
 * Statements that read no user table are never offenders nor parents:
 * SELECT 1, SELECT now(), and the catalog queries of drivers and ORMs
 * (type and table introspection), whose rows drive no application loop.
 */
static inline bool
reads_user_table(PlannedStmt *plan)
{
	ListCell   *lc;

	foreach(lc, plan->relationOids)
	{
		if (lfirst_oid(lc) >= FirstNormalObjectId)
			return true;
	}
	return false;
}

static inline bool
tracking_at(int level)
{
	return n1_track == N1_TRACK_ALL || (n1_track == N1_TRACK_TOP && level == 0);
}

/* ---------- parameter hashing ---------- */

/*
 * A fast 64-bit hash of a short byte string (a statement's constants, a text
 * parameter): 8 bytes at a time, multiply and xor-shift.  Only equality
 * matters here (same parameters or not), and the detector mixes again;
 * hash_bytes_extended costs several times more for the few bytes typical.
 */
static inline uint64
hash_text(const char *p, size_t len)
{
	const uint64 k = UINT64CONST(0x9E3779B97F4A7C15);
	uint64		h = (uint64) len * k;
	uint64		w;

	while (len >= 8)
	{
		memcpy(&w, p, 8);
		h = (h ^ w) * k;
		h ^= h >> 29;
		p += 8;
		len -= 8;
	}
	if (len > 0)
	{
		w = 0;
		for (size_t i = 0; i < len; i++)
			w = (w << 8) | (unsigned char) p[i];
		h = (h ^ w) * k;
		h ^= h >> 29;
	}
	return h;
}

static void
type_len_byval(Oid typid, int16 *typlen, bool *typbyval)
{
	TypeInfo   *t = &type_cache[typid % TYPE_CACHE_SLOTS];

	if (unlikely(t->typid != typid))
	{
		get_typlenbyval(typid, &t->typlen, &t->typbyval);
		t->typid = typid;
	}
	*typlen = t->typlen;
	*typbyval = t->typbyval;
}

/* Hash of the bound parameter values of one execution (0 when none). */
static uint64
hash_params(ParamListInfo params)
{
	uint64		h;
	ParamExternData workspace;

	if (params == NULL || params->numParams == 0)
		return 0;

	h = (uint64) params->numParams;
	for (int i = 0; i < params->numParams; i++)
	{
		ParamExternData *prm;
		int16		typlen;
		bool		typbyval;
		uint64		v;

		if (params->paramFetch != NULL)
			prm = params->paramFetch(params, i + 1, true, &workspace);
		else
			prm = &params->params[i];

		if (prm == NULL || !OidIsValid(prm->ptype))
			v = 0x5bd1e995;
		else if (prm->isnull)
			v = 0x27d4eb2f165667c5;
		else
		{
			type_len_byval(prm->ptype, &typlen, &typbyval);
			if (typbyval)
				v = (uint64) prm->value;
			else if (typlen == -1)
			{
				struct varlena *p = (struct varlena *) DatumGetPointer(prm->value);

				v = hash_text(VARDATA_ANY(p), VARSIZE_ANY_EXHDR(p));
			}
			else if (typlen == -2)
			{
				const char *p = DatumGetCString(prm->value);

				v = hash_text(p, strlen(p));
			}
			else
				v = hash_text(DatumGetPointer(prm->value), typlen);
		}
		h = hash_combine64(h, v);
	}
	return h;
}

/*
 * Hash of the literal constants of one execution: the statement's text from
 * its first constant on (the simple protocol carries parameters there).
 */
static uint64
hash_constants(QueryDesc *queryDesc)
{
	PlannedStmt *plan = queryDesc->plannedstmt;
	int			offset = n1_query_constants_offset(plan->queryId);
	const char *text;
	int			len;

	if (offset == -1 || queryDesc->sourceText == NULL)
		return 0;				/* no constants */
	text = queryDesc->sourceText + Max(plan->stmt_location, 0);
	len = plan->stmt_len > 0 ? plan->stmt_len : (int) strlen(text);
	/* unknown offset (text evicted from the cache): hash the whole statement */
	if (offset < 0 || offset > len)
		offset = 0;
	return hash_text(text + offset, len - offset);
}

/* ---------- parse analysis: normalized text ---------- */

/*
 * Core leaves the query of DECLARE CURSOR without a query id; give it the id
 * the same SELECT has on its own, so a cursor can be a parent, and remember
 * the SELECT's text, not the DECLARE's (whose cursor name may change per
 * process).
 */
static pg_noinline void
remember_cursor_query(ParseState *pstate, Query *query)
{
	DeclareCursorStmt *cursor = (DeclareCursorStmt *) query->utilityStmt;
	Query	   *inner = (Query *) cursor->query;
	JumbleState *inner_jstate;
	int			end;
	int			start;

	if (inner == NULL || !IsA(inner, Query) ||
		inner->queryId != UINT64CONST(0) || !IsQueryIdEnabled())
		return;
#if PG_VERSION_NUM >= 160000
	inner_jstate = JumbleQuery(inner);
#else
	inner_jstate = JumbleQuery(inner, pstate->p_sourcetext);
#endif
	if (inner->queryId == UINT64CONST(0) || pstate->p_sourcetext == NULL)
		return;
	end = query->stmt_len > 0 ?
		query->stmt_location + query->stmt_len :
		(int) strlen(pstate->p_sourcetext);
	start = n1_cursor_query_start(pstate->p_sourcetext, query->stmt_location,
								  end - Max(query->stmt_location, 0));
	if (start < 0)
		start = Max(query->stmt_location, 0);
	n1_query_text_remember(inner->queryId, pstate->p_sourcetext, start,
						   end - start, inner->stmt_location, inner_jstate);
}

static void
n1_post_parse_analyze(ParseState *pstate, Query *query, JumbleState *jstate)
{
	if (prev_post_parse_analyze)
		prev_post_parse_analyze(pstate, query, jstate);

	if (n1_shared == NULL || n1_track == N1_TRACK_NONE || IsParallelWorker())
		return;

	if (query->utilityStmt && IsA(query->utilityStmt, DeclareCursorStmt))
	{
		remember_cursor_query(pstate, query);
		return;
	}

	if (query->queryId == UINT64CONST(0) || query->utilityStmt)
		return;

	n1_query_text_remember(query->queryId, pstate->p_sourcetext,
						   query->stmt_location, query->stmt_len,
						   query->stmt_location, jstate);
}

/* ---------- bursts: the slow path ---------- */

/* n1_reset() ran since this burst's latest call: count it afresh from this call. */
static bool
restart_after_reset(LocalBurst *local, const N1Burst *burst, const N1Statement *stmt)
{
	uint64		generation = pg_atomic_read_u64(&n1_shared->generation);

	if (likely(local->generation == generation))
		return false;
	local->generation = generation;
	local->reset_calls = burst->calls - 1;
	local->reset_exec_us = burst->exec_us - Max(stmt->end_us - stmt->start_us, 0);
	local->reset_start_us = stmt->start_us;
	return true;
}

/*
 * The burst as readers see it, counted since the reset it lives in: a burst
 * that was in progress when n1_reset() ran starts again from its next call.
 */
static void
summarize(N1BurstSummary *out, const N1Burst *burst, const LocalBurst *local)
{
	out->userid = local->userid;
	out->queryid = burst->query_id;
	out->parent_queryid = burst->parent_query_id;
	out->kind = burst->kind;
	out->calls = burst->calls;
	out->distinct_params = burst->distinct_params;
	out->parent_calls = burst->parent_calls;
	out->parent_rows = (int64) burst->parent_rows;
	out->exec_us = burst->exec_us;
	out->started_at = (TimestampTz) burst->first_start_us;
	out->ended_at = (TimestampTz) burst->last_end_us;
	if (unlikely(local->reset_start_us != 0))
	{
		out->calls -= local->reset_calls;
		out->exec_us -= local->reset_exec_us;
		out->started_at = (TimestampTz) local->reset_start_us;
	}
}

/* Detector callback: a burst's unit ended; add it to n1_offenders and n1_bursts. */
static void
burst_ended(void *arg pg_attribute_unused(), const N1Burst *burst, N1UnitEndReason reason pg_attribute_unused())
{
	LocalBurst *local = &local_bursts[burst->index];
	N1BurstSummary summary;

	summarize(&summary, burst, local);
	n1_offender_record_burst(&summary, &local->samples,
							 slot ? slot->application_name : NULL,
							 n1_query_text_lookup(burst->query_id),
							 n1_query_text_lookup(burst->parent_query_id),
							 local->generation, slot,
							 burst->index < N1_SLOT_BURSTS ? burst->index : -1);
}
/* n1detect.action: tell the client (or the log) that a query became a burst. */
static void
act_on_burst(const N1Burst *burst)
{
	int			elevel;
	N1Burst		reported = *burst;	/* ending the unit below recycles *burst */

	switch (n1_action)
	{
		case N1_ACTION_LOG:
			elevel = LOG;
			break;
		case N1_ACTION_WARNING:
			elevel = WARNING;
			break;
		case N1_ACTION_ERROR:
			elevel = ERROR;
			break;
		default:
			return;
	}
	if ((n1_action_kinds & (1 << burst->kind)) == 0)
		return;

	/* An error ends the unit of work: the burst is recorded, not lost. */
	if (elevel == ERROR)
		n1_detector_end_unit(&detector, N1_END_TRANSACTION);
	n1_report_burst(&reported, elevel);
}

static void
on_burst_statement(QueryDesc *queryDesc, const N1Statement *stmt,
				   const N1StatementResult *result)
{
	const N1Burst *burst = result->burst;
	LocalBurst *local = &local_bursts[burst->index];
	bool		publish = result->kind_changed;
	N1SlotBurst copy;

	if (result->crossed)
	{
		local->generation = pg_atomic_read_u64(&n1_shared->generation);
		local->userid = GetUserId();
		local->samples.count = 0;
		local->reset_start_us = 0;
	}
	else if (restart_after_reset(local, burst, stmt))
		publish = true;			/* the reset removed its row */

	if (result->capture_sample)
		n1_capture_sample(queryDesc, &local->samples);
	copy.used = true;
	copy.generation = local->generation;
	summarize(&copy.burst, burst, local);
	if (publish)
	{
		N1OffenderKey key;

		n1_query_text_remember_source(burst->query_id, queryDesc->sourceText,
									  queryDesc->plannedstmt->stmt_location,
									  queryDesc->plannedstmt->stmt_len);
		n1_offender_key(&key, MyDatabaseId, &copy.burst);
		n1_offender_publish(&key, n1_query_text_lookup(burst->query_id),
							n1_query_text_lookup(burst->parent_query_id));
	}
	if (slot && burst->index < N1_SLOT_BURSTS)
	{
		bool		with_samples = publish || result->capture_sample;

		if (with_samples)
			copy.samples = local->samples;
		n1_slot_write_burst(slot, burst->index, &copy, with_samples);
	}
	if (result->kind_changed && n1_action != N1_ACTION_NONE)
		act_on_burst(burst);
}

/* ---------- the detector's life in this backend ---------- */

static void
end_unit_at_exit(int code pg_attribute_unused(), Datum arg pg_attribute_unused())
{
	if (detector_ready && n1_shared != NULL)
		n1_detector_end_unit(&detector, N1_END_EXIT);
}

static bool
init_detector(void)
{
	N1DetectorConfig config;

	slot = n1_my_slot();
	if (slot == NULL)
		return false;

	memset(&config, 0, sizeof(config));
	config.min_calls = n1_min_calls;
	config.max_gap_us = (int64) n1_max_gap_ms * 1000;
	config.burst_ended = burst_ended;
	n1_detector_init(&detector, &config);
	/* registered after the slot's own exit callback, so it runs first */
	before_shmem_exit(end_unit_at_exit, (Datum) 0);
	detector_ready = true;
	return true;
}

/* The detector, set up on this backend's first statement. */
static inline bool
ensure_detector(void)
{
	return likely(detector_ready) || init_detector();
}

/* A change of application_name ends the unit of work. */
static inline void
check_application_name(void)
{
	if (likely(application_name == seen_application_name_ptr))
		return;
	seen_application_name_ptr = application_name;
	if (application_name && strncmp(application_name, seen_application_name, NAMEDATALEN - 1) == 0)
		return;
	n1_detector_end_unit(&detector, N1_END_APPLICATION);
	strlcpy(seen_application_name, application_name ? application_name : "", NAMEDATALEN);
	n1_slot_set_application_name(slot, seen_application_name);
}

static void
xact_callback(XactEvent event, void *arg pg_attribute_unused())
{
	/* called at every commit: keep the common case short */
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
	{
		/* an error unwound past the hooks: nothing is running any more */
		exec_nested_level = 0;
		n_subxact_levels = 0;
		/* statements of the aborted transaction will never reach ExecutorEnd */
		n_open_queries = 0;
		own_statement_level = -1;
	}
	else if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_PARALLEL_COMMIT)
		return;
	else
		n_subxact_levels = 0;
	if (detector_ready && detector.in_unit && IsTransactionBlock())
		n1_detector_end_unit(&detector, N1_END_TRANSACTION);
}

/*
 * The nesting level is counted without PG_TRY around the executor (that
 * costs a sigsetjmp per statement): an error unwinds past the hooks'
 * decrements, and is caught only where a (sub)transaction aborts, so the
 * level is restored there to what it was when that subtransaction began
 * (PL/pgSQL exception blocks, savepoints), and to 0 at transaction abort.
 */
static void
subxact_callback(SubXactEvent event, SubTransactionId mySubid,
				 SubTransactionId parentSubid pg_attribute_unused(), void *arg pg_attribute_unused())
{
	switch (event)
	{
		case SUBXACT_EVENT_START_SUB:
			if (n_subxact_levels < MAX_SUBXACT_LEVELS)
			{
				subxact_levels[n_subxact_levels].subid = mySubid;
				subxact_levels[n_subxact_levels].level = exec_nested_level;
				n_subxact_levels++;
			}
			break;
		case SUBXACT_EVENT_COMMIT_SUB:
		case SUBXACT_EVENT_ABORT_SUB:
			/* subtransaction ids grow: inner ones that ended are above it */
			while (n_subxact_levels > 0 &&
				   subxact_levels[n_subxact_levels - 1].subid >= mySubid)
			{
				n_subxact_levels--;
				if (event == SUBXACT_EVENT_ABORT_SUB &&
					subxact_levels[n_subxact_levels].subid == mySubid)
				{
					int			level = subxact_levels[n_subxact_levels].level;

					exec_nested_level = level;
					if (own_statement_level > level)
						own_statement_level = -1;
					/* forget statements started deeper, abandoned by the error */
					for (int i = n_open_queries - 1; i >= 0; i--)
						if (open_queries[i].nesting_level > level)
							open_queries[i] = open_queries[--n_open_queries];
				}
			}
			break;
		default:
			break;
	}
}

/* A function of n1detect runs in the current statement: ignore that statement. */
void
n1_mark_own_statement(void)
{
	int			level = Max(exec_nested_level - 1, 0);

	if (own_statement_level < 0 || level < own_statement_level)
		own_statement_level = level;
}

/* ---------- executor hooks ---------- */

static OpenQuery *
find_open_query(QueryDesc *queryDesc)
{
	for (int i = n_open_queries - 1; i >= 0; i--)
		if (open_queries[i].query_desc == queryDesc)
			return &open_queries[i];
	return NULL;
}

static void
n1_ExecutorStart(QueryDesc *queryDesc, int eflags)
{
	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);

	if (n1_shared == NULL || !tracking_at(exec_nested_level) ||
		queryDesc->plannedstmt->queryId == UINT64CONST(0) ||
		!reads_user_table(queryDesc->plannedstmt) ||
		(eflags & EXEC_FLAG_EXPLAIN_ONLY) || IsParallelWorker())
		return;

	if (unlikely(n_open_queries == MAX_OPEN_QUERIES))
	{
		/* forget the oldest (it leaked through an error we did not see) */
		memmove(&open_queries[0], &open_queries[1], sizeof(OpenQuery) * (MAX_OPEN_QUERIES - 1));
		n_open_queries--;
	}
	open_queries[n_open_queries].query_desc = queryDesc;
	open_queries[n_open_queries].start = GetCurrentTimestamp();
	open_queries[n_open_queries].rows = 0;
	open_queries[n_open_queries].nesting_level = exec_nested_level;
	n_open_queries++;
}

static void
#if PG_VERSION_NUM >= 180000
n1_ExecutorRun(QueryDesc *queryDesc, ScanDirection direction, uint64 count)
#else
n1_ExecutorRun(QueryDesc *queryDesc, ScanDirection direction, uint64 count,
			   bool execute_once)
#endif
{
	OpenQuery  *open;

	/* no PG_TRY: an error's (sub)transaction abort restores the level */
	exec_nested_level++;
#if PG_VERSION_NUM >= 180000
	if (prev_ExecutorRun)
		prev_ExecutorRun(queryDesc, direction, count);
	else
		standard_ExecutorRun(queryDesc, direction, count);
#else
	if (prev_ExecutorRun)
		prev_ExecutorRun(queryDesc, direction, count, execute_once);
	else
		standard_ExecutorRun(queryDesc, direction, count, execute_once);
#endif
	exec_nested_level--;

	if (n_open_queries == 0 || (open = find_open_query(queryDesc)) == NULL)
		return;
	open->rows += queryDesc->estate->es_processed;

	/*
	 * A run with a row limit is a cursor fetch (or a PL/pgSQL FOR loop's
	 * batch): its rows drive the statements that follow before the cursor
	 * ends, so they may make it a parent now.
	 */
	if (count > 0 && open->rows >= 2 && ensure_detector() &&
		own_statement_level < 0)
	{
		/*
		 * Settle application_name first: its first check in a backend would
		 * otherwise end the unit these rows open (a connection whose first
		 * statement is a cursor: Django's .iterator() inside atomic()).
		 */
		check_application_name();
		n1_detector_rows(&detector, queryDesc->plannedstmt->queryId, open->rows,
						 (int64) GetCurrentTimestamp());
	}
}

static void
n1_ExecutorFinish(QueryDesc *queryDesc)
{
	/* AFTER triggers and data-modifying CTEs run nested statements here */
	exec_nested_level++;
	if (prev_ExecutorFinish)
		prev_ExecutorFinish(queryDesc);
	else
		standard_ExecutorFinish(queryDesc);
	exec_nested_level--;
}

static void
n1_ExecutorEnd(QueryDesc *queryDesc)
{
	OpenQuery  *open = NULL;
	OpenQuery	ended = {0};
	N1Statement stmt;
	N1StatementResult result;
	N1SlotEvent event;
	bool		own;

	if (n_open_queries > 0 && (open = find_open_query(queryDesc)) != NULL)
	{
		ended = *open;
		*open = open_queries[--n_open_queries];
	}

	if (prev_ExecutorEnd)
		prev_ExecutorEnd(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);

	/*
	 * A statement that called an n1detect function, and whatever ran inside
	 * it, is not the application's: skip it (ExecutorEnd runs at the
	 * statement's own nesting level).
	 */
	if (unlikely(own_statement_level >= 0))
	{
		own = true;
		if (exec_nested_level <= own_statement_level)
			own_statement_level = -1;
	}
	else
		own = false;

	/* Nothing to record, or cleaning up after an error. */
	if (open == NULL || own || !IsTransactionState() || !ensure_detector())
		return;

	stmt.query_id = queryDesc->plannedstmt->queryId;
	stmt.param_hash = hash_combine64(hash_params(queryDesc->params),
									 hash_constants(queryDesc));
	stmt.start_us = (int64) ended.start;
	stmt.end_us = (int64) GetCurrentTimestamp();
	/* Only rows sent back can drive a loop: not those an UPDATE touched. */
	stmt.rows = (queryDesc->operation == CMD_SELECT ||
				 queryDesc->plannedstmt->hasReturning) ? ended.rows : 0;

	event.seq = slot->events_written + 1;
	event.queryid = stmt.query_id;
	event.param_hash = stmt.param_hash;
	event.start = ended.start;
	event.exec_us = stmt.end_us - stmt.start_us;
	event.rows = ended.rows;
	event.nesting_level = ended.nesting_level;
	n1_slot_write_event(slot, &event);

	check_application_name();
	if (unlikely(detector.config.min_calls != n1_min_calls ||
				 detector.config.max_gap_us != (int64) n1_max_gap_ms * 1000))
		n1_detector_configure(&detector, n1_min_calls, (int64) n1_max_gap_ms * 1000);

	n1_detector_statement(&detector, &stmt, &result);
	if (result.burst)
		on_burst_statement(queryDesc, &stmt, &result);
}

/* ---------- utility statements: nesting ---------- */

/*
 * Statements run by EXECUTE, DECLARE CURSOR, FETCH and CLOSE are the
 * client's own statements: they stay at the caller's nesting level.
 */
static bool
keeps_nesting_level(Node *parsetree)
{
	return IsA(parsetree, ExecuteStmt) ||
		IsA(parsetree, DeclareCursorStmt) ||
		IsA(parsetree, FetchStmt) ||
		IsA(parsetree, ClosePortalStmt) ||
		IsA(parsetree, PrepareStmt) ||
		IsA(parsetree, DeallocateStmt);
}

static void
n1_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
				  bool readOnlyTree, ProcessUtilityContext context,
				  ParamListInfo params, QueryEnvironment *queryEnv,
				  DestReceiver *dest, QueryCompletion *qc)
{
	bool		nest = !keeps_nesting_level(pstmt->utilityStmt);

	if (nest)
		exec_nested_level++;
	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
							params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
	if (nest)
		exec_nested_level--;
}

void
n1_recorder_install_hooks(void)
{
	prev_post_parse_analyze = post_parse_analyze_hook;
	post_parse_analyze_hook = n1_post_parse_analyze;
	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = n1_ExecutorStart;
	prev_ExecutorRun = ExecutorRun_hook;
	ExecutorRun_hook = n1_ExecutorRun;
	prev_ExecutorFinish = ExecutorFinish_hook;
	ExecutorFinish_hook = n1_ExecutorFinish;
	prev_ExecutorEnd = ExecutorEnd_hook;
	ExecutorEnd_hook = n1_ExecutorEnd;
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = n1_ProcessUtility;
	RegisterXactCallback(xact_callback, NULL);
	RegisterSubXactCallback(subxact_callback, NULL);
}
