/*
 * normalize.c
 *		Statement texts of a log -> query keys, with libpg_query (PostgreSQL
 *		15's parser as a library).
 *
 *		A lexical pass over each text removes constants, comments and
 *		spacing (and notes the shape: an IN (...) list of values, an
 *		ANY/SOME/ALL (...) array, the statement's class); its hash indexes
 *		a bounded, direct-mapped cache, so each distinct text shape is
 *		given to libpg_query once, whatever its constants.  The query key
 *		is libpg_query's fingerprint mixed with the shape: the fingerprint
 *		ignores IN-list length and merges "= $1", "IN (...)" and
 *		"= ANY($1)", which must stay apart (an N+1 and its fix).  A text libpg_query rejects (newer syntax) is keyed by
 *		its lexical form and counted.  Each new key gets its normalized text
 *		(pg_query_normalize) once; the key table is bounded.
 *
 *		Parameter values hash with the server's canonical rule
 *		(src/core/value_hash.c): the literal constants of the text, or the
 *		bound values of a "parameters:" DETAIL line ("Parameters:" from 18).
 *
 * Must never: call pg_query_exit() (only the program's end may), keep a
 * libpg_query result unfreed, grow without bound.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <pg_query.h>

#include "n1scan.h"
#include "value_hash.h"

#define SHAPE_IN_LIST	1
#define SHAPE_ANY		2
#define MAX_TEXT_KEPT	8192	/* bytes of a normalized text kept for the report */

typedef struct CacheEntry
{
	uint64_t	lexhash;
	uint64_t	key;
	uint32_t	lexlen;
	uint8_t		used;
} CacheEntry;

typedef struct QueryEntry
{
	uint64_t	key;			/* 0 = free */
	char	   *text;
	char		fingerprint[17];
	bool		unparsed;
} QueryEntry;

static CacheEntry *cache;
static size_t cache_mask;
static QueryEntry *queries;
static size_t queries_mask;
static size_t max_queries;
static NormStats st;

void
norm_init(size_t cache_entries, size_t maxq)
{
	size_t		n = 1024;

	while (n < cache_entries)
		n *= 2;
	cache = calloc(n, sizeof(CacheEntry));
	cache_mask = n - 1;
	max_queries = maxq;
	n = 1024;
	while (n < maxq * 2)
		n *= 2;
	queries = calloc(n, sizeof(QueryEntry));
	queries_mask = n - 1;
	if (cache == NULL || queries == NULL)
	{
		fprintf(stderr, "n1scan: out of memory\n");
		exit(2);
	}
}

/* ---------- lexical pass ---------- */

typedef struct Lex
{
	uint64_t	hash;
	uint32_t	len;			/* bytes of the lexical form */
	int			shape;
	StmtClass	cls;
	Buf		   *out;			/* the lexical form itself, when wanted */
	char	   *sample;			/* literal constants as text, when wanted */
	size_t		sample_len;
	int			n_literals;
	bool		placeholders;
	/* DECLARE ... CURSOR ... FOR <query>: where the query starts */
	bool		declare;
	bool		cursor;
	size_t		cursor_query;
	/* state */
	int			words;			/* word tokens seen */
	char		prev_word[12];	/* last word token, lowercased, if short */
	int			after_open;		/* 1: last token '(' after IN; 2: after ANY/SOME/ALL */
	bool		space;
} Lex;

static inline void
emit(Lex *x, const char *p, size_t n)
{
	if (x->space && x->len > 0)
	{
		x->hash = (x->hash ^ ' ') * UINT64_C(0x100000001b3);
		x->len++;
		if (x->out)
			buf_append(x->out, " ", 1);
	}
	x->space = false;
	for (size_t i = 0; i < n; i++)
		x->hash = (x->hash ^ (unsigned char) p[i]) * UINT64_C(0x100000001b3);
	x->len += n;
	if (x->out)
		buf_append(x->out, p, n);
}

