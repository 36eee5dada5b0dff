/*
 * burst_report.c
 *		What a burst tells people: the parameter values of a few of its calls
 *		(sample_params) and the message of n1detect.action.  Slow path only:
 *		these read the catalog (type output functions) and allocate, in a
 *		context deleted before returning.  Must never convert a whole
 *		parameter value (only a bounded prefix of it: values can be hundreds
 *		of megabytes) nor keep anything beyond the fixed-size sample.
 */
#include "postgres.h"

#include "access/detoast.h"
#include "catalog/pg_type.h"
#include "executor/execdesc.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "nodes/params.h"
#include "parser/parse_coerce.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "n1detect.h"

/* SQLSTATEs of n1detect.action = error (class N1, implementation-defined). */
#define ERRCODE_N1_N_PLUS_ONE	MAKE_SQLSTATE('N','1','0','0','1')
#define ERRCODE_N1_DUPLICATE	MAKE_SQLSTATE('N','1','0','0','2')
#define ERRCODE_N1_LOOP			MAKE_SQLSTATE('N','1','0','0','3')

/*
 * Values of other types than text and bytea whose size exceeds this are
 * shown as a placeholder ("<integer[], 4000020 bytes>"), as a prefix of them
 * is no value of their type to convert.
 */
#define N1_SAMPLE_VALUE_MAX 1024

/*
 * Appends one parameter value to buf as its sample text, converting at most
 * a bounded prefix of it: never the whole of a large value (a 300 MB bytea
 * would take 1.2 GB as quoted text).
 */
static void
append_param(StringInfo buf, Oid type, Datum value)
{
	/* bytes of a text or bytea that can still show: each gives a char or more */
	int			room = N1_SAMPLE_LEN - buf->len + 8;
	Oid			base = getBaseType(type);
	int16		typlen;
	bool		typbyval;
	Oid			typoutput;
	bool		typisvarlena;
	char	   *text;

	get_typlenbyval(type, &typlen, &typbyval);
	getTypeOutputInfo(type, &typoutput, &typisvarlena);
	if (typlen == -1)
	{
		Size		size = toast_raw_datum_size(value) - VARHDRSZ;

		if (base == TEXTOID || base == VARCHAROID || base == BPCHAROID ||
			base == BYTEAOID)
		{
			/* a prefix of these is a value of the type: detoast only that */
			if (size > (Size) room)
				value = PointerGetDatum(detoast_attr_slice((struct varlena *) DatumGetPointer(value),
														   0, room));
		}
		else if (size > N1_SAMPLE_VALUE_MAX)
		{
			appendStringInfo(buf, "<%s, %zu bytes>", format_type_be(type), size);
			return;
		}
	}
	else if (typlen == -2)
		value = CStringGetDatum(pnstrdup(DatumGetCString(value), room));

	text = OidOutputFunctionCall(typoutput, value);
	if (TypeCategory(base) == TYPCATEGORY_NUMERIC)
		appendStringInfoString(buf, text);
	else
		appendStringInfoString(buf, quote_literal_cstr(text));
}

/*
 * Records this call's parameter values as text, as one sample of the burst:
 * at most N1_SAMPLE_LEN - 1 bytes, cut on a character boundary.  Whatever it
 * allocates is freed before returning, and its work does not grow with the
 * size of the values (see append_param).
 */
