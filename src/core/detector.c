/*
 * detector.c
 *		N+1 detection over one backend's stream of statement events.
 *
 * Owns the per-unit bookkeeping behind detector.h: the fixed table of the
 * unit's queries (with an open-addressing index by query id), distinct
 * parameter counting, the values that prove parents (each query's parameter
 * values, and a Bloom filter of its result values), burst classification and
 * parent choice, unit boundaries, and eviction when a unit has more queries
 * than fit.  It never sees a value itself, only hashes, and never allocates.
 *
 * Everything here is plain C99 with no PostgreSQL dependency and no
 * allocation.  n1_detector_statement runs for every statement of every
 * backend, so its common path is a hash lookup, a few stores and a scan of
 * at most N1_QUERY_VALUES parameter values (only until they are full);
 * loops over all of the unit's queries happen only when a parent is sought
 * (a query crosses min_calls, or brings a new value while its parent is not
 * proven), when a query must be evicted, and when a unit ends.
 */
#include "detector.h"

#include <math.h>
#include <string.h>

#define N1_TABLE_SIZE	((int) (sizeof(((N1Detector *) 0)->table) / sizeof(int16_t)))
#define N1_TABLE_MASK	(N1_TABLE_SIZE - 1)

/* Compile-time checks (C99 has no _Static_assert): a negative array size fails. */
/* The probe arithmetic masks with N1_TABLE_MASK. */
typedef char n1_table_size_is_power_of_two[(N1_TABLE_SIZE & N1_TABLE_MASK) == 0 ? 1 : -1];
/* Load factor <= 1/2 keeps probe runs short and guarantees an empty slot. */
typedef char n1_table_has_room[N1_TABLE_SIZE >= 2 * N1_UNIT_MAX_QUERIES ? 1 : -1];
/* Indexes into queries[] are stored in int16_t. */
typedef char n1_queries_fit_int16[N1_UNIT_MAX_QUERIES <= 32767 ? 1 : -1];
/* A victim for eviction always exists: bursts and their parents cannot fill queries[]. */
typedef char n1_eviction_possible[2 * N1_UNIT_MAX_BURSTS < N1_UNIT_MAX_QUERIES ? 1 : -1];
typedef char n1_bitmap_whole_words[N1_DISTINCT_BITMAP_BITS % 64 == 0 ? 1 : -1];
/* filter_bits() takes 3 x 11 bits of one hash. */
typedef char n1_filter_is_2048_bits[N1_RESULT_FILTER_BITS == 2048 ? 1 : -1];

/*
 * 64-bit finalizer (splitmix64).  Query ids and parameter hashes are hashes
 * already, but we cannot trust their low bits to be well distributed (and the
 * parameter hash may come from a cheap combiner), so mix before masking.
 */
static inline uint64_t
mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= UINT64_C(0xbf58476d1ce4e5b9);
	x ^= x >> 27;
	x *= UINT64_C(0x94d049bb133111eb);
	x ^= x >> 31;
	return x;
}

static inline int
home_slot(uint64_t query_id)
{
	return (int) (mix64(query_id) & N1_TABLE_MASK);
}

/*
 * Bitmap bit of a parameter hash.  A different mixing constant from the
 * table's, so that the two uses of one hash are not correlated.
 */
static inline int
param_bit(uint64_t param_hash)
{
	return (int) (mix64(param_hash ^ UINT64_C(0x9e3779b97f4a7c15)) %
				  N1_DISTINCT_BITMAP_BITS);
}

/*
 * The three bits of a value in a result filter, from one mixed hash (yet
 * another constant, uncorrelated with the two uses above).
 */
static inline void
filter_bits(uint64_t value, int bits[3])
{
	uint64_t	h = mix64(value ^ UINT64_C(0xd6e8feb86659fd93));

	bits[0] = (int) (h & 2047);
	bits[1] = (int) ((h >> 11) & 2047);
	bits[2] = (int) ((h >> 22) & 2047);
}