static inline bool
is_word_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (unsigned char) c >= 0x80;
}

static inline bool
is_word_char(char c)
{
	return is_word_start(c) || (c >= '0' && c <= '9') || c == '$';
}

static void
add_sample(Lex *x, const char *p, size_t n)
{
	x->n_literals++;
	if (x->sample == NULL)
		return;
	if (x->sample_len + n + 3 >= NORM_MAX_SAMPLE)
		return;
	if (x->sample_len > 0)
	{
		memcpy(x->sample + x->sample_len, ", ", 2);
		x->sample_len += 2;
	}
	memcpy(x->sample + x->sample_len, p, n);
	x->sample_len += n;
	x->sample[x->sample_len] = '\0';
}

/* a constant token: '?' in the lexical form; closes an IN ( / ANY ( check */
static void
constant(Lex *x, const char *p, size_t n)
{
	if (x->after_open == 1)
		x->shape |= SHAPE_IN_LIST;
	else if (x->after_open == 2)
		x->shape |= SHAPE_ANY;
	x->after_open = 0;
	emit(x, "?", 1);
	add_sample(x, p, n);
}

static void
word(Lex *x, const char *p, size_t n)
{
	char		lw[12];
	size_t		ln = n < sizeof(lw) - 1 ? n : 0;
	char		buf[64];

	for (size_t i = 0; i < ln; i++)
		lw[i] = (p[i] >= 'A' && p[i] <= 'Z') ? p[i] + 32 : p[i];
	lw[ln] = '\0';

	if (x->words == 0)
	{
		if (!strcmp(lw, "select") || !strcmp(lw, "insert") || !strcmp(lw, "update") ||
			!strcmp(lw, "delete") || !strcmp(lw, "with") || !strcmp(lw, "values") ||
			!strcmp(lw, "table") || !strcmp(lw, "merge"))
			x->cls = STMT_TRACKED;
		else if (!strcmp(lw, "begin") || !strcmp(lw, "start"))
			x->cls = STMT_BEGIN;
		else if (!strcmp(lw, "commit") || !strcmp(lw, "end") || !strcmp(lw, "rollback") ||
				 !strcmp(lw, "abort"))
			x->cls = STMT_END_BLOCK;
		else if (x->cls != STMT_TRACKED)	/* "(SELECT ...)" stays tracked */
			x->cls = STMT_OTHER;
	}
	else if (x->words == 1 && x->cls == STMT_END_BLOCK &&
			 (!strcmp(lw, "to") || !strcmp(lw, "prepared")))
		x->cls = STMT_OTHER;	/* ROLLBACK TO SAVEPOINT, COMMIT PREPARED */
	x->words++;
	if (x->after_open)
	{
		if (!(x->after_open == 1 || x->after_open == 2) ||
			!(strcmp(lw, "select") == 0 || strcmp(lw, "with") == 0 ||
			  strcmp(lw, "values") == 0 || strcmp(lw, "table") == 0))
			x->shape |= x->after_open == 1 ? SHAPE_IN_LIST : SHAPE_ANY;
		x->after_open = 0;
	}
	memcpy(x->prev_word, lw, ln + 1);
	/* lowercase, so keyword case does not split cache entries */
	while (n > 0)
	{
		size_t		k = n < sizeof(buf) ? n : sizeof(buf);

		for (size_t i = 0; i < k; i++)
			buf[i] = (p[i] >= 'A' && p[i] <= 'Z') ? p[i] + 32 : p[i];
		emit(x, buf, k);
		x->space = false;
		p += k;
		n -= k;
	}
}

