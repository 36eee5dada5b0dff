/*
 * query_comment.h
 *		Request tags from a statement's comment: sqlcommenter
 *		(key='url%2Dencoded',...) and marginalia / Rails query log tags
 *		(key:value,...), leading or trailing.
 *
 * Plain C99 with no PostgreSQL headers (shared with n1scan and the unit
 * tests in test/unit/).  Output is bounded: fixed-size buffers, values cut
 * at their size; input is scanned at most N1_COMMENT_SCAN bytes from its
 * start or its end, so a hostile 1 MB comment costs no more than a short one.
 */
#ifndef N1DETECT_QUERY_COMMENT_H
#define N1DETECT_QUERY_COMMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes of a comment considered; a longer comment carries no tags. */
#define N1_COMMENT_SCAN 4096
/* Sizes of the outputs, terminating zero included. */
#define N1_SOURCE_LEN 128
#define N1_CODE_LINE_LEN 192
#define N1_TRACE_ID_LEN 64

typedef struct N1QueryTags
{
	uint64_t	source_hash;	/* hash of source; 0 when source is empty */
	uint64_t	trace_hash;		/* hash of trace_id; 0 when trace_id is empty */
	char		source[N1_SOURCE_LEN];		/* "controller=posts action=index", "route=/api/posts/" */
	char		code_line[N1_CODE_LINE_LEN];	/* marginalia's line, or code_line= */
	char		trace_id[N1_TRACE_ID_LEN];	/* traceparent's trace id, or a request id */
} N1QueryTags;

/*
 * Where the tag comment of sql[0..len) is: its body (between the slash-star
 * and the star-slash) as [*body, *body + *body_len).  Returns false when the
 * text neither starts (after white space) nor ends (before white space and
 * semicolons) with a block comment.  Comments nest as in PostgreSQL, so
 * the comment found is exactly the one the server's lexer saw: never part
 * of a string literal or dollar quote (nothing but white space is between
 * it and the end of the text).  Reads only the first or last bytes unless
 * there is a comment there.
 */
extern bool n1_comment_find(const char *sql, size_t len, const char **body, size_t *body_len);

/*
 * Parses a comment body into tags (empty strings where absent).  Returns
 * true when any tag was found.
 */
extern bool n1_comment_parse(const char *body, size_t body_len, N1QueryTags *tags);

/* n1_comment_find then n1_comment_parse; tags zeroed when there is none. */
extern bool n1_query_tags(const char *sql, size_t len, N1QueryTags *tags);

/*
 * Hash of the trace id (or request id) of sql[0..len), or 0 when it has
 * none: which request a statement belongs to (the server calls the cached
 * form below on every statement that starts or ends with a comment).
 */
extern uint64_t n1_query_trace_hash(const char *sql, size_t len);

/*
 * Bytes of white space and comments (slash-star, nested, and double-dash)
 * that sql[0..len) starts with, stopping at a NUL: where its first token is.
 * 0 for an unterminated comment.  n1_comment_skip_leading_fast decides with
 * one comparison for a text that starts with a letter.
 */
extern size_t n1_comment_skip_leading(const char *sql, size_t len);

static inline size_t
n1_comment_skip_leading_fast(const char *sql, size_t len)
{
	if (len == 0 || ((unsigned char) sql[0] > ' ' && sql[0] != '/' && sql[0] != '-'))
		return 0;
	return n1_comment_skip_leading(sql, len);
}

/*
 * A trailing comment: sql[start, end) from its opening slash to its closing
 * one; start == end when there is none.
 */
typedef struct N1CommentSpan
{
	size_t		start;
	size_t		end;
} N1CommentSpan;

/*
 * The trailing comment of sql[0..len) (as n1_comment_find sees it: white
 * space and semicolons after it aside), or false.
 */
extern bool n1_comment_trailing(const char *sql, size_t len, N1CommentSpan *span);

/*
 * The last comment n1_query_trace_hash_cached found (its bytes and where
 * they are in the text) and its trace hash.  Zero it before first use.
 */
typedef struct N1TraceCache
{
	size_t		len;			/* bytes kept; 0: nothing */
	bool		leading;		/* the text's first bytes (else its last, before white space and ';') */
	uint64_t	hash;			/* trace hash */
	char		bytes[N1_COMMENT_SCAN + 4];	/* a comment and the white space before a leading one */
} N1TraceCache;

/*
 * n1_query_trace_hash, remembering the comment it found: a statement whose
 * comment is byte for byte the previous commented statement's (the same
 * request, the same code line) costs a memcmp of the comment.  trailing
 * (if not NULL) gets the trailing comment, or an empty span.
 */
extern uint64_t n1_query_trace_hash_cached(N1TraceCache *cache, const char *sql, size_t len,
										   N1CommentSpan *trailing);

#endif							/* N1DETECT_QUERY_COMMENT_H */
