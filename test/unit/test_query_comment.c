/*
 * test_query_comment.c
 *		Table-driven unit tests of src/core/query_comment.c: real comments of
 *		marginalia, Rails query log tags and sqlcommenter, and hostile ones.
 *		Built with AddressSanitizer (Makefile: unitcheck).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query_comment.h"

#define Min(a, b) ((a) < (b) ? (a) : (b))

typedef struct Case
{
	const char *name;
	const char *sql;
	const char *source;
	const char *code_line;
	const char *trace_id;
} Case;

static const Case cases[] = {
	{"marginalia trailing",
		"SELECT \"authors\".* FROM \"authors\" WHERE \"authors\".\"id\" = $1 LIMIT $2 "
		"/*application:Shop,controller:posts,action:index,line:/app/controllers/posts_controller.rb:12:in `block in index'*/",
		"controller=posts action=index", "/app/controllers/posts_controller.rb:12:in `block in index'", ""},
	{"rails 7 query log tags leading",
		"/*application:Shop,controller:posts,action:show*/ SELECT 1",
		"controller=posts action=show", "", ""},
	{"active job",
		"SELECT 1 /*application:Shop,job:ReportJob*/",
		"job=ReportJob", "", ""},

	/*
	 * Rails 7.0 query log tags (config.active_record.query_log_tags): the
	 * legacy format, marginalia's, values raw, tags in the configured order
	 * (sorted by key in later versions); a request_id tag of the
	 * application's own.
	 */
	{"rails 7.0 query log tags trailing",
		"SELECT \"posts\".* FROM \"posts\" WHERE \"posts\".\"id\" = $1 LIMIT $2 "
		"/*application:App,controller:posts,action:index*/",
		"controller=posts action=index", "", ""},
	{"rails 7.0 custom request_id tag",
		"SELECT \"posts\".* FROM \"posts\" "
		"/*application:App,controller:posts,action:index,request_id:8f3c2a1e-55d4-4c1f-9f0e-6a1b2c3d4e5f*/",
		"controller=posts action=index", "", "8f3c2a1e-55d4-4c1f-9f0e-6a1b2c3d4e5f"},
	{"rails legacy format, keys sorted",
		"SELECT 1 /*action:index,application:App,controller:posts*/",
		"controller=posts action=index", "", ""},

	/*
	 * Rails 7.1+ with query_log_tags_format = :sqlcommenter (the default of
	 * new 7.1 applications): keys sorted, values URL-encoded with
	 * ERB::Util.url_encode (all but A-Za-z0-9_.-~) and single-quoted.
	 */
	{"rails 7.1 sqlcommenter trailing",
		"SELECT \"posts\".* FROM \"posts\" WHERE \"posts\".\"id\" = $1 LIMIT $2 "
		"/*action='index',application='App',controller='posts'*/",
		"controller=posts action=index", "", ""},
	{"rails 7.1 sqlcommenter prepended",
		"/*action='show',application='App',controller='posts'*/ SELECT \"posts\".* FROM \"posts\"",
		"controller=posts action=show", "", ""},
	{"rails 7.1 sqlcommenter custom tags: encoded value, request_id, traceparent",
		"SELECT 1 /*action='index',application='App',controller='posts',"
		"request_id='8f3c2a1e-55d4-4c1f-9f0e-6a1b2c3d4e5f',tenant='Joe%27s%20shop',"
		"traceparent='00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'*/",
		"controller=posts action=index", "", "0af7651916cd43dd8448eb211c80319c"},
	{"rails 7.1 sqlcommenter job",
		"SELECT 1 /*application='App',job='ReportJob'*/", "job=ReportJob", "", ""},
	{"rails 7.1 sqlcommenter namespaced_controller beside controller",
		"SELECT 1 /*action='index',application='App',controller='posts',namespaced_controller='admin%2Fposts'*/",
		"controller=posts action=index", "", ""},
	{"sqlcommenter django",
		"SELECT \"shop_author\".\"id\" FROM \"shop_author\" WHERE \"shop_author\".\"id\" = 7 LIMIT 21 "
		"/*controller='post_list',db_driver='django.db.backends.postgresql',framework='django%3A4.2.11',"
		"route='%5Eapi/posts/',traceparent='00-5bd66ef5095369c7b0d1f8f4bd33716a-c532cb4098ac3dd2-01'*/",
		"controller=post_list route=^api/posts/", "", "5bd66ef5095369c7b0d1f8f4bd33716a"},
	{"sqlcommenter with semicolon and newline",
		"SELECT 1 /*route='%2Fapi%2Fposts%2F'*/;\n", "route=/api/posts/", "", ""},
	{"request id", "SELECT 1 /*request_id='abc-123',controller='x'*/", "controller=x", "", "abc-123"},
	{"traceparent beats request id",
		"SELECT 1 /*request_id='r1',traceparent='00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'*/",
		"", "", "0af7651916cd43dd8448eb211c80319c"},
	{"malformed traceparent kept whole",
		"SELECT 1 /*traceparent='zz-123'*/", "", "", "zz-123"},
	{"no comment", "SELECT * FROM posts WHERE id = 1", "", "", ""},
	{"comment in the middle only", "SELECT /*controller:posts*/ 1", "", "", ""},
	{"comment inside a string literal", "SELECT '/*controller:posts*/'", "", "", ""},
	{"comment inside a dollar quote", "SELECT $$ /*controller:posts*/ $$", "", "", ""},
	{"string ends like a comment", "SELECT 'a' || '/*controller:posts*/' ", "", "", ""},
	{"literal before the comment", "SELECT '*/ /*controller:evil*/' /*controller:posts*/", "controller=posts", "", ""},
	{"unterminated trailing", "SELECT 1 /*controller:posts", "", "", ""},
	{"unterminated leading", "/*controller:posts SELECT 1", "", "", ""},
	{"nested comment", "SELECT 1 /*controller:posts,x:/* inner */,action:index*/", "controller=posts action=index", "", ""},
	{"nested comment leading", "/*controller:posts,x:/* inner */,action:index*/ SELECT 1", "controller=posts action=index", "", ""},
	{"nested, unbalanced at the start", "/* /* controller:posts */ SELECT 1", "", "", ""},
	{"hint, not tags", "/*+ SeqScan(posts) */ SELECT 1", "", "", ""},
	{"free text comment", "SELECT 1 /* nightly report, see ticket 12 */", "", "", ""},
	{"percent-encoding errors kept",
		"SELECT 1 /*route='%zz%4',controller='%'*/", "controller=% route=%zz%4", "", ""},
	{"percent-encoded control bytes",
		"SELECT 1 /*controller='a%00b%0Ac'*/", "controller=a?b?c", "", ""},
	{"escaped quote", "SELECT 1 /*controller='o\\'brien'*/", "controller=o'brien", "", ""},
	{"unterminated quote", "SELECT 1 /*controller='posts*/", "controller=posts", "", ""},
	{"empty values", "SELECT 1 /*controller:,action=''*/", "", "", ""},
	{"keys case-insensitive", "SELECT 1 /*Controller:Posts*/", "controller=Posts", "", ""},
	{"empty comment", "SELECT 1 /**/", "", "", ""},
	{"only a comment", "/*controller:x*/", "controller=x", "", ""},
	{"short", "/**", "", "", ""},
	{"rails 7.1 sqlcommenter namespaced_controller alone",
		"SELECT 1 /*action='index',application='App',namespaced_controller='admin%2Fposts'*/",
		"controller=admin/posts action=index", "", ""},
	{"rails 7.1 controller beside namespaced_controller",
		"SELECT 1 /*action='index',controller='posts',namespaced_controller='admin%2Fposts'*/",
		"controller=posts action=index", "", ""},
	{"rails 7.2 source_location",
		"SELECT 1 /*action='index',application='App',controller='posts',"
		"source_location='app%2Fcontrollers%2Fposts_controller.rb%3A12%3Ain%20%60index%27'*/",
		"controller=posts action=index", "app/controllers/posts_controller.rb:12:in `index'", ""},
	/* python's sqlcommenter doubles %, which psycopg2 undoes only when given parameters */
	{"sqlcommenter %% left by a statement without parameters",
		"SELECT 1 /*controller='post_list',route='%%5Eapi%%2Fposts%%2F'*/",
		"controller=post_list route=^api/posts/", "", ""},
	{"a single % before hex digits still decodes",
		"SELECT 1 /*route='a%25b%2F'*/", "route=a%b/", "", ""},
};

