/*
 * query_comment.c
 *		Request tags from a statement's comment (see query_comment.h): finds
 *		the leading or trailing block comment, splits it into key/value
 *		pairs in either format, and keeps the keys that say where the
 *		statement came from (source, code line, trace id).
 *
 * Owns: the comment formats and the bounds on what is read and kept.
 * Must never: allocate, read past len, write past an output buffer, read
 * more than N1_COMMENT_SCAN bytes of a comment, or take text from outside
 * the comment (string literals, dollar quotes, the statement itself).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE				/* memrchr */
#endif
#include "query_comment.h"
#include "value_hash.h"

#include <string.h>

static inline bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/*
 * Forward from just after an opening slash-star at sql[from], comments
 * nesting as in PostgreSQL's lexer: index of the matching star-slash, or
 * -1 when it is not within limit.  Every marker has a star: only stars are
 * looked at (memchr), so a long body costs little.
 */
static long
comment_close(const char *sql, size_t from, size_t limit)
{
	int			depth = 1;
	size_t		i = from;

	while (i < limit)
	{
		const char *star = memchr(sql + i, '*', limit - i);
		size_t		k;

		if (star == NULL)
			return -1;
		k = (size_t) (star - sql);
		if (k > i && sql[k - 1] == '/')
		{
			depth++;			/* an opener whose slash is not part of a closer */
			i = k + 1;
		}
		else if (k + 1 < limit && sql[k + 1] == '/')
		{
			if (--depth == 0)
				return (long) k;
			i = k + 2;
		}
		else
			i = k + 1;
	}
	return -1;
}

/* The last star in sql[from..to), or NULL. */
static const char *
last_star(const char *sql, size_t from, size_t to)
{
#ifdef __GLIBC__
	return to > from ? memrchr(sql + from, '*', to - from) : NULL;
#else
	while (to > from)
		if (sql[--to] == '*')
			return sql + to;
	return NULL;
#endif
}

/*
 * The trailing comment of sql, whose text before trailing white space and
 * semicolons ends at e with star-slash: its body, or false.
 */
static bool
find_trailing(const char *sql, size_t e, const char **body, size_t *body_len)
{
	size_t		limit = e > N1_COMMENT_SCAN ? e - N1_COMMENT_SCAN : 0;
	size_t		k = e - 2;		/* the closing star; markers before it */
	int			depth = 1;

	/* back to the matching opener (stars only), then check it forward */
	while (k > limit)
	{
		const char *star = last_star(sql, limit, k);
		size_t		q;

		if (star == NULL)
			break;
		q = (size_t) (star - sql);
		if (q > limit && sql[q - 1] == '/')
		{
			if (--depth == 0)
			{
				if (comment_close(sql, q + 1, e) == (long) (e - 2))
				{
					*body = sql + q + 1;
					*body_len = e - 2 - (q + 1);
					return true;
				}
				break;
			}
			k = q - 1;
		}
		else
		{
			if (q + 1 < k && sql[q + 1] == '/')
				depth++;		/* a nested closer */
			k = q;
		}
	}
	return false;
}

/* The leading comment of sql, whose slash-star is at s: its body, or false. */
static bool
find_leading(const char *sql, size_t len, size_t s, const char **body, size_t *body_len)
{
	size_t		limit = len - s > N1_COMMENT_SCAN ? s + N1_COMMENT_SCAN : len;
	long		close = comment_close(sql, s + 2, limit);

	if (close < 0)
		return false;
	*body = sql + s + 2;
	*body_len = (size_t) close - (s + 2);
	return true;
}

/* End of sql without trailing white space and semicolons. */
static inline size_t
trimmed_end(const char *sql, size_t len)
{
	size_t		e = len;

	while (e > 0 && (is_space(sql[e - 1]) || sql[e - 1] == ';'))
		e--;
	return e;
}

static inline bool
ends_with_closer(const char *sql, size_t e)
{
	return e >= 4 && sql[e - 1] == '/' && sql[e - 2] == '*';
}

/* Where the slash-star of a leading comment is, or len when there is none. */
static inline size_t
leading_opener(const char *sql, size_t len)
{
	size_t		s = 0;

	while (s < len && is_space(sql[s]))
		s++;
	return (s + 4 <= len && sql[s] == '/' && sql[s + 1] == '*') ? s : len;
}

