/*
 * query_text.c
 *		Normalized query texts (constants replaced by $n, as
 *		pg_stat_statements shows them), made once per new query id and kept
 *		in a small backend-local cache, and the literal constants of one
 *		statement as a parameter sample.
 *
 * The cache is 4-way set-associative (N1_TEXT_CACHE_SETS sets): a query id
 * belongs to one set and evicts the least recently used of its four entries,
 * so memory stays bounded and a hit costs at most four comparisons.  Texts
 * are needed only on the slow path (a query becoming a burst); when a
 * burst's own text was evicted, the recorder falls back to the statement's
 * source text (n1_query_text_remember_source), which for the prepared
 * statements that are not parsed again carries $n parameters, not values.
 *
 * generate_normalized_query and fill_in_constant_lengths follow
 * contrib/pg_stat_statements (they are static there).
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "parser/scanner.h"
#include "utils/memutils.h"
#if PG_VERSION_NUM >= 160000
#include "nodes/queryjumble.h"
#else
#include "utils/queryjumble.h"
#endif

#include "n1detect.h"

#define N1_TEXT_CACHE_SETS 256
#define N1_TEXT_CACHE_WAYS 4

typedef struct CachedText
{
	uint64		queryid;
	uint64		last_used;
	int			constants_offset;	/* first constant, from the statement start; -1: none */
	char	   *text;
} CachedText;

static CachedText text_cache[N1_TEXT_CACHE_SETS][N1_TEXT_CACHE_WAYS];
static uint64 text_cache_clock = 0;
/* the entry found last: repeated statements (the N of an N+1) hit it at once */
static CachedText *last_found = NULL;
static MemoryContext text_context = NULL;

/* The entry of queryid, or NULL. */
static inline CachedText *
cache_find(uint64 queryid)
{
	CachedText *set;

	if (likely(last_found != NULL && last_found->queryid == queryid))
		return last_found;
	set = text_cache[queryid % N1_TEXT_CACHE_SETS];
	for (int i = 0; i < N1_TEXT_CACHE_WAYS; i++)
	{
		if (set[i].queryid == queryid && set[i].text != NULL)
		{
			last_found = &set[i];
			return last_found;
		}
	}
	return NULL;
}

/* Stores text (allocated in text_context) for queryid, evicting the LRU entry of its set. */
static void
cache_store(uint64 queryid, char *text, int constants_offset)
{
	CachedText *set = text_cache[queryid % N1_TEXT_CACHE_SETS];
	CachedText *victim = &set[0];

	for (int i = 1; i < N1_TEXT_CACHE_WAYS; i++)
		if (set[i].last_used < victim->last_used)
			victim = &set[i];
	if (victim->text)
		pfree(victim->text);
	victim->queryid = queryid;
	victim->text = text;
	victim->constants_offset = constants_offset;
	victim->last_used = ++text_cache_clock;
}

static MemoryContext
cache_context(void)
{
	if (text_context == NULL)
		text_context = AllocSetContextCreate(TopMemoryContext,
											 "n1detect query texts",
											 ALLOCSET_SMALL_SIZES);
	return text_context;
}

static void
clip_text(char *text)
{
	size_t		len = strlen(text);

	if (len >= N1_QUERY_TEXT_LEN)
		text[pg_mbcliplen(text, len, N1_QUERY_TEXT_LEN - 1)] = '\0';
}

/*
 * Token numbers of the core scanner, learnt from the scanner itself:
 * parser/gramparse.h (which defines them) is not installed from 16 on.
 */
static struct
{
	bool		known;
	int			cursor,
				for_,
				iconst,
				fconst,
				sconst,
				bconst,
				xconst,
				usconst;
} tokens;

static int
first_token(const char *s)
{
	core_yyscan_t yyscanner;
	core_yy_extra_type yyextra;
	core_YYSTYPE yylval;
	YYLTYPE		yylloc;
	int			tok;

	yyscanner = scanner_init(s, &yyextra, &ScanKeywords, ScanKeywordTokens);
	/* U&'...' is an error otherwise, whatever the session's setting */
	yyextra.standard_conforming_strings = true;
	tok = core_yylex(&yylval, &yylloc, yyscanner);
	scanner_finish(yyscanner);
	return tok;
}

static void
learn_tokens(void)
{
	if (tokens.known)
		return;
	tokens.cursor = first_token("cursor");
	tokens.for_ = first_token("for");
	tokens.iconst = first_token("1");
	tokens.fconst = first_token("1.5");
	tokens.sconst = first_token("'s'");
	tokens.bconst = first_token("b'1'");
	tokens.xconst = first_token("x'1'");
	tokens.usconst = first_token("U&'s'");
	tokens.known = true;
}

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
#if PG_VERSION_NUM >= 180000
		if (locs[i].squashed)
			continue;			/* a list of constants: the jumble gave its length */
#endif

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
#if PG_VERSION_NUM >= 180000
	buflen += jstate->clocations_count * (int) strlen(" /*, ... */");