static int	failures = 0;

static void
check(const char *name, const char *what, const char *got, const char *want)
{
	if (strcmp(got, want) != 0)
	{
		printf("FAIL %s: %s = \"%s\", want \"%s\"\n", name, what, got, want);
		failures++;
	}
}

/* The tags of a case's statement, from an exact-size copy (ASan sees any read past its end). */
static void
case_tags(const Case *c, N1QueryTags *tags)
{
	size_t		len = strlen(c->sql);
	char	   *sql = malloc(len ? len : 1);

	memcpy(sql, c->sql, len);
	n1_query_tags(sql, len, tags);
	free(sql);
}

/* a long source value is cut at the buffer, terminated */
static void
test_bounds(void)
{
	size_t		n = 1024 * 1024;
	char	   *sql = malloc(n + 64);
	N1QueryTags tags;
	size_t		len;

	/* a 1 MB comment: beyond N1_COMMENT_SCAN, no tags, and no crash */
	strcpy(sql, "SELECT 1 /*controller:");
	len = strlen(sql);
	memset(sql + len, 'x', n);
	strcpy(sql + len + n, "*/");
	if (n1_query_tags(sql, strlen(sql), &tags) || tags.source[0] != '\0')
	{
		printf("FAIL 1 MB comment gave tags\n");
		failures++;
	}
	if (n1_query_trace_hash(sql, strlen(sql)) != 0)
	{
		printf("FAIL 1 MB comment gave a trace hash\n");
		failures++;
	}
	/* 1 MB leading, unterminated */
	memset(sql, 'y', n);
	memcpy(sql, "/*controller:", 13);
	if (n1_query_tags(sql, n, &tags))
	{
		printf("FAIL 1 MB unterminated leading comment gave tags\n");
		failures++;
	}
	/* values longer than the buffers are cut, still terminated */
	strcpy(sql, "SELECT 1 /*controller:");
	len = strlen(sql);
	memset(sql + len, 'c', 1000);
	strcpy(sql + len + 1000, ",line:");
	len = strlen(sql);
	memset(sql + len, 'l', 1000);
	strcpy(sql + len + 1000, ",traceparent='");
	len = strlen(sql);
	memset(sql + len, 't', 1000);
	strcpy(sql + len + 1000, "'*/");
	if (!n1_query_tags(sql, strlen(sql), &tags) ||
		strlen(tags.source) != N1_SOURCE_LEN - 1 ||
		strncmp(tags.source, "controller=ccc", 14) != 0 ||
		strlen(tags.code_line) != N1_CODE_LINE_LEN - 1 ||
		strlen(tags.trace_id) != N1_TRACE_ID_LEN - 1 ||
		tags.trace_hash != n1_query_trace_hash(sql, strlen(sql)))
	{
		printf("FAIL long values: source %zu code_line %zu trace_id %zu\n",
			   strlen(tags.source), strlen(tags.code_line), strlen(tags.trace_id));
		failures++;
	}
	free(sql);
}

