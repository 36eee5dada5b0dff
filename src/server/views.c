/*
 * views.c
 *		SQL functions behind the views n1_offenders, n1_bursts,
 *		n1_backend_statements and n1_info, and n1_reset().
 *
 * Readers merge two sources: the shared offenders table and ring (finished
 * bursts, read under the shared lock) and every backend's slot (bursts still
 * in progress, copied lock-free), so a burst is visible from the moment it
 * crosses the threshold, even if its backend then goes idle.  Slots are
 * copied before the lock is taken, never under it (a slot's owner may be
 * stopped in the middle of a write); then, under the lock, a burst that left
 * its slot since the copy (bursts_left moved: it is in the table now, or
 * void) is dropped, so every burst is counted exactly once.
 *
 * Each SQL-visible shape has one C entry point per extension version whose
 * columns differ (as pg_stat_statements does): n1_offenders, n1_bursts and
 * n1_info serve the SQL objects of 1.0, the _1_1 ones those of 1.1.  A new
 * column goes at the end of the newest version's row (the upgrade script
 * adds it with CREATE OR REPLACE VIEW, which only appends).
 *
 * Privileges follow pg_stat_statements: without pg_read_all_stats, rows of
 * other users show no query text, samples or parameter hashes.
 *
 * Must never: copy a slot or wait without honouring interrupts while holding
 * n1detect's lock.
 */
#include "postgres.h"

#include "catalog/pg_authid.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

#include "n1detect.h"

typedef enum N1ApiVersion
{
	N1_API_1_0,
	N1_API_1_1
} N1ApiVersion;

/* Columns of each version's functions; the newest is the whole row. */
#define OFFENDERS_COLS_1_0 17
#define OFFENDERS_COLS_1_1 19
#define BURSTS_COLS_1_0 15
#define BURSTS_COLS_1_1 19
#define INFO_COLS_1_0 5
#define INFO_COLS_1_1 10

PG_FUNCTION_INFO_V1(n1_offenders);
PG_FUNCTION_INFO_V1(n1_offenders_1_1);
PG_FUNCTION_INFO_V1(n1_bursts);
PG_FUNCTION_INFO_V1(n1_bursts_1_1);
PG_FUNCTION_INFO_V1(n1_backend_statements);
PG_FUNCTION_INFO_V1(n1_info);
PG_FUNCTION_INFO_V1(n1_info_1_1);
PG_FUNCTION_INFO_V1(n1_reset);

#define INSUFFICIENT_PRIVILEGE "<insufficient privilege>"

/* A burst in progress copied from a slot, with what identifies it there. */
typedef struct InProgress
{
	int			slot;
	int			index;
	uint32		bursts_left;	/* slot's bursts_left[index] at the copy */
	int			pid;
	Oid			dbid;
	char		application_name[NAMEDATALEN];
	N1SlotBurst burst;
} InProgress;

static void
check_natts(TupleDesc tupdesc, int expected)
{
	/* as pg_stat_statements: the SQL objects must match the entry point */
	if (tupdesc->natts != expected)
		elog(ERROR, "incorrect number of output arguments");
}

static bool
can_see_all(void)
{
	return has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);
}

/*
 * A text of shared memory as a datum of this database: bytes invalid in its
 * encoding (a text or a parameter sample of another database, or of a
 * damaged file) become '?'.
 */
static Datum
valid_text(const char *s)
{
	int			len;
	char	   *valid;
	int			out = 0;

	len = strlen(s);
	if (pg_verifymbstr(s, len, true))
		return CStringGetTextDatum(s);
	valid = palloc(len + 1);
	for (int i = 0; i < len;)
	{
		int			l = pg_encoding_verifymbchar(GetDatabaseEncoding(), s + i, len - i);

		if (l <= 0)
		{
			valid[out++] = '?';
			i++;
		}
		else
		{
			memcpy(valid + out, s + i, l);
			out += l;
			i += l;
		}
	}
	valid[out] = '\0';
	return CStringGetTextDatum(valid);
}

