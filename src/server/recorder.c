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
 *
 * It must never make a statement fail (but for n1detect.action = error, and
 * never inside COMMIT), nor lose track of the nesting level, whatever
 * transaction control, error or depth it sees.
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/parallel.h"
#include "access/transam.h"
#include "access/xact.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/params.h"
#include "parser/analyze.h"
#include "storage/ipc.h"
#include "tcop/pquery.h"
#include "tcop/utility.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/expandeddatum.h"
#include "utils/portal.h"
#include "utils/timestamp.h"
#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#endif
#if PG_VERSION_NUM >= 160000
#include "nodes/queryjumble.h"
#else
#include "utils/queryjumble.h"
#endif

#include "n1detect.h"
#include "value_hash.h"

/*
 * Statements started but not ended yet (nesting, open cursors), by
 * QueryDesc.  Beyond this many at once, the newer ones are not recorded.
 */
#define MAX_OPEN_QUERIES 32

typedef struct OpenQuery
{
	QueryDesc  *query_desc;
	TimestampTz start;
	uint64		rows;			/* summed over ExecutorRun calls (cursors run several times) */
	int			nesting_level;
	SubTransactionId subid;		/* (sub)transaction it started in */
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
	N1QueryTags tags;			/* of the call that made the burst (query_comment.c) */
	int			slot_pos;		/* where the slot shows it in progress, or -1 */
} LocalBurst;

StaticAssertDecl(sizeof(LocalBurst) * N1_UNIT_MAX_BURSTS <= N1_UNIT_LOCAL_BYTES,
				 "N1_UNIT_LOCAL_BYTES too small for the per-burst state");

/* Type length and by-value flag per type OID, so hashing never reads the catalog twice. */
#define TYPE_CACHE_SLOTS 64
typedef struct TypeInfo
{
	Oid			typid;
	int16		typlen;
	bool		typbyval;
} TypeInfo;

static ExecutorRun_hook_type prev_ExecutorRun = NULL;
static ExecutorFinish_hook_type prev_ExecutorFinish = NULL;
static ExecutorEnd_hook_type prev_ExecutorEnd = NULL;
static ProcessUtility_hook_type prev_ProcessUtility = NULL;
static post_parse_analyze_hook_type prev_post_parse_analyze = NULL;

/*
 * Nesting level: the hook frames (ExecutorRun, ExecutorFinish, utility
 * statements) live around the current point.  Utility frames restore the
 * level they found, also on error; an error that unwinds past executor
 * frames (no PG_TRY there: a sigsetjmp per statement) is repaired where it
 * is caught, which is always a (sub)transaction abort: see subxact_callback
 * and xact_callback.
 */
static int	exec_nested_level = 0;

/*
 * Level inside the innermost utility statement running (0 outside any), and
 * its kind.  Utility frames restore both, and the level, in PG_FINALLY, so
 * they are right after any error; a top-level abort that is not an error
 * (ROLLBACK in a procedure or DO block) happens inside them, at this level.
 */
static int	utility_level = 0;
static NodeTag utility_tag = T_Invalid;

static OpenQuery open_queries[MAX_OPEN_QUERIES];
static int	n_open_queries = 0;

/*
 * Nesting level when each open subtransaction began, by its transaction
 * nesting level (1 is the top transaction); grown on demand, so any depth
 * of savepoints or exception blocks is repaired on abort.
 */
static int *subxact_levels = NULL;
static int	subxact_levels_size = 0;

/* GetCurrentSubTransactionId(), kept by the callbacks (one load per statement) */
static SubTransactionId current_subid = TopSubTransactionId;

/*
 * Nesting level of a statement whose inner statements are not the
 * application's (it calls an n1detect function, or it is an EXPLAIN, COPY
 * (query) TO, CREATE TABLE AS...), or -1: statements deeper than it are
 * neither recorded nor given texts.
 */
static int	own_statement_level = -1;

/*
 * The unit of work statements go to now: query_comment.c keeps one per
 * trace id (a pooler interleaves requests); detector and local_bursts name
 * its parts.
 */
static N1TraceUnit *unit = NULL;
#define detector (unit->detector)
#define local_bursts ((LocalBurst *) unit->local)
static bool detector_ready = false;
/* n1_settings_version when every unit's detector was configured last. */
static uint64 configured_version;

/* n1_texts_evicted as the slot's counters show it. */
static uint64 published_texts_evicted;
static N1BackendSlot *slot = NULL;

static char seen_application_name[NAMEDATALEN];
static uint64 seen_application_name_version = 0;	/* n1_application_name_version then */

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

/* Inside a statement whose inner statements are not the application's. */
static inline bool
inside_own_statement(void)
{
	return own_statement_level >= 0 && exec_nested_level > own_statement_level;
}

