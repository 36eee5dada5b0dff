/*
 * detector.h
 *		N+1 detection over one backend's stream of statement events.
 *
 * Plain C99 with no PostgreSQL headers, so it can be unit-tested directly
 * (test/unit/) and reused by other front ends (e.g. a server-log reader).
 * The server front end (recorder.c) feeds it one event per finished
 * statement and learns when a query starts, changes or ends a burst.
 *
 * A "unit of work" is a run of statements of one backend.  The detector ends
 * a unit by itself when the idle gap between the end of one statement and
 * the start of the next exceeds max_gap_us; the front end ends it explicitly
 * (n1_detector_end_unit) at the end of a transaction block, when
 * application_name changes, and at backend exit.
 *
 * Within a unit, a query executed at least min_calls times is a burst of one
 * kind:
 *	 N1_KIND_N_PLUS_ONE: >= 2 distinct parameter sets and a parent exists;
 *	 N1_KIND_DUPLICATE:  the same parameter set every time;
 *	 N1_KIND_LOOP:		 distinct parameter sets but no parent.
 *
 * Parent of a burst of query Q (decided when Q crosses min_calls): among the
 * other queries of the unit that returned >= 2 rows in one call (or through
 * cursor fetches, see n1_detector_rows), that were first seen before Q's
 * first call, and that have fewer calls than Q at that moment, the one whose
 * latest activity is most recent.  Siblings of one loop (same number of
 * calls) are thereby never each other's parent, and in nested loops each
 * level's parent is the level above it.
 *
 * Memory is fixed: everything lives inside N1Detector, which the caller
 * allocates once; no function allocates.
 */
#ifndef N1DETECT_DETECTOR_H
#define N1DETECT_DETECTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Distinct queries tracked per unit; beyond this, least useful ones are evicted. */
#define N1_UNIT_MAX_QUERIES 64
/* Bursts tracked per unit; queries that cross min_calls beyond this are counted in dropped_bursts. */
#define N1_UNIT_MAX_BURSTS 16
/* Calls of a burst for which the front end is asked to capture parameter samples. */
#define N1_BURST_SAMPLES 3
/* Parameter hashes kept exactly per query; beyond this, distinct counts are estimated. */
#define N1_DISTINCT_EXACT 16
/* Bits of the linear-counting bitmap used past N1_DISTINCT_EXACT. */
#define N1_DISTINCT_BITMAP_BITS 1024

typedef enum N1Kind
{
	N1_KIND_NONE = 0,
	N1_KIND_N_PLUS_ONE,
	N1_KIND_DUPLICATE,
	N1_KIND_LOOP
} N1Kind;

typedef enum N1UnitEndReason
{
	N1_END_GAP,					/* idle gap longer than max_gap_us */
	N1_END_TRANSACTION,			/* end of an explicit transaction block */
	N1_END_APPLICATION,			/* application_name changed */
	N1_END_EXIT,				/* backend exit, reset, or caller's choice */
	N1_END_REQUEST				/* the request (trace id) changed */
} N1UnitEndReason;

/* One finished statement, as the front end saw it. */
typedef struct N1Statement
{
	uint64_t	query_id;		/* normalized query id; never 0 */
	uint64_t	param_hash;		/* hash of parameter values / literal constants */
	int64_t		start_us;		/* start, microseconds (any epoch, monotonic enough) */
	int64_t		end_us;			/* end, same clock */
	uint64_t	rows;			/* rows returned or affected */
} N1Statement;

/* A query that crossed min_calls in the current unit. */
typedef struct N1Burst
{
	int			index;			/* 0..N1_UNIT_MAX_BURSTS-1, stable for the unit */
	uint64_t	query_id;
	uint64_t	parent_query_id;	/* 0 when there is no parent */
	N1Kind		kind;
	int64_t		calls;			/* calls of the query in the unit, all of them */
	int64_t		distinct_params;	/* exact up to N1_DISTINCT_EXACT, estimated beyond */
	int64_t		parent_calls;	/* calls of the parent in the unit (0 for a cursor) */
	uint64_t	parent_rows;	/* largest row count of one parent call/cursor */
	int64_t		exec_us;		/* sum of end_us - start_us over the calls */
	int64_t		first_start_us; /* start of the query's first call in the unit */
	int64_t		last_end_us;	/* end of its latest call */
	int			samples_taken;	/* capture requests issued so far (<= N1_BURST_SAMPLES) */
} N1Burst;

