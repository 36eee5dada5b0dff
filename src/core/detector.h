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
 * A query with a parent proven by values (below) is a burst from
 * min_calls_proven calls on (strict mode: 2), the others from min_calls.
 *
 * Parent of a burst of query Q.  Candidates are the other queries of the
 * unit that returned >= 2 rows in one call (or through cursor fetches, see
 * n1_detector_rows), were first seen before Q's first call, and have fewer
 * calls than Q at that moment: siblings of one loop body (as many calls as
 * Q, or first seen after it) are never each other's parent, and Q is never
 * its own (keyset pagination is a loop).  Among them, two rules:
 *
 *	 Chains (values rule only): a lookup repeated once per element of a list
 *	 (at most 1 row per call, >= 2 calls, first seen before Q) is also a
 *	 candidate, whatever its calls, when it holds Q's values as a chain
 *	 does: either it had finished before Q's first call (the objects were
 *	 fetched one by one, then looped over), or the values it holds are not
 *	 its own parameter values (thread by id, then its starting email by the
 *	 thread's starting_email_id).  A lookup interleaved with Q that merely
 *	 returns the key it was given (a sibling: the profile of each user
 *	 beside the orders of each user) is never Q's parent.  The front end
 *	 captures such a lookup's row values only when asked
 *	 (N1StatementResult.capture_results: calls 2 to N1_CHAIN_CAPTURE_CALLS
 *	 of a query that has returned 1 row per call, never more, in the unit).
 *
 *	 Values (the rule whenever the front end gives values, as the server
 *	 does): each call of Q brings up to N1_CALL_VALUES hashes of its
 *	 parameter values, and each candidate's calls brought hashes of the
 *	 key-like values of their result rows (a Bloom filter per query).  Q's
 *	 parameter values that vary between its calls (the first
 *	 N1_QUERY_VALUES distinct ones; for a duplicate, its one value) are
 *	 looked up in each candidate's filter, parameter position by position
 *	 (one parameter drives a loop; the others, such as a date range taken
 *	 from the clock at each call, are context): a candidate holding a
 *	 strict majority of the varying values of one position is eligible, and the eligible one holding the most of them is
 *	 the parent (see choose_parent_by_values for tiers and ties; ties go to
 *	 the most recently active, so in nested loops each level's parent is
 *	 the level above it).  No majority anywhere: no parent, so a loop over constants
 *	 or over values from no result is a LOOP, never an N+1.  The choice is
 *	 made when Q crosses min_calls and made again each time Q brings a new
 *	 distinct value (its first N1_QUERY_VALUES ones): a parent proven on
 *	 the first 2 values may give way to one proven on more (a chain whose
 *	 first call was not captured); a proven parent is never dropped for none.
 *
 *	 Timing (fallback, only for what has no values: a statement fed with
 *	 n_values = N1_VALUES_UNKNOWN, e.g. a log reader that sees no rows, or a
 *	 candidate fed with n_result_values = N1_VALUES_UNKNOWN): the candidate
 *	 whose latest activity is most recent, decided once when Q crosses
 *	 min_calls.
 *
 * N1Burst.parent_evidence says which rule named the parent.
 *
 * Memory is fixed: everything lives inside N1Detector, which the caller
 * allocates once; no function allocates.  Per query of the unit:
 * 2048 bits of result filter (256 bytes) and 16 parameter values; about
 * 55 KB for the whole N1Detector (25 KB before values).
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
/* Parameter value hashes a statement brings (one per parameter, the first ones). */
#define N1_CALL_VALUES 4
/* Distinct parameter values kept per query of a unit, to prove its parent. */
#define N1_QUERY_VALUES 16
/* Bits of the Bloom filter of a query's result values (3 bits per value). */
#define N1_RESULT_FILTER_BITS 2048
/* Values added to one query's filter per unit; later ones are not added (false positives stay <= 3%). */
#define N1_RESULT_FILTER_MAX 256
/* Calls of a 1-row lookup (per unit) whose row values are asked for, to prove chains. */
#define N1_CHAIN_CAPTURE_CALLS 24
/* n_values / n_result_values of a front end that cannot see them. */
#define N1_VALUES_UNKNOWN (-1)
/* n_values: ask fill_values, only if the detector needs this call's values. */
#define N1_VALUES_LAZY (-2)

typedef enum N1Kind
{
	N1_KIND_NONE = 0,
	N1_KIND_N_PLUS_ONE,
	N1_KIND_DUPLICATE,
	N1_KIND_LOOP
} N1Kind;

/* How a burst's parent was established (see the head comment). */
typedef enum N1ParentEvidence
{
	N1_EVIDENCE_NONE = 0,		/* no parent */
	N1_EVIDENCE_VALUES,			/* its result values hold most of the child's parameter values */
	N1_EVIDENCE_TIMING			/* values unknown: the most recently active candidate */
} N1ParentEvidence;

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
	/*
	 * Hashes of the call's parameter values, one per value (the same hash for
	 * one value whatever its type: see result_capture.c), or n_values =
	 * N1_VALUES_UNKNOWN when the front end cannot tell (timing rule then).
	 */
	int			n_values;
	uint64_t	values[N1_CALL_VALUES];
	/*
	 * With n_values = N1_VALUES_LAZY: writes the values (at most
	 * N1_CALL_VALUES) and returns their number; called at most once, and not
	 * at all once the query has all the values it keeps (its first
	 * N1_QUERY_VALUES distinct ones), which is most calls of a long loop.
	 */
	int			(*fill_values) (void *arg, uint64_t *out);
	void	   *fill_arg;
	/*
	 * Hashes of key-like values of the rows returned (any number, any
	 * order, duplicates allowed), or n_result_values = N1_VALUES_UNKNOWN.
	 * Used when rows >= 1; for rows = 1, N1_VALUES_UNKNOWN (not captured)
	 * is ignored.
	 */
	const uint64_t *result_values;
	int			n_result_values;
} N1Statement;