void
n1_capture_sample(QueryDesc *queryDesc, N1Samples *samples)
{
	char	   *out;
	ParamListInfo params = queryDesc->params;
	MemoryContext sample_context;
	MemoryContext old;

	if (samples->count >= N1_BURST_SAMPLES)
		return;
	out = samples->values[samples->count];
	sample_context = AllocSetContextCreate(CurrentMemoryContext,
										   "n1detect sample",
										   ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(sample_context);

	if (params && params->numParams > 0)
	{
		StringInfoData buf;
		ParamExternData workspace;
		int			len;

		initStringInfo(&buf);
		for (int i = 0; i < params->numParams && buf.len < N1_SAMPLE_LEN; i++)
		{
			ParamExternData *prm;

			prm = params->paramFetch ?
				params->paramFetch(params, i + 1, true, &workspace) :
				&params->params[i];
			if (i > 0)
				appendStringInfoString(&buf, ", ");
			if (prm == NULL || prm->isnull || !OidIsValid(prm->ptype))
				appendStringInfoString(&buf, "NULL");
			else
				append_param(&buf, prm->ptype, prm->value);
		}
		/* a character cut by the limit is dropped whole */
		len = pg_mbcliplen(buf.data, buf.len, N1_SAMPLE_LEN - 1);
		memcpy(out, buf.data, len);
		out[len] = '\0';
	}
	else if (queryDesc->sourceText)
	{
		/* from the first constant on: the scanner reads no more than it must */
		PlannedStmt *plan = queryDesc->plannedstmt;
		int			loc = Max(plan->stmt_location, 0);
		int			start = n1_statement_constants_start(plan->queryId,
														 queryDesc->sourceText + loc,
														 plan->stmt_len);

		if (start < 0 || (plan->stmt_len > 0 && start >= plan->stmt_len))
			out[0] = '\0';		/* no constants */
		else
			n1_query_literals(queryDesc->sourceText, loc + start,
							  plan->stmt_len > 0 ? plan->stmt_len - start : 0,
							  out, N1_SAMPLE_LEN);
	}
	else
		out[0] = '\0';

	MemoryContextSwitchTo(old);
	MemoryContextDelete(sample_context);
	samples->count++;
}

static int
action_errcode(N1Kind kind)
{
	switch (kind)
	{
		case N1_KIND_N_PLUS_ONE:
			return ERRCODE_N1_N_PLUS_ONE;
		case N1_KIND_DUPLICATE:
			return ERRCODE_N1_DUPLICATE;
		default:
			return ERRCODE_N1_LOOP;
	}
}

/* Inside ereport: a CONTEXT line naming the request and code line, when known. */
static int
report_source(const N1QueryTags *tags)
{
	if (tags == NULL || (tags->source[0] == '\0' && tags->code_line[0] == '\0'))
		return 0;
	if (tags->code_line[0] == '\0')
		return errcontext_msg("request %s", tags->source);
	if (tags->source[0] == '\0')
		return errcontext_msg("code line %s", tags->code_line);
	return errcontext_msg("request %s, code line %s", tags->source, tags->code_line);
}

/*
 * Reports a burst at elevel (LOG, WARNING or ERROR), naming the query, its
 * parent and the count, with a hint on how to fix it, and the request and
 * code line of the statement's comment when it has one.  Does not return
 * for ERROR.
 */
void
n1_report_burst(const N1Burst *burst, const N1QueryTags *tags, int elevel)
{
	const char *query = n1_query_text_lookup(burst->query_id);
	const char *parent = n1_query_text_lookup(burst->parent_query_id);

	if (query == NULL)
		query = "<query text unavailable>";

	switch (burst->kind)
	{
		case N1_KIND_N_PLUS_ONE:
			ereport(elevel,
					(errcode(action_errcode(burst->kind)),
					 errmsg("n1detect: N+1 query, %lld calls of one query driven by the rows of another",
							(long long) burst->calls),
					 errdetail("Query \"%s\" ran %lld times with %lld different parameter sets, once per row of parent query \"%s\" (%llu rows).",
							   query, (long long) burst->calls,
							   (long long) burst->distinct_params,
							   parent ? parent : "<query text unavailable>",
							   (unsigned long long) burst->parent_rows),
					 errhint("Load the related rows with one query: batch the keys with \"= ANY($1)\", or use eager loading (select_related/prefetch_related, includes, selectinload/joinedload)."),
					 report_source(tags)));
			break;
		case N1_KIND_DUPLICATE:
			ereport(elevel,
					(errcode(action_errcode(burst->kind)),
					 errmsg("n1detect: duplicate query, %lld calls with the same parameters",
							(long long) burst->calls),
					 errdetail("Query \"%s\" ran %lld times with identical parameters in one unit of work.",
							   query, (long long) burst->calls),
					 errhint("Run it once and reuse the result."),
					 report_source(tags)));
			break;
		default:
			ereport(elevel,
					(errcode(action_errcode(burst->kind)),
					 errmsg("n1detect: query loop, %lld calls of one query with different parameters",
							(long long) burst->calls),
					 errdetail("Query \"%s\" ran %lld times with %lld different parameter sets in one unit of work.",
							   query, (long long) burst->calls,
							   (long long) burst->distinct_params),
					 errhint("Fetch all the rows with one query, for example with \"= ANY($1)\"."),
					 report_source(tags)));
			break;
	}
}

