/*
 * query_text.c
 *		Normalized query texts (constants replaced by $n, as
 *		pg_stat_statements shows them), made once per new query id and kept
 *		in a small backend-local cache, and the literal constants of one
 *		statement as a parameter sample.
 *
 * Memory is bounded by bytes, whatever the statements: the cache is a fixed
 * store of N1_TEXT_CACHE_ENTRIES texts of at most N1_QUERY_TEXT_LEN bytes
 * each, allocated once in n1detect's own context (n1_memory_context), and
 * only the kept prefix of a text is ever copied into it.  Scanning a
 * statement (normalizing it, finding a cursor's query, listing its literals)
 * allocates in a short-lived context deleted before returning, so nothing of
 * a statement's size outlives the call, and nothing here keeps a pointer into
 * a statement's own memory.  Must never: allocate in a long-lived context
 * in proportion to a statement, or need parser/gramparse.h (not installed
 * from PostgreSQL 16 on): tokens are told apart by their text.
 *
 * The cache is 4-way set-associative (N1_TEXT_CACHE_SETS sets): a query id
 * belongs to one set and evicts the least recently used of its four entries,
 * so a hit costs at most four comparisons.  Texts are needed only on the
 * slow path (a query becoming a burst); when a burst's own text was evicted,
 * the recorder falls back to the statement's source text
 * (n1_query_text_remember_source), which for the prepared statements that
 * are not parsed again carries $n parameters, not values.
 *
 * The normalization follows contrib/pg_stat_statements'
 * generate_normalized_query and fill_in_constant_lengths (static there),
 * merged into one pass that stops once the kept prefix is written.
 */
#include "postgres.h"

#include <ctype.h>

#include "common/hashfn.h"
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
	uint64		queryid;		/* 0: empty */
	uint64		canonical_id;	/* first query id seen with the same normalized text */
	uint64		last_used;
	int			constants_offset;	/* first constant, from the statement start; -1: none */
	/* its text: the store's slot of the same index (entry_text), 32 bytes an entry */
} CachedText;

/* The whole cache: allocated once, never grown (1 MB of texts, 32 KB of index). */
typedef struct TextCache
{
	uint64		clock;
	CachedText	sets[N1_TEXT_CACHE_SETS][N1_TEXT_CACHE_WAYS];
	char		store[N1_TEXT_CACHE_SETS * N1_TEXT_CACHE_WAYS][N1_QUERY_TEXT_LEN];
} TextCache;

static TextCache *cache = NULL;

/*
 * Normalized text hash -> the first query id seen with that text, so that
 * one statement whose parameter types vary per value (psycopg 3 sends int2,
 * int4 or int8 by magnitude: several query ids) is one query for the
 * detector.  Direct-mapped, 16 KB; an overwritten entry only splits a group
 * again.
 */
#define N1_CANON_SLOTS 1024
typedef struct CanonEntry
{
	uint64		text_hash;
	uint64		queryid;
} CanonEntry;
static CanonEntry canon[N1_CANON_SLOTS];
/* the entry found last: repeated statements (the N of an N+1) hit it at once */
static CachedText *last_found = NULL;

/*
 * The query id of the entry used last (its last_used is the newest clock),
 * or 0: remembering it again changes nothing (n1detect.h).
 */
uint64		n1_text_newest_id = 0;

/* The entry of queryid, or NULL. */
static inline CachedText *
cache_find(uint64 queryid)
{
	CachedText *set;

	if (likely(last_found != NULL && last_found->queryid == queryid))
		return last_found;
	if (unlikely(cache == NULL) || queryid == 0)
		return NULL;
	set = cache->sets[queryid % N1_TEXT_CACHE_SETS];
	for (int i = 0; i < N1_TEXT_CACHE_WAYS; i++)
	{
		if (set[i].queryid == queryid)
		{
			last_found = &set[i];
			return last_found;
		}
	}
	return NULL;
}

/*
 * The cache, allocated on first use; NULL when that allocation fails (texts
 * are then not kept: recording must not fail for them).  The store is not
 * zeroed, so its pages are touched only as texts are written.
 */