/* A query that crossed min_calls in the current unit. */
typedef struct N1Burst
{
	int			index;			/* 0..N1_UNIT_MAX_BURSTS-1, stable for the unit */
	uint64_t	query_id;
	uint64_t	parent_query_id;	/* 0 when there is no parent */
	N1ParentEvidence parent_evidence;
	int			values_checked; /* values rule: the child's values looked up */
	int			values_found;	/* and how many the parent's results hold */
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
	int			min_calls_proven;	/* 2..min_calls: calls that make a burst of a query
									 * whose parent is proven by values (0: min_calls) */
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
	bool		parent_changed; /* the burst's parent changed (same kind): a better-proven one */
	bool		capture_sample; /* record this call's parameter values: true for the
								 * crossing call and the next N1_BURST_SAMPLES - 1
								 * calls of the burst */
	bool		unit_started;	/* this statement opened a new unit */
	bool		capture_results;	/* give the result values of this query's next
									 * call, even of 1 row: it may be a chain's parent */
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
	/* values rule: this query as a child */
	bool		values_unknown; /* a call came with N1_VALUES_UNKNOWN */
	bool		values_full;	/* vals[] full: later calls are not recorded */
	bool		values_changed; /* a value was added since the last parent search */
	int			n_vals;
	int			val_calls;		/* calls recorded in vals[] */
	uint64_t	vals[N1_QUERY_VALUES];
	int			val_count[N1_QUERY_VALUES];	/* calls that had the value */
	uint8_t		val_pos[N1_QUERY_VALUES];	/* its parameter position (first seen) */
	/* values rule: this query as a parent */
	bool		results_unknown;	/* a call of >= 2 rows came with N1_VALUES_UNKNOWN */
	int			filter_values;	/* values added to filter; -1 = filter not cleared yet */
	uint64_t	filter[N1_RESULT_FILTER_BITS / 64];
} N1UnitQuery;

typedef struct N1Detector
{
	N1DetectorConfig config;
	bool		in_unit;
	uint64_t	seq;
	int64_t		unit_start_us;
	int64_t		last_activity_us;
	int			n_queries;
	int			last_query;		/* index in queries[] of the latest lookup, or -1 */
	N1UnitQuery queries[N1_UNIT_MAX_QUERIES];
	int16_t		table[N1_UNIT_MAX_QUERIES * 2];	/* open-addressing index into queries[], -1 = empty */
	int			n_bursts;
	N1Burst		bursts[N1_UNIT_MAX_BURSTS];
	/* lifetime counters, for diagnostics */
	uint64_t	units;			/* units opened */
	uint64_t	evicted_queries;
	uint64_t	dropped_bursts; /* queries that crossed min_calls when bursts[] was full */
	int			unit_dropped_bursts;	/* the same, in the open unit */
	bool		counters_changed;	/* set when one of the three above changes; the caller
									 * clears it once it has published them */
} N1Detector;

extern void n1_detector_init(N1Detector *d, const N1DetectorConfig *config);

/*
 * Change min_calls / min_calls_proven / max_gap_us (callbacks kept); takes
 * effect from the next statement, also for the open unit (a query already
 * past a lowered min_calls crosses on its next call).  Values are clamped to
 * min_calls >= 2, 2 <= min_calls_proven <= min_calls (0 means min_calls) and
 * max_gap_us >= 0, here and in n1_detector_init.
 */
extern void n1_detector_configure(N1Detector *d, int min_calls, int min_calls_proven,
								  int64_t max_gap_us);

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
 * loop's batch): total_rows so far, at time now_us, and the hashes of the
 * key-like values of the rows of this batch (n_values may be
 * N1_VALUES_UNKNOWN).  Makes it a parent candidate without counting a call,
 * and refreshes parent_rows of bursts whose parent it is.  Also ends the
 * unit on a gap, and opens one if none is open (the next statement then has
 * unit_started false).  The statement that ends the query later should
 * bring no result values again (n_result_values 0).
 */
extern void n1_detector_rows(N1Detector *d, uint64_t query_id, uint64_t total_rows,
							 int64_t now_us, const uint64_t *values, int n_values);

/* End the current unit now (no-op when none is open). */
extern void n1_detector_end_unit(N1Detector *d, N1UnitEndReason reason);

/* Bursts of the open unit (for showing in-flight bursts). */
extern int	n1_detector_bursts(const N1Detector *d, const N1Burst **bursts);

extern const char *n1_kind_name(N1Kind kind);
extern const char *n1_evidence_name(N1ParentEvidence evidence);

#endif							/* N1DETECT_DETECTOR_H */