static inline bool
filter_has(const N1UnitQuery *q, uint64_t value)
{
	int			b[3];

	if (q->filter_values <= 0)
		return false;
	filter_bits(value, b);
	return (q->filter[b[0] >> 6] >> (b[0] & 63) & 1) &&
		(q->filter[b[1] >> 6] >> (b[1] & 63) & 1) &&
		(q->filter[b[2] >> 6] >> (b[2] & 63) & 1);
}

/*
 * Adds result values to q's filter, cleared on first use.  A value whose bits
 * are all set already is not counted, so repeated keys (a foreign key shared
 * by many rows) do not use up the N1_RESULT_FILTER_MAX budget.
 */
static void
filter_add(N1UnitQuery *q, const uint64_t *values, int n)
{
	int			i;

	if (q->filter_values < 0)
	{
		memset(q->filter, 0, sizeof(q->filter));
		q->filter_values = 0;
	}
	for (i = 0; i < n && q->filter_values < N1_RESULT_FILTER_MAX; i++)
	{
		int			b[3];
		int			j;
		bool		fresh = false;

		filter_bits(values[i], b);
		for (j = 0; j < 3; j++)
		{
			uint64_t	mask = UINT64_C(1) << (b[j] & 63);

			if (!(q->filter[b[j] >> 6] & mask))
			{
				q->filter[b[j] >> 6] |= mask;
				fresh = true;
			}
		}
		if (fresh)
			q->filter_values++;
	}
}

/* Result values of a query that returned rows (a statement or a cursor batch). */
static void
add_results(N1UnitQuery *q, const uint64_t *values, int n)
{
	if (n == N1_VALUES_UNKNOWN || (n > 0 && values == NULL))
		q->results_unknown = true;
	else if (n > 0)
		filter_add(q, values, n);
}

/*
 * Record one call's parameter values in q->vals[] (distinct values of each
 * parameter position, with the number of calls that had each), until it is
 * full.  Per position: an id 1 and a LIMIT 1 in one call are two values,
 * the id varying and the limit constant.
 */
static void
add_values(N1UnitQuery *q, const N1Statement *stmt)
{
	uint64_t	lazy[N1_CALL_VALUES];
	const uint64_t *values = stmt->values;
	int			n = stmt->n_values;
	int			i,
				j;

	if (n == N1_VALUES_UNKNOWN || (n == N1_VALUES_LAZY && stmt->fill_values == NULL))
	{
		q->values_unknown = true;
		return;
	}
	if (q->values_full)
		return;
	if (n == N1_VALUES_LAZY)
	{
		n = stmt->fill_values(stmt->fill_arg, lazy);
		values = lazy;
	}
	q->val_calls++;
	for (i = 0; i < n && i < N1_CALL_VALUES; i++)
	{
		uint64_t	v = values[i];

		for (j = 0; j < q->n_vals; j++)
		{
			if (q->vals[j] == v && q->val_pos[j] == i)
			{
				q->val_count[j]++;
				break;
			}
		}
		if (j < q->n_vals)
			continue;
		if (q->n_vals == N1_QUERY_VALUES)
		{
			q->values_full = true;
			return;
		}
		q->vals[q->n_vals] = v;
		q->val_count[q->n_vals] = 1;
		q->val_pos[q->n_vals] = (uint8_t) i;
		q->n_vals++;
		q->values_changed = true;
	}
}

/*
 * Linear-counting estimate of the distinct values hashed into a bitmap with
 * "ones" bits set: m ln(m / zero_bits).  A saturated bitmap has no zero bit;
 * count half a zero bit then, which gives a large but finite answer
 * (m ln 2m) instead of infinity.
 */
static int64_t
linear_count_estimate(int ones)
{
	/* one per bit count, computed once: a log() per new bit costs more */
	static int32_t estimates[N1_DISTINCT_BITMAP_BITS + 1];
	static bool computed = false;

	if (!computed)
	{
		double		m = (double) N1_DISTINCT_BITMAP_BITS;
		int			i;

		for (i = 0; i <= N1_DISTINCT_BITMAP_BITS; i++)
		{
			double		zero = (double) (N1_DISTINCT_BITMAP_BITS - i);

			if (zero < 1.0)
				zero = 0.5;
			estimates[i] = (int32_t) (m * log(m / zero) + 0.5);
		}
		computed = true;
	}
	return estimates[ones];
}

