/*
 * n1detect.h
 *		Declarations shared by the server-side parts of n1detect: settings,
 *		the shared-memory layout, and the entry points each file offers the
 *		others.  The detection logic itself is in detector.h (no PostgreSQL
 *		headers there).
 */
#ifndef N1DETECT_H
#define N1DETECT_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "detector.h"
#include "query_comment.h"
#include "storage/lwlock.h"
#include "storage/spin.h"
#include "port/atomics.h"

/* ---- settings (n1detect.c) ---- */

typedef enum N1Track
{
	N1_TRACK_NONE,
	N1_TRACK_TOP,
	N1_TRACK_ALL
} N1Track;

typedef enum N1Action
{
	N1_ACTION_NONE,
	N1_ACTION_LOG,
	N1_ACTION_WARNING,
	N1_ACTION_ERROR
} N1Action;

extern int	n1_track;
extern int	n1_min_calls;
extern int	n1_max_gap_ms;
extern int	n1_action;
extern int	n1_action_kinds;	/* bitmask of (1 << N1Kind) */
extern int	n1_max_offenders;
extern int	n1_max_bursts;
extern bool n1_save;
extern bool n1_strict;
extern uint64 n1_settings_version;
extern uint64 n1_application_name_version;
extern bool n1_application_name_watched;

#ifdef USE_ASSERT_CHECKING
/*
 * Test-only fault injection (builds with N1_ASSERT=1): the next slot write
 * of this kind stops the backend (SIGSTOP) in the middle of the write, its
 * change count odd, as a debugger or a page-fault storm would (or, for
 * "read", a reader in the middle of copying a slot).
 */
typedef enum N1DebugStop
{
	N1_DEBUG_STOP_NONE,
	N1_DEBUG_STOP_EVENT,		/* recording a statement: no lock held */
	N1_DEBUG_STOP_BURST_END,	/* clearing an ended burst: exclusive lock held */
	N1_DEBUG_STOP_READ			/* a reader copying a slot: no lock held */
} N1DebugStop;
extern int	n1_debug_stop;
extern bool n1_debug_stop_armed;
#endif

/* ---- sizes ---- */

/* Bytes kept of a normalized query text (like track_activity_query_size's default). */
#define N1_QUERY_TEXT_LEN 1024
/* Bytes kept of one sample parameter list. */
#define N1_SAMPLE_LEN 128
/* Recent statements kept in each backend's slot. */
#define N1_SLOT_EVENTS 16
/* Bursts in progress that a backend's slot shows to readers: all of them. */
#define N1_SLOT_BURSTS N1_UNIT_MAX_BURSTS

/* ---- shared state (offenders.c) ---- */

typedef struct N1OffenderKey
{
	Oid			userid;
	Oid			dbid;
	uint64		queryid;
	uint64		parent_queryid;
	int32		kind;			/* N1Kind */
	int32		pad;			/* zero; keeps the key free of uninitialized bytes */
	uint64		source_hash;	/* N1QueryTags.source_hash: one row per endpoint; 0 = none */
} N1OffenderKey;

typedef struct N1Samples
{
	int			count;
	char		values[N1_BURST_SAMPLES][N1_SAMPLE_LEN];
} N1Samples;

/* One row of n1_offenders as stored in shared memory. */
typedef struct N1Offender
{
	N1OffenderKey key;			/* hash key; must be first */
	int64		bursts;
	int64		calls;
	int64		max_calls;
	int64		max_distinct_params;
	int64		max_parent_rows;
	int64		total_exec_us;
	TimestampTz first_seen;
	TimestampTz last_seen;
	double		usage;			/* for eviction, as pg_stat_statements */
	char		application_name[NAMEDATALEN];
	N1Samples	samples;
	char		query[N1_QUERY_TEXT_LEN];	/* "" when unknown */
	char		parent_query[N1_QUERY_TEXT_LEN];
	char		source[N1_SOURCE_LEN];	/* the request's tags (key.source_hash) */
	char		code_line[N1_CODE_LINE_LEN];	/* of the latest burst */
} N1Offender;

/*
 * A burst as readers see it: in its backend's slot while it runs, in the
 * n1_bursts ring once its unit of work has ended.
 */