static TextCache *
cache_get(void)
{
	if (cache == NULL)
	{
		TextCache  *c = MemoryContextAllocExtended(n1_memory_context(),
												   sizeof(TextCache),
												   MCXT_ALLOC_NO_OOM);

		if (c == NULL)
			return NULL;
		c->clock = 0;
		for (int s = 0; s < N1_TEXT_CACHE_SETS; s++)
			for (int w = 0; w < N1_TEXT_CACHE_WAYS; w++)
			{
				c->sets[s][w].queryid = 0;
				c->sets[s][w].last_used = 0;
			}
		cache = c;
	}
	return cache;
}

/* The query id that stands for every query id of this normalized text. */
static uint64
canonical_for(uint64 queryid, const char *text)
{
	uint64		h = hash_bytes_extended((const unsigned char *) text, strlen(text), 0);
	CanonEntry *e;

	if (h == 0)
		h = 1;
	e = &canon[h % N1_CANON_SLOTS];
	if (e->text_hash != h)
	{
		e->text_hash = h;
		e->queryid = queryid;
	}
	return e->queryid;
}

/* The text of an entry: the store's slot with the entry's index. */
static inline char *
entry_text(const CachedText *e)
{
	return cache->store[e - &cache->sets[0][0]];
}

/*
 * Stores text (NUL-terminated, shorter than N1_QUERY_TEXT_LEN) for queryid,
 * evicting the least recently used entry of its set.  canonical_id: see
 * n1_query_canonical_id.
 */
static void
cache_store(uint64 queryid, const char *text, int constants_offset,
			uint64 canonical_id)
{
	CachedText *set;
	CachedText *victim;

	if (queryid == 0 || cache_get() == NULL)
		return;
	set = cache->sets[queryid % N1_TEXT_CACHE_SETS];
	victim = &set[0];
	for (int i = 1; i < N1_TEXT_CACHE_WAYS; i++)
		if (set[i].last_used < victim->last_used)
			victim = &set[i];
	if (victim->queryid != 0)
		n1_texts_evicted++;		/* shown in n1_info */
	victim->queryid = queryid;
	victim->canonical_id = canonical_id;
	strlcpy(entry_text(victim), text, N1_QUERY_TEXT_LEN);
	victim->constants_offset = constants_offset;
	victim->last_used = ++cache->clock;
	n1_text_newest_id = queryid;
}

/*
 * A text being written into a buffer of N1_QUERY_TEXT_LEN bytes: what does
 * not fit is dropped, and the end is cut on a character boundary.
 */
typedef struct BoundedText
{
	char	   *buf;
	int			len;
	bool		full;
} BoundedText;

static void
bounded_append(BoundedText *out, const char *src, int len)
{
	int			room = N1_QUERY_TEXT_LEN - 1 - out->len;

	if (len > room)
	{
		len = room;
		out->full = true;
	}
	memcpy(out->buf + out->len, src, len);
	out->len += len;
}

static void
bounded_finish(BoundedText *out)
{
	/* a character cut by the limit is dropped whole */
	out->len = pg_mbcliplen(out->buf, out->len, out->len);
	out->buf[out->len] = '\0';
}

static int
comp_location(const void *a, const void *b)
{
	int			l = ((const LocationLen *) a)->location;
	int			r = ((const LocationLen *) b)->location;

	return (l > r) - (l < r);
}

/*
 * Writes stmt (stmt_len bytes, NUL-terminated, which starts at stmt_loc in
 * the source string the constant locations of jstate count from) into out
 * with its constants replaced by $n, and stops once out is full: tokens are
 * read only as far as the kept prefix needs.  A constant's length is the
 * length of its token (two tokens for a negative number, which starts at its
 * '-'), as in pg_stat_statements.
 */
