/*
 * views.c
 *		SQL functions behind the views n1_offenders, n1_bursts,
 *		n1_backend_statements and n1_info, and n1_reset().
 *
 * Readers merge two sources: the shared offenders table and ring (finished
 * bursts, read under the shared lock) and every backend's slot (bursts still
 * in progress, copied lock-free), so a burst is visible from the moment it
 * crosses the threshold, even if its backend then goes idle.
 *
 * Privileges follow pg_stat_statements: without pg_read_all_stats, rows of
 * other users show no query text, samples or parameter hashes.
 */
#include "postgres.h"

#include "catalog/pg_authid.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

#include "n1detect.h"

PG_FUNCTION_INFO_V1(n1_offenders);
PG_FUNCTION_INFO_V1(n1_bursts);
PG_FUNCTION_INFO_V1(n1_backend_statements);
PG_FUNCTION_INFO_V1(n1_info);
PG_FUNCTION_INFO_V1(n1_reset);

#define INSUFFICIENT_PRIVILEGE "<insufficient privilege>"

static bool
can_see_all(void)
{
	return has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);
}

static Datum
samples_datum(const N1Samples *samples)
{
	Datum		values[N1_BURST_SAMPLES];

	for (int i = 0; i < samples->count; i++)
		values[i] = CStringGetTextDatum(samples->values[i]);
	return PointerGetDatum(construct_array(values, samples->count, TEXTOID, -1, false, TYPALIGN_INT));
}

static Datum
text_or_null(const char *s, bool *isnull)
{
	if (s == NULL || s[0] == '\0')
	{
		*isnull = true;
		return (Datum) 0;
	}
	*isnull = false;
	return CStringGetTextDatum(s);
}

/* Copies every slot's bursts in progress that belong to the current generation. */
static List *
collect_bursts_in_progress(List **owners)
{
	uint64		generation = pg_atomic_read_u64(&n1_shared->generation);
	int			n = n1_slot_count();
	N1BackendSlot *copy = palloc(sizeof(N1BackendSlot));
	List	   *result = NIL;

	*owners = NIL;
	for (int i = 0; i < n; i++)
	{
		if (!n1_slot_read(i, copy))
			continue;
		for (int b = 0; b < N1_SLOT_BURSTS; b++)
		{
			N1SlotBurst *burst = &copy->bursts[b];
			N1SlotBurst *kept;
			N1BackendSlot *owner;

			if (!burst->used || burst->generation != generation)
				continue;
			kept = palloc(sizeof(N1SlotBurst));
			memcpy(kept, burst, sizeof(N1SlotBurst));
			result = lappend(result, kept);
			owner = palloc(offsetof(N1BackendSlot, events));
			memcpy(owner, copy, offsetof(N1BackendSlot, events));
			*owners = lappend(*owners, owner);
		}
	}
	pfree(copy);
	return result;
}

