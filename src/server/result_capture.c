/*
 * result_capture.c
 *		The values that prove a burst's parent: hashes of the key-like values
 *		of the rows a statement returns (through a DestReceiver wrapped
 *		around the statement's own during ExecutorRun), and of each parameter
 *		value of a call (bound values, or the literal constants of the simple
 *		protocol).  One canonical hash per value, whatever its type: an
 *		integer of any width, or a text holding its decimal form, hashes
 *		alike; a uuid and its text form hash alike; other texts by their
 *		bytes.  The detector (src/core/detector.c) only compares hashes.
 *
 * Bounds: key-like columns are integers (int2, int4, int8, oid), uuid, and
 * texts (text, varchar) of at most CAPTURE_MAX_TEXT bytes, uncompressed
 * and not toasted; others (floats, numeric, bytea, arrays, long texts) are
 * skipped.  At most CAPTURE_MAX_KEYS columns per row, CAPTURE_MAX_ROWS rows
 * per run and CAPTURE_MAX_VALUES values per statement are hashed, into
 * buffers allocated once (static); at most CAPTURE_DEPTH statements capture
 * at once (nesting at track = all), deeper ones report "values unknown".
 *
 * Cost: the column plan (which columns, of which kind) is made once per
 * query id from the tuple descriptor's type OIDs (no catalog access) and
 * cached.  A statement returning 0 or 1 row pays the wrapper's indirect
 * call, a plan lookup and, for row 1, a memcpy of its first
 * CAPTURE_STASH_ATTS column values; a buffer is claimed, and row 1's
 * integer keys hashed, only when a 2nd row comes.  A query id seen
 * returning several rows hashes row 1 directly from then on, so only the
 * first multi-row run of a query id in a backend loses the text and uuid
 * keys of its row 1.  A query id whose first CAPTURE_SINGLE_RUNS runs
 * returned at most 1 row each (a point lookup; runs of no row count too)
 * is not wrapped any more,
 * until a run of 2 rows or more (seen at its end) turns wrapping back on:
 * that one run's values are lost.  The exception is a lookup the detector
 * asks about (N1StatementResult.capture_results: calls 2 to
 * N1_CHAIN_CAPTURE_CALLS of a 1-row lookup repeated in the open unit, which may be
 * a link of a chain): its next run is wrapped and its row 1 hashed, so a
 * loop of point lookups costs its first calls of each unit that much and
 * nothing after.  Parameter values are hashed only when the detector asks
 * (N1_VALUES_LAZY): while the query records its first distinct values.
 *
 * This file must never: allocate, read the catalog or take a lock per
 * statement; change what the wrapped receiver gets (every row is passed on
 * first, unchanged, and its return value is kept); keep a pointer to a
 * statement's data past the row it came with.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/execdesc.h"
#include "nodes/execnodes.h"
#include "executor/tuptable.h"
#include "nodes/params.h"
#include "tcop/dest.h"
#include "utils/uuid.h"

#include "n1detect.h"
#include "value_hash.h"

#define CAPTURE_MAX_KEYS	8	/* key-like columns hashed per row */
#define CAPTURE_MAX_ROWS	64	/* rows hashed per run */
#define CAPTURE_MAX_VALUES	N1_RESULT_FILTER_MAX	/* values per statement (what a filter takes) */
#define CAPTURE_MAX_TEXT	N1_VALUE_MAX_TEXT	/* longest text hashed, bytes */
#define CAPTURE_DEPTH		4	/* statements capturing at once (nesting) */
#define CAPTURE_STASH_ATTS	16	/* columns of row 1 copied (by value) until row 2 */
#define CAPTURE_SINGLE_RUNS	8	/* runs of <= 1 row after which a query id is not wrapped */
#define PLAN_SLOTS			N1_CAPTURE_PLAN_SLOTS
#define SCAN_MAX_BYTES		1024	/* statement text scanned for literal constants */

typedef enum KeyKind
{
	KEY_INT2,
	KEY_INT4,
	KEY_INT8,
	KEY_OID,
	KEY_UUID,
	KEY_TEXT
} KeyKind;