typedef struct N1DetectorConfig
{
	int			min_calls;		/* >= 2 */
	int64_t		max_gap_us;		/* >= 0 */
	/*
	 * Called once per burst when its unit ends (before the next unit starts),
	 * in index order.  The unit is already closed when it runs, so a callback
	 * that errors out never causes a burst to be reported twice;
	 * n1_detector_bursts() returns 0 inside it.  It must not feed the
	 * detector.  May be NULL.
	 */
	void		(*burst_ended) (void *arg, const N1Burst *burst, N1UnitEndReason reason);
	void	   *arg;
} N1DetectorConfig;

/*
 * What one statement did to the detector's state.  burst points into the
 * detector and stays valid until the next detector call (which may end the
 * unit).  A query that crosses min_calls while bursts[] is full gets no burst:
 * burst NULL and every flag false (counted once in dropped_bursts).
 */
typedef struct N1StatementResult
{
	const N1Burst *burst;		/* the burst this statement belongs to, or NULL */
	bool		crossed;		/* this call made the query cross min_calls */
	bool		kind_changed;	/* burst->kind differs from before this call (true when crossed) */
	bool		capture_sample; /* record this call's parameter values: true for the
								 * crossing call and the next N1_BURST_SAMPLES - 1
								 * calls of the burst */
	bool		unit_started;	/* this statement opened a new unit */
} N1StatementResult;

/* Per-unit state of one query.  Internal; exposed only so N1Detector has a size. */
typedef struct N1UnitQuery
{
	uint64_t	query_id;		/* 0 = free */
	int64_t		calls;
	uint64_t	max_rows;
	uint64_t	first_seq;		/* sequence number of first activity in the unit */
	uint64_t	last_seq;		/* sequence number of latest activity */
	int64_t		exec_us;
	int64_t		first_start_us;
	int64_t		last_end_us;
	uint64_t	params[N1_DISTINCT_EXACT];
	int			n_params;		/* exact distinct count while <= N1_DISTINCT_EXACT */
	bool		params_overflow;
	uint64_t	bitmap[N1_DISTINCT_BITMAP_BITS / 64];	/* valid only once params_overflow */
	int			bitmap_ones;	/* bits set in bitmap */
	int64_t		distinct;		/* n_params, or the bitmap estimate once params_overflow */
	int			burst;			/* index into bursts[], or -1 */
	bool		burst_dropped;	/* crossed min_calls when bursts[] was full */
	int			parent_of;		/* bursts of the unit whose parent this query is */
} N1UnitQuery;

typedef struct N1Detector
{
	N1DetectorConfig config;
	bool		in_unit;
	uint64_t	seq;
	int64_t		unit_start_us;
	int64_t		last_activity_us;
	int			n_queries;
	N1UnitQuery queries[N1_UNIT_MAX_QUERIES];
	int16_t		table[N1_UNIT_MAX_QUERIES * 2];	/* open-addressing index into queries[], -1 = empty */
	int			n_bursts;
	N1Burst		bursts[N1_UNIT_MAX_BURSTS];
	/* lifetime counters, for diagnostics */
	uint64_t	units;			/* units opened */
	uint64_t	evicted_queries;
	uint64_t	dropped_bursts;
} N1Detector;

extern void n1_detector_init(N1Detector *d, const N1DetectorConfig *config);

/*
 * Change min_calls / max_gap_us (callbacks kept); takes effect from the next
 * statement, also for the open unit (a query already past a lowered min_calls
 * crosses on its next call).  Values are clamped to min_calls >= 2 and
 * max_gap_us >= 0, here and in n1_detector_init.
 */
extern void n1_detector_configure(N1Detector *d, int min_calls, int64_t max_gap_us);

/*
 * Feed one finished statement.  May first end the current unit (gap), calling
 * burst_ended for each of its bursts.  Fills *result.  A statement with
 * query_id 0 only counts as activity (keeps or opens the unit); it is not
 * tracked.
 */
extern void n1_detector_statement(N1Detector *d, const N1Statement *stmt,
								  N1StatementResult *result);

/*
 * A query produced rows without finishing (a cursor FETCH, a PL/pgSQL FOR
 * loop's batch): total_rows so far, at time now_us.  Makes it a parent
 * candidate without counting a call, and refreshes parent_rows of bursts
 * whose parent it is.  Also ends the unit on a gap, and opens one if none is
 * open (the next statement then has unit_started false).
 */
extern void n1_detector_rows(N1Detector *d, uint64_t query_id, uint64_t total_rows,
							 int64_t now_us);

/* End the current unit now (no-op when none is open). */
extern void n1_detector_end_unit(N1Detector *d, N1UnitEndReason reason);

/* Bursts of the open unit (for showing in-flight bursts). */
extern int	n1_detector_bursts(const N1Detector *d, const N1Burst **bursts);

extern const char *n1_kind_name(N1Kind kind);

#endif							/* N1DETECT_DETECTOR_H */
