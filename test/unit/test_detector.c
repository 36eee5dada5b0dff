/*
 * test_detector.c
 *		Unit tests for src/core/detector.c, built and run by `make unitcheck`.
 *
 * A tiny harness: every CHECK counts as passed or failed; a failure prints
 * file:line and a message.  The last line is "unit: N passed, M failed" and
 * the exit status is 1 if anything failed.  No PostgreSQL headers here: the
 * detector is plain C and is tested as such.
 *
 * Most tests drive the detector through its public functions with a fake
 * clock.  A few peek at N1Detector internals (the struct is public only to
 * give it a size) where behaviour is otherwise invisible, e.g. which query
 * eviction kept.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detector.h"

/* ----------------------------------------------------------------
 * Harness
 * ----------------------------------------------------------------
 */

typedef struct Tally
{
	int			passed;
	int			failed;
} Tally;

static Tally tally;

static int
check_true(int ok, const char *file, int line, const char *expr, const char *msg)
{
	if (ok)
		tally.passed++;
	else
	{
		tally.failed++;
		printf("%s:%d: check failed: %s (%s)\n", file, line, expr, msg);
	}
	return ok;
}

static int
check_i64(int64_t got, int64_t want, const char *file, int line,
		  const char *expr, const char *msg)
{
	if (got == want)
	{
		tally.passed++;
		return 1;
	}
	tally.failed++;
	printf("%s:%d: check failed: %s == %" PRId64 ", expected %" PRId64 " (%s)\n",
		   file, line, expr, got, want, msg);
	return 0;
}

static int
check_u64(uint64_t got, uint64_t want, const char *file, int line,
		  const char *expr, const char *msg)
{
	if (got == want)
	{
		tally.passed++;
		return 1;
	}
	tally.failed++;
	printf("%s:%d: check failed: %s == %" PRIu64 ", expected %" PRIu64 " (%s)\n",
		   file, line, expr, got, want, msg);
	return 0;
}

static int
check_str(const char *got, const char *want, const char *file, int line,
		  const char *expr, const char *msg)
{
	if (got != NULL && strcmp(got, want) == 0)
	{
		tally.passed++;
		return 1;
	}
	tally.failed++;
	printf("%s:%d: check failed: %s == \"%s\", expected \"%s\" (%s)\n",
		   file, line, expr, got ? got : "(null)", want, msg);
	return 0;
}

