/*
 * query_comment.c (server)
 *		Request tags and request boundaries from statements' comments (the
 *		parser itself is src/core/query_comment.c, shared with n1scan):
 *		 - the tags of the call that makes a burst (source, code line,
 *		   trace id), read only then;
 *		 - the units of work of one backend, one per trace id: a backend
 *		   shared through a transaction-mode pooler (PgBouncer) interleaves
 *		   requests, and statements of two trace ids must never fall in one
 *		   unit.  N1_TRACE_UNITS detectors at most (each about 70 kB), the
 *		   first in static memory, the others allocated once, at the first
 *		   need; when all are taken, the one idle the longest ends its unit
 *		   and serves the new trace id.
 *
 * Per statement (bench/overhead, callgrind): the recorder looks at the
 * first and last bytes of the text (n1detect.h: n1_may_have_comment), so a
 * statement without a leading or trailing comment never calls in here; one
 * with a comment byte for byte the previous commented statement's (the
 * same request) costs a memcmp of the comment (n1_query_trace_hash_cached);
 * only a new comment is scanned (its stars, the first byte of each pair).
 * Units are switched only when the trace id changes.
 *
 * Must never: allocate except once per unit (and survive failing to),
 * raise an error, or let two trace ids share a unit.
 */
#include "postgres.h"

#include "executor/execdesc.h"
#include "utils/memutils.h"

#include "n1detect.h"

static N1TraceUnit *units[N1_TRACE_UNITS];
static int	n_units = 0;
static uint64 use_clock = 0;
static size_t local_bytes = 0;
static bool more_failed = false;	/* could not allocate the other units */
static uint32 slot_positions_used = 0;	/* bit per N1_SLOT_BURSTS position */

/* Tags of the statement that made a burst (zeroed when it has none). */
void
n1_burst_tags(QueryDesc *queryDesc, N1QueryTags *tags)
{
	const char *text = queryDesc->sourceText;

	if (text == NULL)
		memset(tags, 0, sizeof(*tags));
	else
		(void) n1_query_tags(text, strlen(text), tags);
}

/* The comment of the latest commented statement (see n1_query_trace_hash_cached). */
static N1TraceCache trace_cache;

/*
 * Hash of the trace id (traceparent, or a request id) of a statement's
 * comment, or 0: which unit of work the statement belongs to; and the
 * trailing comment (for the constants hash).  The caller has told the
 * statements that neither start nor end with a comment by their first and
 * last bytes (n1_may_have_comment); a comment byte for byte the previous
 * commented statement's costs a memcmp.
 */
uint64
n1_statement_trace_hash(const char *text, size_t len, N1CommentSpan *trailing)
{
	return n1_query_trace_hash_cached(&trace_cache, text, len, trailing);
}

/*
 * The first unit, which every backend that records uses, is static (zero,
 * its pages touched only as used): allocated from the heap in the middle of
 * the backend's first statement, it made glibc split and merge chunks on
 * every later statement (about 150 instructions each).
 */
#define FIRST_UNIT_BYTES (offsetof(N1TraceUnit, local) + N1_UNIT_LOCAL_BYTES)
static uint64 first_unit_storage[(FIRST_UNIT_BYTES + sizeof(uint64) - 1) / sizeof(uint64)];

static N1TraceUnit *
new_unit(const N1DetectorConfig *config)
{
	N1TraceUnit *u;
	N1DetectorConfig c = *config;

	if (n_units == 0 && local_bytes <= N1_UNIT_LOCAL_BYTES)
		u = (N1TraceUnit *) first_unit_storage;
	else
		u = MemoryContextAllocExtended(TopMemoryContext,
									   offsetof(N1TraceUnit, local) + local_bytes,
									   MCXT_ALLOC_NO_OOM | MCXT_ALLOC_ZERO);
	if (u == NULL)
		return NULL;
	c.arg = u;
	n1_detector_init(&u->detector, &c);
	return u;
}

/*
 * The first unit (statements without a trace id start there), with
 * local_size bytes of the caller's per-burst state; NULL when out of memory.
 * config.arg is set to the unit.
 */
N1TraceUnit *
n1_trace_unit_first(size_t local_size, const N1DetectorConfig *config)
{
	if (n_units > 0)
		return units[0];
	local_bytes = local_size;
	units[0] = new_unit(config);
	if (units[0] != NULL)
		n_units = 1;
	return units[0];
}