/* Which columns of a query's rows are hashed, made once per query id. */
typedef struct ColumnPlan
{
	uint64		queryid;		/* 0 = free */
	int			natts;			/* of the tuple descriptor it was made from */
	int			nkeys;
	bool		multi;			/* a run of this query id returned >= 2 rows */
	int			single_runs;	/* runs of at most 1 row before any of >= 2 */
	uint32		chain_gen;		/* == unit_gen: hash the next run's row 1 (a chain's link);
								 * reset by that run */
	AttrNumber	max_attno;		/* deform up to this column */
	int16		attno[CAPTURE_MAX_KEYS];	/* 0-based */
	uint8		kind[CAPTURE_MAX_KEYS];
} ColumnPlan;

/* A statement's captured values, from the start of its run to its end. */
typedef struct CaptureBuffer
{
	const QueryDesc *query_desc;	/* owner; NULL = free */
	SubTransactionId subid;		/* subtransaction it was claimed in */
	int			n;
	uint64		values[CAPTURE_MAX_VALUES];
} CaptureBuffer;

/* The receiver put in front of a statement's own during one ExecutorRun. */
typedef struct CaptureReceiver
{
	DestReceiver pub;			/* must be first */
	DestReceiver *inner;		/* the statement's receiver; NULL = free */
	SubTransactionId subid;		/* subtransaction it was installed in */
	CaptureBuffer *buffer;
	ColumnPlan *plan;			/* NULL until row 1 */
	uint64		queryid;
	uint64		rows;			/* rows of this run */
	bool		eager;			/* hash row 1 at once (cursor fetches) */
	const QueryDesc *query_desc;
	int			n_stash;		/* row 1's first columns, raw: by-value keys hashed at row 2;
								 * -1: none */
	Datum		stash[CAPTURE_STASH_ATTS];
	bool		stash_null[CAPTURE_STASH_ATTS];
} CaptureReceiver;

static ColumnPlan plans[PLAN_SLOTS];
static CaptureBuffer buffers[CAPTURE_DEPTH];
static CaptureReceiver receivers[CAPTURE_DEPTH];
int			n1_capture_claimed = 0; /* buffers in use */

/*
 * By plan slot: the query id of a point lookup that is not wrapped (see
 * n1_capture_begin), or 0; what the recorder checks inline before calling
 * n1_capture_begin.  Set at the end of a run, cleared by anything that makes
 * the query id wrapped again.
 */
uint64		n1_capture_skip[N1_CAPTURE_PLAN_SLOTS];
static uint32 unit_gen = 1;		/* bumped when a unit opens: chain requests expire */
static bool callbacks_registered = false;

/* ---------- canonical value hashes (src/core/value_hash.c, shared with n1scan) ---------- */

#define hash_int(v) n1_hash_int(v)
#define hash_uuid(u) n1_hash_uuid(u)
#define hash_text_value(p, len) n1_hash_text_value((p), (len))

/* Kind of a type OID, or -1 if its values are not hashed. */
static inline int
key_kind(Oid typid)
{
	switch (typid)
	{
		case INT2OID:
			return KEY_INT2;
		case INT4OID:
			return KEY_INT4;
		case INT8OID:
			return KEY_INT8;
		case OIDOID:
			return KEY_OID;
		case UUIDOID:
			return KEY_UUID;
		case TEXTOID:
		case VARCHAROID:
			return KEY_TEXT;
		default:
			return -1;
	}
}

/* Hash of a text datum, or false when it is not a key (long, compressed, toasted). */
static inline bool
hash_text_datum(Datum v, uint64 *out)
{
	struct varlena *p = (struct varlena *) DatumGetPointer(v);

	if (VARATT_IS_EXTENDED(p) && !VARATT_IS_SHORT(p))
		return false;
	if (VARSIZE_ANY_EXHDR(p) > CAPTURE_MAX_TEXT)
		return false;
	*out = hash_text_value(VARDATA_ANY(p), VARSIZE_ANY_EXHDR(p));
	return true;
}