/* ----------------------------------------------------------------
 * Query table
 * ----------------------------------------------------------------
 */

/* Slot of query_id in table[], or of the empty slot ending its probe. */
static inline int
probe(const N1Detector *d, uint64_t query_id)
{
	int			slot = home_slot(query_id);

	for (;;)
	{
		int			idx = d->table[slot];

		if (idx < 0 || d->queries[idx].query_id == query_id)
			return slot;
		slot = (slot + 1) & N1_TABLE_MASK;
	}
}

/* The unit's entry of query_id, or NULL. */
static N1UnitQuery *
find_query(N1Detector *d, uint64_t query_id)
{
	int			idx = d->table[probe(d, query_id)];

	return idx >= 0 ? &d->queries[idx] : NULL;
}

/*
 * Remove query_id from table[] by backward-shift deletion: later entries of
 * the same probe run move back over the hole, so no tombstones accumulate
 * and lookups stay correct without rebuilding the table.
 */
static void
table_delete(N1Detector *d, uint64_t query_id)
{
	int			hole = probe(d, query_id);
	int			next = hole;

	if (d->table[hole] < 0)
		return;					/* not present; cannot happen */

	for (;;)
	{
		int			home;
		bool		stays;

		next = (next + 1) & N1_TABLE_MASK;
		if (d->table[next] < 0)
			break;

		/*
		 * The entry at "next" may stay only if its home slot lies cyclically
		 * in (hole, next]: then a probe from home reaches it without passing
		 * through the hole.  Otherwise it must move back into the hole.
		 */
		home = home_slot(d->queries[d->table[next]].query_id);
		if (hole <= next)
			stays = hole < home && home <= next;
		else
			stays = hole < home || home <= next;
		if (stays)
			continue;

		d->table[hole] = d->table[next];
		hole = next;
	}
	d->table[hole] = -1;
}

/*
 * Choose the query to give up when the unit has more distinct queries than
 * fit.  Never one in a burst or the parent of one (their bursts still refer
 * to them); among the rest prefer those that cannot be parents (max_rows < 2),
 * then the least recently active.  There are at most N1_UNIT_MAX_BURSTS
 * bursts and as many parents, fewer than N1_UNIT_MAX_QUERIES, so a victim
 * always exists.
 */
static int
choose_victim(const N1Detector *d)
{
	int			best = -1;
	bool		best_can_parent = true;
	uint64_t	best_seq = UINT64_MAX;
	int			i;

	for (i = 0; i < d->n_queries; i++)
	{
		const N1UnitQuery *q = &d->queries[i];
		bool		can_parent = q->max_rows >= 2;

		if (q->burst >= 0 || q->parent_of > 0)
			continue;
		if (best < 0 ||
			(!can_parent && best_can_parent) ||
			(can_parent == best_can_parent && q->last_seq < best_seq))
		{
			best = i;
			best_can_parent = can_parent;
			best_seq = q->last_seq;
		}
	}
	return best;
}

/*
 * Entry of query_id in the unit, created if new (evicting if full).  Only the
 * fields every query needs are initialized; the bitmap is cleared lazily when
 * the exact parameter list first overflows, so a new query costs no 128-byte
 * memset.
 */