static void
normalize(JumbleState *jstate, const char *stmt, int stmt_loc, int stmt_len,
		  BoundedText *out)
{
	LocationLen *locs = jstate->clocations;
	int			n = jstate->clocations_count;
	core_yyscan_t yyscanner;
	core_yy_extra_type yyextra;
	core_YYSTYPE yylval;
	YYLTYPE		yylloc = -1;
	int			written_to = 0; /* bytes of stmt written out or replaced */
	int			replaced = 0;

	if (n > 1)
		qsort(locs, n, sizeof(LocationLen), comp_location);

	yyscanner = scanner_init(stmt, &yyextra, &ScanKeywords, ScanKeywordTokens);
	yyextra.escape_string_warning = false;

	for (int i = 0; i < n && !out->full; i++)
	{
		int			loc = locs[i].location - stmt_loc;
		int			tok = -1;
		int			len;
		char		param[32];
		int			param_len;
		bool		squashed = false;

		/* outside this statement, a duplicate, or inside the previous constant */
		if (loc < written_to || loc >= stmt_len)
			continue;
#if PG_VERSION_NUM >= 180000
		/* $n parameters keep their text unless lists were squashed (as pg_stat_statements) */
		if (locs[i].extern_param && !jstate->has_squashed_lists)
			continue;
		/* a squashed list of constants: the jumble gave the list's length */
		squashed = locs[i].squashed;
#endif
		if (squashed)
			len = Min(locs[i].length, stmt_len - loc);
		else
		{
			while (yylloc < loc)
			{
				tok = core_yylex(&yylval, &yylloc, yyscanner);
				if (tok == 0)
					break;
			}
			if (tok == 0)
				break;
			if (stmt[loc] == '-' && core_yylex(&yylval, &yylloc, yyscanner) == 0)
				break;
			/* flex leaves a NUL after the current token in scanbuf */
			len = strlen(yyextra.scanbuf + loc);
		}

		/* a squashed list: its first $n and a marker, as pg_stat_statements shows it */
		param_len = snprintf(param, sizeof(param), squashed ? "$%d /*, ... */" : "$%d",
							 replaced + 1 + jstate->highest_extern_param_id);
		bounded_append(out, stmt + written_to, loc - written_to);
		/* a $n that does not fit whole is left out */
		if (out->len + param_len > N1_QUERY_TEXT_LEN - 1)
			out->full = true;
		else
			bounded_append(out, param, param_len);
		replaced++;
		written_to = loc + len;
	}
	if (!out->full && written_to < stmt_len)
		bounded_append(out, stmt + written_to, stmt_len - written_to);
	scanner_finish(yyscanner);
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
	char		text[N1_QUERY_TEXT_LEN];
	BoundedText out = {text, 0, false};
	int			constants_offset = -1;

	if (query == NULL)
		return;

	stmt = CleanQuerytext(query, &query_loc, &query_len);
	if (jstate && jstate->clocations_count > 0)
	{
		int			first = -1;
		MemoryContext scan_context;
		MemoryContext old;

		/* where the parameters of the simple protocol start (see n1_query_constants_offset) */
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
		{
			/* counted after the leading comments, whose length varies by request */
			int			start = Max(execution_loc, 0);
			int			lead = first > start ?
				(int) n1_comment_skip_leading(query + start, first - start) : 0;

			constants_offset = Max(first - start - lead, 0);
		}

		/* the scanner copies the statement: free all of it before returning */
		scan_context = AllocSetContextCreate(CurrentMemoryContext,
											 "n1detect normalize",
											 ALLOCSET_DEFAULT_SIZES);
		old = MemoryContextSwitchTo(scan_context);
		normalize(jstate, pnstrdup(stmt, query_len), query_loc, query_len, &out);
		MemoryContextSwitchTo(old);
		MemoryContextDelete(scan_context);
	}
	else
		bounded_append(&out, stmt, query_len);
	bounded_finish(&out);
	cache_store(queryid, text, constants_offset, canonical_for(queryid, text));
}