/* Hash of one non-null value of a key kind into *out; false if skipped. */
static inline bool
hash_datum(int kind, Datum v, uint64 *out)
{
	switch (kind)
	{
		case KEY_INT2:
			*out = hash_int(DatumGetInt16(v));
			return true;
		case KEY_INT4:
			*out = hash_int(DatumGetInt32(v));
			return true;
		case KEY_INT8:
			*out = hash_int(DatumGetInt64(v));
			return true;
		case KEY_OID:
			*out = hash_int((int64) DatumGetObjectId(v));
			return true;
		case KEY_UUID:
			*out = hash_uuid(DatumGetUUIDP(v)->data);
			return true;
		case KEY_TEXT:
			return hash_text_datum(v, out);
	}
	return false;
}

/* ---------- parameter values of a call ---------- */

/*
 * Hashes of the literal constants of a statement's text (value_hash.c);
 * len < 0: up to the terminating NUL.  At most SCAN_MAX_BYTES are read.
 */
static int
scan_literals(const char *p, int len, uint64 *out, int max)
{
	if (len < 0 || len > SCAN_MAX_BYTES)
		len = strnlen(p, SCAN_MAX_BYTES);
	return n1_scan_literals(p, len, out, max);
}

/*
 * Hashes of this call's parameter values, at most N1_CALL_VALUES of them:
 * the bound values of the extended protocol, or the statement's literal
 * constants (from where the first one starts, as query_text.c knows it).
 * arg is the QueryDesc: this is the detector's N1Statement.fill_values,
 * called only while the query still records values.
 */
int
n1_capture_param_values(void *arg, uint64_t *out)
{
	QueryDesc  *queryDesc = (QueryDesc *) arg;
	ParamListInfo params = queryDesc->params;
	PlannedStmt *plan = queryDesc->plannedstmt;
	int			n = 0;

	if (params != NULL && params->numParams > 0)
	{
		ParamExternData workspace;

		for (int i = 0; i < params->numParams && n < N1_CALL_VALUES; i++)
		{
			ParamExternData *prm;
			int			kind;

			prm = params->paramFetch != NULL ?
				params->paramFetch(params, i + 1, true, &workspace) :
				&params->params[i];
			if (prm == NULL || prm->isnull)
				continue;
			kind = key_kind(prm->ptype);
			if (kind >= 0 && hash_datum(kind, prm->value, &out[n]))
				n++;
		}
		return n;
	}
	if (queryDesc->sourceText != NULL)
	{
		const char *text = queryDesc->sourceText + Max(plan->stmt_location, 0);
		int			len = plan->stmt_len;	/* 0: up to the end of the string */
		int			start = n1_statement_constants_start(plan->queryId, text, len);

		if (start < 0)
			return 0;			/* no constants */
		n = scan_literals(text + start, len > 0 ? len - start : -1, out, N1_CALL_VALUES);
	}
	return n;
}

/* ---------- result rows ---------- */

/* The cached column plan of a query id, made from desc if missing or stale. */
static ColumnPlan *
column_plan(uint64 queryid, TupleDesc desc)
{
	ColumnPlan *p = &plans[queryid % PLAN_SLOTS];

	if (likely(p->queryid == queryid && p->natts == desc->natts))
		return p;

	n1_capture_skip[queryid % PLAN_SLOTS] = 0;
	p->queryid = queryid;
	p->natts = desc->natts;
	p->nkeys = 0;
	p->multi = false;
	p->single_runs = 0;
	p->chain_gen = 0;
	p->max_attno = 0;
	for (int i = 0; i < desc->natts && p->nkeys < CAPTURE_MAX_KEYS; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		int			kind;

		if (att->attisdropped || (kind = key_kind(att->atttypid)) < 0)
			continue;
		p->attno[p->nkeys] = (int16) i;
		p->kind[p->nkeys] = (uint8) kind;
		p->nkeys++;
		p->max_attno = (AttrNumber) (i + 1);
	}
	return p;
}

