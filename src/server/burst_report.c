/*
 * burst_report.c
 *		What a burst tells people: the parameter values of a few of its calls
 *		(sample_params) and the message of n1detect.action.  Slow path only:
 *		these read the catalog (type output functions) and allocate.
 */
#include "postgres.h"

#include "executor/execdesc.h"
#include "lib/stringinfo.h"
#include "nodes/params.h"
#include "parser/parse_coerce.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "n1detect.h"

/* SQLSTATEs of n1detect.action = error (class N1, implementation-defined). */
#define ERRCODE_N1_N_PLUS_ONE	MAKE_SQLSTATE('N','1','0','0','1')
#define ERRCODE_N1_DUPLICATE	MAKE_SQLSTATE('N','1','0','0','2')
#define ERRCODE_N1_LOOP			MAKE_SQLSTATE('N','1','0','0','3')

/* Records this call's parameter values as text, as one sample of the burst. */
void
n1_capture_sample(QueryDesc *queryDesc, N1Samples *samples)
{
	char	   *out;
	ParamListInfo params = queryDesc->params;

	if (samples->count >= N1_BURST_SAMPLES)
		return;
	out = samples->values[samples->count];

	if (params && params->numParams > 0)
	{
		StringInfoData buf;
		ParamExternData workspace;

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
			{
				Oid			typoutput;
				bool		typisvarlena;
				char	   *value;

				getTypeOutputInfo(prm->ptype, &typoutput, &typisvarlena);
				value = OidOutputFunctionCall(typoutput, prm->value);
				if (TypeCategory(prm->ptype) == TYPCATEGORY_NUMERIC)
					appendStringInfoString(&buf, value);
				else
					appendStringInfoString(&buf, quote_literal_cstr(value));
			}
		}
		strlcpy(out, buf.data, N1_SAMPLE_LEN);
		pfree(buf.data);
	}
	else if (queryDesc->sourceText)
		n1_query_literals(queryDesc->sourceText,
						  queryDesc->plannedstmt->stmt_location,
						  queryDesc->plannedstmt->stmt_len,
						  out, N1_SAMPLE_LEN);
	else
		out[0] = '\0';
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