#endif
	norm = palloc(buflen + 1);

	for (int i = 0; i < jstate->clocations_count; i++)
	{
		int			off = jstate->clocations[i].location - query_loc;
		int			tok_len = jstate->clocations[i].length;
		int			len_to_write;

#if PG_VERSION_NUM >= 180000
		/* $n parameters keep their text unless lists were squashed (as pg_stat_statements) */
		if (jstate->clocations[i].extern_param && !jstate->has_squashed_lists)
			continue;
#endif
		if (tok_len < 0 || off < 0)
			continue;
		len_to_write = off - last_off - last_tok_len;
		if (len_to_write < 0 || off + tok_len > query_len)
			continue;
		memcpy(norm + n_quer_loc, query + quer_loc, len_to_write);
		n_quer_loc += len_to_write;
		n_quer_loc += sprintf(norm + n_quer_loc, "$%d",
							  replaced + 1 + jstate->highest_extern_param_id);
#if PG_VERSION_NUM >= 180000
		/* a squashed list of constants: its first $n and a marker, as pg_stat_statements shows it */
		if (jstate->clocations[i].squashed)
			n_quer_loc += sprintf(norm + n_quer_loc, " /*, ... */");
#endif
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
 * is seen (a cache hit costs one comparison).  query/query_loc/query_len
 * delimit the statement's text (the source string may hold several);
 * execution_loc is where the executed plan says the statement starts
 * (PlannedStmt.stmt_location), from which constants offsets are counted.
 */
static pg_noinline void
remember_new(uint64 queryid, const char *query, int query_loc,
			 int query_len, int execution_loc, JumbleState *jstate)
{
	const char *stmt;
	char	   *norm;
	int			constants_offset = -1;
	MemoryContext old;

	if (query == NULL)
		return;

	/* where the parameters of the simple protocol start (see n1_query_constants_offset) */
	if (jstate && jstate->clocations_count > 0)
	{
		int			first = -1;

		for (int i = 0; i < jstate->clocations_count; i++)
		{
#if PG_VERSION_NUM >= 180000
			/* a $n parameter (recorded from 18 on) is no literal constant */
			if (jstate->clocations[i].extern_param)
				continue;
#endif
			if (first < 0 || jstate->clocations[i].location < first)
				first = jstate->clocations[i].location;
		}
		if (first >= 0)
			constants_offset = Max(first - Max(execution_loc, 0), 0);
	}

	stmt = CleanQuerytext(query, &query_loc, &query_len);
	old = MemoryContextSwitchTo(cache_context());
	if (jstate && jstate->clocations_count > 0)
		norm = generate_normalized_query(jstate, stmt, query_loc, query_len);
	else
		norm = pnstrdup(stmt, query_len);
	clip_text(norm);
	MemoryContextSwitchTo(old);
	cache_store(queryid, norm, constants_offset);
}

void
n1_query_text_remember(uint64 queryid, const char *query, int query_loc,
					   int query_len, int execution_loc, JumbleState *jstate)
{
	CachedText *hit = cache_find(queryid);

	if (likely(hit != NULL))
		hit->last_used = ++text_cache_clock;
	else
		remember_new(queryid, query, query_loc, query_len, execution_loc, jstate);
}

/*
 * Where the query of "DECLARE name ... CURSOR [WITH[OUT] HOLD] FOR query"
 * starts in query (an offset like loc), or -1.  So a cursor's text is its
 * SELECT, as when that SELECT runs on its own, under the same query id.
 */
int
n1_cursor_query_start(const char *query, int loc, int len)
{
	core_yyscan_t yyscanner;
	core_yy_extra_type yyextra;
	core_YYSTYPE yylval;
	YYLTYPE		yylloc;
	char	   *stmt;
	int			tok;
	bool		seen_cursor = false;
	bool		seen_for = false;
	int			start = -1;

	if (query == NULL)
		return -1;
	loc = Max(loc, 0);
	if (len <= 0)
		len = strlen(query + loc);
	stmt = pnstrdup(query + loc, len);
	learn_tokens();
	yyscanner = scanner_init(stmt, &yyextra, &ScanKeywords, ScanKeywordTokens);
	while ((tok = core_yylex(&yylval, &yylloc, yyscanner)) != 0)
	{
		if (seen_for)
		{
			start = loc + yylloc;
			break;
		}
		if (tok == tokens.cursor)
			seen_cursor = true;
		else if (tok == tokens.for_ && seen_cursor)
			seen_for = true;
	}
	scanner_finish(yyscanner);
	pfree(stmt);
	return start;
}

/*
 * Where the literal constants of a statement of this query id start,
 * counted from the statement's first byte: -1 when it has none, -2 when
 * unknown (not in the cache).  Every statement of one query id has the same
 * text up to its first constant, so hashing the text from there on hashes
 * the values the simple protocol (or a prepared statement's literals)
 * carries, whatever their lengths.
 */
int
n1_query_constants_offset(uint64 queryid)
{
	CachedText *hit = cache_find(queryid);

	return hit ? hit->constants_offset : -2;
}

/*
 * Remembers a statement's source text for queryid unless a (normalized) text
 * is already known.  Slow path: used when a burst's text was evicted.
 */
void
n1_query_text_remember_source(uint64 queryid, const char *query, int query_loc,
							  int query_len)
{
	const char *stmt;
	char	   *text;

	if (query == NULL || cache_find(queryid) != NULL)
		return;
	stmt = CleanQuerytext(query, &query_loc, &query_len);
	text = MemoryContextAlloc(cache_context(), query_len + 1);
	memcpy(text, stmt, query_len);
	text[query_len] = '\0';
	clip_text(text);
	cache_store(queryid, text, 0);
}

/* The remembered text of queryid, or NULL. */
const char *
n1_query_text_lookup(uint64 queryid)
{
	CachedText *hit;

	if (queryid == 0)
		return NULL;
	hit = cache_find(queryid);
	return hit ? hit->text : NULL;
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
	learn_tokens();

	yyscanner = scanner_init(stmt, &yyextra, &ScanKeywords, ScanKeywordTokens);
	yyextra.escape_string_warning = false;
	while ((tok = core_yylex(&yylval, &yylloc, yyscanner)) != 0)
	{
		if (tok == tokens.iconst || tok == tokens.fconst || tok == tokens.sconst ||
			tok == tokens.bconst || tok == tokens.xconst || tok == tokens.usconst)
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