/* the trace hash of the hot path equals the parser's, and tells ids apart */
static void
test_trace_hash(void)
{
	const char *a = "SELECT 1 /*traceparent='00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'*/";
	const char *a2 = "/*traceparent='00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01'*/ SELECT 2";
	const char *b = "SELECT 1 /*traceparent='00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01'*/";
	const char *r = "SELECT 1 /*request_id='r1',request_id='r2'*/";
	N1QueryTags tags;

	n1_query_tags(a, strlen(a), &tags);
	if (tags.trace_hash == 0 || tags.trace_hash != n1_query_trace_hash(a, strlen(a)))
	{
		printf("FAIL trace hash differs from the parser's\n");
		failures++;
	}
	/* same trace, other span: same request */
	if (n1_query_trace_hash(a, strlen(a)) != n1_query_trace_hash(a2, strlen(a2)))
	{
		printf("FAIL spans of one trace differ\n");
		failures++;
	}
	if (n1_query_trace_hash(a, strlen(a)) == n1_query_trace_hash(b, strlen(b)))
	{
		printf("FAIL two traces hash alike\n");
		failures++;
	}
	n1_query_tags(r, strlen(r), &tags);
	check("two request ids", "trace_id", tags.trace_id, "r1");
	if (tags.trace_hash != n1_query_trace_hash(r, strlen(r)))
	{
		printf("FAIL request id hash differs from the parser's\n");
		failures++;
	}
	if (n1_query_trace_hash("SELECT 1", 8) != 0 || n1_query_trace_hash(NULL, 0) != 0)
	{
		printf("FAIL trace hash of a statement without comment\n");
		failures++;
	}
}

/*
 * The cached trace hash of the hot path equals the uncached one, whatever
 * came before: random statements made of pieces that open, close and nest
 * comments, quote, pad and repeat a few comments (so the cache is hit, also
 * by texts that merely end or start alike).
 */