static N1UnitQuery *
get_query(N1Detector *d, uint64_t query_id)
{
	int			slot;
	int			idx;
	N1UnitQuery *q;

	/* the same query as the latest lookup: the N of an N+1 */
	if (d->last_query >= 0 && d->queries[d->last_query].query_id == query_id)
		return &d->queries[d->last_query];
	slot = probe(d, query_id);
	idx = d->table[slot];
	if (idx >= 0)
	{
		d->last_query = idx;
		return &d->queries[idx];
	}

	if (d->n_queries < N1_UNIT_MAX_QUERIES)
		idx = d->n_queries++;
	else
	{
		idx = choose_victim(d);
		table_delete(d, d->queries[idx].query_id);
		d->evicted_queries++;
		d->counters_changed = true;
		/* the deletion may have shifted our empty slot */
		slot = probe(d, query_id);
	}

	q = &d->queries[idx];
	q->query_id = query_id;
	q->calls = 0;
	q->max_rows = 0;
	q->first_seq = d->seq;
	q->last_seq = d->seq;
	q->exec_us = 0;
	q->first_start_us = 0;
	q->last_end_us = 0;
	q->n_params = 0;
	q->params_overflow = false;
	q->bitmap_ones = 0;
	q->distinct = 0;
	q->burst = -1;
	q->burst_dropped = false;
	q->parent_of = 0;
	q->values_unknown = false;
	q->values_full = false;
	q->values_changed = false;
	q->n_vals = 0;
	q->val_calls = 0;
	q->results_unknown = false;
	q->filter_values = -1;
	d->table[slot] = (int16_t) idx;
	d->last_query = idx;
	return q;
}

/*
 * Record one call's parameter hash.  Exact while at most N1_DISTINCT_EXACT
 * distinct values were seen (a short linear scan); past that, every hash goes
 * into the linear-counting bitmap, seeded with the exact values kept so far.
 */
static void
add_param(N1UnitQuery *q, uint64_t param_hash)
{
	int			bit;
	uint64_t	mask;
	bool		switched = false;
	int			i;

	if (!q->params_overflow)
	{
		for (i = 0; i < q->n_params; i++)
		{
			if (q->params[i] == param_hash)
				return;
		}
		if (q->n_params < N1_DISTINCT_EXACT)
		{
			q->params[q->n_params++] = param_hash;
			q->distinct = q->n_params;
			return;
		}

		/* Switch to the bitmap. */
		q->params_overflow = true;
		switched = true;
		memset(q->bitmap, 0, sizeof(q->bitmap));
		q->bitmap_ones = 0;
		for (i = 0; i < q->n_params; i++)
		{
			bit = param_bit(q->params[i]);
			mask = UINT64_C(1) << (bit % 64);
			if (!(q->bitmap[bit / 64] & mask))
			{
				q->bitmap[bit / 64] |= mask;
				q->bitmap_ones++;
			}
		}
		/* fall through to add param_hash */
	}

	bit = param_bit(param_hash);
	mask = UINT64_C(1) << (bit % 64);
	if (q->bitmap[bit / 64] & mask)
	{
		/* seen before, or a collision; on the switch we must still estimate */
		if (!switched)
			return;
	}
	else
	{
		q->bitmap[bit / 64] |= mask;
		q->bitmap_ones++;
	}

	/*
	 * Re-estimate only when a bit gets set (at most N1_DISTINCT_BITMAP_BITS
	 * times) or on the switch.  We know there are more than N1_DISTINCT_EXACT distinct values
	 * and at most as many as calls, so clamp into that range: collisions can
	 * make the raw estimate a little low just after the switch.
	 */
	q->distinct = linear_count_estimate(q->bitmap_ones);
	if (q->distinct < N1_DISTINCT_EXACT + 1)
		q->distinct = N1_DISTINCT_EXACT + 1;
	if (q->distinct > q->calls)
		q->distinct = q->calls;
}

/* ----------------------------------------------------------------
 * Bursts
 * ----------------------------------------------------------------
 */

/*
 * Can c be the parent of q (see detector.h): it returned >= 2 rows in one
 * call or cursor, was first seen before q, and has fewer calls than q now.
 * Requiring fewer calls is what keeps the siblings of one loop body (which
 * have as many calls as q, or one more if they run before q in the body)
 * from being taken for parents, and q itself is excluded explicitly, so
 * keyset pagination is a LOOP.
 */
static inline bool
parent_candidate(const N1UnitQuery *c, const N1UnitQuery *q)
{
	return c != q && c->max_rows >= 2 && c->first_seq < q->first_seq &&
		c->calls < q->calls;
}

/*
 * Can c be the parent of q as the previous link of a chain (see detector.h):
 * a lookup of at most 1 row per call, repeated, first seen before q.
 * *interleaved: c still ran after q's first call, so only values that are
 * not c's own parameter values count (a sibling echoes the key it was
 * given).
 */