typedef struct N1BurstSummary
{
	Oid			userid;
	uint64		queryid;
	uint64		parent_queryid;
	int32		kind;			/* N1Kind */
	int32		parent_evidence;	/* N1ParentEvidence */
	int64		calls;
	int64		distinct_params;
	int64		parent_calls;
	int64		parent_rows;
	int64		exec_us;
	TimestampTz started_at;		/* first call's start */
	TimestampTz ended_at;		/* latest call's end */
} N1BurstSummary;

/* One finished burst, for the n1_bursts ring. */
typedef struct N1BurstRecord
{
	int			pid;
	Oid			dbid;
	N1BurstSummary burst;
	char		application_name[NAMEDATALEN];
	N1QueryTags tags;			/* from the comment of the call that made the burst */
} N1BurstRecord;

/*
 * n1_info's counters of the detector itself.  The first N1_SLOT_COUNTERS are
 * counted by each backend in its own slot (no lock, no shared cache line on
 * the statement path) and added to N1SharedState.folded when it exits.
 */
typedef enum N1Counter
{
	N1_COUNTER_UNITS,			/* units of work opened */
	N1_COUNTER_BURSTS_DROPPED,	/* bursts beyond N1_UNIT_MAX_BURSTS in a unit */
	N1_COUNTER_QUERIES_EVICTED, /* queries evicted from a unit's table */
	N1_COUNTER_TEXTS_EVICTED,	/* normalized texts evicted from a backend's cache */
	N1_SLOT_COUNTERS,
	N1_COUNTER_SLOTS_SKIPPED = N1_SLOT_COUNTERS,	/* busy slots readers gave up on */
	N1_NUM_COUNTERS
} N1Counter;

typedef struct N1SharedState
{
	LWLock	   *lock;			/* offenders hash table and burst ring */
	pg_atomic_uint64 generation;	/* bumped by n1_reset(): older bursts in progress are void */
	pg_atomic_uint64 slots_skipped; /* N1_COUNTER_SLOTS_SKIPPED, since stats_reset */
	int64		dealloc;		/* evictions; under lock */
	int64		bursts_total;	/* finished bursts recorded; under lock */
	int64		folded[N1_SLOT_COUNTERS];	/* slot counters of exited backends; under lock */
	int64		baseline[N1_SLOT_COUNTERS]; /* their totals at stats_reset; under lock */
	TimestampTz stats_reset;	/* under lock */
	uint64		ring_next;		/* bursts written to the ring so far; under lock */
	N1BurstRecord ring[FLEXIBLE_ARRAY_MEMBER];	/* n1_max_bursts records */
} N1SharedState;

struct N1BackendSlot;

extern N1SharedState *n1_shared;
extern struct HTAB *n1_offenders_hash;

extern Size n1_offenders_shmem_size(void);
extern void n1_offenders_shmem_init(void);
extern void n1_offender_key(N1OffenderKey *key, Oid dbid, const N1BurstSummary *burst,
							const N1QueryTags *tags);
extern void n1_offender_add_burst(N1Offender *entry, const N1BurstSummary *burst,
								  const N1Samples *samples, const N1QueryTags *tags,
								  const char *application_name);
extern void n1_offender_publish(const N1OffenderKey *key, const char *query,
								const char *parent_query);
extern void n1_offender_record_burst(const N1BurstSummary *burst, const N1Samples *samples,
									 const N1QueryTags *tags, const char *application_name,
									 const char *query, const char *parent_query,
									 uint64 generation, struct N1BackendSlot *slot,
									 int slot_index);
extern void n1_offenders_reset(void);
extern void n1_lock_interruptible(LWLockMode mode);
extern bool n1_lock_for_recording(void);
extern void n1_counters_read(int64 *counters);

/* ---- per-backend slots (backend_slots.c) ---- */

typedef struct N1SlotEvent
{
	uint64		seq;
	uint64		queryid;
	uint64		param_hash;
	TimestampTz start;
	int64		exec_us;
	uint64		rows;
	int32		nesting_level;
	Oid			userid;			/* the user it ran as (set by n1_slot_write_event) */
} N1SlotEvent;

