/*
 * offenders.c
 *		The shared table behind n1_offenders and the ring behind n1_bursts.
 *
 * Only the slow path comes here: once when a query becomes a burst (so that
 * its query texts are visible while the burst runs) and once when the burst
 * ends (its counts are added).  The table is bounded by
 * n1detect.max_offenders: when it is full the least used entries are
 * evicted, as pg_stat_statements does.
 *
 * The lock is held only for bounded work on shared memory (no I/O, no wait
 * on anything, no slot copy).  Nobody waits for it uninterruptibly, so that
 * a holder stopped by a signal or a debugger never makes another session
 * ignore cancel or terminate: the SQL functions (readers, n1_reset) and the
 * statement that publishes a burst wait through n1_lock_interruptible; a
 * backend recording a burst where no error may be raised (at commit, at
 * exit) through n1_lock_for_recording, which gives the burst up when the
 * backend is being terminated.
 *
 * Must never: raise an error while holding the lock or where a burst is
 * recorded (commit callback, exit), or wait uninterruptibly for the lock.
 */
#include "postgres.h"

#include <math.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/shmem.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "n1detect.h"

N1SharedState *n1_shared = NULL;
HTAB	   *n1_offenders_hash = NULL;

/* Share of entries evicted at once, and the usage decay applied then. */
#define EVICT_FRACTION 0.05
#define USAGE_DECAY 0.99

Size
n1_offenders_shmem_size(void)
{
	Size		size;

	size = add_size(offsetof(N1SharedState, ring),
					mul_size(n1_max_bursts, sizeof(N1BurstRecord)));
	size = add_size(size, hash_estimate_size(n1_max_offenders, sizeof(N1Offender)));
	return size;
}

void
n1_offenders_shmem_init(void)
{
	bool		found;
	HASHCTL		info;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);

	n1_shared = ShmemInitStruct("n1detect state",
								add_size(offsetof(N1SharedState, ring),
										 mul_size(n1_max_bursts, sizeof(N1BurstRecord))),
								&found);
	if (!found)
	{
		n1_shared->lock = &(GetNamedLWLockTranche("n1detect"))->lock;
		pg_atomic_init_u64(&n1_shared->generation, 1);
		pg_atomic_init_u64(&n1_shared->slots_skipped, 0);
		memset(n1_shared->folded, 0, sizeof(n1_shared->folded));
		memset(n1_shared->baseline, 0, sizeof(n1_shared->baseline));
		n1_shared->dealloc = 0;
		n1_shared->bursts_total = 0;
		n1_shared->stats_reset = GetCurrentTimestamp();
		n1_shared->ring_next = 0;
	}

	info.keysize = sizeof(N1OffenderKey);
	info.entrysize = sizeof(N1Offender);
	n1_offenders_hash = ShmemInitHash("n1detect offenders",
									  n1_max_offenders, n1_max_offenders,
									  &info, HASH_ELEM | HASH_BLOBS);

	LWLockRelease(AddinShmemInitLock);
}

static int
usage_compare(const void *a, const void *b)
{
	double		la = (*(N1Offender *const *) a)->usage;
	double		lb = (*(N1Offender *const *) b)->usage;

	if (la < lb)
		return -1;
	if (la > lb)
		return 1;
	return 0;
}

/*
 * Room to sort the entries for eviction, allocated once per backend outside
 * the lock (n1_offender_publish), because a burst may be recorded where an
 * error must not happen: in a commit callback, or at backend exit.
 */
static N1Offender **eviction_space = NULL;

static void
prepare_eviction_space(void)
{
	if (eviction_space == NULL)
		eviction_space = MemoryContextAllocExtended(n1_memory_context(),
													n1_max_offenders * sizeof(N1Offender *),
													MCXT_ALLOC_NO_OOM);
}

/*
 * Evicts the least used entries (EVICT_FRACTION of them, at least one);
 * caller holds the lock exclusively.  Never raises an error: without room
 * to sort, it evicts the single least used entry.
 */
static void
evict_locked(void)
{
	HASH_SEQ_STATUS status;
	N1Offender *entry;
	N1Offender *least = NULL;
	int			n = 0;
	int			n_evict;

	hash_seq_init(&status, n1_offenders_hash);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		entry->usage *= USAGE_DECAY;
		if (least == NULL || entry->usage < least->usage)
			least = entry;
		if (eviction_space && n < n1_max_offenders)
			eviction_space[n++] = entry;
	}
	n1_shared->dealloc++;

	if (eviction_space == NULL)
	{
		if (least)
			hash_search(n1_offenders_hash, &least->key, HASH_REMOVE, NULL);
		return;
	}
	qsort(eviction_space, n, sizeof(N1Offender *), usage_compare);
	n_evict = Min(Max(1, (int) (n * EVICT_FRACTION)), n);
	for (int i = 0; i < n_evict; i++)
		hash_search(n1_offenders_hash, &eviction_space[i]->key, HASH_REMOVE, NULL);
}

