/*
 * query_text.c
 *		Normalized query texts (constants replaced by $n, as
 *		pg_stat_statements shows them), made once per new query id and kept
 *		in a small backend-local cache, and the literal constants of one
 *		statement as a parameter sample.
 *
 * The cache is direct-mapped: a query id owns one of N1_TEXT_CACHE_SLOTS
 * slots and a colliding id replaces it, so memory stays bounded and a hit
 * costs one comparison.  Texts are needed only on the slow path (a query
 * becoming a burst); a text lost to a collision shows as NULL until the query
 * is parsed again.
 *
 * generate_normalized_query and fill_in_constant_lengths follow
 * contrib/pg_stat_statements (they are static there).
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "parser/scanner.h"
#include "parser/gramparse.h"	/* token numbers: ICONST, SCONST, ... */
#include "utils/memutils.h"
#if PG_VERSION_NUM >= 160000
#include "nodes/queryjumble.h"
#else
#include "utils/queryjumble.h"
#endif

#include "n1detect.h"

#define N1_TEXT_CACHE_SLOTS 512

typedef struct CachedText
{
	uint64		queryid;
	char	   *text;
} CachedText;

static CachedText text_cache[N1_TEXT_CACHE_SLOTS];
static MemoryContext text_context = NULL;

static int
comp_location(const void *a, const void *b)
{
	int			l = ((const LocationLen *) a)->location;
	int			r = ((const LocationLen *) b)->location;

	return (l > r) - (l < r);
}

/* Fills in the lengths of the constants of jstate (see pg_stat_statements). */
static void
fill_in_constant_lengths(JumbleState *jstate, const char *query, int query_loc)
{
	LocationLen *locs;
	core_yyscan_t yyscanner;
	core_yy_extra_type yyextra;
	core_YYSTYPE yylval;
	YYLTYPE		yylloc;
	int			last_loc = -1;

	if (jstate->clocations_count > 1)
		qsort(jstate->clocations, jstate->clocations_count,
			  sizeof(LocationLen), comp_location);
	locs = jstate->clocations;

	yyscanner = scanner_init(query, &yyextra, &ScanKeywords, ScanKeywordTokens);
	yyextra.escape_string_warning = false;

	for (int i = 0; i < jstate->clocations_count; i++)
	{
		int			loc = locs[i].location - query_loc;
		int			tok;

		if (loc < 0 || loc <= last_loc)
			continue;			/* duplicate or outside this statement */

		for (;;)
		{
			tok = core_yylex(&yylval, &yylloc, yyscanner);
			if (tok == 0)
				break;
			if (yylloc >= loc)
			{
				/* a negative constant starts at its '-': take both tokens */
				if (query[loc] == '-')
				{
					tok = core_yylex(&yylval, &yylloc, yyscanner);
					if (tok == 0)
						break;
				}
				locs[i].length = strlen(yyextra.scanbuf + loc);
				break;
			}
		}
		if (tok == 0)
			break;
		last_loc = loc;
	}
	scanner_finish(yyscanner);
}

/* Returns the statement with its constants replaced by $n, palloc'd. */
static char *
generate_normalized_query(JumbleState *jstate, const char *query,
						  int query_loc, int query_len)
{
	char	   *norm;
	int			buflen;
	int			quer_loc = 0;
	int			n_quer_loc = 0;
	int			last_off = 0;
	int			last_tok_len = 0;
	int			replaced = 0;

	fill_in_constant_lengths(jstate, query, query_loc);

	buflen = query_len + jstate->clocations_count * 10;
	norm = palloc(buflen + 1);

	for (int i = 0; i < jstate->clocations_count; i++)
	{
		int			off = jstate->clocations[i].location - query_loc;
		int			tok_len = jstate->clocations[i].length;
		int			len_to_write;

		if (tok_len < 0 || off < 0)
			continue;
		len_to_write = off - last_off - last_tok_len;
		if (len_to_write < 0 || off + tok_len > query_len)
			continue;
		memcpy(norm + n_quer_loc, query + quer_loc, len_to_write);
		n_quer_loc += len_to_write;
		n_quer_loc += sprintf(norm + n_quer_loc, "$%d",
							  replaced + 1 + jstate->highest_extern_param_id);
		replaced++;
		quer_loc = off + tok_len;
		last_off = off;
		last_tok_len = tok_len;
	}
	memcpy(norm + n_quer_loc, query + quer_loc, query_len - quer_loc);
	n_quer_loc += query_len - quer_loc;
	norm[n_quer_loc] = '\0';
	return norm;
}