static inline void
buffer_add(CaptureBuffer *b, uint64 h)
{
	if (b->n < CAPTURE_MAX_VALUES)
		b->values[b->n++] = h;
}

/* Hashes the key columns of one row into the statement's buffer. */
static void
hash_row(CaptureReceiver *r, TupleTableSlot *slot)
{
	ColumnPlan *p = r->plan;
	CaptureBuffer *b = r->buffer;
	const Datum *values;
	const bool *isnull;

	if (p->nkeys == 0 || b->n + p->nkeys > CAPTURE_MAX_VALUES)
	{
		r->rows = CAPTURE_MAX_ROWS; /* full: stop hashing this run */
		return;
	}
	slot_getsomeattrs(slot, p->max_attno);
	values = slot->tts_values;
	isnull = slot->tts_isnull;
	for (int k = 0; k < p->nkeys; k++)
	{
		int			a = p->attno[k];
		Datum		v = values[a];

		if (isnull[a])
			continue;
		/* integers inline: the common keys */
		switch (p->kind[k])
		{
			case KEY_INT4:
				b->values[b->n++] = hash_int(DatumGetInt32(v));
				break;
			case KEY_INT8:
				b->values[b->n++] = hash_int(DatumGetInt64(v));
				break;
			case KEY_TEXT:
				if (hash_text_datum(v, &b->values[b->n]))
					b->n++;
				break;
			default:
				if (hash_datum(p->kind[k], v, &b->values[b->n]))
					b->n++;
				break;
		}
	}
}

static CaptureBuffer *buffer_for(const QueryDesc *queryDesc, bool claim);

/*
 * Row 1 of a query id not known to return several rows: copy its first
 * columns as they are (a memcpy); only the by-value ones (integers) are
 * read again, at row 2.  Text and uuid keys of this row are lost.
 */
static inline void
stash_row(CaptureReceiver *r, TupleTableSlot *slot)
{
	int			n = Min(r->plan->max_attno, CAPTURE_STASH_ATTS);

	slot_getsomeattrs(slot, n);
	memcpy(r->stash, slot->tts_values, n * sizeof(Datum));
	memcpy(r->stash_null, slot->tts_isnull, n * sizeof(bool));
	r->n_stash = n;
}

/* Row 2: hash the integer keys of the row 1 stashed. */
static void
hash_stash(CaptureReceiver *r)
{
	ColumnPlan *p = r->plan;

	for (int k = 0; k < p->nkeys; k++)
	{
		int			a = p->attno[k];
		uint64		h;

		if (a >= r->n_stash || r->stash_null[a] ||
			p->kind[k] == KEY_UUID || p->kind[k] == KEY_TEXT)
			continue;
		if (hash_datum(p->kind[k], r->stash[a], &h))
			buffer_add(r->buffer, h);
	}
}

static pg_noinline void
capture_row(CaptureReceiver *r, TupleTableSlot *slot)
{
	if (r->rows == 1)
	{
		r->plan = column_plan(r->queryid, slot->tts_tupleDescriptor);
		if (!r->eager && !r->plan->multi && r->plan->chain_gen != unit_gen)
			stash_row(r, slot);
		else if (r->buffer != NULL || (r->buffer = buffer_for(r->query_desc, true)) != NULL)
			hash_row(r, slot);
		else
			r->rows = CAPTURE_MAX_ROWS; /* no buffer: values unknown */
		return;
	}
	if (r->n_stash >= 0)
	{
		/* row 2 of a query id seen with one row so far */
		r->plan->multi = true;
		n1_capture_skip[r->queryid % PLAN_SLOTS] = 0;
		if (r->buffer == NULL && (r->buffer = buffer_for(r->query_desc, true)) == NULL)
		{
			r->rows = CAPTURE_MAX_ROWS;
			return;
		}
		hash_stash(r);
		r->n_stash = -1;
	}
	hash_row(r, slot);
}

static bool
capture_receive(TupleTableSlot *slot, DestReceiver *self)
{
	CaptureReceiver *r = (CaptureReceiver *) self;
	bool		ok = r->inner->receiveSlot(slot, r->inner);

	if (r->rows < CAPTURE_MAX_ROWS)
	{
		r->rows++;
		capture_row(r, slot);
	}
	return ok;
}