static inline bool
chain_candidate(const N1UnitQuery *c, const N1UnitQuery *q, bool *interleaved)
{
	if (c == q || c->max_rows != 1 || c->calls < 2 || c->first_seq >= q->first_seq)
		return false;
	*interleaved = c->last_seq > q->first_seq;
	/* an interleaved lookup's own values must be known to tell echoes apart */
	return !(*interleaved && (c->values_unknown || c->n_vals == 0));
}

/* Is v one of c's recorded parameter values? */
static inline bool
own_value(const N1UnitQuery *c, uint64_t v)
{
	int			i;

	for (i = 0; i < c->n_vals; i++)
		if (c->vals[i] == v)
			return true;
	return false;
}

/*
 * The values rule.  Eligible: the candidates and chain candidates whose
 * result filter holds a strict majority of q's varying values of one
 * parameter position (all of its values for a duplicate); a candidate's
 * hits are those of its best position.  Among the eligible, first the lists
 * and the chains that had finished before q began, then chains interleaved
 * with q (the loop walks the outer list; a lookup in its body is a step of
 * it); within one tier the most values held, then the most recently
 * active.  A chain is credited with one value in that comparison: its first
 * call is never captured (nothing asks for it yet).  Sets *checked and
 * *found (of the chosen position).
 */
static N1UnitQuery *
choose_parent_by_values(N1Detector *d, const N1UnitQuery *q, int *checked, int *found)
{
	uint64_t	v[N1_QUERY_VALUES];
	int			pos[N1_QUERY_VALUES];
	int			per_pos[N1_CALL_VALUES] = {0};
	int			n = 0;
	N1UnitQuery *best = NULL;
	int			best_tier = 0,
				best_score = 0,
				best_found = 0,
				best_checked = 0;
	int			i,
				j;

	*checked = 0;
	*found = 0;
	/* values in every call are constants of the loop, not what drives it */
	for (i = 0; i < q->n_vals; i++)
	{
		if (q->val_count[i] < q->val_calls || q->distinct <= 1)
		{
			v[n] = q->vals[i];
			pos[n] = q->val_pos[i] < N1_CALL_VALUES ? q->val_pos[i] : 0;
			per_pos[pos[n]]++;
			n++;
		}
	}
	if (n == 0)
		return NULL;
	*checked = n;

	for (i = 0; i < d->n_queries; i++)
	{
		N1UnitQuery *c = &d->queries[i];
		int			hits[N1_CALL_VALUES] = {0};
		int			hit = 0,
					of = 0;
		bool		chain = false;
		bool		interleaved = false;
		int			tier,
					score,
					p;

		if (c->filter_values <= 0)
			continue;
		if (!parent_candidate(c, q))
		{
			if (!chain_candidate(c, q, &interleaved))
				continue;
			chain = true;
		}
		for (j = 0; j < n; j++)
			hits[pos[j]] += filter_has(c, v[j]) && !(interleaved && own_value(c, v[j]));
		for (p = 0; p < N1_CALL_VALUES; p++)
		{
			if (2 * hits[p] <= per_pos[p])
				continue;
			if (hits[p] > hit)
			{
				hit = hits[p];
				of = per_pos[p];
			}
		}
		if (hit == 0)
			continue;
		tier = interleaved ? 2 : 1;
		score = hit + (chain ? 1 : 0);
		if (best == NULL || tier < best_tier ||
			(tier == best_tier && (score > best_score ||
								   (score == best_score && c->last_seq > best->last_seq))))
		{
			best = c;
			best_tier = tier;
			best_score = score;
			best_found = hit;
			best_checked = of;
		}
	}
	if (best != NULL)
	{
		*checked = best_checked;
		*found = best_found;
	}
	return best;
}

/*
 * The timing rule, for what has no values: among the candidates (those
 * without known result values when q's values are known), the most recently
 * active.
 */