static void
lex(const char *p, size_t len, Lex *x)
{
	size_t		i = 0;

	x->hash = UINT64_C(0xcbf29ce484222325);
	x->len = 0;
	x->shape = 0;
	x->cls = STMT_OTHER;
	x->n_literals = 0;
	x->placeholders = false;
	x->declare = x->cursor = false;
	x->cursor_query = 0;
	x->words = 0;
	x->prev_word[0] = '\0';
	x->after_open = 0;
	x->space = false;
	x->sample_len = 0;
	if (x->sample)
		x->sample[0] = '\0';

	while (i < len)
	{
		char		c = p[i];

		if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f')
		{
			x->space = true;
			i++;
		}
		else if (c == '-' && i + 1 < len && p[i + 1] == '-')
		{
			while (i < len && p[i] != '\n')
				i++;
			x->space = true;
		}
		else if (c == '/' && i + 1 < len && p[i + 1] == '*')
		{
			int			depth = 1;

			for (i += 2; i < len && depth > 0; i++)
			{
				if (p[i] == '*' && i + 1 < len && p[i + 1] == '/')
					depth--, i++;
				else if (p[i] == '/' && i + 1 < len && p[i + 1] == '*')
					depth++, i++;
			}
			x->space = true;
		}
		else if (c == '\'')
		{
			size_t		start = ++i;
			bool		esc = i >= 2 && (p[i - 2] == 'E' || p[i - 2] == 'e') &&
				(i < 3 || !is_word_char(p[i - 3]));

			while (i < len)
			{
				if (esc && p[i] == '\\')
					i += 2;
				else if (p[i] == '\'')
				{
					if (i + 1 < len && p[i + 1] == '\'')
						i += 2;
					else
						break;
				}
				else
					i++;
			}
			if (i > len)
				i = len;
			constant(x, p + start - 1, (i < len ? i + 1 : i) - (start - 1));
			i++;
		}
		else if (c == '"')
		{
			size_t		start = i++;

			while (i < len && p[i] != '"')
				i++;
			i = i < len ? i + 1 : len;
			if (x->after_open)
				x->shape |= x->after_open == 1 ? SHAPE_IN_LIST : SHAPE_ANY;
			x->after_open = 0;
			x->words++;
			emit(x, p + start, i - start);
		}
		else if (c == '$')
		{
			size_t		t = i + 1;

			if (t < len && p[t] >= '0' && p[t] <= '9')
			{
				while (t < len && p[t] >= '0' && p[t] <= '9')
					t++;
				if (x->after_open)
					x->shape |= x->after_open == 1 ? SHAPE_IN_LIST : SHAPE_ANY;
				x->after_open = 0;
				x->placeholders = true;
				emit(x, p + i, t - i);
				i = t;
				continue;
			}
			while (t < len && is_word_char(p[t]) && p[t] != '$')
				t++;
			if (t < len && p[t] == '$')
			{
				size_t		tag = t - i + 1;
				size_t		j = t + 1;

				while (j + tag <= len && memcmp(p + j, p + i, tag) != 0)
					j++;
				j = j + tag <= len ? j + tag : len;
				constant(x, p + i, j - i);
				i = j;
			}
			else
			{
				emit(x, "$", 1);
				i++;
			}
		}
		else if (c >= '0' && c <= '9')
		{
			size_t		start = i;

			while (i < len && ((p[i] >= '0' && p[i] <= '9') || p[i] == '.' || p[i] == '_' ||
							   ((p[i] == 'e' || p[i] == 'E')) ||
							   ((p[i] == '-' || p[i] == '+') && (p[i - 1] == 'e' || p[i - 1] == 'E'))))
				i++;
			constant(x, p + start, i - start);
		}
		else if (c == '.' && i + 1 < len && p[i + 1] >= '0' && p[i + 1] <= '9')
		{
			size_t		start = i++;

			while (i < len && p[i] >= '0' && p[i] <= '9')
				i++;
			constant(x, p + start, i - start);
		}
		else if (is_word_start(c))
		{
			size_t		start = i;

			while (i < len && is_word_char(p[i]))
				i++;
			word(x, p + start, i - start);
			if (x->words == 1 && i - start == 7 && strncasecmp(p + start, "declare", 7) == 0)
				x->declare = true;
			else if (x->declare && i - start == 6 && strncasecmp(p + start, "cursor", 6) == 0)
				x->cursor = true;
			else if (x->cursor && x->cursor_query == 0 && i - start == 3 &&
					 strncasecmp(p + start, "for", 3) == 0)
				x->cursor_query = i;
		}
		else
		{
			if (c == '(' && (strcmp(x->prev_word, "in") == 0))
				x->after_open = 1;
			else if (c == '(' && (strcmp(x->prev_word, "any") == 0 || strcmp(x->prev_word, "some") == 0 ||
								  strcmp(x->prev_word, "all") == 0))
				x->after_open = 2;
			else if (x->after_open && c != '(')
			{
				/* IN (-1 ...), ANY (ARRAY[...]), ANY ($1) */
				x->shape |= x->after_open == 1 ? SHAPE_IN_LIST : SHAPE_ANY;
				x->after_open = 0;
			}
			x->prev_word[0] = '\0';
			if (c == ';' && i + 1 >= len)
			{
				i++;
				continue;		/* a trailing semicolon does not matter */
			}
			emit(x, &c, 1);
			i++;
		}
	}
}