size_t
n1_comment_skip_leading(const char *sql, size_t len)
{
	size_t		s = 0;

	for (;;)
	{
		while (s < len && sql[s] != '\0' && is_space(sql[s]))
			s++;
		if (s + 1 < len && sql[s] == '-' && sql[s + 1] == '-')
		{
			while (s < len && sql[s] != '\0' && sql[s] != '\n')
				s++;
			continue;
		}
		if (s + 1 < len && sql[s] == '/' && sql[s + 1] == '*')
		{
			/* nested, as PostgreSQL's scanner reads them */
			int			depth = 0;

			while (s < len && sql[s] != '\0')
			{
				if (s + 1 < len && sql[s] == '/' && sql[s + 1] == '*')
				{
					depth++;
					s += 2;
				}
				else if (s + 1 < len && sql[s] == '*' && sql[s + 1] == '/')
				{
					s += 2;
					if (--depth == 0)
						break;
				}
				else
					s++;
			}
			if (depth > 0)
				return 0;		/* unterminated: not a comment we can skip */
			continue;
		}
		return s;
	}
}

bool
n1_comment_find(const char *sql, size_t len, const char **body, size_t *body_len)
{
	size_t		e;
	size_t		s;

	if (sql == NULL || len < 4)
		return false;
	e = trimmed_end(sql, len);
	if (ends_with_closer(sql, e) && find_trailing(sql, e, body, body_len))
		return true;
	s = leading_opener(sql, len);
	return s < len && find_leading(sql, len, s, body, body_len);
}

/* ---------- key/value pairs ---------- */

typedef struct Pair
{
	const char *key;
	size_t		key_len;
	const char *value;
	size_t		value_len;
	bool		quoted;			/* sqlcommenter: key='value', URL-encoded */
} Pair;

static inline bool
is_key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
}

/*
 * Next pair of the body from *pos: key=value, key='value' (sqlcommenter) or
 * key:value (marginalia), separated by commas.  Text that is no pair (a
 * free comment, an optimizer hint) is skipped up to the next comma.
 */
static bool
next_pair(const char **pos, const char *end, Pair *pair)
{
	const char *p = *pos;

	while (p < end)
	{
		const char *k;
		const char *next;

		while (p < end && (is_space(*p) || *p == ','))
			p++;
		k = p;
		while (p < end && is_key_char(*p))
			p++;
		pair->key = k;
		pair->key_len = (size_t) (p - k);
		if (p < end && pair->key_len > 0 && (*p == '=' || *p == ':'))
		{
			bool		equals = (*p == '=');

			p++;
			if (equals && p < end && *p == '\'')
			{
				/* quoted: up to the closing quote; \' is an escaped quote */
				const char *v = ++p;

				/* the closing quote: one not escaped with a backslash */
				for (;;)
				{
					const char *q = memchr(p, '\'', (size_t) (end - p));
					size_t		backslashes = 0;

					if (q == NULL)
					{
						p = end;
						break;
					}
					while (q - backslashes > v && q[-1 - (long) backslashes] == '\\')
						backslashes++;
					p = q;
					if (backslashes % 2 == 0)
						break;
					p++;
				}
				pair->value = v;
				pair->value_len = (size_t) (p - v);
				pair->quoted = true;
				if (p < end)
					p++;
				next = memchr(p, ',', (size_t) (end - p));
				*pos = next ? next + 1 : end;
				return true;
			}
			next = memchr(p, ',', (size_t) (end - p));
			pair->value = p;
			pair->value_len = (size_t) ((next ? next : end) - p);
			/* marginalia values have no surrounding space to keep */
			while (pair->value_len > 0 && is_space(pair->value[pair->value_len - 1]))
				pair->value_len--;
			pair->quoted = false;
			*pos = next ? next + 1 : end;
			return true;
		}
		/* not a pair: skip to the next comma */
		next = memchr(p, ',', (size_t) (end - p));
		p = next ? next + 1 : end;
	}
	*pos = end;
	return false;
}