static N1UnitQuery *
choose_parent_by_timing(N1Detector *d, const N1UnitQuery *q)
{
	N1UnitQuery *best = NULL;
	int			i;

	for (i = 0; i < d->n_queries; i++)
	{
		N1UnitQuery *c = &d->queries[i];

		if (!parent_candidate(c, q) || !(q->values_unknown || c->results_unknown))
			continue;
		if (best == NULL || c->last_seq > best->last_seq)
			best = c;
	}
	return best;
}

static N1Kind
classify(const N1UnitQuery *q, const N1Burst *b)
{
	if (q->distinct <= 1)
		return N1_KIND_DUPLICATE;
	return b->parent_query_id != 0 ? N1_KIND_N_PLUS_ONE : N1_KIND_LOOP;
}

/* Copy the query's running totals into its burst. */
static inline void
sync_burst(N1Burst *b, const N1UnitQuery *q)
{
	b->calls = q->calls;
	b->distinct_params = q->distinct;
	b->exec_us = q->exec_us;
	b->first_start_us = q->first_start_us;
	b->last_end_us = q->last_end_us;
}

/*
 * A parent's calls or rows changed: refresh the bursts that point at it.
 * Only queries that are parents get here, and there are few bursts.
 */
static void
sync_parent(N1Detector *d, const N1UnitQuery *p)
{
	int			i;

	for (i = 0; i < d->n_bursts; i++)
	{
		N1Burst    *b = &d->bursts[i];

		if (b->parent_query_id == p->query_id)
		{
			b->parent_calls = p->calls;
			b->parent_rows = p->max_rows;
		}
	}
}

static void
set_parent(N1Burst *b, N1UnitQuery *parent, N1ParentEvidence evidence)
{
	b->parent_query_id = parent->query_id;
	b->parent_evidence = evidence;
	b->parent_calls = parent->calls;
	b->parent_rows = parent->max_rows;
	parent->parent_of++;
}

/*
 * q brought a new parameter value and has no parent proven by values: look
 * again.  Returns the parent found (NULL if none) and what the search saw.
 */
static N1UnitQuery *
seek_proven_parent(N1Detector *d, N1UnitQuery *q, int *checked, int *found)
{
	q->values_changed = false;
	if (q->values_unknown)
	{
		*checked = *found = 0;
		return NULL;
	}
	return choose_parent_by_values(d, q, checked, found);
}

/*
 * q reached its threshold: open its burst (with the parent already proven,
 * if any), or count it as dropped.
 */
static N1Burst *
open_burst(N1Detector *d, N1UnitQuery *q, N1UnitQuery *proven, int checked, int found)
{
	N1UnitQuery *parent;
	N1Burst    *b;

	if (d->n_bursts >= N1_UNIT_MAX_BURSTS)
	{
		q->burst_dropped = true;
		d->dropped_bursts++;
		d->unit_dropped_bursts++;
		d->counters_changed = true;
		return NULL;
	}

	b = &d->bursts[d->n_bursts];
	memset(b, 0, sizeof(*b));
	b->index = d->n_bursts;
	b->query_id = q->query_id;
	q->burst = d->n_bursts;
	d->n_bursts++;

	if (proven == NULL)
		proven = seek_proven_parent(d, q, &checked, &found);
	b->values_checked = checked;
	b->values_found = found;
	if (proven != NULL)
		set_parent(b, proven, N1_EVIDENCE_VALUES);
	else if ((parent = choose_parent_by_timing(d, q)) != NULL)
		set_parent(b, parent, N1_EVIDENCE_TIMING);
	sync_burst(b, q);
	b->kind = classify(q, b);
	return b;
}

/* ----------------------------------------------------------------
 * Units
 * ----------------------------------------------------------------
 */

/*
 * Report the unit's bursts and forget the unit.
 *
 * The unit is closed before the callbacks run: if one of them does not
 * return (an ERROR longjmp in the server), no burst is reported twice and the
 * detector is left in a clean state.  bursts[] itself stays intact until the
 * next statement, so each callback gets a valid pointer.
 *
 * Only the used part of queries[] is ever read (entries are initialized when
 * handed out), so the reset is O(1) apart from the 256-byte index.
 */