/* ---------- query keys ---------- */

static QueryEntry *
query_slot(uint64_t key)
{
	size_t		i = (size_t) key & queries_mask;

	while (queries[i].key != 0 && queries[i].key != key)
		i = (i + 1) & queries_mask;
	return &queries[i];
}

static char *
keep_text(const char *p, size_t n)
{
	char	   *t;

	/* the statement's own text: no leading space, no trailing semicolon or space */
	while (n > 0 && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r'))
		p++, n--;
	while (n > 0 && (p[n - 1] == ';' || p[n - 1] == ' ' || p[n - 1] == '\n' || p[n - 1] == '\t' || p[n - 1] == '\r'))
		n--;
	if (n > MAX_TEXT_KEPT)
	{
		t = malloc(MAX_TEXT_KEPT + 4);
		memcpy(t, p, MAX_TEXT_KEPT);
		memcpy(t + MAX_TEXT_KEPT, "...", 4);
		return t;
	}
	t = malloc(n + 1);
	memcpy(t, p, n);
	t[n] = '\0';
	return t;
}

static void
remember_query(uint64_t key, const char *text, size_t len, const char *fp, bool unparsed)
{
	QueryEntry *q = query_slot(key);

	if (q->key == key)
		return;
	if (st.queries >= max_queries)
	{
		st.queries_dropped++;
		return;
	}
	st.queries++;
	q->key = key;
	q->unparsed = unparsed;
	snprintf(q->fingerprint, sizeof(q->fingerprint), "%s", fp ? fp : "");
	if (!unparsed)
	{
		PgQueryNormalizeResult nr = pg_query_normalize(text);

		if (nr.error == NULL && nr.normalized_query != NULL)
			q->text = keep_text(nr.normalized_query, strlen(nr.normalized_query));
		pg_query_free_normalize_result(nr);
	}
	if (q->text == NULL)
	{
		/* the lexical form: constants as '?' */
		Buf			b = {0};
		Lex			x = {0};

		x.out = &b;
		lex(text, len, &x);
		q->text = keep_text(b.data ? b.data : "", b.len);
		buf_free(&b);
	}
}

void
norm_statement(const char *text, size_t len, NormResult *out)
{
	Lex			x = {0};
	CacheEntry *c;
	uint64_t	vals[64];
	int			nv;

	st.statements++;
	out->cursor = false;
	x.sample = out->sample;
	lex(text, len, &x);
	out->cls = x.cls;
	out->n_literals = x.n_literals;
	out->placeholders = x.placeholders;
	out->param_hash = 0;
	nv = n1_scan_literals(text, (int) (len > 1 << 20 ? 1 << 20 : len), vals, 64);
	for (int i = 0; i < nv; i++)
		out->param_hash = n1_hash_mix(out->param_hash * 31 + vals[i]);
	if (x.cls != STMT_TRACKED && x.cursor_query > 0 && x.cursor_query < len)
	{
		/*
		 * DECLARE ... CURSOR FOR <query>: the query itself (so a loop over a
		 * cursor's rows has it as parent, as in the extension); its FETCHes
		 * are activity only.
		 */
		st.statements--;
		norm_statement(text + x.cursor_query, len - x.cursor_query, out);
		out->cursor = true;
		return;
	}
	if (x.cls != STMT_TRACKED)
	{
		out->key = 0;
		return;
	}
	c = &cache[(size_t) (x.hash ^ (x.hash >> 29)) & cache_mask];
	if (c->used && c->lexhash == x.hash && c->lexlen == x.len)
	{
		st.cache_hits++;
		out->key = c->key;
		return;
	}
	{
		PgQueryFingerprintResult fr;
		uint64_t	key;
		bool		unparsed;

		st.parsed++;
		fr = pg_query_fingerprint(text);	/* text is NUL-terminated at len */
		unparsed = fr.error != NULL;
		if (unparsed)
		{
			st.unparsed++;
			key = n1_hash_mix(x.hash ^ UINT64_C(0x51ab1e5eed));
		}
		else
			key = n1_hash_mix(fr.fingerprint ^ ((uint64_t) x.shape * UINT64_C(0x9E3779B97F4A7C15)));
		if (key == 0)
			key = 1;
		remember_query(key, text, len, unparsed ? NULL : fr.fingerprint_str, unparsed);
		pg_query_free_fingerprint_result(fr);
		c->used = 1;
		c->lexhash = x.hash;
		c->lexlen = x.len;
		c->key = key;
		out->key = key;
	}
}

const char *
norm_query_text(uint64_t key, const char **fingerprint, bool *unparsed)
{
	QueryEntry *q = query_slot(key);

	if (q->key != key)
		return NULL;
	if (fingerprint)
		*fingerprint = q->fingerprint;
	if (unparsed)
		*unparsed = q->unparsed;
	return q->text;
}

uint64_t
norm_param_hash(const char *p, size_t len)
{
	uint64_t	h = 0;
	size_t		i = 0;
	char		buf[N1_VALUE_MAX_TEXT * 4];

	while (i < len)
	{
		/* $N = 'value' | NULL */
		while (i < len && p[i] != '$')
			i++;
		while (i < len && p[i] != '=')
			i++;
		i++;
		while (i < len && p[i] == ' ')
			i++;
		if (i >= len)
			break;
		if (p[i] == '\'')
		{
			size_t		n = 0;
			uint64_t	v = UINT64_C(0x6c62272e07bb0142);
			bool		big = false;

			for (i++; i < len; i++)
			{
				if (p[i] == '\'')
				{
					if (i + 1 < len && p[i + 1] == '\'')
						i++;
					else
						break;
				}
				if (n < sizeof(buf))
					buf[n++] = p[i];
				else
				{
					big = true;
					v = (v ^ (unsigned char) p[i]) * UINT64_C(0x100000001b3);
				}
			}
			i++;
			v ^= n1_hash_text_value(buf, (int) n);
			if (big)
				v = n1_hash_mix(v);
			h = n1_hash_mix(h * 31 + v);
		}
		else
		{
			h = n1_hash_mix(h * 31 + UINT64_C(0x4e554c4c));	/* NULL */
			i += 4;
		}
	}
	return h;
}

void
norm_finish(NormStats *out)
{
	for (size_t i = 0; i <= queries_mask; i++)
		free(queries[i].text);
	free(queries);
	free(cache);
	queries = NULL;
	cache = NULL;
	*out = st;
	/* frees libpg_query's top memory context; it crashes if none was made */
	if (st.parsed > 0)
		pg_query_exit();
}