static inline bool
key_is(const Pair *pair, const char *name)
{
	size_t		n = strlen(name);

	if (pair->key_len != n)
		return false;
	for (size_t i = 0; i < n; i++)
	{
		char		c = pair->key[i];

		if (c >= 'A' && c <= 'Z')
			c = (char) (c - 'A' + 'a');
		if (c != name[i])
			return false;
	}
	return true;
}

/*
 * Appends the value to out[*used..size-1), URL-decoded when quoted (a
 * malformed escape is kept as it is; \' becomes '; %% becomes %, as
 * Python's sqlcommenter doubles every % for the driver's formatting, which
 * psycopg2 undoes only when a statement has parameters: a literal % is
 * always written %25), control characters as '?'; always leaves out
 * terminated.  Cut where out is full.
 */
static void
append_value(char *out, size_t size, size_t *used, const Pair *pair)
{
	const char *p = pair->value;
	const char *end = p + pair->value_len;
	size_t		n = *used;

	while (p < end && n + 1 < size)
	{
		unsigned char c = (unsigned char) *p++;

		if (pair->quoted && c == '%' && p < end && *p == '%')
			p++;
		if (pair->quoted && c == '%' && end - p >= 2 &&
			n1_hex_value(p[0]) >= 0 && n1_hex_value(p[1]) >= 0)
		{
			c = (unsigned char) (n1_hex_value(p[0]) * 16 + n1_hex_value(p[1]));
			p += 2;
		}
		else if (pair->quoted && c == '\\' && p < end)
			c = (unsigned char) *p++;
		out[n++] = (c < 0x20 || c == 0x7f) ? '?' : (char) c;
	}
	out[n] = '\0';
	*used = n;
}

static void
append_text(char *out, size_t size, size_t *used, const char *text)
{
	size_t		n = *used;

	while (*text && n + 1 < size)
		out[n++] = *text++;
	out[n] = '\0';
	*used = n;
}

/* 64-bit hash of a byte string; never 0 (0 means "none"). */
static uint64_t
hash_bytes64(const char *p, size_t len)
{
	uint64_t	h = n1_hash_bytes(p, len, (uint64_t) len * UINT64_C(0x9E3779B97F4A7C15));

	return h ? h : 1;
}

/*
 * The trace id part of a W3C traceparent (version-traceid-parentid-flags:
 * 2 characters, '-', the 32 of the trace id, '-', ...; the digits are not
 * checked, any id will do), or the whole value for any other id.
 */
static void
trace_bytes(const Pair *pair, const char **id, size_t *len)
{
	*id = pair->value;
	*len = pair->value_len;
	/* traceparent is the only trace key of 11 bytes */
	if (pair->key_len == 11 && pair->value_len >= 36 &&
		pair->value[2] == '-' && pair->value[35] == '-')
	{
		*id += 3;
		*len = 32;
	}
}

/* Whether p starts with key name (n bytes, lower case, any case in p) and its separator. */
static inline bool
key_here(const char *p, const char *end, const char *name, size_t n)
{
	if ((size_t) (end - p) <= n || (p[n] != '=' && p[n] != ':'))
		return false;
	for (size_t i = 0; i < n; i++)
	{
		char		c = p[i];

		if (c >= 'A' && c <= 'Z')
			c = (char) (c - 'A' + 'a');
		if (c != name[i])
			return false;
	}
	return true;
}

/*
 * The pair of the key of n bytes at p (key_here said so): its value quoted
 * (key='value', up to the next quote) or not (up to the next comma).
 */
static void
pair_here(const char *p, const char *end, size_t n, Pair *pair)
{
	const char *v = p + n + 1;
	const char *stop;

	pair->key = p;
	pair->key_len = n;
	pair->quoted = (p[n] == '=' && v < end && *v == '\'');
	if (pair->quoted)
	{
		v++;
		stop = memchr(v, '\'', (size_t) (end - v));
	}
	else
		stop = memchr(v, ',', (size_t) (end - v));
	if (stop == NULL)
		stop = end;
	while (!pair->quoted && stop > v && is_space(stop[-1]))
		stop--;
	pair->value = v;
	pair->value_len = (size_t) (stop - v);
}