static void
end_unit(N1Detector *d, N1UnitEndReason reason)
{
	int			n_bursts = d->n_bursts;
	int			i;

	if (!d->in_unit)
		return;

	d->in_unit = false;
	d->n_queries = 0;
	d->last_query = -1;
	d->n_bursts = 0;
	d->unit_dropped_bursts = 0;
	memset(d->table, 0xff, sizeof(d->table));	/* all -1 */

	if (d->config.burst_ended != NULL)
	{
		for (i = 0; i < n_bursts; i++)
			d->config.burst_ended(d->config.arg, &d->bursts[i], reason);
	}
}

/*
 * Unit bookkeeping common to statements and row reports happening at time
 * start_us: end the open unit if idle too long, open one if none is open.
 * Returns true when a unit was opened.
 */
static bool
begin_activity(N1Detector *d, int64_t start_us)
{
	if (d->in_unit && start_us - d->last_activity_us > d->config.max_gap_us)
		end_unit(d, N1_END_GAP);

	d->seq++;
	if (d->in_unit)
		return false;

	d->in_unit = true;
	d->units++;
	d->counters_changed = true;
	d->unit_start_us = start_us;
	d->last_activity_us = start_us;
	return true;
}

/*
 * Activity ending at end_us.  Keep the maximum: events of nested statements
 * (a function's inner queries, a cursor closed after its children) arrive
 * out of start order, and the outer one must not move the clock back.
 */
static inline void
note_activity_end(N1Detector *d, int64_t end_us)
{
	if (end_us > d->last_activity_us)
		d->last_activity_us = end_us;
}

/* ----------------------------------------------------------------
 * Public interface
 * ----------------------------------------------------------------
 */

static void
apply_config_bounds(N1DetectorConfig *c)
{
	if (c->min_calls < 2)
		c->min_calls = 2;
	if (c->min_calls_proven <= 0 || c->min_calls_proven > c->min_calls)
		c->min_calls_proven = c->min_calls;
	if (c->min_calls_proven < 2)
		c->min_calls_proven = 2;
	if (c->max_gap_us < 0)
		c->max_gap_us = 0;
}

void
n1_detector_init(N1Detector *d, const N1DetectorConfig *config)
{
	memset(d, 0, sizeof(*d));
	d->last_query = -1;
	d->config = *config;
	apply_config_bounds(&d->config);
	memset(d->table, 0xff, sizeof(d->table));	/* all -1 */
}

void
n1_detector_configure(N1Detector *d, int min_calls, int min_calls_proven,
					  int64_t max_gap_us)
{
	d->config.min_calls = min_calls;
	d->config.min_calls_proven = min_calls_proven;
	d->config.max_gap_us = max_gap_us;
	apply_config_bounds(&d->config);
}