void
n1_query_text_remember(uint64 queryid, const char *query, int query_loc,
					   int query_len, int execution_loc, JumbleState *jstate)
{
	CachedText *hit = cache_find(queryid);

	if (likely(hit != NULL))
	{
		hit->last_used = ++cache->clock;
		n1_text_newest_id = queryid;
	}
	else
		remember_new(queryid, query, query_loc, query_len, execution_loc, jstate);
}

/*
 * Whether the token just read (NUL-terminated in scanbuf at yylloc) is the
 * keyword or literal constant text says.  Keywords and identifiers are
 * compared by their text, as the token numbers of gramparse.h are not
 * available to extensions on every version.
 */
static inline const char *
token_text(core_yy_extra_type *yyextra, YYLTYPE yylloc)
{
	return yyextra->scanbuf + yylloc;
}

/*
 * A literal constant token: a number, a string ('...', E'...', B'...',
 * X'...', U&'...', $$...$$).  Parameters ($1) are not constants.
 */
static bool
is_constant_token(const char *t)
{
	char		c = t[0];

	if (isdigit((unsigned char) c) || (c == '.' && isdigit((unsigned char) t[1])))
		return true;
	if (c == '\'')
		return true;
	if (c == '$')
		return !isdigit((unsigned char) t[1]);
	if (strchr("eEbBxX", c) != NULL)
		return t[1] == '\'';
	if (c == 'u' || c == 'U')
		return t[1] == '&' && t[2] == '\'';
	return false;
}

/* A scanner over len bytes of query from loc, in the current memory context. */
static core_yyscan_t
scan_statement(const char *query, int loc, int len, core_yy_extra_type *yyextra)
{
	core_yyscan_t yyscanner;

	loc = Max(loc, 0);
	if (len <= 0)
		len = strlen(query + loc);
	yyscanner = scanner_init(pnstrdup(query + loc, len), yyextra,
							 &ScanKeywords, ScanKeywordTokens);
	yyextra->escape_string_warning = false;
	return yyscanner;
}

/*
 * Where the query of "DECLARE name ... CURSOR [WITH[OUT] HOLD] FOR query"
 * or of "PREPARE name [(types)] AS query" starts in query (an offset like
 * loc), or -1.  So a cursor's or prepared statement's text is its query, as
 * when that query runs on its own, under the same query id.
 */