/*
 * The trace id pair of a comment body: the first traceparent, else the
 * first request id (request_id, request-id, x-request-id, x_request_id).
 * Runs per statement: it only looks at the first byte of each pair (pairs
 * found with memchr on commas), and reads a value only after its key.
 */
static bool
find_trace(const char *body, size_t len, Pair *pair)
{
	const char *end = body + len;
	const char *p = body;
	Pair		request;
	bool		have_request = false;

	while (p < end)
	{
		const char *comma;

		while (p < end && is_space(*p))
			p++;
		if (p < end)
		{
			char		c = (char) (*p | 0x20);	/* lower case of a letter */
			bool		primary = false;
			size_t		key_len = 0;	/* of a trace key at p, or 0 */

			/* the key in place first: most pairs are not trace keys */
			if (c == 't' && key_here(p, end, "traceparent", 11))
			{
				key_len = 11;
				primary = true;
			}
			else if (c == 'r' && (key_here(p, end, "request_id", 10) ||
								  key_here(p, end, "request-id", 10)))
				key_len = 10;
			else if (c == 'x' && (key_here(p, end, "x-request-id", 12) ||
								  key_here(p, end, "x_request_id", 12)))
				key_len = 12;
			if (key_len > 0 && (primary || !have_request))
			{
				Pair		found;

				pair_here(p, end, key_len, &found);
				if (found.value_len > 0)
				{
					if (primary)
					{
						*pair = found;
						return true;
					}
					request = found;
					have_request = true;
				}
				/* go on after the value: a quoted one may hold commas */
				p = found.value + found.value_len;
			}
		}
		comma = p < end ? memchr(p, ',', (size_t) (end - p)) : NULL;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	if (have_request)
		*pair = request;
	return have_request;
}

/* Keys that make up the source, in the order shown. */
static const char *const source_keys[] = {"controller", "action", "job", "route"};
#define N_SOURCE_KEYS (sizeof(source_keys) / sizeof(source_keys[0]))

bool
n1_comment_parse(const char *body, size_t body_len, N1QueryTags *tags)
{
	const char *pos = body;
	const char *end = body + body_len;
	Pair		pair;
	Pair		found[N_SOURCE_KEYS];
	bool		have[N_SOURCE_KEYS] = {false};
	Pair		namespaced;		/* Rails 7.1's namespaced_controller: the controller when alone */
	bool		have_namespaced = false;
	bool		any = false;
	size_t		used = 0;

	memset(tags, 0, sizeof(*tags));
	while (next_pair(&pos, end, &pair))
	{
		for (size_t i = 0; i < N_SOURCE_KEYS; i++)
			if (!have[i] && key_is(&pair, source_keys[i]) && pair.value_len > 0)
			{
				found[i] = pair;
				have[i] = true;
				any = true;
			}
		if (!have_namespaced && key_is(&pair, "namespaced_controller") && pair.value_len > 0)
		{
			namespaced = pair;
			have_namespaced = true;
			any = true;
		}
		/* marginalia's line, Rails 7.2's source_location */
		if (tags->code_line[0] == '\0' &&
			(key_is(&pair, "line") || key_is(&pair, "code_line") ||
			 key_is(&pair, "source_location")))
		{
			size_t		n = 0;

			append_value(tags->code_line, N1_CODE_LINE_LEN, &n, &pair);
			any = true;
		}
	}
	if (find_trace(body, body_len, &pair))
	{
		Pair		id = pair;
		size_t		n = 0;

		trace_bytes(&pair, &id.value, &id.value_len);
		append_value(tags->trace_id, N1_TRACE_ID_LEN, &n, &id);
		tags->trace_hash = hash_bytes64(id.value, id.value_len);
		any = true;
	}
	if (!have[0] && have_namespaced)
	{
		found[0] = namespaced;	/* source_keys[0] is "controller" */
		have[0] = true;
	}
	for (size_t i = 0; i < N_SOURCE_KEYS; i++)
	{
		if (!have[i])
			continue;
		if (used > 0)
			append_text(tags->source, N1_SOURCE_LEN, &used, " ");
		append_text(tags->source, N1_SOURCE_LEN, &used, source_keys[i]);
		append_text(tags->source, N1_SOURCE_LEN, &used, "=");
		append_value(tags->source, N1_SOURCE_LEN, &used, &found[i]);
	}
	if (used > 0)
		tags->source_hash = hash_bytes64(tags->source, used);
	return any;
}

bool
n1_query_tags(const char *sql, size_t len, N1QueryTags *tags)
{
	const char *body;
	size_t		body_len;

	if (!n1_comment_find(sql, len, &body, &body_len))
	{
		memset(tags, 0, sizeof(*tags));
		return false;
	}
	return n1_comment_parse(body, body_len, tags);
}

/* Hash of the trace id of a comment body, or 0. */
static uint64_t
body_trace_hash(const char *body, size_t body_len)
{
	const char *id;
	size_t		id_len;
	Pair		pair;

	if (!find_trace(body, body_len, &pair))
		return 0;
	trace_bytes(&pair, &id, &id_len);
	return hash_bytes64(id, id_len);
}

uint64_t
n1_query_trace_hash(const char *sql, size_t len)
{
	const char *body;
	size_t		body_len;

	if (!n1_comment_find(sql, len, &body, &body_len))
		return 0;
	return body_trace_hash(body, body_len);
}


bool
n1_comment_trailing(const char *sql, size_t len, N1CommentSpan *span)
{
	const char *body;
	size_t		body_len;
	size_t		e;

	span->start = span->end = 0;
	if (sql == NULL || len < 4)
		return false;
	e = trimmed_end(sql, len);
	if (!ends_with_closer(sql, e) || !find_trailing(sql, e, &body, &body_len))
		return false;
	span->start = (size_t) (body - 2 - sql);
	span->end = e;
	return true;
}

/*
 * Which comment n1_comment_find sees depends only on the bytes from the
 * opening slash-star of a trailing comment to the end (white space and
 * semicolons aside), or on the bytes from the start to the closing
 * star-slash of a leading one (the scans read nothing else, and at most
 * N1_COMMENT_SCAN bytes).  So when those bytes are the previous commented
 * statement's, so is the trace hash: one memcmp instead of the scans.
 */
uint64_t
n1_query_trace_hash_cached(N1TraceCache *cache, const char *sql, size_t len,
						   N1CommentSpan *trailing)
{
	const char *body;
	size_t		body_len;
	size_t		e;
	size_t		s;
	size_t		keep;
	const char *from;
	uint64_t	h;
	N1CommentSpan unused;

	if (trailing == NULL)
		trailing = &unused;
	trailing->start = trailing->end = 0;
	if (sql == NULL || len < 4)
		return 0;
	e = trimmed_end(sql, len);
	if (ends_with_closer(sql, e))
	{
		if (cache->len > 0 && !cache->leading && cache->len <= e &&
			memcmp(sql + e - cache->len, cache->bytes, cache->len) == 0)
		{
			trailing->start = e - cache->len;
			trailing->end = e;
			return cache->hash;
		}
		if (find_trailing(sql, e, &body, &body_len))
		{
			from = body - 2;	/* the opening slash */
			keep = (size_t) (sql + e - from);
			h = body_trace_hash(body, body_len);
			trailing->start = (size_t) (from - sql);
			trailing->end = e;
			if (keep <= sizeof(cache->bytes))
			{
				memcpy(cache->bytes, from, keep);
				cache->len = keep;
				cache->leading = false;
				cache->hash = h;
			}
			return h;
		}
		/* a leading comment of a text that ends like a comment: not kept */
		s = leading_opener(sql, len);
		if (s < len && find_leading(sql, len, s, &body, &body_len))
			return body_trace_hash(body, body_len);
		return 0;
	}
	s = leading_opener(sql, len);
	if (s == len)
		return 0;
	if (cache->len > 0 && cache->leading && cache->len <= len &&
		memcmp(sql, cache->bytes, cache->len) == 0)
		return cache->hash;
	if (!find_leading(sql, len, s, &body, &body_len))
		return 0;
	h = body_trace_hash(body, body_len);
	keep = (size_t) (body + body_len + 2 - sql);	/* through the closing slash */
	if (keep <= sizeof(cache->bytes))
	{
		memcpy(cache->bytes, sql, keep);
		cache->len = keep;
		cache->leading = true;
		cache->hash = h;
	}
	return h;
}
