/*
 * backend_slots.c
 *		Per-backend slots in shared memory: each backend writes only its own
 *		slot (recent statements, bursts in progress), without any lock.
 *
 * Writers follow the change-count protocol of core's PgBackendStatus
 * (st_changecount): the count is odd while the owner writes, and a reader
 * copies the slot and retries until it saw the same even count before and
 * after the copy.  So the statement path never waits for anyone and readers
 * never see a torn record.  Readers retry a bounded number of times: an
 * owner stopped in the middle of a write (SIGSTOP, a debugger) makes its
 * slot busy, and readers skip it rather than wait for it.  Readers never
 * copy a slot while they hold n1detect's lock.
 *
 * Must never: take a lock or allocate on the owner's side (the statement
 * path), or wait without a bound on the reader's side.
 */
#include "postgres.h"

#include <signal.h>

#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/shmem.h"

#include "n1detect.h"

static N1BackendSlot *slots = NULL;
static int	n_slots = 0;
static N1BackendSlot *my_slot = NULL;

uint64		n1_texts_evicted = 0;

/*
 * A reader's tries on a busy slot: spins first, then 1 ms naps, about 10 ms
 * in all (a writer preempted in the middle of a write is back sooner).
 */
#define READ_SPINS 100
#define READ_NAPS 10

/* Slots: one per backend, plus auxiliary processes (they own proc numbers on 17+). */
static int
slot_count_for_settings(void)
{
	return MaxBackends + NUM_AUXILIARY_PROCS;
}

Size
n1_slots_shmem_size(void)
{
	return mul_size(slot_count_for_settings(), sizeof(N1BackendSlot));
}

void
n1_slots_shmem_init(void)
{
	bool		found;

	n_slots = slot_count_for_settings();
	slots = ShmemInitStruct("n1detect backend slots",
							n1_slots_shmem_size(), &found);
	if (!found)
	{
		memset(slots, 0, n1_slots_shmem_size());
		for (int i = 0; i < n_slots; i++)
			for (int c = 0; c < N1_SLOT_COUNTERS; c++)
				pg_atomic_init_u64(&slots[i].counters[c], 0);
	}
}

int
n1_slot_count(void)
{
	return slots ? n_slots : 0;
}

#define BEGIN_WRITE(slot) n1_slot_write_begin(slot)
#define END_WRITE(slot) n1_slot_write_end(slot)

#ifdef USE_ASSERT_CHECKING
/* n1detect.debug_stop_in_slot_write: stop here, mid-write, once per SET. */
static void
debug_stop_point(N1DebugStop where)
{
	if (n1_debug_stop_armed && n1_debug_stop == (int) where)
	{
		n1_debug_stop_armed = false;
		kill(MyProcPid, SIGSTOP);
	}
}
#define DEBUG_STOP_POINT(where) debug_stop_point(where)
#else
#define DEBUG_STOP_POINT(where) ((void) 0)
#endif

/*
 * Frees this backend's slot at exit (bursts were already published), its
 * counters added to the shared totals (lost if the lock stays taken).
 */
static void
release_slot(int code pg_attribute_unused(), Datum arg pg_attribute_unused())
{
	N1BackendSlot *slot = my_slot;

	if (slot == NULL)
		return;
	if (n1_lock_for_recording())
	{
		n1_slot_counters_fold(slot, n1_shared->folded);
		LWLockRelease(n1_shared->lock);
	}
	BEGIN_WRITE(slot);
	slot->pid = 0;
	memset(slot->bursts, 0, sizeof(slot->bursts));
	END_WRITE(slot);
	my_slot = NULL;
}

/*
 * This backend's slot, claimed on first use; NULL without shared memory or
 * without a proc number (should not happen for a backend running queries).
 */
N1BackendSlot *
n1_my_slot(void)
{
	int			index;
	N1BackendSlot *slot;

	if (likely(my_slot != NULL))
		return my_slot;
	if (slots == NULL)
		return NULL;

#if PG_VERSION_NUM >= 170000
	index = MyProcNumber;
#else
	index = MyBackendId - 1;
#endif
	if (index < 0 || index >= n_slots)
		return NULL;

	slot = &slots[index];
	BEGIN_WRITE(slot);
	slot->pid = MyProcPid;
	slot->dbid = MyDatabaseId;
	slot->userid = GetSessionUserId();
	slot->application_name[0] = '\0';
	slot->events_written = 0;
	memset(slot->events, 0, sizeof(slot->events));
	memset(slot->bursts, 0, sizeof(slot->bursts));
	END_WRITE(slot);

	my_slot = slot;
	before_shmem_exit(release_slot, (Datum) 0);
	return slot;
}

/*
 * Writes a statement's event and, when burst is not NULL, the counts of that
 * burst in progress at position pos (the call of a burst whose kind, parent
 * and samples did not change: see recorder.c), in one write.
 */