/*
 * Remembers the normalized text of a statement the first time its query id
 * is seen (a cache hit costs one comparison).  query/query_loc/query_len are
 * those of the parsed Query (the source string may hold several statements).
 */
void
n1_query_text_remember(uint64 queryid, const char *query, int query_loc,
					   int query_len, JumbleState *jstate)
{
	CachedText *slot = &text_cache[queryid % N1_TEXT_CACHE_SLOTS];
	const char *stmt;
	char	   *norm;
	MemoryContext old;

	if (likely(slot->queryid == queryid && slot->text != NULL))
		return;
	if (query == NULL)
		return;

	if (text_context == NULL)
		text_context = AllocSetContextCreate(TopMemoryContext,
											 "n1detect query texts",
											 ALLOCSET_SMALL_SIZES);

	stmt = CleanQuerytext(query, &query_loc, &query_len);

	old = MemoryContextSwitchTo(text_context);
	if (jstate && jstate->clocations_count > 0)
		norm = generate_normalized_query(jstate, stmt, query_loc, query_len);
	else
		norm = pnstrdup(stmt, query_len);
	if (strlen(norm) >= N1_QUERY_TEXT_LEN)
		norm[pg_mbcliplen(norm, strlen(norm), N1_QUERY_TEXT_LEN - 1)] = '\0';
	MemoryContextSwitchTo(old);

	if (slot->text)
		pfree(slot->text);
	slot->queryid = queryid;
	slot->text = norm;
}

/* The remembered normalized text of queryid, or NULL. */
const char *
n1_query_text_lookup(uint64 queryid)
{
	CachedText *slot = &text_cache[queryid % N1_TEXT_CACHE_SLOTS];

	if (queryid != 0 && slot->queryid == queryid)
		return slot->text;
	return NULL;
}

/*
 * Writes the literal constants of one statement (len bytes of sql from loc)
 * into out as "5, 'abc', 2.5", for a parameter sample of the simple query
 * protocol.  Slow path only.
 */
void
n1_query_literals(const char *sql, int loc, int len, char *out, int outlen)
{
	core_yyscan_t yyscanner;
	core_yy_extra_type yyextra;
	core_YYSTYPE yylval;
	YYLTYPE		yylloc;
	char	   *stmt;
	StringInfoData buf;
	int			tok;
	int			n = 0;

	if (loc < 0)
		loc = 0;
	if (len <= 0)
		len = strlen(sql + loc);
	stmt = pnstrdup(sql + loc, len);
	initStringInfo(&buf);

	yyscanner = scanner_init(stmt, &yyextra, &ScanKeywords, ScanKeywordTokens);
	yyextra.escape_string_warning = false;
	while ((tok = core_yylex(&yylval, &yylloc, yyscanner)) != 0)
	{
		if (tok == ICONST || tok == FCONST || tok == SCONST ||
			tok == BCONST || tok == XCONST || tok == USCONST)
		{
			if (n++ > 0)
				appendStringInfoString(&buf, ", ");
			/* flex leaves a NUL after the current token in scanbuf */
			appendStringInfoString(&buf, yyextra.scanbuf + yylloc);
			if (buf.len >= outlen)
				break;
		}
	}
	scanner_finish(yyscanner);

	strlcpy(out, buf.data, outlen);
	pfree(buf.data);
	pfree(stmt);
}