int
n1_cursor_query_start(const char *query, int loc, int len)
{
	MemoryContext scan_context;
	MemoryContext old;
	core_yyscan_t yyscanner;
	core_yy_extra_type yyextra;
	core_YYSTYPE yylval;
	YYLTYPE		yylloc;
	bool		seen_cursor = false;
	bool		seen_for = false;
	bool		first = true;
	bool		prepare = false;
	int			depth = 0;
	int			start = -1;

	if (query == NULL)
		return -1;
	scan_context = AllocSetContextCreate(CurrentMemoryContext,
										 "n1detect scan", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(scan_context);
	yyscanner = scan_statement(query, loc, len, &yyextra);
	while (core_yylex(&yylval, &yylloc, yyscanner) != 0)
	{
		const char *t = token_text(&yyextra, yylloc);

		if (seen_for)
		{
			start = Max(loc, 0) + yylloc;
			break;
		}
		if (first)
			prepare = (pg_strcasecmp(t, "prepare") == 0);
		first = false;
		if (prepare)
		{
			/* the first AS outside the parameter types' parentheses */
			if (strcmp(t, "(") == 0)
				depth++;
			else if (strcmp(t, ")") == 0)
				depth--;
			else if (depth == 0 && pg_strcasecmp(t, "as") == 0)
				seen_for = true;
		}
		else if (pg_strcasecmp(t, "cursor") == 0)
			seen_cursor = true;
		else if (seen_cursor && pg_strcasecmp(t, "for") == 0)
			seen_for = true;
	}
	scanner_finish(yyscanner);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(scan_context);
	return start;
}

/*
 * Where the literal constants of a statement of this query id start,
 * counted from the statement's first token (after its leading white space
 * and comments: n1_comment_skip_leading): -1 when it has none, -2 when
 * unknown (not in the cache).  The statements of one query id that an
 * application sends have the same text from their first token up to their
 * first constant (their leading comments vary: a controller, a trace id),
 * so hashing the text from there on hashes the values the simple protocol
 * (or a prepared statement's literals) carries, whatever their lengths.
 */
int
n1_query_constants_offset(uint64 queryid)
{
	CachedText *hit = cache_find(queryid);

	return hit ? hit->constants_offset : -2;
}

/*
 * Where the literal constants of a statement of queryid start in text (the
 * statement: len bytes, or up to its NUL when len <= 0), as an offset into
 * it, or -1 when it has none.  Never past the statement's end: when the
 * cached offset does not fit this text (another layout of the query), or is
 * unknown, its first token.
 */
int
n1_statement_constants_start(uint64 queryid, const char *text, int len)
{
	int			offset = n1_query_constants_offset(queryid);
	size_t		lead;

	if (offset == -1)
		return -1;
	lead = n1_comment_skip_leading(text, len > 0 ? (size_t) len : SIZE_MAX);
	if (offset < 0 ||
		(len > 0 ? lead + offset > (size_t) len :
		 strnlen(text + lead, offset) < (size_t) offset))
		return (int) lead;
	return (int) lead + offset;
}

/*
 * The query id the detector knows queryid by: the first one seen with the
 * same normalized text (see canon), or queryid itself when its text is not
 * cached.  A cache hit: cheap enough for every statement.
 */
uint64
n1_query_canonical_id(uint64 queryid)
{
	CachedText *hit = cache_find(queryid);

	return hit ? hit->canonical_id : queryid;
}

/* n1_query_canonical_id and n1_query_constants_offset in one look-up. */
uint64
n1_query_cached(uint64 queryid, int *constants_offset)
{
	CachedText *hit = cache_find(queryid);

	if (hit == NULL)
	{
		*constants_offset = -2;
		return queryid;
	}
	*constants_offset = hit->constants_offset;
	return hit->canonical_id;
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
	char		text[N1_QUERY_TEXT_LEN];
	BoundedText out = {text, 0, false};

	if (query == NULL || cache_find(queryid) != NULL)
		return;
	stmt = CleanQuerytext(query, &query_loc, &query_len);
	bounded_append(&out, stmt, query_len);
	bounded_finish(&out);
	cache_store(queryid, text, 0, queryid);
}

/* The remembered text of queryid, or NULL. */
const char *
n1_query_text_lookup(uint64 queryid)
{
	CachedText *hit = cache_find(queryid);

	return hit ? entry_text(hit) : NULL;
}

/*
 * Writes the literal constants of one statement (len bytes of sql from loc)
 * into out as "5, 'abc', 2.5", cut to outlen - 1 bytes on a character
 * boundary, for a parameter sample of the simple query protocol.  Reads
 * tokens only until out is full.  Slow path only.
 */
void
n1_query_literals(const char *sql, int loc, int len, char *out, int outlen)
{
	MemoryContext scan_context;
	MemoryContext old;
	core_yyscan_t yyscanner;
	core_yy_extra_type yyextra;
	core_YYSTYPE yylval;
	YYLTYPE		yylloc;
	int			n = 0;
	int			used = 0;

	Assert(outlen > 0);
	scan_context = AllocSetContextCreate(CurrentMemoryContext,
										 "n1detect scan", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(scan_context);
	yyscanner = scan_statement(sql, loc, len, &yyextra);
	while (used < outlen - 1 && core_yylex(&yylval, &yylloc, yyscanner) != 0)
	{
		const char *t = token_text(&yyextra, yylloc);

		if (!is_constant_token(t))
			continue;
		if (n++ > 0)
			used += strlcpy(out + used, ", ", outlen - used);
		if (used < outlen - 1)
			used += strlcpy(out + used, t, outlen - used);
	}
	scanner_finish(yyscanner);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(scan_context);

	used = Min(used, outlen - 1);
	/* a character cut by the limit is dropped whole */
	out[pg_mbcliplen(out, used, used)] = '\0';
}