/* valid_text, or NULL for an empty text */
static Datum
text_or_null(const char *s, bool *isnull)
{
	*isnull = (s == NULL || s[0] == '\0');
	return *isnull ? (Datum) 0 : valid_text(s);
}

static Datum
samples_datum(const N1Samples *samples)
{
	Datum		values[N1_BURST_SAMPLES];

	for (int i = 0; i < samples->count; i++)
		values[i] = valid_text(samples->values[i]);
	return PointerGetDatum(construct_array(values, samples->count, TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * Copies every slot's bursts in progress, without the lock; a slot whose
 * owner stays in the middle of a write is skipped (n1_info.slots_skipped).
 */
static List *
copy_bursts_in_progress(void)
{
	int			n = n1_slot_count();
	N1BackendSlot *copy = palloc(sizeof(N1BackendSlot));
	List	   *result = NIL;
	uint64		skipped = 0;

	for (int i = 0; i < n; i++)
	{
		N1SlotRead r = n1_slot_read(i, copy);

		if (r == N1_SLOT_BUSY)
			skipped++;
		if (r != N1_SLOT_COPIED)
			continue;
		for (int b = 0; b < N1_SLOT_BURSTS; b++)
		{
			InProgress *ip;

			if (!copy->bursts[b].used)
				continue;
			ip = palloc(sizeof(InProgress));
			ip->slot = i;
			ip->index = b;
			ip->bursts_left = copy->bursts_left[b];
			ip->pid = copy->pid;
			ip->dbid = copy->dbid;
			memcpy(ip->application_name, copy->application_name, NAMEDATALEN);
			ip->burst = copy->bursts[b];
			result = lappend(result, ip);
		}
	}
	if (skipped > 0)
		pg_atomic_fetch_add_u64(&n1_shared->slots_skipped, skipped);
	pfree(copy);
	return result;
}

/*
 * Under the shared lock: keeps the copied bursts that still count, those of
 * the current generation that have not left their slot since the copy (a
 * burst leaves its slot and enters the table under the exclusive lock).
 */
static List *
keep_still_in_progress(List *copied)
{
	uint64		generation = pg_atomic_read_u64(&n1_shared->generation);
	List	   *kept = NIL;
	ListCell   *lc;

	foreach(lc, copied)
	{
		InProgress *ip = lfirst(lc);

		if (ip->burst.generation == generation &&
			n1_slot_bursts_left(ip->slot, ip->index) == ip->bursts_left)
			kept = lappend(kept, ip);
	}
	return kept;
}

static void
offenders_rows(FunctionCallInfo fcinfo, N1ApiVersion api, bool showtext)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			userid = GetUserId();
	bool		see_all;
	HTAB	   *merged;
	HASHCTL		ctl;
	HASH_SEQ_STATUS status;
	N1Offender *entry;
	List	   *in_progress;
	ListCell   *lc;

	n1_require_preload();
	n1_mark_own_statement();
	InitMaterializedSRF(fcinfo, 0);
	check_natts(rsinfo->setDesc, api == N1_API_1_0 ? OFFENDERS_COLS_1_0 : OFFENDERS_COLS_1_1);
	see_all = can_see_all();

	/* Copy the shared table, then add bursts in progress to their rows. */
	ctl.keysize = sizeof(N1OffenderKey);
	ctl.entrysize = sizeof(N1Offender);
	ctl.hcxt = CurrentMemoryContext;
	merged = hash_create("n1detect offenders copy", 256, &ctl,
						 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	in_progress = copy_bursts_in_progress();
	n1_lock_interruptible(LW_SHARED);
	hash_seq_init(&status, n1_offenders_hash);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		N1Offender *copy = hash_search(merged, &entry->key, HASH_ENTER, NULL);

		memcpy(copy, entry, sizeof(N1Offender));
	}
	in_progress = keep_still_in_progress(in_progress);
	LWLockRelease(n1_shared->lock);
	foreach(lc, in_progress)
	{
		InProgress *ip = lfirst(lc);
		N1OffenderKey key;
		bool		found;

		n1_offender_key(&key, ip->dbid, &ip->burst.burst, &ip->burst.tags);
		entry = hash_search(merged, &key, HASH_ENTER, &found);
		if (!found)
			memset((char *) entry + sizeof(N1OffenderKey), 0,
				   sizeof(N1Offender) - sizeof(N1OffenderKey));
		n1_offender_add_burst(entry, &ip->burst.burst, &ip->burst.samples, &ip->burst.tags,
							  ip->application_name);
	}

	hash_seq_init(&status, merged);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		Datum		values[OFFENDERS_COLS_1_1];
		bool		nulls[OFFENDERS_COLS_1_1];
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
		Assert(i == OFFENDERS_COLS_1_0);
		/* columns of 1.1 and later go here */
		if (api >= N1_API_1_1)
		{
			/* the request's tags come from the query's text: shown as it is */
			if (visible)
			{
				values[i] = text_or_null(entry->source, &nulls[i]);
				i++;
				values[i] = text_or_null(entry->code_line, &nulls[i]);
				i++;
			}
			else
			{
				nulls[i++] = true;
				nulls[i++] = true;
			}
			Assert(i == OFFENDERS_COLS_1_1);
		}

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/* n1_offenders(showtext) of extension version 1.0 */
Datum
n1_offenders(PG_FUNCTION_ARGS)
{
	offenders_rows(fcinfo, N1_API_1_0, PG_GETARG_BOOL(0));
	return (Datum) 0;
}

Datum
n1_offenders_1_1(PG_FUNCTION_ARGS)
{
	offenders_rows(fcinfo, N1_API_1_1, PG_GETARG_BOOL(0));
	return (Datum) 0;
}

static void
put_burst_row(ReturnSetInfo *rsinfo, N1ApiVersion api, int pid, Oid dbid,
			  const N1BurstSummary *b, bool in_progress, const char *application_name,
			  const N1QueryTags *tags, bool visible)
{
	Datum		values[BURSTS_COLS_1_1];
	bool		nulls[BURSTS_COLS_1_1];
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
	Assert(i == BURSTS_COLS_1_0);
	/* columns of 1.1 and later go here */
	if (api >= N1_API_1_1)
	{
		if (visible)
		{
			values[i] = text_or_null(tags->source, &nulls[i]);
			i++;
			values[i] = text_or_null(tags->code_line, &nulls[i]);
			i++;
			values[i] = text_or_null(tags->trace_id, &nulls[i]);
			i++;
		}
		else
		{
			nulls[i++] = true;
			nulls[i++] = true;
			nulls[i++] = true;
		}
		if (b->parent_queryid != 0 && b->parent_evidence != N1_EVIDENCE_NONE)
			values[i++] = CStringGetTextDatum(n1_evidence_name((N1ParentEvidence) b->parent_evidence));
		else
			nulls[i++] = true;
		Assert(i == BURSTS_COLS_1_1);
	}
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

static void
bursts_rows(FunctionCallInfo fcinfo, N1ApiVersion api)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	N1BurstRecord *records;
	uint64		next;
	int			count;
	List	   *in_progress;
	ListCell   *lc;
	Oid			userid = GetUserId();
	bool		see_all;

	n1_require_preload();
	n1_mark_own_statement();
	InitMaterializedSRF(fcinfo, 0);
	check_natts(rsinfo->setDesc, api == N1_API_1_0 ? BURSTS_COLS_1_0 : BURSTS_COLS_1_1);
	see_all = can_see_all();

	/* Finished bursts, newest first. */
	records = palloc(sizeof(N1BurstRecord) * n1_max_bursts);
	in_progress = copy_bursts_in_progress();
	n1_lock_interruptible(LW_SHARED);
	next = n1_shared->ring_next;
	count = (int) Min(next, (uint64) n1_max_bursts);
	for (int i = 0; i < count; i++)
		records[i] = n1_shared->ring[(next - 1 - i) % n1_max_bursts];
	in_progress = keep_still_in_progress(in_progress);
	LWLockRelease(n1_shared->lock);
	foreach(lc, in_progress)
	{
		InProgress *ip = lfirst(lc);

		put_burst_row(rsinfo, api, ip->pid, ip->dbid, &ip->burst.burst, true,
					  ip->application_name, &ip->burst.tags,
					  see_all || ip->burst.burst.userid == userid);
	}
	for (int i = 0; i < count; i++)
	{
		N1BurstRecord *r = &records[i];

		put_burst_row(rsinfo, api, r->pid, r->dbid, &r->burst, false, r->application_name,
					  &r->tags, see_all || r->burst.userid == userid);
	}
}

/* n1_bursts() of extension version 1.0 */
Datum
n1_bursts(PG_FUNCTION_ARGS)
{
	bursts_rows(fcinfo, N1_API_1_0);
	return (Datum) 0;
}

Datum
n1_bursts_1_1(PG_FUNCTION_ARGS)
{
	bursts_rows(fcinfo, N1_API_1_1);
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
	uint64		skipped = 0;

	n1_require_preload();
	n1_mark_own_statement();
	InitMaterializedSRF(fcinfo, 0);
	see_all = can_see_all();

	copy = palloc(sizeof(N1BackendSlot));
	n = n1_slot_count();
	for (int s = 0; s < n; s++)
	{
		uint64		first;
		N1SlotRead r = n1_slot_read(s, copy);

		if (r == N1_SLOT_BUSY)
			skipped++;
		if (r != N1_SLOT_COPIED)
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
			/* as the statement's own user: not the slot's (SECURITY DEFINER) */
			if (see_all || ev->userid == userid)
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
	if (skipped > 0)
		pg_atomic_fetch_add_u64(&n1_shared->slots_skipped, skipped);
	return (Datum) 0;
}

static Datum
info_row(FunctionCallInfo fcinfo, N1ApiVersion api)
{
	TupleDesc	tupdesc;
	Datum		values[INFO_COLS_1_1];
	bool		nulls[INFO_COLS_1_1];
	int64		counters[N1_NUM_COUNTERS];
	int64		offenders;
	int64		dealloc;
	int64		bursts_total;
	TimestampTz stats_reset;
	int			i = 0;

	n1_require_preload();
	n1_mark_own_statement();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	check_natts(tupdesc, api == N1_API_1_0 ? INFO_COLS_1_0 : INFO_COLS_1_1);

	n1_lock_interruptible(LW_SHARED);
	offenders = hash_get_num_entries(n1_offenders_hash);
	dealloc = n1_shared->dealloc;
	bursts_total = n1_shared->bursts_total;
	stats_reset = n1_shared->stats_reset;
	n1_counters_read(counters);
	LWLockRelease(n1_shared->lock);

	memset(nulls, 0, sizeof(nulls));
	values[i++] = Int64GetDatum(offenders);
	values[i++] = Int64GetDatum(n1_max_offenders);
	values[i++] = Int64GetDatum(dealloc);
	values[i++] = Int64GetDatum(bursts_total);
	values[i++] = TimestampTzGetDatum(stats_reset);
	Assert(i == INFO_COLS_1_0);
	if (api >= N1_API_1_1)
	{
		values[i++] = Int64GetDatum(counters[N1_COUNTER_UNITS]);
		values[i++] = Int64GetDatum(counters[N1_COUNTER_BURSTS_DROPPED]);
		values[i++] = Int64GetDatum(counters[N1_COUNTER_QUERIES_EVICTED]);
		values[i++] = Int64GetDatum(counters[N1_COUNTER_TEXTS_EVICTED]);
		values[i++] = Int64GetDatum(counters[N1_COUNTER_SLOTS_SKIPPED]);
		Assert(i == INFO_COLS_1_1);
	}

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* n1_info() of extension version 1.0 */
Datum
n1_info(PG_FUNCTION_ARGS)
{
	return info_row(fcinfo, N1_API_1_0);
}

Datum
n1_info_1_1(PG_FUNCTION_ARGS)
{
	return info_row(fcinfo, N1_API_1_1);
}

Datum
n1_reset(PG_FUNCTION_ARGS)
{
	n1_require_preload();
	n1_mark_own_statement();
	n1_offenders_reset();
	PG_RETURN_VOID();
}