void
n1_detector_statement(N1Detector *d, const N1Statement *stmt,
					  N1StatementResult *result)
{
	N1UnitQuery *q;
	N1Burst    *b;
	N1Kind		old_kind;
	int64_t		elapsed;

	memset(result, 0, sizeof(*result));
	result->unit_started = begin_activity(d, stmt->start_us);
	note_activity_end(d, stmt->end_us);

	/* query_id 0 marks free entries; such a statement only keeps the unit alive */
	if (stmt->query_id == 0)
		return;

	q = get_query(d, stmt->query_id);
	if (q->calls == 0)
	{
		/*
		 * First call.  A query known only from row reports (a cursor) keeps
		 * its first_seq: it was seen then.
		 */
		q->first_start_us = stmt->start_us;
	}
	q->calls++;
	q->last_seq = d->seq;
	q->last_end_us = stmt->end_us;
	elapsed = stmt->end_us - stmt->start_us;
	if (elapsed > 0)
		q->exec_us += elapsed;
	if (stmt->rows > q->max_rows)
		q->max_rows = stmt->rows;
	add_param(q, stmt->param_hash);
	add_values(q, stmt);
	if (stmt->rows >= 2)
		add_results(q, stmt->result_values, stmt->n_result_values);
	else if (stmt->rows == 1 && stmt->n_result_values > 0 && stmt->result_values != NULL)
		filter_add(q, stmt->result_values, stmt->n_result_values);
	/* a lookup repeated in this unit may be a link of a chain: ask for its rows */
	result->capture_results = q->max_rows == 1 && q->calls < N1_CHAIN_CAPTURE_CALLS &&
		q->filter_values < N1_RESULT_FILTER_MAX;

	if (q->parent_of > 0)
		sync_parent(d, q);

	if (q->burst >= 0)
	{
		b = &d->bursts[q->burst];
		old_kind = b->kind;
		if (q->values_changed)
		{
			int			checked,
						found;
			N1UnitQuery *p = seek_proven_parent(d, q, &checked, &found);

			/* a parent proven on fewer values stays unless another one is proven now */
			if (p != NULL || b->parent_evidence != N1_EVIDENCE_VALUES)
			{
				b->values_checked = checked;
				b->values_found = found;
			}
			if (p != NULL && (b->parent_query_id != p->query_id ||
							  b->parent_evidence != N1_EVIDENCE_VALUES))
			{
				if (b->parent_query_id != 0)
				{
					N1UnitQuery *old = find_query(d, b->parent_query_id);

					if (old != NULL)
						old->parent_of--;
				}
				set_parent(b, p, N1_EVIDENCE_VALUES);
				result->parent_changed = true;
			}
		}
		sync_burst(b, q);
		b->kind = classify(q, b);
		result->kind_changed = b->kind != old_kind;
	}
	else if (q->burst_dropped)
		return;
	else if (q->calls >= d->config.min_calls)
	{
		b = open_burst(d, q, NULL, 0, 0);
		if (b == NULL)
			return;				/* no room: counted in dropped_bursts */
		result->crossed = true;
		result->kind_changed = true;
	}
	else if (q->calls >= d->config.min_calls_proven && q->values_changed &&
			 q->distinct >= 2)
	{
		/* strict mode: a loop of fewer calls is a burst once its parent is proven */
		int			checked,
					found;
		N1UnitQuery *p = seek_proven_parent(d, q, &checked, &found);

		if (p == NULL)
			return;
		b = open_burst(d, q, p, checked, found);
		if (b == NULL)
			return;
		result->crossed = true;
		result->kind_changed = true;
	}
	else
		return;

	result->burst = b;
	if (b->samples_taken < N1_BURST_SAMPLES)
	{
		b->samples_taken++;
		result->capture_sample = true;
	}
}

void
n1_detector_rows(N1Detector *d, uint64_t query_id, uint64_t total_rows,
				 int64_t now_us, const uint64_t *values, int n_values)
{
	N1UnitQuery *q;

	begin_activity(d, now_us);
	note_activity_end(d, now_us);
	if (query_id == 0)
		return;

	q = get_query(d, query_id);
	q->last_seq = d->seq;
	add_results(q, values, n_values);
	if (total_rows > q->max_rows)
	{
		q->max_rows = total_rows;
		if (q->parent_of > 0)
			sync_parent(d, q);
	}
}

void
n1_detector_end_unit(N1Detector *d, N1UnitEndReason reason)
{
	end_unit(d, reason);
}

int
n1_detector_bursts(const N1Detector *d, const N1Burst **bursts)
{
	*bursts = d->bursts;
	return d->in_unit ? d->n_bursts : 0;
}

const char *
n1_evidence_name(N1ParentEvidence evidence)
{
	switch (evidence)
	{
		case N1_EVIDENCE_NONE:
			return "none";
		case N1_EVIDENCE_VALUES:
			return "values";
		case N1_EVIDENCE_TIMING:
			return "timing";
	}
	return "unknown";
}

const char *
n1_kind_name(N1Kind kind)
{
	switch (kind)
	{
		case N1_KIND_NONE:
			return "none";
		case N1_KIND_N_PLUS_ONE:
			return "n_plus_one";
		case N1_KIND_DUPLICATE:
			return "duplicate";
		case N1_KIND_LOOP:
			return "loop";
	}
	return "unknown";
}