void
n1_slot_write_event(N1BackendSlot *slot, const N1SlotEvent *event,
					const N1Burst *burst, int pos)
{
	N1SlotEvent *target = &slot->events[slot->events_written % N1_SLOT_EVENTS];

	BEGIN_WRITE(slot);
	DEBUG_STOP_POINT(N1_DEBUG_STOP_EVENT);
	*target = *event;

	/*
	 * The user the statement ran as, which may not be the slot's (a SECURITY
	 * DEFINER function): it decides who may see the statement's parameter
	 * hash.  Events are written when the statement ends, still as that user.
	 */
	target->userid = GetUserId();
	slot->events_written++;
	if (burst != NULL)
	{
		N1BurstSummary *counts = &slot->bursts[pos].burst;

		counts->calls = burst->calls;
		counts->distinct_params = burst->distinct_params;
		counts->parent_calls = burst->parent_calls;
		counts->parent_rows = (int64) burst->parent_rows;
		counts->exec_us = burst->exec_us;
		counts->ended_at = (TimestampTz) burst->last_end_us;
	}
	END_WRITE(slot);
}

/*
 * Writes a burst in progress.  Without samples only the counts are copied
 * (samples come last in N1SlotBurst): that is what changes on every call.
 */
void
n1_slot_write_burst(N1BackendSlot *slot, int index, const N1SlotBurst *burst,
					bool with_samples)
{
	Assert(index >= 0 && index < N1_SLOT_BURSTS);
	BEGIN_WRITE(slot);
	memcpy(&slot->bursts[index], burst,
		   with_samples ? sizeof(N1SlotBurst) : offsetof(N1SlotBurst, samples));
	END_WRITE(slot);
}

void
n1_slot_clear_burst(N1BackendSlot *slot, int index)
{
	Assert(index >= 0 && index < N1_SLOT_BURSTS);
	if (!slot->bursts[index].used)
		return;
	BEGIN_WRITE(slot);
	DEBUG_STOP_POINT(N1_DEBUG_STOP_BURST_END);
	slot->bursts[index].used = false;
	slot->bursts_left[index]++;
	END_WRITE(slot);
}

void
n1_slot_set_application_name(N1BackendSlot *slot, const char *name)
{
	BEGIN_WRITE(slot);
	strlcpy(slot->application_name, name ? name : "", NAMEDATALEN);
	END_WRITE(slot);
}

/*
 * Copies slot number index into *copy, as pgstat_read_current_status does,
 * but a bounded number of times: N1_SLOT_BUSY when its owner stayed in the
 * middle of a write all along.  The caller must not hold n1detect's lock.
 */
N1SlotRead
n1_slot_read(int index, N1BackendSlot *copy)
{
	volatile N1BackendSlot *slot = &slots[index];

	Assert(!LWLockHeldByMe(n1_shared->lock));
	for (int tries = 0; tries < READ_SPINS + READ_NAPS; tries++)
	{
		uint32		before = slot->changecount;
		uint32		after;

		pg_read_barrier();
		if ((before & 1) == 0)
		{
			if (slot->pid == 0)
				return N1_SLOT_FREE;
			DEBUG_STOP_POINT(N1_DEBUG_STOP_READ);
			memcpy(copy, (const void *) slot, sizeof(N1BackendSlot));
			pg_read_barrier();
			after = slot->changecount;
			if (before == after)
				return copy->pid != 0 ? N1_SLOT_COPIED : N1_SLOT_FREE;
		}
		CHECK_FOR_INTERRUPTS();
		if (tries < READ_SPINS)
			pg_spin_delay();
		else
			pg_usleep(1000L);
	}
	return N1_SLOT_BUSY;
}

/*
 * How many times bursts[burst_index] of slot index left it (see
 * n1_slot_clear_burst): one read, no retry.
 */
uint32
n1_slot_bursts_left(int index, int burst_index)
{
	volatile N1BackendSlot *slot = &slots[index];

	return slot->bursts_left[burst_index];
}

/* Adds the counters of the backends now running to counters[N1_SLOT_COUNTERS]. */
void
n1_slot_counters_add(int64 *counters)
{
	for (int i = 0; i < n_slots; i++)
		for (int c = 0; c < N1_SLOT_COUNTERS; c++)
			counters[c] += (int64) pg_atomic_read_u64(&slots[i].counters[c]);
}

/* Moves the counters of slot (this backend's) into folded; lock held exclusively. */
void
n1_slot_counters_fold(N1BackendSlot *slot, int64 *folded)
{
	for (int c = 0; c < N1_SLOT_COUNTERS; c++)
	{
		folded[c] += (int64) pg_atomic_read_u64(&slot->counters[c]);
		pg_atomic_write_u64(&slot->counters[c], 0);
	}
}