static void
capture_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
	CaptureReceiver *r = (CaptureReceiver *) self;

	r->inner->rStartup(r->inner, operation, typeinfo);
}

static void
capture_shutdown(DestReceiver *self)
{
	CaptureReceiver *r = (CaptureReceiver *) self;

	r->inner->rShutdown(r->inner);
}

static void
capture_destroy(DestReceiver *self)
{
	CaptureReceiver *r = (CaptureReceiver *) self;

	r->inner->rDestroy(r->inner);
}

/*
 * An error unwound past n1_capture_end: free what the aborted statements
 * held.  Called by recorder.c's transaction callback on abort (one callback
 * instead of two: every commit calls them twice).
 */
void
n1_capture_xact_abort(void)
{
	for (int i = 0; i < CAPTURE_DEPTH; i++)
	{
		receivers[i].inner = NULL;
		buffers[i].query_desc = NULL;
	}
	n1_capture_claimed = 0;
}

static void
capture_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						 SubTransactionId parentSubid pg_attribute_unused(),
						 void *arg pg_attribute_unused())
{
	if (event != SUBXACT_EVENT_ABORT_SUB)
		return;
	/* receivers installed in this subtransaction or a later one were abandoned */
	for (int i = 0; i < CAPTURE_DEPTH; i++)
	{
		if (receivers[i].inner != NULL && receivers[i].subid >= mySubid)
			receivers[i].inner = NULL;
		if (buffers[i].query_desc != NULL && buffers[i].subid >= mySubid)
		{
			buffers[i].query_desc = NULL;
			n1_capture_claimed--;
		}
	}
}

void
n1_capture_init(void)
{
	if (callbacks_registered)
		return;
	for (int i = 0; i < CAPTURE_DEPTH; i++)
	{
		receivers[i].pub.receiveSlot = capture_receive;
		receivers[i].pub.rStartup = capture_startup;
		receivers[i].pub.rShutdown = capture_shutdown;
		receivers[i].pub.rDestroy = capture_destroy;
	}
	RegisterSubXactCallback(capture_subxact_callback, NULL);
	callbacks_registered = true;
}

/* The buffer of queryDesc, or a free one for it; NULL if none is free. */
static CaptureBuffer *
buffer_for(const QueryDesc *queryDesc, bool claim)
{
	CaptureBuffer *free_one = NULL;

	if (likely(buffers[0].query_desc == queryDesc))
		return &buffers[0];
	for (int i = 0; i < CAPTURE_DEPTH; i++)
	{
		if (buffers[i].query_desc == queryDesc)
			return &buffers[i];
		if (buffers[i].query_desc == NULL && free_one == NULL)
			free_one = &buffers[i];
	}
	if (claim && free_one != NULL)
	{
		free_one->query_desc = queryDesc;
		free_one->subid = GetCurrentSubTransactionId();
		free_one->n = 0;
		n1_capture_claimed++;
	}
	return claim ? free_one : NULL;
}

/*
 * Before ExecutorRun of a recorded statement that returns rows: put a
 * capturing receiver in front of queryDesc->dest.  fetch: a run with a row
 * limit (cursor FETCH, PL/pgSQL FOR batch), whose rows are reported when the
 * run ends.  Returns the receiver to give back to n1_capture_end, or NULL
 * when nothing is captured.
 */