/*
 * Nesting level of a statement starting now.  At level 0 outside any portal
 * a client backend runs no statement of the client: PostgreSQL itself runs
 * it (deferred triggers at COMMIT, a fast-path function call), so it counts
 * as nested.  Background workers' own statements stay at level 0.
 */
static inline int
start_level(void)
{
#if PG_VERSION_NUM >= 170000
	if (unlikely(exec_nested_level == 0 && ActivePortal == NULL && !AmBackgroundWorkerProcess()))
#else
	if (unlikely(exec_nested_level == 0 && ActivePortal == NULL && !IsBackgroundWorker))
#endif
		return 1;
	return exec_nested_level;
}

/*
 * Whether PostgreSQL runs the current executor call outside any statement of
 * the client: while committing (portals left open are closed, WITH HOLD
 * cursors and a procedure's FOR loops are materialized, deferred triggers
 * fire) or when the next statement replaces the unnamed portal.  An ERROR
 * there would fail the COMMIT, or a statement that has nothing to do with it.
 */
static bool
outside_client_statement(void)
{
	if (ActivePortal == NULL)
#if PG_VERSION_NUM >= 170000
		return !AmBackgroundWorkerProcess();
#else
		return !IsBackgroundWorker;
#endif
	/* a cursor being materialized into its hold store (HoldPortal) */
	return ActivePortal->holdStore != NULL && ActivePortal->queryDesc != NULL;
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
	return n1_hash_bytes(p, len, (uint64) len * UINT64CONST(0x9E3779B97F4A7C15));
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

#define FLAT_HASH_MAX 1024		/* expanded values up to this flat size are hashed by content */

/*
 * Hash of a varlena parameter by its value, never by a pointer: a toasted
 * value by its TOAST identity (the same stored value hashes alike), an
 * expanded one (a PL/pgSQL array variable) by its flat form when small (into
 * a static buffer: no allocation), else by its flat size.
 */
static uint64
hash_varlena(Datum value)
{
	static union
	{
		char		data[FLAT_HASH_MAX];
		double		align;
	}			flat;
	struct varlena *p = (struct varlena *) DatumGetPointer(value);

	if (likely(!VARATT_IS_EXTERNAL(p)))
		return hash_text(VARDATA_ANY(p), VARSIZE_ANY_EXHDR(p));
	if (VARATT_IS_EXTERNAL_ONDISK(p))
	{
		struct varatt_external ext;

		VARATT_EXTERNAL_GET_POINTER(ext, p);
		return hash_combine64(((uint64) ext.va_toastrelid << 32) | ext.va_valueid,
							  (uint64) ext.va_rawsize);
	}
	if (VARATT_IS_EXTERNAL_INDIRECT(p))
	{
		struct varatt_indirect redirect;

		VARATT_EXTERNAL_GET_POINTER(redirect, p);
		if (!VARATT_IS_EXTERNAL((struct varlena *) redirect.pointer))
			return hash_text(VARDATA_ANY(redirect.pointer), VARSIZE_ANY_EXHDR(redirect.pointer));
		return UINT64CONST(0x4e1d1ec7);
	}
	if (VARATT_IS_EXTERNAL_EXPANDED(p))
	{
		ExpandedObjectHeader *eoh = DatumGetEOHP(value);
		Size		size = EOH_get_flat_size(eoh);

		if (size >= VARHDRSZ && size <= FLAT_HASH_MAX)
		{
			EOH_flatten_into(eoh, flat.data, size);
			return hash_text(flat.data + VARHDRSZ, size - VARHDRSZ);
		}
		return hash_combine64(UINT64CONST(0xe4a9d3d1), (uint64) size);
	}
	return UINT64CONST(0x4e1d1ec7);
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
				v = hash_varlena(prm->value);
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
 * offset: n1_query_cached's; source_len: strlen of the source text;
 * text_end: n1_text_end of it; trailing: its trailing comment
 * (n1_statement_trace_hash).
 *
 * A trailing comment in that text is not hashed: it is no parameter, and
 * it changes with every statement when it carries a span id per query
 * (OpenTelemetry's sqlcommenter), which made the same lookup repeated with
 * the same key count as a loop instead of a duplicate.  n1scan, which hashes
 * the constants libpg_query finds, agrees.
 */
static uint64
hash_constants(QueryDesc *queryDesc, int offset, size_t source_len, size_t text_end,
			   const N1CommentSpan *trailing)
{
	PlannedStmt *plan = queryDesc->plannedstmt;
	const char *source = queryDesc->sourceText;
	size_t		loc = Max(plan->stmt_location, 0);
	size_t		end;			/* of the statement in source */
	size_t		from;			/* of its constants */
	N1CommentSpan span;

	if (offset == -1 || source == NULL)
		return 0;				/* no constants */
	end = plan->stmt_len > 0 ? loc + plan->stmt_len : source_len;
	/* the offset counts from the first token, after the leading comments */
	loc += n1_comment_skip_leading_fast(source + loc, end - loc);
	/* unknown offset (text evicted from the cache), or another layout: from the first token */
	if (offset < 0 || loc + offset > end)
		offset = 0;
	from = loc + offset;

	/*
	 * Only white space and ';' after the statement: its trailing comment is
	 * the text's.  Else (several statements in one string) look for it.
	 */
	if (likely(end >= text_end))
		span = *trailing;
	else if (n1_comment_trailing(source + loc, end - loc, &span))
	{
		span.start += loc;
		span.end += loc;
	}
	if (span.end > span.start && span.start >= from)
		return hash_combine64(hash_text(source + from, span.start - from),
							  hash_text(source + span.end, end - span.end));
	return hash_text(source + from, end - from);
}

/* ---------- parse analysis: normalized text ---------- */

/*
 * The query inside a DECLARE CURSOR or a PREPARE: remember the text of that
 * query alone, with its constants counted from its own first byte, as when
 * it runs on its own under the same query id (so whichever form comes first,
 * the text shown and the constants hashed are the query's).  Core leaves the
 * query of DECLARE CURSOR without a query id: give it the id the same SELECT
 * has on its own, so a cursor can be a parent.
 */
static pg_noinline void
remember_inner_query(ParseState *pstate, Query *outer, Query *inner,
					 JumbleState *jstate)
{
	int			end;
	int			start;

	if (inner == NULL || !IsA(inner, Query) || pstate->p_sourcetext == NULL)
		return;
	if (jstate == NULL)
	{
		/* without the constants' locations the text would claim none */
		if (!IsQueryIdEnabled())
			return;
#if PG_VERSION_NUM >= 160000
		jstate = JumbleQuery(inner);
#else
		jstate = JumbleQuery(inner, pstate->p_sourcetext);
#endif
	}
	if (inner->queryId == UINT64CONST(0))
		return;
	end = outer->stmt_len > 0 ?
		outer->stmt_location + outer->stmt_len :
		(int) strlen(pstate->p_sourcetext);
	start = n1_cursor_query_start(pstate->p_sourcetext, outer->stmt_location,
								  end - Max(outer->stmt_location, 0));
	if (start < 0)
		start = Max(outer->stmt_location, 0);
	n1_query_text_remember(inner->queryId, pstate->p_sourcetext, start,
						   end - start, start, jstate);
}

static pg_noinline void
remember_query(ParseState *pstate, Query *query, JumbleState *jstate)
{
	/*
	 * The query inside an EXPLAIN, COPY, CREATE VIEW... is analyzed with the
	 * whole utility statement as its text: never that query's text.
	 */
	if (n1_shared == NULL || n1_track == N1_TRACK_NONE || IsParallelWorker() ||
		inside_own_statement())
		return;

	if (query->utilityStmt && IsA(query->utilityStmt, DeclareCursorStmt))
	{
		remember_inner_query(pstate, query,
							 (Query *) ((DeclareCursorStmt *) query->utilityStmt)->query,
							 NULL);
		return;
	}

	if (query->queryId == UINT64CONST(0) || query->utilityStmt)
		return;

	/* PREPARE analyzes its query with the PREPARE statement's text and location */
	if (unlikely(utility_tag == T_PrepareStmt && exec_nested_level == utility_level))
	{
		remember_inner_query(pstate, query, query, jstate);
		return;
	}

	n1_query_text_remember(query->queryId, pstate->p_sourcetext,
						   query->stmt_location, query->stmt_len,
						   query->stmt_location, jstate);
}

/*
 * Parse analysis: remember the query's text.  Kept small (the work is in
 * remember_query) so that the common case, the query remembered last again
 * (the N of an N+1), costs a few instructions.
 */
static pg_noinline void
post_parse_analyze_chained(ParseState *pstate, Query *query, JumbleState *jstate)
{
	prev_post_parse_analyze(pstate, query, jstate);
	if ((uint64) query->queryId != n1_text_newest_id || query->queryId == 0 ||
		query->utilityStmt != NULL)
		remember_query(pstate, query, jstate);
}

static void
n1_post_parse_analyze(ParseState *pstate, Query *query, JumbleState *jstate)
{
	if (prev_post_parse_analyze)
		post_parse_analyze_chained(pstate, query, jstate);
	/* remembering the query remembered last again would change nothing */
	else if ((uint64) query->queryId != n1_text_newest_id || query->queryId == 0 ||
			 query->utilityStmt != NULL)
		remember_query(pstate, query, jstate);
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
	out->parent_evidence = burst->parent_evidence;
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
		/* the detector counts distinct values over the unit: bound them */
		out->distinct_params = Min(out->distinct_params, out->calls);
	}
}

/* A burst restarted by n1_reset() is one again once it has min_calls calls since. */
static inline bool
counts_since_reset(const N1BurstSummary *summary, const LocalBurst *local)
{
	return local->reset_start_us == 0 || summary->calls >= detector.config.min_calls;
}

/* Detector callback: a burst's unit ended; add it to n1_offenders and n1_bursts. */
static void
burst_ended(void *arg, const N1Burst *burst, N1UnitEndReason reason pg_attribute_unused())
{
	/* arg: the unit whose detector ended (not always the current one) */
	LocalBurst *local = &((LocalBurst *) ((N1TraceUnit *) arg)->local)[burst->index];
	int			slot_pos = local->slot_pos;
	N1BurstSummary summary;

	local->slot_pos = -1;
	n1_slot_position_release(slot_pos);
	summarize(&summary, burst, local);
	if (!counts_since_reset(&summary, local))
	{
		if (slot && slot_pos >= 0)
			n1_slot_clear_burst(slot, slot_pos);
		return;
	}
	n1_offender_record_burst(&summary, &local->samples, &local->tags,
							 slot ? slot->application_name : NULL,
							 n1_query_text_lookup(burst->query_id),
							 n1_query_text_lookup(burst->parent_query_id),
							 local->generation, slot, slot_pos);
}
/* n1detect.action: tell the client (or the log) that a query became a burst. */
static void
act_on_burst(const N1Burst *burst)
{
	int			elevel;
	N1Burst		reported = *burst;	/* ending the unit below recycles *burst */
	N1QueryTags tags = local_bursts[burst->index].tags;

	switch (n1_action)
	{
		case N1_ACTION_LOG:
			elevel = LOG;
			break;
		case N1_ACTION_WARNING:
			elevel = WARNING;
			break;
		case N1_ACTION_ERROR:
			/* never fail a COMMIT (see outside_client_statement) */
			elevel = outside_client_statement() ? WARNING : ERROR;
			break;
		default:
			return;
	}
	if ((n1_action_kinds & (1 << burst->kind)) == 0)
		return;

	/* An error ends the unit of work: the burst is recorded, not lost. */
	if (elevel == ERROR)
		n1_detector_end_unit(&detector, N1_END_TRANSACTION);
	n1_report_burst(&reported, &tags, elevel);
}

static void
on_burst_statement(QueryDesc *queryDesc, const N1Statement *stmt,
				   const N1StatementResult *result)
{
	const N1Burst *burst = result->burst;
	LocalBurst *local = &local_bursts[burst->index];
	bool		publish = result->kind_changed || result->parent_changed;
	N1SlotBurst copy;

	if (result->crossed)
	{
		local->generation = pg_atomic_read_u64(&n1_shared->generation);
		local->userid = GetUserId();
		local->samples.count = 0;
		local->reset_start_us = 0;
		n1_burst_tags(queryDesc, &local->tags);
		local->slot_pos = n1_slot_position_take();
	}
	else
		(void) restart_after_reset(local, burst, stmt);

	/*
	 * Samples only of the burst's own user: a SECURITY DEFINER function
	 * running the same query must not put values its caller cannot read
	 * into the caller's row (nor the other way round).
	 */
	if (result->capture_sample && GetUserId() == local->userid)
		n1_capture_sample(queryDesc, &local->samples);
	copy.generation = local->generation;
	summarize(&copy.burst, burst, local);
	copy.used = counts_since_reset(&copy.burst, local);
	/* the reset removed its row: back when it is a burst again */
	if (unlikely(local->reset_start_us != 0) && copy.burst.calls == detector.config.min_calls)
		publish = true;
	if (publish)
	{
		N1OffenderKey key;

		n1_query_text_remember_source(burst->query_id, queryDesc->sourceText,
									  queryDesc->plannedstmt->stmt_location,
									  queryDesc->plannedstmt->stmt_len);
		n1_offender_key(&key, MyDatabaseId, &copy.burst, &local->tags);
		n1_offender_publish(&key, n1_query_text_lookup(burst->query_id),
							n1_query_text_lookup(burst->parent_query_id));
	}
	if (slot && local->slot_pos >= 0)
	{
		bool		with_samples = publish || result->capture_sample;

		if (with_samples)
		{
			copy.samples = local->samples;
			copy.tags = local->tags;
		}
		n1_slot_write_burst(slot, local->slot_pos, &copy, with_samples);
	}
	if (result->kind_changed && n1_action != N1_ACTION_NONE)
		act_on_burst(burst);
}

/* ---------- the detector's life in this backend ---------- */

static void
end_unit_at_exit(int code pg_attribute_unused(), Datum arg pg_attribute_unused())
{
	if (detector_ready && n1_shared != NULL)
		n1_trace_units_end_all(N1_END_EXIT);
}

static bool
init_detector(void)
{
	N1DetectorConfig config;

	slot = n1_my_slot();
	if (slot == NULL)
		return false;

	memset(&config, 0, sizeof(config));
	configured_version = n1_settings_version;
	config.min_calls = n1_min_calls;
	config.min_calls_proven = n1_strict ? 2 : 0;
	config.max_gap_us = (int64) n1_max_gap_ms * 1000;
	config.burst_ended = burst_ended;
	unit = n1_trace_unit_first(sizeof(LocalBurst) * N1_UNIT_MAX_BURSTS, &config);
	if (unit == NULL)
		return false;
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

/*
 * A statement whose comment carries a trace id (or request id) other than
 * the current unit's goes to that trace id's unit (query_comment.c): a
 * change of request ends the unit whatever the gap, and requests a pooler
 * interleaves on this backend never share one.  trace: the statement's
 * n1_statement_trace_hash, 0 without a comment.
 */
static inline void
switch_unit(uint64 trace, int64 now_us)
{
	if (unlikely(trace != 0) && trace != unit->trace_hash)
		unit = n1_trace_unit_switch(unit, trace, now_us);
}

/* The trace id of a statement: 0 unless its text starts or ends with a comment. */
static inline uint64
statement_trace(QueryDesc *queryDesc)
{
	size_t		len = queryDesc->sourceText ? strlen(queryDesc->sourceText) : 0;

	if (len == 0 || !n1_may_have_comment(queryDesc->sourceText,
										 n1_text_end(queryDesc->sourceText, len)))
		return 0;
	return n1_statement_trace_hash(queryDesc->sourceText, len, NULL);
}

/*
 * A change of application_name ends the unit of work.  Compared by its text:
 * a new value may be stored where an older one was (malloc reuses it).
 */
static inline void
check_application_name(void)
{
	const char *name;

	/* unchanged since the last check (n1detect.c counts its changes) */
	if (likely(seen_application_name_version == n1_application_name_version &&
			   n1_application_name_watched))
		return;
	seen_application_name_version = n1_application_name_version;
	name = application_name ? application_name : "";
	if (strncmp(name, seen_application_name, NAMEDATALEN - 1) == 0)
		return;
	/*
	 * Not a unit of a trace id: behind a pooler the name changes with every
	 * switch of client, and the trace id already tells requests apart.
	 */
	if (unit->trace_hash == 0)
		n1_detector_end_unit(&detector, N1_END_APPLICATION);
	strlcpy(seen_application_name, name, NAMEDATALEN);
	n1_slot_set_application_name(slot, seen_application_name);
}

static pg_noinline void
configure_units(void)
{
	configured_version = n1_settings_version;
	n1_trace_units_configure(n1_min_calls, n1_strict ? 2 : 0, (int64) n1_max_gap_ms * 1000);
}

static void
xact_callback(XactEvent event, void *arg pg_attribute_unused())
{
	/* called at every commit: keep the common case short */
	switch (event)
	{
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:

			/*
			 * After an error, only frames of utility statements can still be
			 * live (they restored the level on their way out): 0 at the top.
			 * A ROLLBACK in a procedure or DO block aborts inside them, at
			 * their level, with nothing unwound.
			 */
			exec_nested_level = utility_level;
			if (own_statement_level >= exec_nested_level)
				own_statement_level = -1;
			/* statements of the aborted transaction never reach ExecutorEnd */
			n_open_queries = 0;
			n1_capture_xact_abort();
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PREPARE:
			/* every portal of the transaction was closed or materialized */
			n_open_queries = 0;
			break;
		default:
			return;
	}
	current_subid = TopSubTransactionId;
	if (detector_ready && detector.in_unit && IsTransactionBlock())
		n1_detector_end_unit(&detector, N1_END_TRANSACTION);
}

static pg_noinline void
grow_subxact_levels(int nest)
{
	int			size = Max(64, subxact_levels_size);

	while (size <= nest)
		size *= 2;
	if (subxact_levels == NULL)
		subxact_levels = MemoryContextAlloc(TopMemoryContext, size * sizeof(int));
	else
		subxact_levels = repalloc(subxact_levels, size * sizeof(int));
	subxact_levels_size = size;
}

/*
 * The nesting level is counted without PG_TRY around the executor (that
 * costs a sigsetjmp per statement): an error unwinds past the hooks, and is
 * caught only where a (sub)transaction aborts, so the level is restored
 * there to what it was when that subtransaction began (PL/pgSQL exception
 * blocks, savepoints), at any depth.
 */
static void
subxact_callback(SubXactEvent event, SubTransactionId mySubid,
				 SubTransactionId parentSubid, void *arg pg_attribute_unused())
{
	int			nest;

	switch (event)
	{
		case SUBXACT_EVENT_START_SUB:
			nest = GetCurrentTransactionNestLevel();
			if (unlikely(nest >= subxact_levels_size))
				grow_subxact_levels(nest);
			subxact_levels[nest] = exec_nested_level;
			current_subid = mySubid;
			break;
		case SUBXACT_EVENT_COMMIT_SUB:
			current_subid = parentSubid;
			break;
		case SUBXACT_EVENT_ABORT_SUB:
			current_subid = parentSubid;
			nest = GetCurrentTransactionNestLevel();
			if (nest < subxact_levels_size)
			{
				exec_nested_level = subxact_levels[nest];
				if (own_statement_level >= exec_nested_level)
					own_statement_level = -1;
			}
			/* forget statements started in it, abandoned by the abort */
			for (int i = n_open_queries - 1; i >= 0; i--)
				if (open_queries[i].subid >= mySubid)
					open_queries[i] = open_queries[--n_open_queries];
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

static inline void
forget_open_query(OpenQuery *open)
{
	OpenQuery  *last = &open_queries[--n_open_queries];

	if (open != last)
		*open = *last;
}

/* A finished statement: to the slot and the detector. */
static void
record_statement(QueryDesc *queryDesc, TimestampTz start, uint64 rows,
				 int nesting_level, int n_result_values, const uint64 *result_values)
{
	N1Statement stmt;
	N1StatementResult result;
	N1SlotEvent event;
	const char *source = queryDesc->sourceText;
	size_t		source_len = source ? strlen(source) : 0;
	size_t		text_end = source_len > 0 ? n1_text_end(source, source_len) : 0;
	int			constants_offset;
	N1CommentSpan trailing = {0, 0};
	uint64		trace = 0;

	/* a comment may carry a trace id (see switch_unit) */
	if (text_end > 0 && n1_may_have_comment(source, text_end))
		trace = n1_statement_trace_hash(source, source_len, &trailing);
	stmt.query_id = n1_query_cached(queryDesc->plannedstmt->queryId, &constants_offset);
	stmt.param_hash = hash_combine64(hash_params(queryDesc->params),
									 hash_constants(queryDesc, constants_offset, source_len,
													text_end, &trailing));
	stmt.n_result_values = n_result_values;
	stmt.result_values = result_values;
	stmt.n_values = N1_VALUES_LAZY;	/* hashed only while the detector records them */
	stmt.fill_values = n1_capture_param_values;
	stmt.fill_arg = queryDesc;
	stmt.start_us = (int64) start;
	stmt.end_us = (int64) GetCurrentTimestamp();
	/* Only rows sent back can drive a loop: not those an UPDATE touched. */
	stmt.rows = (queryDesc->operation == CMD_SELECT ||
				 queryDesc->plannedstmt->hasReturning) ? rows : 0;

	event.seq = slot->events_written + 1;
	event.queryid = queryDesc->plannedstmt->queryId;
	event.param_hash = stmt.param_hash;
	event.start = start;
	event.exec_us = stmt.end_us - stmt.start_us;
	event.rows = rows;
	event.nesting_level = nesting_level;

	check_application_name();
	if (unlikely(configured_version != n1_settings_version))
		configure_units();
	switch_unit(trace, stmt.start_us);

	n1_detector_statement(&detector, &stmt, &result);
	if (unlikely(result.unit_started))
		n1_capture_unit_started();
	if (result.capture_results)
		n1_capture_want_results(queryDesc->plannedstmt->queryId);
	if (unlikely(detector.counters_changed || published_texts_evicted != n1_texts_evicted))
	{
		published_texts_evicted = n1_texts_evicted;
		n1_trace_units_publish_counters(slot);
	}

	/*
	 * The common call of a burst in progress (its kind, parent and samples
	 * unchanged, no n1_reset() since it began): its counts go to the slot in
	 * the same write as the statement's event.
	 */
	if (result.burst != NULL)
	{
		LocalBurst *local = &local_bursts[result.burst->index];

		if (likely(!result.crossed && !result.kind_changed && !result.parent_changed &&
				   !result.capture_sample && local->slot_pos >= 0 &&
				   !restart_after_reset(local, result.burst, &stmt) &&
				   local->reset_start_us == 0))
		{
			n1_slot_write_event(slot, &event, result.burst, local->slot_pos);
			return;
		}
	}
	n1_slot_write_event(slot, &event, NULL, 0);
	if (result.burst)
		on_burst_statement(queryDesc, &stmt, &result);
}

/* Follows an open statement from now on; NULL beyond MAX_OPEN_QUERIES. */
static inline OpenQuery *
open_query(QueryDesc *queryDesc, int level, TimestampTz start, SubTransactionId subid)
{
	OpenQuery  *open;

	/* too many open at once (deep recursion, many cursors): not recorded */
	if (unlikely(n_open_queries == MAX_OPEN_QUERIES))
		return NULL;
	open = &open_queries[n_open_queries++];
	open->query_desc = queryDesc;
	open->start = start;
	open->rows = 0;
	open->nesting_level = level;
	open->subid = subid;
	return open;
}

/*
 * Whether a statement this backend does not follow yet is recorded from this
 * run on, and at which nesting level.  A statement is followed from its
 * first run, not from ExecutorStart: no hook there (a statement started but
 * never run, a cursor declared and closed unread, did nothing the client
 * waited for).  A cursor a function opened and the client fetches from (a
 * refcursor it returned) is the client's from that fetch on, as its own
 * DECLAREd cursors: at track = top its runs inside the function were not
 * followed, being nested.
 */
static inline bool
follow_from_run(QueryDesc *queryDesc, ScanDirection direction, int *level)
{
	if (n1_shared == NULL || queryDesc->plannedstmt->queryId == UINT64CONST(0) ||
		!ScanDirectionIsForward(direction) || IsParallelWorker())
		return false;
	/* (inside an EXPLAIN and such, it is dropped when it ends: see own_statement_level) */
	*level = start_level();
	return tracking_at(*level) && reads_user_table(queryDesc->plannedstmt);
}

static void
#if PG_VERSION_NUM >= 180000
n1_ExecutorRun(QueryDesc *queryDesc, ScanDirection direction, uint64 count)
#else
n1_ExecutorRun(QueryDesc *queryDesc, ScanDirection direction, uint64 count,
			   bool execute_once)
#endif
{
	OpenQuery  *open = n_open_queries > 0 ? find_open_query(queryDesc) : NULL;
	struct _DestReceiver *capture = NULL;
	int			first_level = -1;	/* >= 0: its first followed run, at this level */
	TimestampTz start = 0;
	SubTransactionId subid = current_subid;
	uint64		rows;

	if (open == NULL)
	{
		if (follow_from_run(queryDesc, direction, &first_level))
			start = GetCurrentTimestamp();
		else
			first_level = -1;
	}

	/*
	 * A recorded statement's rows: values that may prove it a parent (not
	 * those of a point lookup result_capture.c has stopped wrapping).
	 */
	if (open != NULL || first_level >= 0)
	{
		/* (int64 on 18: unsigned before the modulo) */
		uint64		queryid = (uint64) queryDesc->plannedstmt->queryId;

		if (count > 0 || n1_capture_skip[queryid % N1_CAPTURE_PLAN_SLOTS] != queryid)
			capture = n1_capture_begin(queryDesc, count > 0);
	}

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
	if (capture != NULL)
		n1_capture_end(queryDesc, capture);

	if (first_level < 0)
	{
		/* statements nested in this one may have moved its entry */
		if (open == NULL)
			return;
		if (open >= &open_queries[n_open_queries] || open->query_desc != queryDesc)
			open = find_open_query(queryDesc);
		if (open == NULL)
			return;
		open->rows += queryDesc->estate->es_processed;
		rows = open->rows;
	}
	else
		rows = queryDesc->estate->es_processed;

	/*
	 * A SELECT that has run to its end is finished: record it now, so that
	 * n1detect.action raises in the statement that ran it.  Its ExecutorEnd
	 * may come much later: with the extended protocol, when the next
	 * statement (or the COMMIT) replaces the unnamed portal.
	 */
	if (queryDesc->operation == CMD_SELECT &&
		!queryDesc->plannedstmt->hasModifyingCTE &&
		ScanDirectionIsForward(direction) &&
		(count == 0 || queryDesc->estate->es_processed < count))
	{
		int			nesting_level = first_level;
		const uint64 *result_values = NULL;
		int			n_result_values = N1_VALUES_UNKNOWN;

		/* (a run of 2 rows or more goes there even without values: see n1_capture_take) */
		if (n1_capture_claimed > 0 || queryDesc->estate->es_processed >= 2)
			n_result_values = n1_capture_take(queryDesc, &result_values, true);

		if (open != NULL)
		{
			start = open->start;
			nesting_level = open->nesting_level;
			forget_open_query(open);
		}
		if (unlikely(own_statement_level >= 0))
		{
			if (exec_nested_level <= own_statement_level)
				own_statement_level = -1;
			return;
		}
		if (ensure_detector())
			record_statement(queryDesc, start, rows, nesting_level,
							 n_result_values, result_values);
		return;
	}

	/* runs again (a cursor), or ends in ExecutorEnd (a data-modifying statement) */
	if (first_level >= 0)
	{
		open = open_query(queryDesc, first_level, start, subid);
		if (open == NULL)
		{
			const uint64 *values;

			(void) n1_capture_take(queryDesc, &values, true);
			return;
		}
		open->rows = rows;
	}

	/*
	 * A run with a row limit is a cursor fetch (or a PL/pgSQL FOR loop's
	 * batch, one row at a time in a procedure or DO block): its rows drive
	 * the statements that follow before the cursor ends, so they may make it
	 * a parent now.  Its first fetch makes it known to the detector before
	 * the statements its rows drive.
	 */
	if (count > 0 && own_statement_level < 0 &&
		(open->rows >= 2 ||
		 (ActivePortal != NULL && ActivePortal->queryDesc == queryDesc)) &&
		ensure_detector())
	{
		const uint64 *values;
		int			n_values = n1_capture_take(queryDesc, &values, false);

		/*
		 * Settle application_name first: its first check in a backend would
		 * otherwise end the unit these rows open (a connection whose first
		 * statement is a cursor: Django's .iterator() inside atomic()).
		 */
		check_application_name();
		switch_unit(statement_trace(queryDesc), (int64) GetCurrentTimestamp());
		n1_detector_rows(&detector, n1_query_canonical_id(queryDesc->plannedstmt->queryId),
						 open->rows, (int64) GetCurrentTimestamp(), values, n_values);
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

/* ExecutorEnd of a statement still open, or inside an n1detect function. */
static pg_noinline void
end_statement(QueryDesc *queryDesc)
{
	OpenQuery  *open;
	bool		tracked = false;
	TimestampTz start = 0;
	uint64		rows = 0;
	int			nesting_level = 0;
	int			n_result_values = N1_VALUES_UNKNOWN;
	const uint64 *result_values = NULL;

	if (n_open_queries > 0 && (open = find_open_query(queryDesc)) != NULL)
	{
		tracked = true;
		start = open->start;
		rows = open->rows;
		nesting_level = open->nesting_level;
		forget_open_query(open);
		/* before ExecutorEnd, which frees the estate */
		n_result_values = n1_capture_take(queryDesc, &result_values, true);
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
		if (exec_nested_level <= own_statement_level)
			own_statement_level = -1;
		return;
	}

	/* Nothing to record, or cleaning up after an error. */
	if (!tracked || !IsTransactionState() || !ensure_detector())
		return;
	record_statement(queryDesc, start, rows, nesting_level, n_result_values, result_values);
}

static void
n1_ExecutorEnd(QueryDesc *queryDesc)
{
	/* most often nothing to do: a SELECT was recorded when it ran to its end */
	if (unlikely(n_open_queries > 0 || own_statement_level >= 0))
		end_statement(queryDesc);
	else if (prev_ExecutorEnd)
		prev_ExecutorEnd(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);
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

/*
 * Utility statements that analyze or run a query of their own, which is not
 * the application's: EXPLAIN (ANALYZE), COPY (query) TO, CREATE TABLE AS,
 * SELECT INTO, CREATE/REFRESH MATERIALIZED VIEW, CREATE VIEW, CREATE RULE.
 * Nothing inside them is recorded, and their text is never taken for the
 * query's (they run under the query's own id).
 */
static bool
runs_own_query(Node *parsetree)
{
	switch (nodeTag(parsetree))
	{
		case T_ExplainStmt:
		case T_CreateTableAsStmt:
		case T_RefreshMatViewStmt:
		case T_ViewStmt:
		case T_RuleStmt:
			return true;
		case T_CopyStmt:
			return ((CopyStmt *) parsetree)->query != NULL;
		default:
			return false;
	}
}

/*
 * Utility statements are not the per-statement hot path of applications:
 * here a PG_TRY restores the nesting state on any error, so that a
 * (sub)transaction abort inside them (COMMIT or ROLLBACK in a procedure)
 * finds it right.
 */
static void
n1_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
				  bool readOnlyTree, ProcessUtilityContext context,
				  ParamListInfo params, QueryEnvironment *queryEnv,
				  DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;
	int			saved_level = exec_nested_level;
	int			saved_utility_level = utility_level;
	NodeTag		saved_utility_tag = utility_tag;
	int			saved_own = own_statement_level;

	if (!keeps_nesting_level(parsetree))
		exec_nested_level++;
	utility_level = exec_nested_level;
	utility_tag = nodeTag(parsetree);
	if (runs_own_query(parsetree) &&
		(own_statement_level < 0 || saved_level < own_statement_level))
		own_statement_level = saved_level;

	PG_TRY();
	{
		if (prev_ProcessUtility)
			prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
									params, queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		exec_nested_level = saved_level;
		utility_level = saved_utility_level;
		utility_tag = saved_utility_tag;
		own_statement_level = saved_own;
	}
	PG_END_TRY();
}

void
n1_recorder_install_hooks(void)
{
	prev_post_parse_analyze = post_parse_analyze_hook;
	post_parse_analyze_hook = n1_post_parse_analyze;
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
	n1_capture_init();
}