typedef struct N1SlotBurst
{
	bool		used;
	uint64		generation;		/* n1_shared->generation it counts in */
	N1BurstSummary burst;
	N1Samples	samples;		/* from here on: see n1_slot_write_burst */
	N1QueryTags tags;
} N1SlotBurst;

typedef struct N1BackendSlot
{
	/* change count: odd while the owner writes; readers retry until stable */
	volatile uint32 changecount;
	int			pid;			/* 0 = free */
	Oid			dbid;
	Oid			userid;
	char		application_name[NAMEDATALEN];
	uint64		events_written;
	N1SlotEvent events[N1_SLOT_EVENTS];
	N1SlotBurst bursts[N1_SLOT_BURSTS];
	/* times bursts[i] left the slot (recorded or void); never reset */
	uint32		bursts_left[N1_SLOT_BURSTS];
	/* the owner's N1Counter values; read without the change count */
	pg_atomic_uint64 counters[N1_SLOT_COUNTERS];
} N1BackendSlot;

typedef enum N1SlotRead
{
	N1_SLOT_FREE,
	N1_SLOT_COPIED,
	N1_SLOT_BUSY				/* its owner stayed in the middle of a write */
} N1SlotRead;

/* Normalized texts this backend evicted from its cache (query_text.c counts). */
extern uint64 n1_texts_evicted;

extern Size n1_slots_shmem_size(void);
extern void n1_slots_shmem_init(void);
extern N1BackendSlot *n1_my_slot(void);
extern void n1_slot_write_event(N1BackendSlot *slot, const N1SlotEvent *event,
								const N1Burst *burst, int pos);
extern void n1_slot_write_burst(N1BackendSlot *slot, int index, const N1SlotBurst *burst,
								bool with_samples);
extern void n1_slot_clear_burst(N1BackendSlot *slot, int index);
extern void n1_slot_set_application_name(N1BackendSlot *slot, const char *name);
extern int	n1_slot_count(void);
extern N1SlotRead n1_slot_read(int index, N1BackendSlot *copy);
extern uint32 n1_slot_bursts_left(int index, int burst_index);
extern void n1_slot_counters_add(int64 *counters);
extern void n1_slot_counters_fold(N1BackendSlot *slot, int64 *folded);

/*
 * Writes to the backend's own slot: the change count is odd in between, and
 * readers retry until it is even and unchanged.
 */
static inline void
n1_slot_write_begin(N1BackendSlot *slot)
{
	slot->changecount++;
	pg_write_barrier();
}

static inline void
n1_slot_write_end(N1BackendSlot *slot)
{
	pg_write_barrier();
	slot->changecount++;
}

/*
 * Publishes the detector's own counters in the backend's slot: plain stores
 * to memory only this backend writes, once per statement.
 */
static inline void
n1_slot_publish_counters(N1BackendSlot *slot, const N1Detector *detector)
{
	pg_atomic_write_u64(&slot->counters[N1_COUNTER_UNITS], detector->units);
	pg_atomic_write_u64(&slot->counters[N1_COUNTER_BURSTS_DROPPED], detector->dropped_bursts);
	pg_atomic_write_u64(&slot->counters[N1_COUNTER_QUERIES_EVICTED], detector->evicted_queries);
	pg_atomic_write_u64(&slot->counters[N1_COUNTER_TEXTS_EVICTED], n1_texts_evicted);
}

/* ---- recording (recorder.c) ---- */

extern void n1_recorder_install_hooks(void);
extern void n1_mark_own_statement(void);

/* ---- values that prove parents (result_capture.c) ---- */

struct QueryDesc;
struct _DestReceiver;
extern void n1_capture_init(void);
extern void n1_capture_xact_abort(void);
extern int	n1_capture_param_values(void *queryDesc, uint64_t *out);
extern struct _DestReceiver *n1_capture_begin(struct QueryDesc *queryDesc, bool fetch);
extern void n1_capture_end(struct QueryDesc *queryDesc, struct _DestReceiver *capture);
extern void n1_capture_unit_started(void);
extern void n1_capture_want_results(uint64 queryid);
extern int	n1_capture_take(const struct QueryDesc *queryDesc, const uint64 **values,
							bool release);

