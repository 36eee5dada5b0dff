/*
 * query_comment.c (server)
 *		Where the extension reads request tags from statements' comments
 *		(the parser itself is src/core/query_comment.c, shared with n1scan):
 *		the tags of the call that makes a burst, and the trace id that
 *		marks request boundaries.
 *
 * Must never: be called for every statement except through
 * n1_statement_trace_hash, which costs a few instructions for a statement
 * without a leading or trailing comment; allocate; raise an error.
 */
#include "postgres.h"

#include "executor/execdesc.h"

#include "n1detect.h"

/* Tags of the statement that made a burst (zeroed when it has none). */
void
n1_burst_tags(QueryDesc *queryDesc, N1QueryTags *tags)
{
	const char *text = queryDesc->sourceText;

	if (text == NULL)
		memset(tags, 0, sizeof(*tags));
	else
		(void) n1_query_tags(text, strlen(text), tags);
}

/*
 * Hash of the trace id (traceparent, or a request id) of a statement's
 * comment, or 0: compared with the open unit's to find request boundaries.
 */
uint64
n1_statement_trace_hash(QueryDesc *queryDesc)
{
	const char *text = queryDesc->sourceText;

	if (text == NULL)
		return 0;
	return n1_query_trace_hash(text, strlen(text));
}