/*
 * Finds or creates the entry for key; caller holds the lock exclusively.
 * A new entry is zeroed but for its key.
 */
static N1Offender *
insert_locked(const N1OffenderKey *key, bool *found)
{
	N1Offender *entry;

	entry = hash_search(n1_offenders_hash, key, HASH_FIND, NULL);
	if (entry)
	{
		*found = true;
		return entry;
	}
	if (hash_get_num_entries(n1_offenders_hash) >= n1_max_offenders)
		evict_locked();
	entry = hash_search(n1_offenders_hash, key, HASH_ENTER, found);
	Assert(!*found);
	memset((char *) entry + sizeof(N1OffenderKey), 0,
		   sizeof(N1Offender) - sizeof(N1OffenderKey));
	return entry;
}

void
n1_offender_key(N1OffenderKey *key, Oid dbid, const N1BurstSummary *burst)
{
	memset(key, 0, sizeof(*key));
	key->userid = burst->userid;
	key->dbid = dbid;
	key->queryid = burst->queryid;
	key->parent_queryid = burst->parent_queryid;
	key->kind = burst->kind;
}

/*
 * Adds one burst to a row of n1_offenders (the shared one, or a reader's
 * copy to which bursts in progress are added).
 */
void
n1_offender_add_burst(N1Offender *entry, const N1BurstSummary *burst,
					  const N1Samples *samples, const char *application_name)
{
	entry->bursts++;
	entry->calls += burst->calls;
	entry->max_calls = Max(entry->max_calls, burst->calls);
	entry->max_distinct_params = Max(entry->max_distinct_params, burst->distinct_params);
	entry->max_parent_rows = Max(entry->max_parent_rows, burst->parent_rows);
	entry->total_exec_us += burst->exec_us;
	entry->usage += burst->calls;
	if (entry->first_seen == 0 || burst->started_at < entry->first_seen)
		entry->first_seen = burst->started_at;
	/* the latest burst gives application_name and samples */
	if (burst->ended_at >= entry->last_seen)
	{
		entry->last_seen = burst->ended_at;
		strlcpy(entry->application_name, application_name ? application_name : "",
				NAMEDATALEN);
		if (samples && samples->count > 0)
			entry->samples = *samples;
	}
}

static void
fill_texts(N1Offender *entry, const char *query, const char *parent_query)
{
	if (entry->query[0] == '\0' && query)
		strlcpy(entry->query, query, N1_QUERY_TEXT_LEN);
	if (entry->parent_query[0] == '\0' && parent_query)
		strlcpy(entry->parent_query, parent_query, N1_QUERY_TEXT_LEN);
}

/*
 * A query just became a burst of this kind: make sure its row exists, with
 * texts, so that readers can show the burst while it runs.  Takes the lock
 * exclusively only when the row is missing or lacks a text.  Runs in the
 * statement that made the burst, which may be cancelled while it waits.
 */
void
n1_offender_publish(const N1OffenderKey *key, const char *query, const char *parent_query)
{
	N1Offender *entry;
	bool		found;

	prepare_eviction_space();

	n1_lock_interruptible(LW_SHARED);
	entry = hash_search(n1_offenders_hash, key, HASH_FIND, NULL);
	if (entry &&
		(entry->query[0] != '\0' || query == NULL) &&
		(entry->parent_query[0] != '\0' || parent_query == NULL))
	{
		LWLockRelease(n1_shared->lock);
		return;
	}
	LWLockRelease(n1_shared->lock);

	n1_lock_interruptible(LW_EXCLUSIVE);
	entry = insert_locked(key, &found);
	fill_texts(entry, query, parent_query);
	LWLockRelease(n1_shared->lock);
}

/*
 * A burst ended: add it to its row and to the ring, and clear it from the
 * owner's slot (slot_index < 0: not shown there) under the same exclusive
 * lock, so that readers, who hold the lock shared while they merge slots
 * into the table, count it exactly once.  A burst that started before the
 * latest n1_reset() (its generation is older) is dropped.
 */