DestReceiver *
n1_capture_begin(QueryDesc *queryDesc, bool fetch)
{
	CaptureReceiver *r = NULL;
	uint64		queryid = queryDesc->plannedstmt->queryId;
	ColumnPlan *p = &plans[queryid % PLAN_SLOTS];

	if (queryDesc->operation != CMD_SELECT && !queryDesc->plannedstmt->hasReturning)
		return NULL;
	/* a point lookup: never more than 1 row in its first runs (see n1_capture_take) */
	if (p->queryid == queryid && p->single_runs >= CAPTURE_SINGLE_RUNS && !p->multi && !fetch &&
		p->chain_gen != unit_gen)
		return NULL;
	for (int i = 0; i < CAPTURE_DEPTH; i++)
	{
		if (receivers[i].inner == NULL)
		{
			r = &receivers[i];
			break;
		}
	}
	if (r == NULL)
		return NULL;

	/* a buffer is claimed only for a 2nd row (or a fetch's 1st) */
	r->pub.mydest = queryDesc->dest->mydest;
	r->inner = queryDesc->dest;
	r->subid = GetCurrentSubTransactionId();
	r->query_desc = queryDesc;
	r->buffer = n1_capture_claimed > 0 ? buffer_for(queryDesc, false) : NULL;
	r->queryid = queryid;
	r->plan = NULL;
	r->rows = 0;
	r->eager = fetch;
	r->n_stash = -1;
	queryDesc->dest = &r->pub;
	return &r->pub;
}

/* A unit opened: the detector's requests for the previous one expire. */
void
n1_capture_unit_started(void)
{
	/* 0 is "no request" (chain_gen's initial value): never a generation */
	if (unlikely(++unit_gen == 0))
		unit_gen = 1;
}

/*
 * The detector asks for the result values of this query id's next run even
 * if it returns 1 row (N1StatementResult.capture_results), in this unit.
 */
void
n1_capture_want_results(uint64 queryid)
{
	ColumnPlan *p = &plans[queryid % PLAN_SLOTS];

	if (p->queryid == queryid)
	{
		p->chain_gen = unit_gen;
		n1_capture_skip[queryid % PLAN_SLOTS] = 0;
	}
}

/* After ExecutorRun: give queryDesc its own receiver back. */
void
n1_capture_end(QueryDesc *queryDesc, DestReceiver *capture)
{
	CaptureReceiver *r = (CaptureReceiver *) capture;
	ColumnPlan *p;

	if (queryDesc->dest == capture)
		queryDesc->dest = r->inner;
	r->inner = NULL;
	p = r->plan;
	/* a run of no row made no plan: make it now, so that it counts too */
	if (p == NULL && queryDesc->tupDesc != NULL)
		p = column_plan(r->queryid, queryDesc->tupDesc);
	if (p == NULL)
		return;
	/* a request of the detector is for one run: it asks again for the next */
	p->chain_gen = 0;
	if (r->rows <= 1 && !p->multi)
		p->single_runs++;
	if (p->single_runs >= CAPTURE_SINGLE_RUNS && !p->multi && p->queryid == r->queryid)
		n1_capture_skip[r->queryid % PLAN_SLOTS] = r->queryid;
}

/*
 * The values captured for queryDesc since the last call (for a cursor: the
 * last fetches), and forget them: their number (the first
 * CAPTURE_MAX_VALUES), or N1_VALUES_UNKNOWN if the statement's rows could
 * not be captured (no free receiver or buffer).  release: the statement
 * ends, free its buffer.  *values stays valid until the next capture.
 */
int
n1_capture_take(const QueryDesc *queryDesc, const uint64 **values, bool release)
{
	CaptureBuffer *b;
	int			n;

	*values = NULL;
	/* a run of 2 rows or more, wrapped or not: wrap this query id from now on */
	if (unlikely(release && queryDesc->estate != NULL && queryDesc->estate->es_processed >= 2))
	{
		uint64		queryid = queryDesc->plannedstmt->queryId;
		ColumnPlan *p = &plans[queryid % PLAN_SLOTS];

		if (p->queryid == queryid)
		{
			p->multi = true;
			n1_capture_skip[queryid % PLAN_SLOTS] = 0;
		}
	}
	/* none: no row 2 came (nor a row 1 the detector asked for), or no buffer was free */
	if (likely(n1_capture_claimed == 0) || (b = buffer_for(queryDesc, false)) == NULL)
		return N1_VALUES_UNKNOWN;
	*values = b->values;
	n = b->n;
	b->n = 0;
	if (release)
	{
		b->query_desc = NULL;
		n1_capture_claimed--;
	}
	return n;
}