#define CHECK(cond, msg) check_true((cond) ? 1 : 0, __FILE__, __LINE__, #cond, (msg))
#define CHECK_EQ(got, want, msg) \
	check_i64((int64_t) (got), (int64_t) (want), __FILE__, __LINE__, #got, (msg))
#define CHECK_EQ_U64(got, want, msg) \
	check_u64((uint64_t) (got), (uint64_t) (want), __FILE__, __LINE__, #got, (msg))
#define CHECK_STR(got, want, msg) check_str((got), (want), __FILE__, __LINE__, #got, (msg))

/* ----------------------------------------------------------------
 * Fixture: a detector, a fake clock and a log of burst_ended calls
 * ----------------------------------------------------------------
 */

#define MAX_ENDED 64
#define STMT_US 100				/* duration of each fake statement */
#define THINK_US 10				/* client time between statements */

typedef struct Ended
{
	N1Burst		burst;
	N1UnitEndReason reason;
	int			open_bursts;	/* n1_detector_bursts() seen from the callback */
} Ended;

typedef struct Fixture
{
	N1Detector *d;
	int64_t		now;
	int			n_ended;		/* callbacks, all of them */
	Ended		ended[MAX_ENDED];	/* the first MAX_ENDED */
} Fixture;

static void
record_ended(void *arg, const N1Burst *burst, N1UnitEndReason reason)
{
	Fixture    *f = arg;
	const N1Burst *open;

	if (f->n_ended < MAX_ENDED)
	{
		Ended	   *e = &f->ended[f->n_ended];

		e->burst = *burst;
		e->reason = reason;
		e->open_bursts = n1_detector_bursts(f->d, &open);
	}
	f->n_ended++;
}

static Fixture *
fixture_new(int min_calls, int64_t max_gap_us)
{
	Fixture    *f = calloc(1, sizeof(Fixture));
	N1DetectorConfig config;

	if (f == NULL || (f->d = calloc(1, sizeof(N1Detector))) == NULL)
	{
		printf("out of memory\n");
		exit(2);
	}
	memset(&config, 0, sizeof(config));
	config.min_calls = min_calls;
	config.max_gap_us = max_gap_us;
	config.burst_ended = record_ended;
	config.arg = f;
	n1_detector_init(f->d, &config);
	f->now = 1000000;
	return f;
}

static void
fixture_free(Fixture *f)
{
	free(f->d);
	free(f);
}

/* A statement without values, as a front end that cannot see them gives it. */
#define TIMING_STMT {.n_values = N1_VALUES_UNKNOWN, .n_result_values = N1_VALUES_UNKNOWN}

/* One statement of STMT_US, then THINK_US of client time; no values: the timing rule. */
static N1StatementResult
run(Fixture *f, uint64_t query_id, uint64_t param_hash, uint64_t rows)
{
	N1Statement stmt = TIMING_STMT;
	N1StatementResult result;

	stmt.query_id = query_id;
	stmt.param_hash = param_hash;
	stmt.start_us = f->now;
	stmt.end_us = f->now + STMT_US;
	stmt.rows = rows;
	f->now += STMT_US + THINK_US;
	n1_detector_statement(f->d, &stmt, &result);
	return result;
}

/*
 * One statement with values: its parameter values (nvals of them, may be 0),
 * and the values of its result rows (nres of them).
 */
static N1StatementResult
run_v(Fixture *f, uint64_t query_id, const uint64_t *vals, int nvals, uint64_t rows,
	  const uint64_t *res, int nres)
{
	N1Statement stmt;
	N1StatementResult result;
	uint64_t	h = 0x51ed27;
	int			i;

	memset(&stmt, 0, sizeof(stmt));
	stmt.query_id = query_id;
	for (i = 0; i < nvals && i < N1_CALL_VALUES; i++)
	{
		stmt.values[i] = vals[i];
		h = h * 31 + vals[i];
	}
	stmt.n_values = nvals < N1_CALL_VALUES ? nvals : N1_CALL_VALUES;
	stmt.param_hash = h;
	stmt.result_values = res;
	stmt.n_result_values = nres;
	stmt.start_us = f->now;
	stmt.end_us = f->now + STMT_US;
	stmt.rows = rows;
	f->now += STMT_US + THINK_US;
	n1_detector_statement(f->d, &stmt, &result);
	return result;
}

/* A call with one parameter value v, returning rows rows with no values of interest. */
static N1StatementResult
call1(Fixture *f, uint64_t query_id, uint64_t v, uint64_t rows)
{
	return run_v(f, query_id, &v, 1, rows, NULL, 0);
}

/* A list: no parameters, n rows whose values are first, first+step, ... */
static void
list_of(Fixture *f, uint64_t query_id, uint64_t first, uint64_t step, int n)
{
	uint64_t	res[256];
	int			i;

	for (i = 0; i < n && i < 256; i++)
		res[i] = first + (uint64_t) i * step;
	run_v(f, query_id, NULL, 0, (uint64_t) n, res, n);
}

/* Open bursts of the fixture's detector, and the one of query_id. */
static const N1Burst *
find_burst(Fixture *f, uint64_t query_id)
{
	const N1Burst *bursts;
	int			n = n1_detector_bursts(f->d, &bursts);
	int			i;

	for (i = 0; i < n; i++)
	{
		if (bursts[i].query_id == query_id)
			return &bursts[i];
	}
	return NULL;
}

static int
open_bursts(Fixture *f)
{
	const N1Burst *bursts;

	return n1_detector_bursts(f->d, &bursts);
}

static const Ended *
find_ended(Fixture *f, uint64_t query_id)
{
	int			i;

	for (i = 0; i < f->n_ended && i < MAX_ENDED; i++)
	{
		if (f->ended[i].burst.query_id == query_id)
			return &f->ended[i];
	}
	return NULL;
}

/* White-box: is query_id among the unit's tracked queries? */
static int
tracked(Fixture *f, uint64_t query_id)
{
	int			i;

	for (i = 0; i < f->d->n_queries; i++)
	{
		if (f->d->queries[i].query_id == query_id)
			return 1;
	}
	return 0;
}

/* Spread-out parameter hashes, as a real hash of values would be. */
static uint64_t
param(uint64_t i)
{
	return i * UINT64_C(0x9E3779B97F4A7C15) + UINT64_C(12345);
}

/* Query ids, distinct and never 0. */
enum
{
	Q_LIST = 101,
	Q_A,
	Q_B,
	Q_C,
	Q_D,
	Q_THREADS,
	Q_MESSAGES,
	Q_PERSON,
	Q_OTHER,
	Q_CHILD,
	Q_CURSOR,
	Q_PAGE,
	Q_EXTRA
};

/* ----------------------------------------------------------------
 * Tests
 * ----------------------------------------------------------------
 */

static void
test_kind_names(void)
{
	CHECK_STR(n1_kind_name(N1_KIND_N_PLUS_ONE), "n_plus_one", "kind name");
	CHECK_STR(n1_kind_name(N1_KIND_DUPLICATE), "duplicate", "kind name");
	CHECK_STR(n1_kind_name(N1_KIND_LOOP), "loop", "kind name");
	CHECK_STR(n1_kind_name(N1_KIND_NONE), "none", "kind name");
	CHECK(n1_kind_name((N1Kind) 42) != NULL, "out-of-range kind still named");
}

/* Scenario 1: list then A B C D per row; siblings are never each other's parent. */
static void
test_list_with_siblings(void)
{
	Fixture    *f = fixture_new(5, 1000000);
	uint64_t	sibs[4] = {Q_A, Q_B, Q_C, Q_D};
	uint64_t	sib_rows[4] = {3, 1, 3, 1};
	int			crossed[4] = {0, 0, 0, 0};
	int			samples[4] = {0, 0, 0, 0};
	int			kind_changes[4] = {0, 0, 0, 0};
	N1StatementResult r;
	int			row,
				s;

	r = run(f, Q_LIST, 1, 20);
	CHECK(r.unit_started, "first statement opens a unit");
	CHECK(r.burst == NULL, "a single call is no burst");

	for (row = 0; row < 20; row++)
	{
		for (s = 0; s < 4; s++)
		{
			r = run(f, sibs[s], param(row), sib_rows[s]);
			CHECK(!r.unit_started, "loop stays in one unit");
			if (row < 4)
				CHECK(r.burst == NULL && !r.crossed, "no burst before min_calls");
			if (row == 4)
			{
				CHECK(r.crossed, "crosses at the min_calls-th call");
				if (CHECK(r.burst != NULL, "burst on crossing"))
				{
					CHECK_EQ(r.burst->calls, 5, "calls at crossing");
					CHECK_EQ(r.burst->index, s, "bursts indexed in crossing order");
				}
			}
			if (r.crossed)
				crossed[s]++;
			if (r.capture_sample)
			{
				samples[s]++;
				CHECK(row >= 4 && row < 4 + N1_BURST_SAMPLES,
					  "samples for the first N1_BURST_SAMPLES calls from the crossing");
			}
			if (r.kind_changed)
				kind_changes[s]++;
		}
	}

	CHECK_EQ(open_bursts(f), 4, "four bursts, one per sibling");
	for (s = 0; s < 4; s++)
	{
		const N1Burst *b = find_burst(f, sibs[s]);

		CHECK_EQ(crossed[s], 1, "crossed exactly once");
		CHECK_EQ(samples[s], N1_BURST_SAMPLES, "sample requests");
		CHECK_EQ(kind_changes[s], 1, "kind set at crossing only");
		if (!CHECK(b != NULL, "sibling has a burst"))
			continue;
		CHECK_EQ(b->kind, N1_KIND_N_PLUS_ONE, "sibling is N+1");
		CHECK_EQ_U64(b->parent_query_id, Q_LIST, "parent is the list, never a sibling");
		CHECK_EQ(b->parent_calls, 1, "parent called once");
		CHECK_EQ_U64(b->parent_rows, 20, "parent rows");
		CHECK_EQ(b->calls, 20, "calls");
		CHECK(b->distinct_params >= 19 && b->distinct_params <= 20,
			  "distinct params ~20 (estimated past N1_DISTINCT_EXACT)");
		CHECK_EQ(b->samples_taken, N1_BURST_SAMPLES, "samples_taken");
	}

	CHECK_EQ(f->n_ended, 0, "nothing ended yet");
	n1_detector_end_unit(f->d, N1_END_TRANSACTION);
	CHECK_EQ(f->n_ended, 4, "burst_ended once per burst");
	for (s = 0; s < 4 && s < f->n_ended; s++)
	{
		CHECK_EQ(f->ended[s].reason, N1_END_TRANSACTION, "end reason");
		CHECK_EQ(f->ended[s].burst.kind, N1_KIND_N_PLUS_ONE, "final kind");
		CHECK_EQ(f->ended[s].burst.calls, 20, "final calls");
		CHECK_EQ(f->ended[s].open_bursts, 0, "unit already closed when callbacks run");
	}
	CHECK_EQ(open_bursts(f), 0, "no open bursts after the unit ended");
	n1_detector_end_unit(f->d, N1_END_EXIT);
	CHECK_EQ(f->n_ended, 4, "ending again is a no-op");
	fixture_free(f);
}

/* Scenario 2: threads -> messages -> person; each level's parent is the one above. */
static void
test_nested_loops(void)
{
	Fixture    *f = fixture_new(5, 1000000);
	const N1Burst *person;
	const N1Burst *messages;
	int			t,
				m;
	uint64_t	msg_id = 0;
	uint64_t	max_messages = 0;

	run(f, Q_THREADS, 1, 10);
	for (t = 0; t < 10; t++)
	{
		uint64_t	n_messages = 3 + (uint64_t) (t % 3);

		if (n_messages > max_messages)
			max_messages = n_messages;
		run(f, Q_MESSAGES, param(t), n_messages);
		for (m = 0; m < (int) n_messages; m++)
			run(f, Q_PERSON, param(1000 + msg_id++), 1);
	}

	person = find_burst(f, Q_PERSON);
	messages = find_burst(f, Q_MESSAGES);
	if (CHECK(person != NULL, "person loop is a burst"))
	{
		CHECK_EQ(person->kind, N1_KIND_N_PLUS_ONE, "person kind");
		CHECK_EQ_U64(person->parent_query_id, Q_MESSAGES, "person's parent is messages");
		CHECK_EQ(person->calls, (int64_t) msg_id, "person calls");
		CHECK_EQ_U64(person->parent_rows, max_messages, "parent_rows follows the largest messages call");
		CHECK_EQ(person->parent_calls, 10, "parent_calls follows the parent");
	}
	if (CHECK(messages != NULL, "messages loop is a burst"))
	{
		CHECK_EQ(messages->kind, N1_KIND_N_PLUS_ONE, "messages kind");
		CHECK_EQ_U64(messages->parent_query_id, Q_THREADS, "messages' parent is threads");
		CHECK_EQ_U64(messages->parent_rows, 10, "threads rows");
		CHECK_EQ(messages->calls, 10, "messages calls");
	}
	CHECK(find_burst(f, Q_THREADS) == NULL, "the top list is no burst");
	fixture_free(f);
}

/* Scenario 3: pgbench -S: one query, distinct params, no gaps -> one LOOP. */
static void
test_pgbench_loop(void)
{
	Fixture    *f = fixture_new(5, 1000000);
	const N1Burst *b;
	int			i;
	int			crossings = 0;
	int			never_n_plus_one = 1;
	int			samples = 0;

	run(f, Q_OTHER, 1, 1);		/* unrelated earlier query, one row */
	for (i = 0; i < 50000; i++)
	{
		N1StatementResult r = run(f, Q_PAGE, param(i), 1);

		crossings += r.crossed;
		samples += r.capture_sample;
		if (r.burst != NULL && r.burst->kind == N1_KIND_N_PLUS_ONE)
			never_n_plus_one = 0;
	}
	CHECK(never_n_plus_one, "never classified N+1");
	CHECK_EQ(crossings, 1, "crosses once");
	CHECK_EQ(samples, N1_BURST_SAMPLES, "bounded sample requests");
	CHECK_EQ(open_bursts(f), 1, "a single burst");
	b = find_burst(f, Q_PAGE);
	if (CHECK(b != NULL, "burst exists"))
	{
		CHECK_EQ(b->kind, N1_KIND_LOOP, "LOOP");
		CHECK_EQ_U64(b->parent_query_id, 0, "1-row query is not a parent");
		CHECK_EQ(b->calls, 50000, "calls");
		/* 50,000 values saturate a 1024-bit bitmap: large but finite */
		CHECK(b->distinct_params > 5000 && b->distinct_params <= 50000,
			  "saturated estimate is large and sane");
		CHECK_EQ(b->exec_us, (int64_t) 50000 * STMT_US, "exec_us");
	}
	CHECK_EQ(f->d->units, 1, "one unit");
	fixture_free(f);
}

/* Scenario 4: same query, same params -> DUPLICATE; kind changes only forward. */
static void
test_duplicate(void)
{
	Fixture    *f = fixture_new(5, 1000000);
	const N1Burst *b;
	N1StatementResult r;
	int			i;
	int			changes = 0;

	/* without a list */
	for (i = 0; i < 10; i++)
	{
		r = run(f, Q_CHILD, 42, 1);
		changes += r.kind_changed;
	}
	b = find_burst(f, Q_CHILD);
	if (CHECK(b != NULL, "duplicate burst"))
	{
		CHECK_EQ(b->kind, N1_KIND_DUPLICATE, "DUPLICATE");
		CHECK_EQ_U64(b->parent_query_id, 0, "no parent");
		CHECK_EQ(b->distinct_params, 1, "one param set");
		CHECK_EQ(b->calls, 10, "calls");
	}
	CHECK_EQ(changes, 1, "kind changed once (crossing)");

	/* a second param set turns it into a LOOP (no parent), and it stays one */
	r = run(f, Q_CHILD, 43, 1);
	CHECK(r.kind_changed && !r.crossed, "kind change reported");
	CHECK(r.burst != NULL && r.burst->kind == N1_KIND_LOOP, "DUPLICATE -> LOOP");
	r = run(f, Q_CHILD, 42, 1);
	CHECK(!r.kind_changed, "no change when params repeat");
	CHECK(r.burst != NULL && r.burst->kind == N1_KIND_LOOP, "never goes back to DUPLICATE");
	n1_detector_end_unit(f->d, N1_END_EXIT);
	CHECK_EQ(f->n_ended, 1, "one burst ended");
	CHECK_EQ(f->ended[0].reason, N1_END_EXIT, "reason");
	CHECK_EQ(f->ended[0].burst.kind, N1_KIND_LOOP, "final kind");

	/* with a list before it */
	run(f, Q_LIST, 1, 20);
	for (i = 0; i < 10; i++)
		r = run(f, Q_CHILD, 42, 1);
	b = find_burst(f, Q_CHILD);
	if (CHECK(b != NULL, "duplicate burst with a list"))
	{
		CHECK_EQ(b->kind, N1_KIND_DUPLICATE, "DUPLICATE even with a parent");
		CHECK_EQ_U64(b->parent_query_id, Q_LIST, "parent kept for a duplicate");
		CHECK_EQ(b->index, 0, "indexes restart in a new unit");
	}
	r = run(f, Q_CHILD, 7, 1);
	CHECK(r.kind_changed, "kind change reported");
	CHECK(r.burst != NULL && r.burst->kind == N1_KIND_N_PLUS_ONE, "DUPLICATE -> N_PLUS_ONE");
	fixture_free(f);
}

/* Scenario 5: cursor: rows reported before the children, statement at CLOSE. */
static void
test_cursor_parent(void)
{
	Fixture    *f = fixture_new(5, 1000000);
	N1Statement close_stmt = TIMING_STMT;
	N1StatementResult r;
	const N1Burst *b;
	int64_t		declared_at = f->now;
	int			i;

	n1_detector_rows(f->d, Q_CURSOR, 50, f->now, NULL, N1_VALUES_UNKNOWN);
	f->now += 50;
	n1_detector_rows(f->d, Q_CURSOR, 100, f->now, NULL, N1_VALUES_UNKNOWN);
	f->now += 50;
	for (i = 0; i < 20; i++)
	{
		r = run(f, Q_CHILD, param(i), 1);
		if (i == 0)
			CHECK(!r.unit_started, "the cursor's rows opened the unit already");
		if (r.crossed && CHECK(r.burst != NULL, "burst at crossing"))
		{
			CHECK_EQ(r.burst->kind, N1_KIND_N_PLUS_ONE, "cursor child is N+1");
			CHECK_EQ_U64(r.burst->parent_query_id, Q_CURSOR, "parent is the cursor");
			CHECK_EQ(r.burst->parent_calls, 0, "cursor has no finished call yet");
			CHECK_EQ_U64(r.burst->parent_rows, 100, "cumulative cursor rows");
		}
	}

	/* more rows fetched after the crossing update the burst */
	n1_detector_rows(f->d, Q_CURSOR, 150, f->now, NULL, N1_VALUES_UNKNOWN);
	b = find_burst(f, Q_CHILD);
	if (CHECK(b != NULL, "burst exists"))
		CHECK_EQ_U64(b->parent_rows, 150, "parent_rows grows with the parent");

	/* CLOSE: the statement started at DECLARE, long before the children */
	close_stmt.query_id = Q_CURSOR;
	close_stmt.param_hash = 9;
	close_stmt.start_us = declared_at;
	close_stmt.end_us = f->now + 5;
	close_stmt.rows = 150;
	f->now += 10;
	n1_detector_statement(f->d, &close_stmt, &r);
	CHECK(!r.unit_started, "an early start_us is no gap");
	CHECK(r.burst == NULL, "the cursor itself is no burst");
	b = find_burst(f, Q_CHILD);
	if (CHECK(b != NULL, "burst still open"))
	{
		CHECK_EQ(b->parent_calls, 1, "parent_calls after CLOSE");
		CHECK_EQ_U64(b->parent_rows, 150, "parent_rows after CLOSE");
		CHECK_EQ(b->kind, N1_KIND_N_PLUS_ONE, "still N+1");
	}
	n1_detector_end_unit(f->d, N1_END_TRANSACTION);
	CHECK_EQ(f->n_ended, 1, "one burst ended");
	CHECK_EQ(f->ended[0].burst.parent_calls, 1, "final parent_calls");
	CHECK_EQ_U64(f->ended[0].burst.parent_rows, 150, "final parent_rows");
	CHECK_EQ(f->d->units, 1, "one unit");
	fixture_free(f);
}

/* Scenario 6: keyset pagination: a query is never its own parent. */
static void
test_keyset_pagination(void)
{
	Fixture    *f = fixture_new(5, 1000000);
	const N1Burst *b;
	int			i;

	for (i = 0; i < 10; i++)
		run(f, Q_PAGE, param(i), 100);
	b = find_burst(f, Q_PAGE);
	if (CHECK(b != NULL, "pagination is a burst"))
	{
		CHECK_EQ(b->kind, N1_KIND_LOOP, "LOOP");
		CHECK_EQ_U64(b->parent_query_id, 0, "not its own parent");
		CHECK_EQ(b->distinct_params, 10, "exact distinct count");
	}
	fixture_free(f);
}

/* Parent candidates must be seen first and have fewer calls. */
static void
test_parent_rules(void)
{
	Fixture    *f = fixture_new(5, 1000000);
	const N1Burst *b;
	int			i;

	/* a list first seen after Q's first call is not Q's parent */
	run(f, Q_CHILD, param(0), 1);
	run(f, Q_LIST, 1, 20);
	for (i = 1; i < 5; i++)
		run(f, Q_CHILD, param(i), 1);
	b = find_burst(f, Q_CHILD);
	if (CHECK(b != NULL, "burst"))
	{
		CHECK_EQ_U64(b->parent_query_id, 0, "later list is not a parent");
		CHECK_EQ(b->kind, N1_KIND_LOOP, "LOOP");
	}
	n1_detector_end_unit(f->d, N1_END_EXIT);

	/* a list with as many calls as Q is a sibling, not a parent */
	for (i = 0; i < 5; i++)
	{
		run(f, Q_LIST, param(i), 20);
		run(f, Q_CHILD, param(i), 1);
	}
	b = find_burst(f, Q_CHILD);
	if (CHECK(b != NULL, "burst"))
		CHECK_EQ_U64(b->parent_query_id, 0, "equal calls: sibling, not parent");
	n1_detector_end_unit(f->d, N1_END_EXIT);

	/* the most recently active candidate wins; the choice is kept */
	run(f, Q_LIST, 1, 20);
	run(f, Q_OTHER, 1, 5);
	for (i = 0; i < 5; i++)
		run(f, Q_CHILD, param(i), 1);
	b = find_burst(f, Q_CHILD);
	if (CHECK(b != NULL, "burst"))
		CHECK_EQ_U64(b->parent_query_id, Q_OTHER, "most recent candidate");
	run(f, Q_LIST, 2, 30);		/* now more recent, but the parent is kept */
	for (i = 5; i < 8; i++)
		run(f, Q_CHILD, param(i), 1);
	b = find_burst(f, Q_CHILD);
	if (CHECK(b != NULL, "burst"))
	{
		CHECK_EQ_U64(b->parent_query_id, Q_OTHER, "parent kept for the unit");
		CHECK_EQ_U64(b->parent_rows, 5, "parent_rows of the kept parent");
	}

	/* a 1-row query is never a parent, however recent */
	n1_detector_end_unit(f->d, N1_END_EXIT);
	run(f, Q_LIST, 1, 20);
	run(f, Q_OTHER, 1, 1);
	for (i = 0; i < 5; i++)
		run(f, Q_CHILD, param(i), 1);
	b = find_burst(f, Q_CHILD);
	if (CHECK(b != NULL, "burst"))
		CHECK_EQ_U64(b->parent_query_id, Q_LIST, "1-row query skipped");
	fixture_free(f);
}

/* Scenario 7: gaps and explicit ends split units. */
static void
test_gaps(void)
{
	Fixture    *f = fixture_new(5, 1000);
	N1StatementResult r;
	int			i;

	for (i = 0; i < 4; i++)
		run(f, Q_CHILD, param(i), 1);
	f->now += 1001;
	for (i = 0; i < 4; i++)
	{
		r = run(f, Q_CHILD, param(i), 1);
		CHECK(r.burst == NULL, "no burst across a gap");
		CHECK(r.unit_started == (i == 0), "unit_started only on the first after the gap");
	}
	CHECK_EQ(f->n_ended, 0, "no bursts ended");
	CHECK_EQ(f->d->units, 2, "two units");

	n1_detector_end_unit(f->d, N1_END_EXIT);
	for (i = 0; i < 4; i++)
		run(f, Q_CHILD, param(i), 1);
	n1_detector_end_unit(f->d, N1_END_TRANSACTION);
	for (i = 0; i < 4; i++)
	{
		r = run(f, Q_CHILD, param(i), 1);
		CHECK(r.burst == NULL, "no burst across an explicit end");
	}
	CHECK_EQ(f->n_ended, 0, "no bursts ended");

	/* a gap of exactly max_gap_us does not split */
	n1_detector_end_unit(f->d, N1_END_EXIT);
	for (i = 0; i < 5; i++)
	{
		r = run(f, Q_CHILD, param(i), 1);
		f->now += 1000 - THINK_US;	/* idle exactly max_gap_us */
	}
	CHECK(r.crossed, "gap == max_gap_us keeps the unit");
	fixture_free(f);
}

/* A gap ends the unit and reports its bursts before the next statement counts. */
static void
test_gap_ends_bursts(void)
{
	Fixture    *f = fixture_new(3, 1000);
	N1StatementResult r;
	int			i;

	run(f, Q_LIST, 1, 10);
	for (i = 0; i < 5; i++)
		run(f, Q_CHILD, param(i), 1);
	for (i = 0; i < 3; i++)
		run(f, Q_OTHER, 7, 1);
	CHECK_EQ(open_bursts(f), 2, "two bursts");

	f->now += 5000;
	r = run(f, Q_CHILD, param(99), 1);
	CHECK(r.unit_started, "gap opened a new unit");
	CHECK(r.burst == NULL, "new unit starts counting afresh");
	CHECK_EQ(f->n_ended, 2, "both bursts ended");
	if (CHECK(f->n_ended == 2, "two callbacks"))
	{
		CHECK_EQ(f->ended[0].reason, N1_END_GAP, "reason GAP");
		CHECK_EQ(f->ended[1].reason, N1_END_GAP, "reason GAP");
		CHECK_EQ_U64(f->ended[0].burst.query_id, Q_CHILD, "first burst first");
		CHECK_EQ(f->ended[0].burst.calls, 5, "final counts exclude the next unit");
		CHECK_EQ(f->ended[0].burst.kind, N1_KIND_N_PLUS_ONE, "child kind");
		CHECK(find_ended(f, Q_OTHER) != NULL &&
			  find_ended(f, Q_OTHER)->burst.kind == N1_KIND_DUPLICATE, "other kind");
		CHECK_EQ(f->ended[1].open_bursts, 0, "unit already closed when callbacks run");
	}
	CHECK_EQ(open_bursts(f), 0, "new unit has no bursts");

	/* n1_detector_rows ends a unit on a gap too */
	for (i = 0; i < 3; i++)
		run(f, Q_PAGE, param(i), 1);
	f->now += 5000;
	n1_detector_rows(f->d, Q_CURSOR, 10, f->now, NULL, N1_VALUES_UNKNOWN);
	CHECK_EQ(f->n_ended, 3, "rows after a gap ends the unit");
	CHECK_EQ(f->ended[2].reason, N1_END_GAP, "reason GAP");
	CHECK_EQ(f->d->units, 3, "rows opened a unit");
	fixture_free(f);
}

/* Scenario 10: burst fields and timings. */
static void
test_burst_fields(void)
{
	Fixture    *f = fixture_new(3, 1000000);
	N1Statement stmt = TIMING_STMT;
	N1StatementResult r;
	const N1Burst *b;
	int64_t		t = 5000;
	int64_t		durations[5] = {10, 20, 30, 40, 50};
	int64_t		first_start = 0;
	int64_t		last_end = 0;
	int			i;

	for (i = 0; i < 5; i++)
	{
		stmt.query_id = Q_CHILD;
		stmt.param_hash = param(i);
		stmt.start_us = t;
		stmt.end_us = t + durations[i];
		stmt.rows = 1;
		if (i == 0)
			first_start = stmt.start_us;
		last_end = stmt.end_us;
		t = stmt.end_us + 7;
		n1_detector_statement(f->d, &stmt, &r);
	}
	b = find_burst(f, Q_CHILD);
	if (CHECK(b != NULL, "burst"))
	{
		CHECK_EQ(b->calls, 5, "calls include those before the crossing");
		CHECK_EQ(b->exec_us, 150, "exec_us sums all calls");
		CHECK_EQ(b->first_start_us, first_start, "first_start_us");
		CHECK_EQ(b->last_end_us, last_end, "last_end_us");
		CHECK_EQ(b->distinct_params, 5, "distinct_params");
		CHECK_EQ(b->samples_taken, N1_BURST_SAMPLES, "samples_taken");
		CHECK_EQ(b->index, 0, "index");
	}

	/* a statement whose clock went backwards adds no negative time */
	stmt.param_hash = param(10);
	stmt.start_us = t;
	stmt.end_us = t - 5;
	n1_detector_statement(f->d, &stmt, &r);
	CHECK(r.burst != NULL && r.burst->exec_us == 150, "negative durations ignored");
	CHECK(!r.capture_sample, "no samples past N1_BURST_SAMPLES");
	fixture_free(f);
}

/* n1_detector_configure changes thresholds from the next statement on. */
static void
test_configure(void)
{
	Fixture    *f = fixture_new(10, 1000000);
	N1StatementResult r;
	int			i;

	for (i = 0; i < 4; i++)
		r = run(f, Q_CHILD, param(i), 1);
	CHECK(r.burst == NULL, "below min_calls 10");
	n1_detector_configure(f->d, 3, 0, 1000000);
	r = run(f, Q_CHILD, param(4), 1);
	CHECK(r.crossed, "lowered min_calls: crosses on the next call");
	if (CHECK(r.burst != NULL, "burst"))
		CHECK_EQ(r.burst->calls, 5, "all calls counted");

	/* min_calls below 2 is treated as 2: one call is never a burst */
	n1_detector_configure(f->d, 1, 0, 1000000);
	r = run(f, Q_OTHER, 1, 1);
	CHECK(r.burst == NULL, "a single call is no burst");
	r = run(f, Q_OTHER, 1, 1);
	CHECK(r.crossed, "crosses at 2");

	/* max_gap_us change takes effect */
	n1_detector_configure(f->d, 3, 0, 10);
	f->now += 50;
	r = run(f, Q_OTHER, 1, 1);
	CHECK(r.unit_started, "smaller max_gap_us splits units");
	CHECK_EQ(f->n_ended, 2, "previous unit's bursts ended");
	CHECK_EQ(f->d->config.min_calls, 3, "configured min_calls");
	CHECK(f->d->config.burst_ended == record_ended, "callback kept");

	/* negative gap clamps to 0: any idle time splits */
	n1_detector_configure(f->d, 3, 0, -5);
	f->now += 1;
	r = run(f, Q_OTHER, 1, 1);
	CHECK(r.unit_started, "max_gap_us < 0 treated as 0");
	fixture_free(f);
}

/* Scenario 9: exact distinct counts, then linear counting. */
static void
test_distinct_params(void)
{
	Fixture    *f = fixture_new(2, 1000000000);
	const N1Burst *b;
	int			i;

	/* exact up to N1_DISTINCT_EXACT, repeats ignored */
	for (i = 0; i < N1_DISTINCT_EXACT; i++)
	{
		run(f, Q_CHILD, param(i), 1);
		run(f, Q_CHILD, param(i), 1);
	}
	b = find_burst(f, Q_CHILD);
	if (CHECK(b != NULL, "burst"))
		CHECK_EQ(b->distinct_params, N1_DISTINCT_EXACT, "exact count");
	run(f, Q_CHILD, param(N1_DISTINCT_EXACT), 1);
	CHECK(b != NULL && b->distinct_params == N1_DISTINCT_EXACT + 1,
		  "one past exact still counted");

	/* 1,000 distinct: within 5% */
	for (i = N1_DISTINCT_EXACT + 1; i < 1000; i++)
		run(f, Q_CHILD, param(i), 1);
	for (i = 0; i < 1000; i += 3)
		run(f, Q_CHILD, param(i), 1);	/* repeats change nothing */
	if (b != NULL)
	{
		CHECK(b->distinct_params >= 950 && b->distinct_params <= 1050,
			  "1,000 distinct estimated within 5%");
	}
	n1_detector_end_unit(f->d, N1_END_EXIT);

	/* sequential small integers as hashes: the detector mixes them itself */
	for (i = 0; i < 1000; i++)
		run(f, Q_CHILD, (uint64_t) i, 1);
	b = find_burst(f, Q_CHILD);
	if (CHECK(b != NULL, "burst"))
	{
		CHECK(b->distinct_params >= 950 && b->distinct_params <= 1050,
			  "sequential hashes estimated within 5%");
	}
	n1_detector_end_unit(f->d, N1_END_EXIT);

	/* never more distinct params than calls */
	for (i = 0; i < 40; i++)
		run(f, Q_CHILD, param(i), 1);
	b = find_burst(f, Q_CHILD);
	if (CHECK(b != NULL, "burst"))
		CHECK(b->distinct_params > N1_DISTINCT_EXACT && b->distinct_params <= 40,
			  "estimate bounded by calls");
	n1_detector_end_unit(f->d, N1_END_EXIT);

	/* saturation: large and finite */
	for (i = 0; i < 200000; i++)
		run(f, Q_CHILD, param(i), 1);
	b = find_burst(f, Q_CHILD);
	if (CHECK(b != NULL, "burst"))
	{
		CHECK(b->distinct_params > 5000 && b->distinct_params < 20000,
			  "saturated bitmap gives a sane number");
	}
	fixture_free(f);
}

/* Scenario 8: 10,000 distinct queries in one unit. */
static void
test_many_queries(void)
{
	Fixture    *f = fixture_new(5, 1000000000);
	const N1Burst *b;
	N1StatementResult r;
	uint64_t	evicted_before;
	int			n_queries_before;
	int			i;
	int			one_offs_ok = 1;

	run(f, Q_LIST, 1, 20);
	run(f, Q_OTHER, 1, 5);		/* could be a parent: kept over 1-row queries */
	for (i = 0; i < 5; i++)
		run(f, Q_CHILD, param(i), 1);
	b = find_burst(f, Q_CHILD);
	CHECK(b != NULL && b->parent_query_id == Q_OTHER, "burst with a parent");

	for (i = 0; i < 10000; i++)
	{
		r = run(f, 1000000 + (uint64_t) i, 1, 1);
		if (r.burst != NULL || r.crossed)
			one_offs_ok = 0;
		if (i % 100 == 0)
			run(f, Q_CHILD, param(100 + i), 1);
	}
	CHECK(one_offs_ok, "one-off queries are no bursts");
	CHECK(f->d->n_queries <= N1_UNIT_MAX_QUERIES, "table bounded");
	CHECK_EQ(f->d->n_queries, N1_UNIT_MAX_QUERIES, "table full");
	CHECK_EQ_U64(f->d->evicted_queries,
				 (uint64_t) (10000 + 3 - N1_UNIT_MAX_QUERIES), "evictions counted");
	CHECK(tracked(f, Q_CHILD), "burst query never evicted");
	CHECK(tracked(f, Q_OTHER), "parent never evicted");
	CHECK(tracked(f, Q_LIST), "possible parent (20 rows) kept over 1-row queries");
	b = find_burst(f, Q_CHILD);
	if (CHECK(b != NULL, "burst survives"))
	{
		CHECK_EQ(b->calls, 5 + 100, "burst calls all counted");
		CHECK_EQ_U64(b->parent_query_id, Q_OTHER, "parent kept");
	}
	run(f, Q_OTHER, 2, 50);
	CHECK(b != NULL && b->parent_rows == 50 && b->parent_calls == 2,
		  "parent still tracked after evictions");

	/*
	 * Every tracked query must still be found through the index after all
	 * the deletions: calling each again must neither add nor evict.
	 */
	evicted_before = f->d->evicted_queries;
	n_queries_before = f->d->n_queries;
	{
		uint64_t	ids[N1_UNIT_MAX_QUERIES];
		int			n = f->d->n_queries;

		for (i = 0; i < n; i++)
			ids[i] = f->d->queries[i].query_id;
		for (i = 0; i < n; i++)
			run(f, ids[i], 1, 1);
	}
	CHECK_EQ_U64(f->d->evicted_queries, evicted_before, "index consistent after deletions");
	CHECK_EQ(f->d->n_queries, n_queries_before, "no duplicate entries");

	n1_detector_end_unit(f->d, N1_END_EXIT);
	CHECK_EQ(f->n_ended, 1, "one burst ended");
	CHECK_EQ(f->d->n_queries, 0, "unit reset");

	/* the next unit works normally */
	run(f, Q_LIST, 1, 20);
	for (i = 0; i < 5; i++)
		r = run(f, Q_CHILD, param(i), 1);
	CHECK(r.crossed && r.burst != NULL && r.burst->parent_query_id == Q_LIST,
		  "fresh unit after a full one");
	fixture_free(f);
}

/* Eviction never drops a burst's parent, even when every query could be one. */
static void
test_eviction_keeps_parent(void)
{
	Fixture    *f = fixture_new(5, 1000000000);
	const N1Burst *b;
	int			i;

	run(f, Q_LIST, 1, 20);
	for (i = 0; i < 5; i++)
		run(f, Q_CHILD, param(i), 1);
	b = find_burst(f, Q_CHILD);
	CHECK(b != NULL && b->parent_query_id == Q_LIST, "burst with a parent");

	/* one-off queries returning several rows: all possible parents, all newer */
	for (i = 0; i < 500; i++)
	{
		run(f, 2000000 + (uint64_t) i, 1, 5);
		if (i % 50 == 0)
			run(f, Q_CHILD, param(10 + i), 1);
	}
	CHECK(f->d->evicted_queries > 0, "evictions happened");
	CHECK(tracked(f, Q_LIST), "least recently active, but a parent: kept");
	CHECK(tracked(f, Q_CHILD), "burst kept");
	run(f, Q_LIST, 2, 40);
	CHECK(b != NULL && b->parent_calls == 2 && b->parent_rows == 40,
		  "parent still feeds its burst");
	fixture_free(f);
}

/* Scenario 8, bursts: more crossing queries than N1_UNIT_MAX_BURSTS. */
static void
test_too_many_bursts(void)
{
	Fixture    *f = fixture_new(2, 1000000000);
	N1StatementResult r;
	int			q,
				i;
	int			extra = 5;
	int			no_burst_ok = 1;

	for (q = 0; q < N1_UNIT_MAX_BURSTS + extra; q++)
	{
		for (i = 0; i < 4; i++)
		{
			r = run(f, 5000 + (uint64_t) q, param(i), 1);
			if (q >= N1_UNIT_MAX_BURSTS && (r.burst != NULL || r.crossed || r.capture_sample))
				no_burst_ok = 0;
		}
	}
	CHECK(no_burst_ok, "dropped bursts give no burst, crossing or samples");
	CHECK_EQ(open_bursts(f), N1_UNIT_MAX_BURSTS, "bursts capped");
	CHECK_EQ_U64(f->d->dropped_bursts, (uint64_t) extra, "each dropped query counted once");

	/* many one-off queries now: eviction must still find victims */
	for (i = 0; i < 1000; i++)
		run(f, 900000 + (uint64_t) i, 1, 1);
	for (q = 0; q < N1_UNIT_MAX_BURSTS; q++)
		CHECK(tracked(f, 5000 + (uint64_t) q), "burst queries kept");
	n1_detector_end_unit(f->d, N1_END_APPLICATION);
	CHECK_EQ(f->n_ended, N1_UNIT_MAX_BURSTS, "one callback per kept burst");
	CHECK_EQ(f->ended[0].reason, N1_END_APPLICATION, "reason");
	fixture_free(f);
}

/* Odd inputs: no callback, query_id 0, nested statements. */
static void
test_edge_cases(void)
{
	N1Detector *d = calloc(1, sizeof(N1Detector));
	N1DetectorConfig config;
	N1Statement stmt = TIMING_STMT;
	N1StatementResult r;
	const N1Burst *bursts;
	int			i;

	if (d == NULL)
		exit(2);
	memset(&config, 0, sizeof(config));
	config.min_calls = 3;
	config.max_gap_us = 100;
	n1_detector_init(d, &config);
	CHECK_EQ(n1_detector_bursts(d, &bursts), 0, "no unit, no bursts");
	n1_detector_end_unit(d, N1_END_EXIT);	/* no unit: no-op */
	CHECK_EQ(d->units, 0, "no unit opened");

	/* no callback set: units still end cleanly */
	for (i = 0; i < 3; i++)
	{
		stmt.query_id = Q_CHILD;
		stmt.param_hash = param(i);
		stmt.start_us = 1000 + i * 10;
		stmt.end_us = stmt.start_us + 5;
		stmt.rows = 1;
		n1_detector_statement(d, &stmt, &r);
	}
	CHECK(r.crossed, "burst without a callback");
	n1_detector_end_unit(d, N1_END_EXIT);
	CHECK_EQ(n1_detector_bursts(d, &bursts), 0, "ended");

	/* query_id 0 is not tracked but keeps the unit alive */
	stmt.query_id = 0;
	stmt.start_us = 5000;
	stmt.end_us = 5050;
	n1_detector_statement(d, &stmt, &r);
	CHECK(r.unit_started && r.burst == NULL, "query_id 0 opens a unit, no burst");
	CHECK_EQ(d->n_queries, 0, "query_id 0 not tracked");
	stmt.query_id = Q_CHILD;
	stmt.start_us = 5140;		/* 90 after the id-0 statement ended */
	stmt.end_us = 5150;
	n1_detector_statement(d, &stmt, &r);
	CHECK(!r.unit_started, "activity of query_id 0 counts for the gap");

	/*
	 * Nested statements: the outer function's event arrives last with an
	 * early start; the gap is measured from the latest end seen.
	 */
	n1_detector_end_unit(d, N1_END_EXIT);
	for (i = 0; i < 3; i++)
	{
		stmt.query_id = Q_CHILD;
		stmt.param_hash = param(i);
		stmt.start_us = 10000 + i * 50;
		stmt.end_us = stmt.start_us + 10;
		n1_detector_statement(d, &stmt, &r);
	}
	stmt.query_id = Q_LIST;
	stmt.start_us = 9990;
	stmt.end_us = 10500;
	stmt.rows = 1;
	n1_detector_statement(d, &stmt, &r);
	CHECK(!r.unit_started, "outer statement is no gap");
	stmt.query_id = Q_CHILD;
	stmt.start_us = 10550;		/* 50 after the outer end, 440 after the last inner */
	stmt.end_us = 10560;
	n1_detector_statement(d, &stmt, &r);
	CHECK(!r.unit_started, "gap measured from the latest end");
	CHECK(r.burst != NULL && r.burst->calls == 4, "same unit continues");

	/* an event ending before the latest activity does not move the clock back */
	n1_detector_rows(d, Q_CURSOR, 10, 10700, NULL, N1_VALUES_UNKNOWN);
	stmt.query_id = Q_OTHER;
	stmt.start_us = 10580;
	stmt.end_us = 10590;		/* before the rows report at 10700 */
	n1_detector_statement(d, &stmt, &r);
	CHECK(!r.unit_started, "overlapping event is no gap");
	stmt.start_us = 10780;		/* 80 after 10700, 190 after 10590 */
	stmt.end_us = 10790;
	n1_detector_statement(d, &stmt, &r);
	CHECK(!r.unit_started, "gap still measured from the latest activity");
	free(d);
}

/* A callback that does not return (ERROR in the server) never repeats a burst. */
typedef struct Escape
{
	jmp_buf		env;
	int			calls;
} Escape;

static void
escaping_callback(void *arg, const N1Burst *burst, N1UnitEndReason reason)
{
	Escape	   *e = arg;

	(void) burst;
	(void) reason;
	e->calls++;
	longjmp(e->env, 1);
}

static void
test_callback_escape(void)
{
	N1Detector *d = calloc(1, sizeof(N1Detector));
	Escape	   *e = calloc(1, sizeof(Escape));
	N1DetectorConfig config;
	N1Statement stmt = TIMING_STMT;
	N1StatementResult r;
	const N1Burst *bursts;
	int			i;

	if (d == NULL || e == NULL)
		exit(2);
	memset(&config, 0, sizeof(config));
	config.min_calls = 2;
	config.max_gap_us = 1000;
	config.burst_ended = escaping_callback;
	config.arg = e;
	n1_detector_init(d, &config);

	stmt.param_hash = 1;
	stmt.rows = 1;
	for (i = 0; i < 6; i++)
	{
		stmt.query_id = Q_A + (uint64_t) (i % 3);	/* three bursts */
		stmt.start_us = 100 + i * 10;
		stmt.end_us = stmt.start_us + 5;
		n1_detector_statement(d, &stmt, &r);
	}
	CHECK_EQ(n1_detector_bursts(d, &bursts), 3, "three bursts");
	if (setjmp(e->env) == 0)
		n1_detector_end_unit(d, N1_END_EXIT);
	CHECK_EQ(e->calls, 1, "callback escaped on the first burst");
	CHECK_EQ(n1_detector_bursts(d, &bursts), 0, "unit closed despite the escape");
	n1_detector_end_unit(d, N1_END_EXIT);
	CHECK_EQ(e->calls, 1, "no burst reported twice");
	stmt.start_us = 1000;
	stmt.end_us = 1005;
	n1_detector_statement(d, &stmt, &r);
	CHECK(r.unit_started && r.burst == NULL, "detector usable afterwards");
	free(e);
	free(d);
}

/* ----------------------------------------------------------------
 * The values rule: table-driven scenarios
 * ----------------------------------------------------------------
 */

/* A list of 20 rows (values 1..20 and author ids 101..120), then per row A B C. */
static void
scen_siblings(Fixture *f)
{
	uint64_t	res[40];
	int			i;

	for (i = 0; i < 20; i++)
	{
		res[2 * i] = (uint64_t) i + 1;
		res[2 * i + 1] = 101 + (uint64_t) i;
	}
	run_v(f, Q_LIST, NULL, 0, 20, res, 40);
	for (i = 0; i < 20; i++)
	{
		uint64_t	own[3] = {1000 + (uint64_t) i * 10, 1001 + (uint64_t) i * 10, 1002 + (uint64_t) i * 10};

		/* A returns the book's row, whose values B then uses: still a sibling */
		run_v(f, Q_A, (uint64_t[]) {(uint64_t) i + 1}, 1, 3, own, 3);
		call1(f, Q_B, 101 + (uint64_t) i, 1);
		call1(f, Q_C, own[0], 1);
	}
}

/* threads -> messages -> person: each level's parent is the level above. */
static void
scen_nested(Fixture *f)
{
	int			t,
				m;
	uint64_t	msg = 0;

	list_of(f, Q_THREADS, 1, 1, 10);
	for (t = 0; t < 10; t++)
	{
		int			n = 2 + t % 3;
		uint64_t	res[16];

		/* each message row: its id, its sender, its thread */
		for (m = 0; m < n; m++)
		{
			res[3 * m] = 5000 + msg + (uint64_t) m;
			res[3 * m + 1] = 7000 + (msg + (uint64_t) m) % 13;
			res[3 * m + 2] = (uint64_t) t + 1;
		}
		run_v(f, Q_MESSAGES, (uint64_t[]) {(uint64_t) t + 1}, 1, (uint64_t) n, res, 3 * n);
		for (m = 0; m < n; m++)
			call1(f, Q_PERSON, 7000 + (msg + (uint64_t) m) % 13, 1);
		msg += (uint64_t) n;
	}
}

/* A list, then a loop over constants (a menu of 5 items): a LOOP, no parent. */
static void
scen_constants(Fixture *f)
{
	int			i;

	list_of(f, Q_LIST, 1, 1, 20);
	for (i = 0; i < 8; i++)
		call1(f, Q_CHILD, 500 + (uint64_t) (i % 5), 1);
}

/*
 * Per row: a permission check (same two values every time, one row), a
 * count (one row) and the child.
 */
static void
scen_permissions(Fixture *f)
{
	int			i;

	list_of(f, Q_LIST, 1, 1, 10);
	for (i = 0; i < 10; i++)
	{
		uint64_t	res = 7;

		run_v(f, Q_OTHER, (uint64_t[]) {777, 333}, 2, 1, &res, 1);
		run_v(f, Q_EXTRA, (uint64_t[]) {(uint64_t) i + 1}, 1, 1, &res, 1);
		call1(f, Q_CHILD, (uint64_t) i + 1, 1);
	}
}

/* The list, then an unrelated multi-row query (a sidebar), then the loop. */
static void
scen_unrelated_between(Fixture *f)
{
	int			i;

	list_of(f, Q_LIST, 1, 1, 10);
	list_of(f, Q_OTHER, 900, 1, 6);
	list_of(f, Q_EXTRA, 3, 1, 2);	/* holds 2 of the child's 10 values: a minority */
	for (i = 0; i < 10; i++)
		call1(f, Q_CHILD, (uint64_t) i + 1, 1);
}

/* The child's values come from a query first seen after it: no parent. */
static void
scen_later_source(Fixture *f)
{
	int			i;

	call1(f, Q_CHILD, 1, 1);
	list_of(f, Q_LIST, 1, 1, 10);
	for (i = 1; i < 10; i++)
		call1(f, Q_CHILD, (uint64_t) i + 1, 1);
}

/* A constant parameter beside the varying one (list id, thread id). */
static void
scen_constant_beside(Fixture *f)
{
	int			i;

	list_of(f, Q_THREADS, 1, 1, 10);
	for (i = 0; i < 10; i++)
		run_v(f, Q_MESSAGES, (uint64_t[]) {424242, (uint64_t) i + 1}, 2, 1, NULL, 0);
}

/* A cursor's rows (batches of values) drive the loop before it closes. */
static void
scen_cursor(Fixture *f)
{
	uint64_t	res[10];
	int			i;

	for (i = 0; i < 10; i++)
		res[i] = 300 + (uint64_t) i;
	n1_detector_rows(f->d, Q_CURSOR, 5, f->now, res, 5);
	for (i = 0; i < 5; i++)
		call1(f, Q_CHILD, 300 + (uint64_t) i, 1);
	n1_detector_rows(f->d, Q_CURSOR, 10, f->now, res + 5, 5);
	for (i = 5; i < 10; i++)
		call1(f, Q_CHILD, 300 + (uint64_t) i, 1);
}

/* Values known for the child, unknown results for the only candidate: timing. */
static void
scen_results_unknown(Fixture *f)
{
	int			i;

	list_of(f, Q_LIST, 1, 1, 10);
	run_v(f, Q_OTHER, NULL, 0, 10, NULL, N1_VALUES_UNKNOWN);
	for (i = 0; i < 6; i++)
		call1(f, Q_CHILD, 800 + (uint64_t) i, 1);
}

/* Strict mode: a list of 2 rows and its 2-call N+1. */
static void
scen_two_rows(Fixture *f)
{
	list_of(f, Q_LIST, 41, 1, 2);
	call1(f, Q_CHILD, 41, 1);
	call1(f, Q_CHILD, 42, 1);
}

/* Strict mode, the fixed code: one batched query for both rows. */
static void
scen_two_rows_fixed(Fixture *f)
{
	list_of(f, Q_LIST, 41, 1, 2);
	run_v(f, Q_CHILD, (uint64_t[]) {41, 42}, 2, 2, NULL, 0);
}

/* Strict mode: two calls over constants, and a query run twice alike. */
static void
scen_two_constants(Fixture *f)
{
	list_of(f, Q_LIST, 1, 1, 20);
	call1(f, Q_CHILD, 501, 1);
	call1(f, Q_CHILD, 502, 1);
	call1(f, Q_OTHER, 3, 1);
	call1(f, Q_OTHER, 3, 1);
}

/* Strict mode, nested: 2 threads, 2 messages each, one person per message. */
static void
scen_two_nested(Fixture *f)
{
	int			t;

	list_of(f, Q_THREADS, 1, 1, 2);
	for (t = 0; t < 2; t++)
	{
		uint64_t	res[4] = {50 + 2 * (uint64_t) t, 70 + 2 * (uint64_t) t,
			51 + 2 * (uint64_t) t, 71 + 2 * (uint64_t) t};

		run_v(f, Q_MESSAGES, (uint64_t[]) {(uint64_t) t + 1}, 1, 2, res, 4);
		call1(f, Q_PERSON, 70 + 2 * (uint64_t) t, 1);
		call1(f, Q_PERSON, 71 + 2 * (uint64_t) t, 1);
	}
}

/* The values of the first calls are missing from the list; later ones prove it. */
static void
scen_proven_later(Fixture *f)
{
	int			i;

	list_of(f, Q_LIST, 4, 1, 30);	/* rows 4..33: 1..3 were never captured */
	for (i = 0; i < 12; i++)
		call1(f, Q_CHILD, (uint64_t) i + 1, 1);
}

/*
 * A chain, fetched then looped over: the list gives thread ids; each thread
 * is fetched by id (1 row: its id and its starting email); then per thread
 * its starting email by id (A's values, not its parameters) and its emails
 * by thread id (A's row echoes the id: A had finished, so A is still the
 * list the loop walks).
 */
static void
scen_chain_fetched(Fixture *f)
{
	int			i;

	list_of(f, Q_LIST, 1, 1, 10);
	for (i = 0; i < 10; i++)
		run_v(f, Q_A, (uint64_t[]) {(uint64_t) i + 1}, 1, 1,
			  (uint64_t[]) {(uint64_t) i + 1, 500 + (uint64_t) i}, 2);
	for (i = 0; i < 10; i++)
	{
		call1(f, Q_B, 500 + (uint64_t) i, 1);
		call1(f, Q_C, (uint64_t) i + 1, 3);
	}
}

/*
 * A chain inside one loop body: per listed id, the thread by id, then its
 * starting email by the thread's column (a chain: B's parent is A), and a
 * count by the same id (C: A only echoes it, a sibling; C's parent is the
 * list).
 */
static void
scen_chain_interleaved(Fixture *f)
{
	int			i;

	list_of(f, Q_LIST, 1, 1, 10);
	for (i = 0; i < 10; i++)
	{
		run_v(f, Q_A, (uint64_t[]) {(uint64_t) i + 1}, 1, 1,
			  (uint64_t[]) {(uint64_t) i + 1, 500 + (uint64_t) i}, 2);
		call1(f, Q_B, 500 + (uint64_t) i, 1);
		call1(f, Q_C, (uint64_t) i + 1, 1);
	}
}

/*
 * The same chain in one loop body, but the list's rows hold the starting
 * emails too (a join): the loop walks the list, which is B's parent.  And
 * a chain fetched then looped over whose first call was not captured (as
 * the server does): C holds one value fewer than the list, and is still
 * D's parent (the link nearest to the loop).
 */
static void
scen_chain_and_list(Fixture *f)
{
	uint64_t	res[30];
	int			i;

	for (i = 0; i < 10; i++)
	{
		res[3 * i] = (uint64_t) i + 1;
		res[3 * i + 1] = 500 + (uint64_t) i;
		res[3 * i + 2] = 800 + (uint64_t) i;
	}
	run_v(f, Q_LIST, NULL, 0, 10, res, 30);
	for (i = 0; i < 10; i++)
	{
		run_v(f, Q_A, (uint64_t[]) {(uint64_t) i + 1}, 1, 1,
			  (uint64_t[]) {(uint64_t) i + 1, 500 + (uint64_t) i}, 2);
		call1(f, Q_B, 500 + (uint64_t) i, 1);
	}
	for (i = 0; i < 10; i++)
		run_v(f, Q_C, (uint64_t[]) {(uint64_t) i + 1}, 1, 1,
			  (uint64_t[]) {(uint64_t) i + 1, 800 + (uint64_t) i}, i == 0 ? 0 : 2);
	for (i = 0; i < 10; i++)
		call1(f, Q_D, 800 + (uint64_t) i, 1);
}

/*
 * Siblings that echo the loop's key, without a list the server saw (the
 * ids came from the application): per id, the profile (1 row holding the
 * id) and the orders of that id.  No parent: a loop.
 */
static void
scen_echo_siblings(Fixture *f)
{
	int			i;

	for (i = 0; i < 10; i++)
	{
		run_v(f, Q_A, (uint64_t[]) {(uint64_t) i + 1}, 1, 1,
			  (uint64_t[]) {(uint64_t) i + 1, 900}, 2);
		call1(f, Q_B, (uint64_t) i + 1, 2);
	}
}

/*
 * Per listed item, three counts over a date range computed from the clock
 * at each call (HyperKitty's index page): the dates differ in every call
 * and outnumber the ids, but the id position alone is held by the list.
 */
static void
scen_clock_context(Fixture *f)
{
	int			i;

	list_of(f, Q_LIST, 1, 1, 4);
	for (i = 0; i < 12; i++)
		run_v(f, Q_CHILD, (uint64_t[]) {1 + (uint64_t) (i / 3), 90000 + 2 * (uint64_t) i,
				  90001 + 2 * (uint64_t) i}, 3, 1, NULL, 0);
}

typedef struct Expect
{
	uint64_t	query;
	N1Kind		kind;			/* N1_KIND_NONE: no burst */
	uint64_t	parent;
	N1ParentEvidence evidence;
} Expect;

typedef struct Scenario
{
	const char *name;
	void		(*script) (Fixture *f);
	int			min_calls;
	int			min_calls_proven;
	Expect		expect[4];
} Scenario;

static const Scenario scenarios[] = {
	{"siblings", scen_siblings, 5, 0, {
			{Q_A, N1_KIND_N_PLUS_ONE, Q_LIST, N1_EVIDENCE_VALUES},
			{Q_B, N1_KIND_N_PLUS_ONE, Q_LIST, N1_EVIDENCE_VALUES},
			{Q_C, N1_KIND_LOOP, 0, N1_EVIDENCE_NONE}}},
	{"nested", scen_nested, 5, 0, {
			{Q_MESSAGES, N1_KIND_N_PLUS_ONE, Q_THREADS, N1_EVIDENCE_VALUES},
			{Q_PERSON, N1_KIND_N_PLUS_ONE, Q_MESSAGES, N1_EVIDENCE_VALUES},
			{Q_THREADS, N1_KIND_NONE, 0, N1_EVIDENCE_NONE}}},
	{"constants", scen_constants, 5, 0, {
			{Q_CHILD, N1_KIND_LOOP, 0, N1_EVIDENCE_NONE}}},
	{"permission checks", scen_permissions, 5, 0, {
			{Q_CHILD, N1_KIND_N_PLUS_ONE, Q_LIST, N1_EVIDENCE_VALUES},
			{Q_OTHER, N1_KIND_DUPLICATE, 0, N1_EVIDENCE_NONE},
			{Q_EXTRA, N1_KIND_N_PLUS_ONE, Q_LIST, N1_EVIDENCE_VALUES}}},
	{"unrelated query between", scen_unrelated_between, 5, 0, {
			{Q_CHILD, N1_KIND_N_PLUS_ONE, Q_LIST, N1_EVIDENCE_VALUES}}},
	{"source seen later", scen_later_source, 5, 0, {
			{Q_CHILD, N1_KIND_LOOP, 0, N1_EVIDENCE_NONE}}},
	{"constant beside", scen_constant_beside, 5, 0, {
			{Q_MESSAGES, N1_KIND_N_PLUS_ONE, Q_THREADS, N1_EVIDENCE_VALUES}}},
	{"cursor", scen_cursor, 5, 0, {
			{Q_CHILD, N1_KIND_N_PLUS_ONE, Q_CURSOR, N1_EVIDENCE_VALUES}}},
	{"results unknown", scen_results_unknown, 5, 0, {
			{Q_CHILD, N1_KIND_N_PLUS_ONE, Q_OTHER, N1_EVIDENCE_TIMING}}},
	{"proven later", scen_proven_later, 5, 0, {
			{Q_CHILD, N1_KIND_N_PLUS_ONE, Q_LIST, N1_EVIDENCE_VALUES}}},
	{"two rows, default", scen_two_rows, 5, 0, {
			{Q_CHILD, N1_KIND_NONE, 0, N1_EVIDENCE_NONE}}},
	{"two rows, strict", scen_two_rows, 5, 2, {
			{Q_CHILD, N1_KIND_N_PLUS_ONE, Q_LIST, N1_EVIDENCE_VALUES}}},
	{"two rows fixed, strict", scen_two_rows_fixed, 5, 2, {
			{Q_CHILD, N1_KIND_NONE, 0, N1_EVIDENCE_NONE}}},
	{"two constants, strict", scen_two_constants, 5, 2, {
			{Q_CHILD, N1_KIND_NONE, 0, N1_EVIDENCE_NONE},
			{Q_OTHER, N1_KIND_NONE, 0, N1_EVIDENCE_NONE}}},
	{"chain, fetched then looped", scen_chain_fetched, 5, 0, {
			{Q_A, N1_KIND_N_PLUS_ONE, Q_LIST, N1_EVIDENCE_VALUES},
			{Q_B, N1_KIND_N_PLUS_ONE, Q_A, N1_EVIDENCE_VALUES},
			{Q_C, N1_KIND_N_PLUS_ONE, Q_A, N1_EVIDENCE_VALUES}}},
	{"chain, one loop body", scen_chain_interleaved, 5, 0, {
			{Q_A, N1_KIND_N_PLUS_ONE, Q_LIST, N1_EVIDENCE_VALUES},
			{Q_B, N1_KIND_N_PLUS_ONE, Q_A, N1_EVIDENCE_VALUES},
			{Q_C, N1_KIND_N_PLUS_ONE, Q_LIST, N1_EVIDENCE_VALUES}}},
	{"dates from the clock beside the key", scen_clock_context, 5, 0, {
			{Q_CHILD, N1_KIND_N_PLUS_ONE, Q_LIST, N1_EVIDENCE_VALUES}}},
	{"chain beside a list", scen_chain_and_list, 5, 0, {
			{Q_B, N1_KIND_N_PLUS_ONE, Q_LIST, N1_EVIDENCE_VALUES},
			{Q_D, N1_KIND_N_PLUS_ONE, Q_C, N1_EVIDENCE_VALUES}}},
	{"siblings echoing the key", scen_echo_siblings, 5, 0, {
			{Q_A, N1_KIND_LOOP, 0, N1_EVIDENCE_NONE},
			{Q_B, N1_KIND_LOOP, 0, N1_EVIDENCE_NONE}}},
	{"two nested, strict", scen_two_nested, 5, 2, {
			{Q_MESSAGES, N1_KIND_N_PLUS_ONE, Q_THREADS, N1_EVIDENCE_VALUES},
			{Q_PERSON, N1_KIND_N_PLUS_ONE, Q_MESSAGES, N1_EVIDENCE_VALUES}}},
};

static void
test_values_rule(void)
{
	size_t		i;
	int			e;

	for (i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
	{
		const Scenario *sc = &scenarios[i];
		Fixture    *f = fixture_new(sc->min_calls, 1000000000);

		n1_detector_configure(f->d, sc->min_calls, sc->min_calls_proven, 1000000000);
		sc->script(f);
		for (e = 0; e < 4 && sc->expect[e].query != 0; e++)
		{
			const Expect *x = &sc->expect[e];
			const N1Burst *b = find_burst(f, x->query);
			char		msg[128];

			snprintf(msg, sizeof(msg), "%s: query %d", sc->name, (int) x->query);
			if (x->kind == N1_KIND_NONE)
			{
				CHECK_EQ(b == NULL, 1, msg);
				continue;
			}
			if (!CHECK_EQ(b != NULL, 1, msg))
				continue;
			CHECK_STR(n1_kind_name(b->kind), n1_kind_name(x->kind), msg);
			CHECK_EQ_U64(b->parent_query_id, x->parent, msg);
			CHECK_STR(n1_evidence_name(b->parent_evidence), n1_evidence_name(x->evidence), msg);
		}
		fixture_free(f);
	}
}

/* A loop whose parent is proven only after the crossing reports the change. */
static void
test_proven_later_changes_kind(void)
{
	Fixture    *f = fixture_new(5, 1000000000);
	N1StatementResult r;
	int			i;
	int			changes = 0;
	int			loop_first = 0;

	list_of(f, Q_LIST, 4, 1, 30);
	for (i = 0; i < 12; i++)
	{
		r = call1(f, Q_CHILD, (uint64_t) i + 1, 1);
		if (r.crossed)
			loop_first = r.burst != NULL && r.burst->kind == N1_KIND_LOOP;
		changes += r.kind_changed;
	}
	CHECK(loop_first, "a loop at the crossing (2 of 5 values found)");
	CHECK_EQ(changes, 2, "crossing, then loop -> n_plus_one");
	if (CHECK(r.burst != NULL, "burst"))
	{
		CHECK_EQ(r.burst->kind, N1_KIND_N_PLUS_ONE, "proven later");
		CHECK(r.burst->values_found * 2 > r.burst->values_checked, "a majority found");
	}
	fixture_free(f);
}

/*
 * Strict mode: a child of a chain whose first call was not captured is
 * proven on its 2nd call with the list as parent (the lookup holds 1 of 2
 * values); with more values the lookup is proven and replaces the list,
 * once, with parent_changed and without a kind change.
 */
static void
test_parent_switches(void)
{
	Fixture    *f = fixture_new(5, 1000000000);
	N1StatementResult r;
	int			i;
	int			switches = 0,
				kind_changes = 0;

	n1_detector_configure(f->d, 5, 2, 1000000000);
	list_of(f, Q_LIST, 1, 1, 10);
	for (i = 0; i < 10; i++)
		run_v(f, Q_A, (uint64_t[]) {(uint64_t) i + 1}, 1, 1,
			  (uint64_t[]) {(uint64_t) i + 1}, i == 0 ? 0 : 1);
	for (i = 0; i < 10; i++)
	{
		r = call1(f, Q_CHILD, (uint64_t) i + 1, 1);
		if (i == 1)
			CHECK(r.crossed && r.burst->parent_query_id == Q_LIST, "proven at call 2: the list");
		switches += r.parent_changed;
		kind_changes += r.kind_changed;
	}
	CHECK_EQ(switches, 1, "one switch of parent");
	CHECK_EQ(kind_changes, 1, "the kind changed only at the crossing");
	CHECK(r.burst != NULL && r.burst->parent_query_id == Q_A &&
		  r.burst->parent_evidence == N1_EVIDENCE_VALUES, "the lookup nearest the loop in the end");
	fixture_free(f);
}

/* Random values never prove a parent by chance through a full filter. */
static void
test_filter_false_positives(void)
{
	int			trial;
	int			false_parents = 0;
	uint64_t	seed = 88172645463325252ULL;

	for (trial = 0; trial < 300; trial++)
	{
		Fixture    *f = fixture_new(5, 1000000000);
		uint64_t	res[256];
		int			i;

		for (i = 0; i < 256; i++)
		{
			seed ^= seed << 13;
			seed ^= seed >> 7;
			seed ^= seed << 17;
			res[i] = seed;
		}
		run_v(f, Q_LIST, NULL, 0, 256, res, 256);
		for (i = 0; i < 5; i++)
		{
			seed ^= seed << 13;
			seed ^= seed >> 7;
			seed ^= seed << 17;
			call1(f, Q_CHILD, seed, 1);
		}
		if (find_burst(f, Q_CHILD) != NULL && find_burst(f, Q_CHILD)->parent_query_id != 0)
			false_parents++;
		fixture_free(f);
	}
	CHECK_EQ(false_parents, 0, "no parent proven by chance in 300 trials");
}

/* Lazy values: asked only while the query still records values. */
typedef struct LazyArg
{
	int			asked;
	uint64_t	v;
} LazyArg;

static int
lazy_fill(void *arg, uint64_t *out)
{
	LazyArg    *a = arg;

	a->asked++;
	out[0] = a->v;
	return 1;
}

static void
test_lazy_values(void)
{
	Fixture    *f = fixture_new(5, 1000000000);
	LazyArg		a = {0, 0};
	N1StatementResult r;
	const N1Burst *b;
	int			i;

	list_of(f, Q_LIST, 1, 1, 40);
	for (i = 0; i < 40; i++)
	{
		N1Statement stmt;

		memset(&stmt, 0, sizeof(stmt));
		stmt.query_id = Q_CHILD;
		stmt.param_hash = param((uint64_t) i);
		stmt.n_values = N1_VALUES_LAZY;
		stmt.fill_values = lazy_fill;
		stmt.fill_arg = &a;
		stmt.n_result_values = 0;
		stmt.start_us = f->now;
		stmt.end_us = f->now + STMT_US;
		stmt.rows = 1;
		f->now += STMT_US + THINK_US;
		a.v = (uint64_t) i + 1;
		n1_detector_statement(f->d, &stmt, &r);
	}
	b = find_burst(f, Q_CHILD);
	CHECK(b != NULL && b->kind == N1_KIND_N_PLUS_ONE && b->parent_query_id == Q_LIST,
		  "lazy values prove the parent");
	CHECK_EQ(a.asked, N1_QUERY_VALUES + 1, "asked only until the values are full");
	fixture_free(f);
}

/*
 * capture_results: asked for calls 2 to N1_CHAIN_CAPTURE_CALLS of a lookup
 * that returned 1 row (never more), never for a list nor a lookup that
 * never found a row, and again in the next unit.
 */
static void
test_capture_results(void)
{
	Fixture    *f = fixture_new(5, 1000);
	N1StatementResult r;
	int			asked = 0;
	int			i;

	for (i = 0; i < 40; i++)
	{
		r = call1(f, Q_CHILD, (uint64_t) i + 1, (i + 1) % 2);
		asked += r.capture_results;
		if (i == 0)
			CHECK(r.capture_results, "asked after the first call");
	}
	CHECK_EQ(asked, N1_CHAIN_CAPTURE_CALLS - 1, "asked for calls 2 to N1_CHAIN_CAPTURE_CALLS");
	r = call1(f, Q_LIST, 1, 2);
	CHECK(!r.capture_results, "not for a list");
	r = call1(f, Q_LIST, 2, 1);
	CHECK(!r.capture_results, "not for a query that once returned 2 rows");
	r = call1(f, Q_OTHER, 1, 0);
	r = call1(f, Q_OTHER, 2, 0);
	CHECK(!r.capture_results, "not for a lookup that never returned a row");
	f->now += 5000;				/* past max_gap: a new unit */
	r = call1(f, Q_CHILD, 1, 1);
	CHECK(r.unit_started && r.capture_results, "asked again in the next unit");
	fixture_free(f);
}

/* Bursts beyond N1_UNIT_MAX_BURSTS are counted per unit and in all. */
static void
test_dropped_counts(void)
{
	Fixture    *f = fixture_new(2, 1000000000);
	int			q,
				i;

	for (q = 0; q < N1_UNIT_MAX_BURSTS + 3; q++)
		for (i = 0; i < 2; i++)
			run(f, 6000 + (uint64_t) q, param(i), 1);
	CHECK_EQ(f->d->unit_dropped_bursts, 3, "dropped in the unit");
	n1_detector_end_unit(f->d, N1_END_EXIT);
	CHECK_EQ(f->d->unit_dropped_bursts, 0, "reset with the unit");
	CHECK_EQ_U64(f->d->dropped_bursts, 3, "lifetime count kept");
	fixture_free(f);
}

int
main(void)
{
	test_kind_names();
	CHECK_STR(n1_evidence_name(N1_EVIDENCE_VALUES), "values", "evidence name");
	test_list_with_siblings();
	test_nested_loops();
	test_pgbench_loop();
	test_duplicate();
	test_cursor_parent();
	test_keyset_pagination();
	test_parent_rules();
	test_gaps();
	test_gap_ends_bursts();
	test_burst_fields();
	test_configure();
	test_distinct_params();
	test_many_queries();
	test_eviction_keeps_parent();
	test_too_many_bursts();
	test_edge_cases();
	test_callback_escape();
	test_values_rule();
	test_proven_later_changes_kind();
	test_parent_switches();
	test_filter_false_positives();
	test_dropped_counts();
	test_lazy_values();
	test_capture_results();

	printf("unit: %d passed, %d failed\n", tally.passed, tally.failed);
	return tally.failed > 0 ? 1 : 0;
}