Datum
n1_offenders(PG_FUNCTION_ARGS)
{
	bool		showtext = PG_GETARG_BOOL(0);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			userid = GetUserId();
	bool		see_all;
	HTAB	   *merged;
	HASHCTL		ctl;
	HASH_SEQ_STATUS status;
	N1Offender *entry;
	List	   *in_progress;
	List	   *owners;
	ListCell   *lc,
			   *lo;

	n1_require_preload();
	n1_mark_own_statement();
	InitMaterializedSRF(fcinfo, 0);
	see_all = can_see_all();

	/* Copy the shared table, then add bursts in progress to their rows. */
	ctl.keysize = sizeof(N1OffenderKey);
	ctl.entrysize = sizeof(N1Offender);
	ctl.hcxt = CurrentMemoryContext;
	merged = hash_create("n1detect offenders copy", 256, &ctl,
						 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	/*
	 * Hold the lock across both copies: a burst leaves its slot and enters
	 * the table under the exclusive lock, so it is seen exactly once.
	 */
	LWLockAcquire(n1_shared->lock, LW_SHARED);
	hash_seq_init(&status, n1_offenders_hash);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		N1Offender *copy = hash_search(merged, &entry->key, HASH_ENTER, NULL);

		memcpy(copy, entry, sizeof(N1Offender));
	}
	in_progress = collect_bursts_in_progress(&owners);
	LWLockRelease(n1_shared->lock);
	forboth(lc, in_progress, lo, owners)
	{
		N1SlotBurst *b = lfirst(lc);
		N1BackendSlot *owner = lfirst(lo);
		N1OffenderKey key;
		bool		found;

		n1_offender_key(&key, owner->dbid, &b->burst);
		entry = hash_search(merged, &key, HASH_ENTER, &found);
		if (!found)
			memset((char *) entry + sizeof(N1OffenderKey), 0,
				   sizeof(N1Offender) - sizeof(N1OffenderKey));
		n1_offender_add_burst(entry, &b->burst, &b->samples, owner->application_name);
	}

	hash_seq_init(&status, merged);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		Datum		values[17];
		bool		nulls[17];
		int			i = 0;
		bool		visible = see_all || entry->key.userid == userid;

		/* a row published for a burst that is gone (reset) holds nothing yet */
		if (entry->bursts == 0)
			continue;

		memset(nulls, 0, sizeof(nulls));
		values[i++] = ObjectIdGetDatum(entry->key.userid);
		values[i++] = ObjectIdGetDatum(entry->key.dbid);
		values[i++] = Int64GetDatum((int64) entry->key.queryid);
		if (entry->key.parent_queryid != 0)
			values[i++] = Int64GetDatum((int64) entry->key.parent_queryid);
		else
			nulls[i++] = true;
		values[i++] = CStringGetTextDatum(n1_kind_name((N1Kind) entry->key.kind));
		if (!showtext)
		{
			nulls[i++] = true;
			nulls[i++] = true;
		}
		else if (visible)
		{
			values[i] = text_or_null(entry->query, &nulls[i]);
			i++;
			values[i] = text_or_null(entry->parent_query, &nulls[i]);
			i++;
		}
		else
		{
			values[i++] = CStringGetTextDatum(INSUFFICIENT_PRIVILEGE);
			if (entry->key.parent_queryid != 0)
				values[i++] = CStringGetTextDatum(INSUFFICIENT_PRIVILEGE);
			else
				nulls[i++] = true;
		}
		values[i++] = Int64GetDatum(entry->bursts);
		values[i++] = Int64GetDatum(entry->calls);
		values[i++] = Int64GetDatum(entry->max_calls);
		values[i++] = Int64GetDatum(entry->max_distinct_params);
		values[i++] = Int64GetDatum(entry->max_parent_rows);
		values[i++] = Float8GetDatum(entry->total_exec_us / 1000.0);
		values[i++] = TimestampTzGetDatum(entry->first_seen);
		values[i++] = TimestampTzGetDatum(entry->last_seen);
		values[i] = text_or_null(entry->application_name, &nulls[i]);
		i++;
		if (visible && entry->samples.count > 0)
			values[i++] = samples_datum(&entry->samples);
		else
			nulls[i++] = true;
		Assert(i == lengthof(values));

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

static void
put_burst_row(ReturnSetInfo *rsinfo, int pid, Oid dbid, const N1BurstSummary *b,
			  bool in_progress, const char *application_name)
{
	Datum		values[15];
	bool		nulls[15];
	int			i = 0;

	memset(nulls, 0, sizeof(nulls));
	values[i++] = Int32GetDatum(pid);
	values[i++] = ObjectIdGetDatum(b->userid);
	values[i++] = ObjectIdGetDatum(dbid);
	values[i++] = TimestampTzGetDatum(b->started_at);
	if (in_progress)
		nulls[i++] = true;
	else
		values[i++] = TimestampTzGetDatum(b->ended_at);
	values[i++] = BoolGetDatum(in_progress);
	values[i++] = Int64GetDatum((int64) b->queryid);
	if (b->parent_queryid != 0)
		values[i++] = Int64GetDatum((int64) b->parent_queryid);
	else
		nulls[i++] = true;
	values[i++] = CStringGetTextDatum(n1_kind_name((N1Kind) b->kind));
	values[i++] = Int64GetDatum(b->calls);
	values[i++] = Int64GetDatum(b->distinct_params);
	values[i++] = Int64GetDatum(b->parent_calls);
	values[i++] = Int64GetDatum(b->parent_rows);
	values[i++] = Float8GetDatum(b->exec_us / 1000.0);
	values[i] = text_or_null(application_name, &nulls[i]);
	i++;
	Assert(i == lengthof(values));
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}
Datum
n1_bursts(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	N1BurstRecord *records;
	uint64		next;
	int			count;
	List	   *in_progress;
	List	   *owners;
	ListCell   *lc,
			   *lo;

	n1_require_preload();
	n1_mark_own_statement();
	InitMaterializedSRF(fcinfo, 0);

	/* Finished bursts, newest first. */
	records = palloc(sizeof(N1BurstRecord) * n1_max_bursts);
	LWLockAcquire(n1_shared->lock, LW_SHARED);
	next = n1_shared->ring_next;
	count = (int) Min(next, (uint64) n1_max_bursts);
	for (int i = 0; i < count; i++)
		records[i] = n1_shared->ring[(next - 1 - i) % n1_max_bursts];
	in_progress = collect_bursts_in_progress(&owners);
	LWLockRelease(n1_shared->lock);
	forboth(lc, in_progress, lo, owners)
	{
		N1SlotBurst *b = lfirst(lc);
		N1BackendSlot *owner = lfirst(lo);

		put_burst_row(rsinfo, owner->pid, owner->dbid, &b->burst, true,
					  owner->application_name);
	}
	for (int i = 0; i < count; i++)
	{
		N1BurstRecord *r = &records[i];

		put_burst_row(rsinfo, r->pid, r->dbid, &r->burst, false, r->application_name);
	}
	return (Datum) 0;
}

Datum
n1_backend_statements(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	N1BackendSlot *copy;
	int			n;
	bool		see_all;
	Oid			userid = GetUserId();

	n1_require_preload();
	n1_mark_own_statement();
	InitMaterializedSRF(fcinfo, 0);
	see_all = can_see_all();

	copy = palloc(sizeof(N1BackendSlot));
	n = n1_slot_count();
	for (int s = 0; s < n; s++)
	{
		uint64		first;

		if (!n1_slot_read(s, copy))
			continue;
		first = copy->events_written > N1_SLOT_EVENTS ?
			copy->events_written - N1_SLOT_EVENTS : 0;
		for (uint64 e = first; e < copy->events_written; e++)
		{
			N1SlotEvent *ev = &copy->events[e % N1_SLOT_EVENTS];
			Datum		values[10];
			bool		nulls[10];
			int			i = 0;

			memset(nulls, 0, sizeof(nulls));
			values[i++] = Int32GetDatum(copy->pid);
			values[i++] = ObjectIdGetDatum(copy->userid);
			values[i++] = ObjectIdGetDatum(copy->dbid);
			values[i++] = Int64GetDatum((int64) ev->seq);
			values[i++] = Int64GetDatum((int64) ev->queryid);
			if (see_all || copy->userid == userid)
				values[i++] = Int64GetDatum((int64) ev->param_hash);
			else
				nulls[i++] = true;
			values[i++] = Int32GetDatum(ev->nesting_level);
			values[i++] = TimestampTzGetDatum(ev->start);
			values[i++] = Float8GetDatum(ev->exec_us / 1000.0);
			values[i++] = Int64GetDatum((int64) ev->rows);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	return (Datum) 0;
}

Datum
n1_info(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[5];
	bool		nulls[5];

	n1_require_preload();
	n1_mark_own_statement();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	memset(nulls, 0, sizeof(nulls));
	LWLockAcquire(n1_shared->lock, LW_SHARED);
	values[0] = Int64GetDatum(hash_get_num_entries(n1_offenders_hash));
	values[1] = Int64GetDatum(n1_max_offenders);
	values[2] = Int64GetDatum(n1_shared->dealloc);
	values[3] = Int64GetDatum(n1_shared->bursts_total);
	values[4] = TimestampTzGetDatum(n1_shared->stats_reset);
	LWLockRelease(n1_shared->lock);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

Datum
n1_reset(PG_FUNCTION_ARGS)
{
	n1_require_preload();
	n1_mark_own_statement();
	n1_offenders_reset();
	PG_RETURN_VOID();
}