void
n1_offender_record_burst(const N1BurstSummary *burst, const N1Samples *samples,
						 const char *application_name,
						 const char *query, const char *parent_query,
						 uint64 generation, N1BackendSlot *slot, int slot_index)
{
	N1OffenderKey key;
	N1Offender *entry;
	N1BurstRecord *record;
	bool		found;

	n1_offender_key(&key, MyDatabaseId, burst);

	if (!n1_lock_for_recording())
	{
		if (slot && slot_index >= 0)
			n1_slot_clear_burst(slot, slot_index);
		ereport(LOG,
				(errmsg("n1detect did not record a burst: the backend is terminating while another process holds n1detect's lock")));
		return;
	}
	if (slot && slot_index >= 0)
		n1_slot_clear_burst(slot, slot_index);
	if (pg_atomic_read_u64(&n1_shared->generation) != generation)
	{
		LWLockRelease(n1_shared->lock);
		return;
	}

	entry = insert_locked(&key, &found);
	fill_texts(entry, query, parent_query);
	n1_offender_add_burst(entry, burst, samples, application_name);

	record = &n1_shared->ring[n1_shared->ring_next % n1_max_bursts];
	record->pid = MyProcPid;
	record->dbid = MyDatabaseId;
	record->burst = *burst;
	strlcpy(record->application_name, application_name ? application_name : "", NAMEDATALEN);
	n1_shared->ring_next++;
	n1_shared->bursts_total++;

	LWLockRelease(n1_shared->lock);
}

/*
 * Takes n1detect's lock for a SQL function: waits with interrupts honoured
 * (a holder stopped by a signal or a debugger must not make the caller
 * ignore cancel and terminate).
 */
void
n1_lock_interruptible(LWLockMode mode)
{
	while (!LWLockConditionalAcquire(n1_shared->lock, mode))
	{
		CHECK_FOR_INTERRUPTS();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*
 * Takes n1detect's lock exclusively where no error may be raised (a commit
 * callback, backend exit): waits while honouring terminate by returning
 * false (the caller gives up what it was recording), and at exit waits at
 * most about a second.  Spins briefly first: holders keep it microseconds.
 */
bool
n1_lock_for_recording(void)
{
	int			naps = 0;

	for (int spins = 0; spins < 100; spins++)
	{
		if (LWLockConditionalAcquire(n1_shared->lock, LW_EXCLUSIVE))
			return true;
		pg_spin_delay();
	}
	while (!LWLockConditionalAcquire(n1_shared->lock, LW_EXCLUSIVE))
	{
		if (ProcDiePending || (proc_exit_inprogress && naps >= 1000))
			return false;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		naps++;
	}
	return true;
}

/*
 * n1_info's counters since stats_reset (N1_NUM_COUNTERS of them); lock held.
 * Per-slot counters only grow, and move to folded under the exclusive lock
 * when their backend exits, so the sum is exact.
 */
void
n1_counters_read(int64 *counters)
{
	memset(counters, 0, sizeof(int64) * N1_NUM_COUNTERS);
	n1_slot_counters_add(counters);
	for (int c = 0; c < N1_SLOT_COUNTERS; c++)
		counters[c] += n1_shared->folded[c] - n1_shared->baseline[c];
	counters[N1_COUNTER_SLOTS_SKIPPED] = (int64) pg_atomic_read_u64(&n1_shared->slots_skipped);
}

/* Empties the table and the ring, voids the bursts in progress, zeroes the counters. */
void
n1_offenders_reset(void)
{
	HASH_SEQ_STATUS status;
	N1Offender *entry;
	int64		totals[N1_SLOT_COUNTERS] = {0};

	n1_lock_interruptible(LW_EXCLUSIVE);
	hash_seq_init(&status, n1_offenders_hash);
	while ((entry = hash_seq_search(&status)) != NULL)
		hash_search(n1_offenders_hash, &entry->key, HASH_REMOVE, NULL);
	n1_shared->ring_next = 0;
	n1_shared->dealloc = 0;
	n1_shared->bursts_total = 0;
	n1_slot_counters_add(totals);
	for (int c = 0; c < N1_SLOT_COUNTERS; c++)
		n1_shared->baseline[c] = n1_shared->folded[c] + totals[c];
	pg_atomic_write_u64(&n1_shared->slots_skipped, 0);
	n1_shared->stats_reset = GetCurrentTimestamp();
	pg_atomic_fetch_add_u64(&n1_shared->generation, 1);
	LWLockRelease(n1_shared->lock);
}