/* Column plans result_capture.c caches, by query id modulo this. */
#define N1_CAPTURE_PLAN_SLOTS 256
/* Capture buffers in use; while 0, n1_capture_take has nothing to give. */
extern int	n1_capture_claimed;
/* Query ids of point lookups n1_capture_begin would not wrap, by plan slot. */
extern uint64 n1_capture_skip[N1_CAPTURE_PLAN_SLOTS];

/* ---- request tags from comments (query_comment.c) ---- */

/* Units of work open at once in one backend, one per trace id. */
#define N1_TRACE_UNITS 8

/* Bytes of recorder.c's per-burst state in a unit, at most (checked there). */
#define N1_UNIT_LOCAL_BYTES 16384

/* One unit of work of a backend: its detector and the front end's state. */
typedef struct N1TraceUnit
{
	uint64		trace_hash;		/* 0: none yet (statements without trace id) */
	uint64		last_used;		/* for eviction: the one idle the longest goes */
	N1Detector	detector;
	char		local[FLEXIBLE_ARRAY_MEMBER];	/* recorder.c's per-burst state */
} N1TraceUnit;

struct QueryDesc;

extern void n1_burst_tags(struct QueryDesc *queryDesc, N1QueryTags *tags);
extern uint64 n1_statement_trace_hash(const char *text, size_t len, N1CommentSpan *trailing);

/*
 * Where a statement's text (len > 0 bytes) ends but for white space and
 * semicolons (any control character counts as white space here), at least 1.
 */
static inline size_t
n1_text_end(const char *text, size_t len)
{
	while (len > 1 && ((unsigned char) text[len - 1] <= ' ' || text[len - 1] == ';'))
		len--;
	return len;
}

/*
 * Whether that text may start or end with a comment: only then may it carry
 * a trace id (the exact check is n1_statement_trace_hash's).  A trailing
 * comment's slash is its last byte but white space and ';'; a leading one's
 * is its first byte, or white space comes before it.
 */
static inline bool
n1_may_have_comment(const char *text, size_t text_end)
{
	return text[text_end - 1] == '/' || text[0] == '/' || (unsigned char) text[0] <= ' ';
}
extern N1TraceUnit *n1_trace_unit_first(size_t local_size, const N1DetectorConfig *config);
extern N1TraceUnit *n1_trace_unit_switch(N1TraceUnit *current, uint64 trace_hash, int64 now_us);
extern void n1_trace_units_end_all(N1UnitEndReason reason);
extern void n1_trace_units_configure(int min_calls, int min_calls_proven, int64 max_gap_us);
extern void n1_trace_units_publish_counters(N1BackendSlot *slot);
extern int	n1_slot_position_take(void);
extern void n1_slot_position_release(int position);

/* ---- samples and action messages (burst_report.c) ---- */

extern void n1_capture_sample(struct QueryDesc *queryDesc, N1Samples *samples);
extern void n1_report_burst(const N1Burst *burst, const N1QueryTags *tags, int elevel);

/* ---- normalized query texts (query_text.c) ---- */

struct JumbleState;
extern void n1_query_text_remember(uint64 queryid, const char *query, int query_loc,
								   int query_len, int execution_loc,
								   struct JumbleState *jstate);
extern int	n1_cursor_query_start(const char *query, int loc, int len);
extern void n1_query_text_remember_source(uint64 queryid, const char *query,
										  int query_loc, int query_len);
extern const char *n1_query_text_lookup(uint64 queryid);
extern int	n1_query_constants_offset(uint64 queryid);
extern int	n1_statement_constants_start(uint64 queryid, const char *text, int len);
extern uint64 n1_query_canonical_id(uint64 queryid);
extern uint64 n1_query_cached(uint64 queryid, int *constants_offset);
extern uint64 n1_text_newest_id;
extern void n1_query_literals(const char *sql, int loc, int len, char *out, int outlen);

/* ---- persistence (persistence.c) ---- */

extern void n1_persistence_load(void);
extern void n1_persistence_save(int code);

/* ---- helpers ---- */

extern void n1_require_preload(void);
extern MemoryContext n1_memory_context(void);

#endif							/* N1DETECT_H */