static void
test_trace_cache(void)
{
	static const char *const pieces[] = {
		"SELECT 1", "SELECT '/*'", " ", "\n", ";", "*", "/", "/*", "*/", "'",
		"/*traceparent='00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'*/",
		"/*traceparent='00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01'*/",
		"/*controller='a',route='%5Eapi/',traceparent='00-0af7651916cd43dd8448eb211c80319c-01'*/",
		"/*request_id='r1'*/", "/*application:Shop,controller:posts,action:index*/",
		"/* outer /*traceparent='00-5bd66ef5095369c7b0d1f8f4bd33716a-c532cb4098ac3dd2-01'*/ */",
		"traceparent='00-5bd66ef5095369c7b0d1f8f4bd33716a-c532cb4098ac3dd2-01'", "x-request-id:r2",
	};
	const int	n_pieces = (int) (sizeof(pieces) / sizeof(pieces[0]));
	static N1TraceCache cache;	/* zeroed */
	unsigned long long rnd = 42;
	int			bad = 0;
	int			found = 0;

	for (int i = 0; i < 300000 && bad < 5; i++)
	{
		char		text[1024];
		size_t		len = 0;
		int			n;
		char	   *sql;

		rnd = rnd * 6364136223846793005ULL + 1442695040888963407ULL;
		n = 1 + (int) ((rnd >> 33) % 6);
		for (int k = 0; k < n; k++)
		{
			const char *p;

			rnd = rnd * 6364136223846793005ULL + 1442695040888963407ULL;
			p = pieces[(rnd >> 33) % n_pieces];
			memcpy(text + len, p, strlen(p));
			len += strlen(p);
		}
		/* exact-size copy, so that ASan sees any read past the end */
		sql = malloc(len ? len : 1);
		memcpy(sql, text, len);
		{
			uint64_t	want = n1_query_trace_hash(sql, len);
			N1CommentSpan span;
			N1CommentSpan want_span;
			uint64_t	got = n1_query_trace_hash_cached(&cache, sql, len, &span);

			if (got != want)
			{
				printf("FAIL cached trace hash of \"%.*s\" differs\n", (int) len, text);
				bad++;
			}
			/* the trailing comment it reports is the uncached finder's */
			if (n1_comment_trailing(sql, len, &want_span) != (span.end > span.start) ||
				span.start != want_span.start || span.end != want_span.end)
			{
				printf("FAIL trailing comment of \"%.*s\" differs\n", (int) len, text);
				bad++;
			}
			found += (want != 0);
		}
		free(sql);
	}
	if (found < 1000)
	{
		printf("FAIL trace cache test: only %d statements with a trace id\n", found);
		bad++;
	}
	failures += bad;
}

/* n1_comment_skip_leading: where the first token is, never past len or a NUL. */
static void
test_skip_leading(void)
{
	static const struct
	{
		const char *sql;
		size_t		len;		/* 0: strlen */
		size_t		want;
	}			cases[] = {
		{"SELECT 1", 0, 0},
		{"  SELECT 1", 0, 2},
		{"/* a */ SELECT 1", 0, 8},
		{"/* a /* nested */ b */SELECT 1", 0, 22},
		{"-- line\n  SELECT 1", 0, 10},
		{"/* a */ -- b\n/*c*/SELECT", 0, 18},
		{"/* unterminated", 0, 0},
		{"/* a */", 0, 7},
		{"--", 0, 2},
		{"/* a */ SELECT", 5, 0},	/* the comment does not end within len */
		{"   ", 2, 2},
		{"", 0, 0},
	};
	int			bad = 0;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		size_t		len = cases[i].len ? cases[i].len : strlen(cases[i].sql);
		/* exact-size copy: ASan sees a read past len */
		char	   *sql = malloc(len ? len : 1);
		size_t		got;

		memcpy(sql, cases[i].sql, len);
		got = n1_comment_skip_leading(sql, len);
		if (got != cases[i].want || n1_comment_skip_leading_fast(sql, len) != got)
		{
			printf("FAIL skip_leading(\"%s\", %zu) = %zu, expected %zu\n",
				   cases[i].sql, len, got, cases[i].want);
			bad++;
		}
		free(sql);
	}
	/* a NUL ends the text whatever len says */
	if (n1_comment_skip_leading("  \0  SELECT", SIZE_MAX) != 2 ||
		n1_comment_skip_leading("/* a \0 */ SELECT", SIZE_MAX) != 0)
	{
		printf("FAIL skip_leading: read past a NUL\n");
		bad++;
	}
	failures += bad > 0;
}

int
main(void)
{
	int			n = (int) (sizeof(cases) / sizeof(cases[0]));

	for (int i = 0; i < n; i++)
	{
		const Case *c = &cases[i];
		N1QueryTags tags;

		case_tags(c, &tags);
		check(c->name, "source", tags.source, c->source);
		check(c->name, "code_line", tags.code_line, c->code_line);
		check(c->name, "trace_id", tags.trace_id, c->trace_id);
		if ((tags.source[0] != '\0') != (tags.source_hash != 0) ||
			(tags.trace_id[0] != '\0') != (tags.trace_hash != 0))
		{
			printf("FAIL %s: hashes do not match the texts\n", c->name);
			failures++;
		}
	}
	test_bounds();
	test_trace_hash();
	test_trace_cache();
	test_skip_leading();
	/* the line tools/test counts */
	printf("unit: %d passed, %d failed\n", n + 4 - Min(failures, n + 4), Min(failures, n + 4));
	return failures ? 1 : 0;
}