/*
 * The unit for a statement of trace id trace_hash (not 0), which differs
 * from current's.  The current unit takes it when it has none yet (a
 * request's first statements may carry no comment); else the unit of that
 * trace id, or a free one, or the one idle the longest (its unit ends).
 * Units idle longer than max_gap end here too, so that a request that is
 * over is recorded without waiting for its unit's next statement.
 */
N1TraceUnit *
n1_trace_unit_switch(N1TraceUnit *current, uint64 trace_hash, int64 now_us)
{
	N1TraceUnit *chosen = NULL;
	N1TraceUnit *oldest = NULL;

	current->last_used = ++use_clock;
	if (current->trace_hash == 0)
	{
		current->trace_hash = trace_hash;
		return current;
	}
	for (int i = 0; i < n_units; i++)
	{
		N1TraceUnit *u = units[i];

		if (u->trace_hash == trace_hash)
			chosen = u;
		else if (u != current && u->detector.in_unit &&
				 now_us - u->detector.last_activity_us > u->detector.config.max_gap_us)
			n1_detector_end_unit(&u->detector, N1_END_GAP);
	}
	if (chosen)
		return chosen;
	for (int i = 0; i < n_units; i++)
	{
		N1TraceUnit *u = units[i];

		if (u != current && !u->detector.in_unit)
		{
			chosen = u;
			break;
		}
		if (u != current && (oldest == NULL || u->last_used < oldest->last_used))
			oldest = u;
	}
	if (chosen == NULL && n_units < N1_TRACE_UNITS && !more_failed)
	{
		chosen = new_unit(&units[0]->detector.config);
		if (chosen)
		{
			n1_detector_configure(&chosen->detector, current->detector.config.min_calls,
								  current->detector.config.min_calls_proven,
								  current->detector.config.max_gap_us);
			units[n_units++] = chosen;
		}
		else
			more_failed = true;
	}
	if (chosen == NULL)
	{
		/* evict: the one idle the longest, or (one unit only) the current one */
		chosen = oldest ? oldest : current;
		n1_detector_end_unit(&chosen->detector, N1_END_REQUEST);
	}
	chosen->trace_hash = trace_hash;
	return chosen;
}

/* Ends every unit (backend exit). */
void
n1_trace_units_end_all(N1UnitEndReason reason)
{
	for (int i = 0; i < n_units; i++)
		n1_detector_end_unit(&units[i]->detector, reason);
}

/* New min_calls / min_calls_proven / max_gap for every unit. */
void
n1_trace_units_configure(int min_calls, int min_calls_proven, int64 max_gap_us)
{
	for (int i = 0; i < n_units; i++)
		n1_detector_configure(&units[i]->detector, min_calls, min_calls_proven, max_gap_us);
}

/* The detectors' counters, summed over the units, in the backend's slot. */
void
n1_trace_units_publish_counters(N1BackendSlot *slot)
{
	uint64		sum[3] = {0, 0, 0};

	if (n_units == 1)
	{
		units[0]->detector.counters_changed = false;
		n1_slot_publish_counters(slot, &units[0]->detector);
		return;
	}
	for (int i = 0; i < n_units; i++)
	{
		units[i]->detector.counters_changed = false;
		sum[0] += units[i]->detector.units;
		sum[1] += units[i]->detector.dropped_bursts;
		sum[2] += units[i]->detector.evicted_queries;
	}
	pg_atomic_write_u64(&slot->counters[N1_COUNTER_UNITS], sum[0]);
	pg_atomic_write_u64(&slot->counters[N1_COUNTER_BURSTS_DROPPED], sum[1]);
	pg_atomic_write_u64(&slot->counters[N1_COUNTER_QUERIES_EVICTED], sum[2]);
	pg_atomic_write_u64(&slot->counters[N1_COUNTER_TEXTS_EVICTED], n1_texts_evicted);
}

/*
 * Positions of the backend's slot that show bursts in progress, shared by
 * the units: one taken when a burst starts (-1 when all are taken: the
 * burst is shown once it ends), given back when it ends.
 */
int
n1_slot_position_take(void)
{
	for (int i = 0; i < N1_SLOT_BURSTS; i++)
		if ((slot_positions_used & (1U << i)) == 0)
		{
			slot_positions_used |= 1U << i;
			return i;
		}
	return -1;
}

void
n1_slot_position_release(int position)
{
	if (position >= 0)
		slot_positions_used &= ~(1U << position);
}
