/*
 * n1scan.c
 *		n1scan: find N+1 queries in PostgreSQL server logs.  Owns the
 *		program: options, statement events out of log entries, sessions and
 *		their units of work, feeding the detector core (src/core/detector.c,
 *		the extension's own), aggregating bursts into offenders, and the
 *		report (text like n1_offenders, or JSON), with --fail-on for CI.
 *
 * Logs carry no result values, so every statement is fed with
 * n_values = n_result_values = N1_VALUES_UNKNOWN: the detector names
 * parents with its timing rule (the most recently active earlier query with
 * fewer calls), never with values.  Rows are unknown too (rows = 2: any
 * earlier query may be a parent) unless auto_explain logged the statement's
 * plan with actual rows just before it.  Sessions are keyed by the
 * session id (%c, csv/json session_id), else by pid.  A unit ends at
 * COMMIT/ROLLBACK (or a change of virtual transaction id after a block),
 * an idle gap, a change of application_name, a disconnection, and at the
 * end of the input; statements of another trace id (or request id) in
 * their comment go to a unit of their own, up to TRACE_UNITS a session (a
 * transaction-mode pooler interleaves requests on one backend), as in the
 * extension.  Rows are keyed like n1_offenders' (src/server/offenders.c):
 * query, parent, kind and source, the tags (src/core/query_comment.c) of
 * the call that made each burst, so that each endpoint has its own row; the
 * code line is the latest burst's.
 *
 * Must never: abort on input, keep unbounded state (sessions, their units,
 * offenders, query texts and the text cache are capped), call
 * pg_query_exit() before the end.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "detector.h"
#include "n1scan.h"
#include "query_comment.h"
#include "value_hash.h"

#define UNIT_QUERIES N1_UNIT_MAX_QUERIES
#define OFFENDER_SAMPLES 3
/* open units of one session, one per trace id (the extension's N1_TRACE_UNITS) */
#define TRACE_UNITS 8

/* A burst of the open unit: where it started, and its call's values and tags. */
typedef struct BurstInfo
{
	const char *file;
	long		line;
	char		sample[NORM_MAX_SAMPLE];
	uint64_t	source_hash;	/* 0: no source */
	char		source[N1_SOURCE_LEN];
	char		code_line[N1_CODE_LINE_LEN];
} BurstInfo;

/*
 * A unit of work of a session: statements without a trace id, or those of
 * one trace id (a session shared through a transaction-mode pooler
 * interleaves requests, as in src/server/query_comment.c).
 */
typedef struct Unit
{
	struct Session *session;
	uint64_t	trace_hash;		/* 0: no trace id seen yet */
	uint64_t	last_used;
	/* the open unit: where each query was first seen, and its bursts */
	int			nq;
	uint64_t	qkeys[UNIT_QUERIES];
	long		qlines[UNIT_QUERIES];
	BurstInfo	bursts[N1_UNIT_MAX_BURSTS];
	N1Detector	det;
} Unit;

typedef struct Session
{
	char		key[64];
	uint64_t	hash;
	struct Session *hnext;
	struct Session *prev,
			   *next;			/* LRU list, most recent first */
	int64_t		last_ts;
	bool		has_app;
	char		app[64];
	char		vxid[32];
	int			vxid_stmts;
	uint64_t	last_key;		/* key of the latest statement (for a later "duration:" line) */
	/* auto_explain: rows of the plan logged just before its statement */
	bool		has_plan_rows;
	uint64_t	plan_rows;
	char		plan_text[64];	/* start of its Query Text */
	/* units: the first from the start, the others at the first need */
	int64_t		max_gap_us;
	int			n_units;
	Unit	   *units[TRACE_UNITS];
	Unit	   *cur;			/* the unit of the latest statement */
} Session;

/* One row: query, parent, kind and source (one row per endpoint, as in n1_offenders). */
typedef struct Offender
{
	uint64_t	qkey;			/* 0 = free slot */
	uint64_t	parent;
	N1Kind		kind;
	uint64_t	source_hash;
	int64_t		log_qid;
	int64_t		parent_log_qid;
	int64_t		bursts,
				calls,
				max_calls,
				distinct;
	int64_t		exec_us;
	int64_t		first_us,
				last_us;
	char		app[64];
	char		source[N1_SOURCE_LEN];	/* of the latest burst, "" without a comment */
	char		code_line[N1_CODE_LINE_LEN];
	int			n_samples;
	char		samples[OFFENDER_SAMPLES][NORM_MAX_SAMPLE];
	const char *file;
	long		line;
} Offender;

/* log query_id (%Q) per key, when logged: a small direct-mapped table */
#define QID_SLOTS 65536
typedef struct QidSlot
{
	uint64_t	key;
	int64_t		qid;
} QidSlot;

static struct
{
	/* options */
	int			min_calls;
	int64_t		max_gap_us;
	size_t		max_sessions;
	size_t		max_offenders;
	bool		json;
	bool		quiet;
	unsigned	fail_on;		/* bit per N1Kind */
	/* sessions */
	Session   **buckets;
	size_t		nbuckets;
	size_t		nsessions;
	Session    *lru_head,
			   *lru_tail;
	/* units beyond a session's first, in all */
	size_t		max_extra_units;
	size_t		extra_units;
	uint64_t	use_clock;		/* orders units by last use */
	/* offenders */
	Offender   *off;
	size_t		off_mask;
	size_t		noff;
	uint64_t	off_dropped;
	QidSlot    *qids;
	/* counters */
	uint64_t	statements;
	uint64_t	unknown_params; /* calls with $n but no logged values */
	uint64_t	sessions_evicted_active;
	uint64_t	sessions_seen;
} S;

/* ---------- offenders ---------- */

static Offender *
offender_slot(uint64_t qkey, uint64_t parent, N1Kind kind, uint64_t source_hash)
{
	uint64_t	h = n1_hash_mix(qkey ^ n1_hash_mix(parent + (uint64_t) kind) ^ source_hash);
	size_t		i = (size_t) h & S.off_mask;

	while (S.off[i].qkey != 0 &&
		   !(S.off[i].qkey == qkey && S.off[i].parent == parent && S.off[i].kind == kind &&
			 S.off[i].source_hash == source_hash))
		i = (i + 1) & S.off_mask;
	return &S.off[i];
}

static int64_t
log_qid(uint64_t key)
{
	QidSlot    *q = &S.qids[key & (QID_SLOTS - 1)];

	return q->key == key ? q->qid : 0;
}

static void
remember_qid(uint64_t key, int64_t qid)
{
	QidSlot    *q = &S.qids[key & (QID_SLOTS - 1)];

	if (key == 0 || qid == 0)
		return;
	q->key = key;
	q->qid = qid;
}

static void
burst_ended(void *arg, const N1Burst *b, N1UnitEndReason reason)
{
	Unit	   *u = arg;
	Session    *s = u->session;
	const BurstInfo *bi = &u->bursts[b->index];
	Offender   *o;

	(void) reason;
	if (b->kind == N1_KIND_NONE)
		return;
	o = offender_slot(b->query_id, b->parent_query_id, b->kind, bi->source_hash);
	if (o->qkey == 0)
	{
		if (S.noff >= S.max_offenders)
		{
			S.off_dropped++;
			return;
		}
		S.noff++;
		memset(o, 0, sizeof(*o));
		o->qkey = b->query_id;
		o->parent = b->parent_query_id;
		o->kind = b->kind;
		o->source_hash = bi->source_hash;
		o->first_us = b->first_start_us;
		o->file = bi->file;
		o->line = bi->line;
	}
	o->bursts++;
	o->calls += b->calls;
	if (b->calls > o->max_calls)
		o->max_calls = b->calls;
	if (b->distinct_params > o->distinct)
		o->distinct = b->distinct_params;
	o->exec_us += b->exec_us;
	if (b->first_start_us < o->first_us)
		o->first_us = b->first_start_us;
	if (b->last_end_us >= o->last_us)
	{
		/* the latest burst gives the code line (the source is the row's) */
		o->last_us = b->last_end_us;
		memcpy(o->source, bi->source, sizeof(o->source));
		memcpy(o->code_line, bi->code_line, sizeof(o->code_line));
	}
	if (s->has_app)
		snprintf(o->app, sizeof(o->app), "%s", s->app);
	if (o->n_samples < OFFENDER_SAMPLES && bi->sample[0])
		snprintf(o->samples[o->n_samples++], NORM_MAX_SAMPLE, "%s", bi->sample);
	if (o->log_qid == 0)
		o->log_qid = log_qid(b->query_id);
	if (o->parent_log_qid == 0 && b->parent_query_id)
		o->parent_log_qid = log_qid(b->parent_query_id);
}

/* ---------- sessions ---------- */

static void
lru_unlink(Session *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		S.lru_head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	else
		S.lru_tail = s->prev;
	s->prev = s->next = NULL;
}

static void
lru_push(Session *s)
{
	s->next = S.lru_head;
	s->prev = NULL;
	if (S.lru_head)
		S.lru_head->prev = s;
	S.lru_head = s;
	if (S.lru_tail == NULL)
		S.lru_tail = s;
}

static Unit *
unit_new(Session *s)
{
	Unit	   *u = calloc(1, sizeof(Unit));
	N1DetectorConfig cfg = {
		.min_calls = S.min_calls,
		.min_calls_proven = 0,
		.max_gap_us = s->max_gap_us,
		.burst_ended = burst_ended,
		.arg = u
	};

	if (u == NULL)
	{
		fprintf(stderr, "n1scan: out of memory\n");
		exit(2);
	}
	u->session = s;
	n1_detector_init(&u->det, &cfg);
	s->units[s->n_units++] = u;
	return u;
}

static bool
session_in_unit(const Session *s)
{
	for (int i = 0; i < s->n_units; i++)
		if (s->units[i]->det.in_unit)
			return true;
	return false;
}

static void
session_drop(Session *s, N1UnitEndReason reason)
{
	Session   **pp = &S.buckets[s->hash % S.nbuckets];

	for (int i = 0; i < s->n_units; i++)
	{
		n1_detector_end_unit(&s->units[i]->det, reason);
		free(s->units[i]);
	}
	S.extra_units -= s->n_units - 1;
	while (*pp != s)
		pp = &(*pp)->hnext;
	*pp = s->hnext;
	lru_unlink(s);
	S.nsessions--;
	free(s);
}

static Session *
session_get(const LogEntry *e, bool create)
{
	char		key[64];
	uint64_t	h;
	Session    *s;

	if (e->session[0])
		snprintf(key, sizeof(key), "%s", e->session);
	else
		snprintf(key, sizeof(key), "pid:%d", e->pid);
	h = n1_hash_text_value(key, (int) strlen(key));
	for (s = S.buckets[h % S.nbuckets]; s; s = s->hnext)
		if (s->hash == h && strcmp(s->key, key) == 0)
		{
			if (S.lru_head != s)
			{
				lru_unlink(s);
				lru_push(s);
			}
			return s;
		}
	if (!create)
		return NULL;
	if (S.nsessions >= S.max_sessions)
	{
		Session    *old = S.lru_tail;
		bool		idle = e->ts_us - old->last_ts > S.max_gap_us + e->ts_precision_us;

		if (!idle && session_in_unit(old))
			S.sessions_evicted_active++;
		session_drop(old, idle ? N1_END_GAP : N1_END_EXIT);
	}
	s = calloc(1, sizeof(Session));
	if (s == NULL)
	{
		fprintf(stderr, "n1scan: out of memory\n");
		exit(2);
	}
	memcpy(s->key, key, sizeof(key));
	s->hash = h;
	s->hnext = S.buckets[h % S.nbuckets];
	S.buckets[h % S.nbuckets] = s;
	lru_push(s);
	S.nsessions++;
	S.sessions_seen++;
	/* second-precision timestamps (%t) blur gaps by up to a second */
	s->max_gap_us = S.max_gap_us + (e->ts_precision_us >= 1000000 ? e->ts_precision_us : 0);
	s->cur = unit_new(s);
	return s;
}

/*
 * The unit for a statement of trace id trace (not 0), which differs from the
 * current unit's, as the extension chooses it (src/server/query_comment.c):
 * the current unit takes it when it has none yet (a request's first
 * statements may carry no comment); else the unit of that trace id, or one
 * with no open unit of work (the current one first: a session without a
 * pooler keeps one unit), or a new one, or the one idle the longest (its
 * unit ends).  Units idle longer than the gap end here too.  At most
 * TRACE_UNITS a session, and max_extra_units beyond the first in all.
 */
static Unit *
unit_switch(Session *s, uint64_t trace, int64_t now_us)
{
	Unit	   *cur = s->cur,
			   *chosen = NULL,
			   *oldest = NULL;

	cur->last_used = ++S.use_clock;
	if (cur->trace_hash == 0)
	{
		cur->trace_hash = trace;
		return cur;
	}
	for (int i = 0; i < s->n_units; i++)
	{
		Unit	   *u = s->units[i];

		if (u->trace_hash == trace)
			chosen = u;
		else if (u != cur && u->det.in_unit && now_us - u->det.last_activity_us > s->max_gap_us)
			n1_detector_end_unit(&u->det, N1_END_GAP);
	}
	if (chosen)
		return chosen;
	if (!cur->det.in_unit)
		chosen = cur;
	for (int i = 0; i < s->n_units && chosen == NULL; i++)
	{
		Unit	   *u = s->units[i];

		if (u != cur && !u->det.in_unit)
			chosen = u;
		else if (u != cur && (oldest == NULL || u->last_used < oldest->last_used))
			oldest = u;
	}
	if (chosen == NULL && s->n_units < TRACE_UNITS && S.extra_units < S.max_extra_units)
	{
		chosen = unit_new(s);
		S.extra_units++;
	}
	if (chosen == NULL)
	{
		chosen = oldest ? oldest : cur;
		n1_detector_end_unit(&chosen->det, N1_END_REQUEST);
	}
	chosen->trace_hash = trace;
	return chosen;
}

/* ---------- statement events ---------- */

static bool
starts(const char *p, const char *word)
{
	return strncmp(p, word, strlen(word)) == 0;
}

static void
statement(Session *s, const LogEntry *e, const char *text, size_t len, int64_t dur_us,
		  const char *params, size_t params_len)
{
	NormResult nr;
	N1Statement st;
	N1StatementResult res;
	uint64_t	trace = n1_query_trace_hash(text, len);
	Unit	   *u;

	norm_statement(text, len, &nr);
	S.statements++;

	if (e->vxid[0] && !(strlen(e->vxid) >= 2 && strcmp(e->vxid + strlen(e->vxid) - 2, "/0") == 0))
	{
		if (strcmp(e->vxid, s->vxid) != 0)
		{
			/*
			 * a new transaction after a block of several statements: the
			 * block's unit (the latest statement's) ends
			 */
			if (s->vxid_stmts >= 2)
				n1_detector_end_unit(&s->cur->det, N1_END_TRANSACTION);
			snprintf(s->vxid, sizeof(s->vxid), "%s", e->vxid);
			s->vxid_stmts = 0;
		}
		s->vxid_stmts++;
	}

	/*
	 * A change of application_name ends the current unit unless it is a
	 * trace id's (behind a pooler the name changes with every switch of
	 * client); then a trace id (or request id) in the comment other than
	 * the current unit's takes the statement to that trace id's unit.  In
	 * this order, as in the extension.
	 */
	if (e->has_app)
	{
		if (s->has_app && strcmp(s->app, e->app) != 0 && s->cur->trace_hash == 0)
			n1_detector_end_unit(&s->cur->det, N1_END_APPLICATION);
		snprintf(s->app, sizeof(s->app), "%s", e->app);
		s->has_app = true;
	}
	if (trace != 0 && trace != s->cur->trace_hash)
		s->cur = unit_switch(s, trace, e->ts_us - dur_us);
	u = s->cur;
	memset(&st, 0, sizeof(st));
	st.query_id = nr.key;
	st.end_us = e->ts_us;
	st.start_us = e->ts_us - dur_us;
	st.rows = 2;				/* unknown: every earlier query may be a parent */
	if (s->has_plan_rows)
	{
		size_t		n = strlen(s->plan_text);

		/* auto_explain's plan of this very statement: its actual rows */
		if (len >= n && memcmp(text, s->plan_text, n) == 0)
			st.rows = s->plan_rows;
		s->has_plan_rows = false;
	}
	st.n_values = N1_VALUES_UNKNOWN;
	st.n_result_values = N1_VALUES_UNKNOWN;
	if (params != NULL)
	{
		st.param_hash = norm_param_hash(params, params_len);
		snprintf(nr.sample, sizeof(nr.sample), "%.*s", (int) (params_len < NORM_MAX_SAMPLE ? params_len : NORM_MAX_SAMPLE - 1), params);
	}
	else if (nr.placeholders)
	{
		/*
		 * Bound values not logged (log_parameter_max_length = 0, or a
		 * message without its DETAIL line): taken as distinct, so such a
		 * loop is an N+1 or a loop, never a duplicate.
		 */
		st.param_hash = n1_hash_int((int64_t) ++S.unknown_params);
		snprintf(nr.sample, sizeof(nr.sample), "(not logged)");
	}
	else
		st.param_hash = nr.param_hash;
	if (e->has_query_id && !nr.cursor)
		remember_qid(nr.key, e->query_id);	/* (a DECLARE's id is not its query's) */
	n1_detector_statement(&u->det, &st, &res);
	s->last_ts = e->ts_us;
	s->last_key = nr.key;
	if (res.unit_started)
		u->nq = 0;
	if (nr.key != 0)
	{
		int			i;

		for (i = 0; i < u->nq; i++)
			if (u->qkeys[i] == nr.key)
				break;
		if (i == u->nq && u->nq < UNIT_QUERIES)
		{
			u->qkeys[u->nq] = nr.key;
			u->qlines[u->nq++] = e->line;
		}
		if (res.crossed && res.burst)
		{
			/* the call that makes the burst gives its tags, as in the extension */
			BurstInfo  *bi = &u->bursts[res.burst->index];
			N1QueryTags tags;

			bi->file = e->file;
			bi->line = i < u->nq ? u->qlines[i] : e->line;
			memcpy(bi->sample, nr.sample, NORM_MAX_SAMPLE);
			n1_query_tags(text, len, &tags);
			bi->source_hash = tags.source_hash;
			memcpy(bi->source, tags.source, sizeof(bi->source));
			memcpy(bi->code_line, tags.code_line, sizeof(bi->code_line));
		}
	}
	if (nr.cls == STMT_END_BLOCK)
	{
		n1_detector_end_unit(&u->det, N1_END_TRANSACTION);
		s->vxid[0] = '\0';
		s->vxid_stmts = 0;
	}
}

/* "1.234 ms  " at p: microseconds, and *p moved past it; -1 if not */
static int64_t
duration(const char **pp)
{
	char	   *end;
	double		ms = strtod(*pp, &end);

	if (end == *pp || strncmp(end, " ms", 3) != 0)
		return -1;
	*pp = end + 3;
	while (**pp == ' ')
		(*pp)++;
	return (int64_t) (ms * 1000.0);
}

/*
 * The bound values of an extended-protocol entry, from its DETAIL:
 * "parameters: $1 = '5'" up to PostgreSQL 17, "Parameters: $1 = '5'" from
 * 18.  Both versions give them with the execute line, whether it is logged
 * before the statement runs (log_statement = all; its "duration:" line then
 * comes bare) or after it, with its duration (log_min_duration_statement);
 * the bind line's copy is not needed.  NULL when not logged
 * (log_parameter_max_length = 0, or no parameters).
 */
static const char *
bound_params(const LogEntry *e, size_t *len)
{
	const char *d = e->detail.data;

	if (d == NULL || e->detail.len < 12 || (d[0] != 'p' && d[0] != 'P') ||
		strncmp(d + 1, "arameters: ", 11) != 0)
		return NULL;
	*len = e->detail.len - 12;
	return d + 12;
}

static void
entry(LogEntry *e, void *arg)
{
	const char *m = e->message.data;
	int64_t		dur = 0;
	Session    *s;

	(void) arg;
	if (m == NULL || strcmp(e->severity, "LOG") != 0 || e->ts_us == 0)
		return;
	if (starts(m, "duration: "))
	{
		m += 10;
		dur = duration(&m);
		if (dur < 0)
			return;
		if (*m == '\0')
		{
			/*
			 * A bare "duration:" line: its statement was logged before it ran
			 * (log_statement), without a query id; the id comes now.
			 */
			if (e->has_query_id && (s = session_get(e, false)) != NULL)
				remember_qid(s->last_key, e->query_id);
			return;
		}
	}
	if (starts(m, "plan:"))
	{
		/*
		 * auto_explain (log_analyze = on, text format): "Query Text: ..."
		 * then the plan, whose first node's "actual ... rows=N" is what the
		 * statement returned.  Kept for the session's next statement.
		 */
		const char *qt = strstr(m, "Query Text: ");
		const char *act = qt ? strstr(qt, "(actual ") : NULL;
		const char *rows = act ? strstr(act, "rows=") : NULL;

		if (rows != NULL && (s = session_get(e, true)) != NULL)
		{
			size_t		n = strcspn(qt + 12, "\n");

			if (n >= sizeof(s->plan_text))
				n = sizeof(s->plan_text) - 1;
			memcpy(s->plan_text, qt + 12, n);
			s->plan_text[n] = '\0';
			s->plan_rows = strtoull(rows + 5, NULL, 10);
			s->has_plan_rows = true;
		}
		return;
	}
	if (starts(m, "statement: "))
	{
		m += 11;
		s = session_get(e, true);
		statement(s, e, m, e->message.data + e->message.len - m, dur, NULL, 0);
	}
	else if (starts(m, "execute fetch from "))
	{
		/*
		 * More rows of a portal run with a row limit (JDBC's fetchSize):
		 * the same execution, not another call.
		 */
	}
	else if (starts(m, "execute "))
	{
		const char *colon = strstr(m, ": ");
		size_t		plen = 0;
		const char *params = bound_params(e, &plen);

		if (colon == NULL)
			return;
		m = colon + 2;
		s = session_get(e, true);
		statement(s, e, m, e->message.data + e->message.len - m, dur, params, plen);
	}
	else if (starts(m, "disconnection: "))
	{
		s = session_get(e, false);
		if (s)
			session_drop(s, N1_END_EXIT);
	}
	/* parse/bind phases, connections and other messages: nothing */
}

/* ---------- report ---------- */

static void
format_ts(int64_t us, char *out, size_t size)
{
	time_t		t = (time_t) (us / 1000000);
	struct tm	tm;
	int64_t		ms = (us % 1000000) / 1000;

	if (ms < 0)
	{
		ms += 1000;
		t--;
	}
	gmtime_r(&t, &tm);
	snprintf(out, size, "%04d-%02d-%02d %02d:%02d:%02d.%03d", tm.tm_year + 1900, tm.tm_mon + 1,
			 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int) ms);
}

static void
json_str(FILE *f, const char *s)
{
	if (s == NULL)
	{
		fputs("null", f);
		return;
	}
	fputc('"', f);
	for (; *s; s++)
	{
		unsigned char c = (unsigned char) *s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", f);
		else if (c == '\t')
			fputs("\\t", f);
		else if (c == '\r')
			fputs("\\r", f);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static int
kind_rank(N1Kind k)
{
	return k == N1_KIND_N_PLUS_ONE ? 0 : k == N1_KIND_DUPLICATE ? 1 : 2;
}

static int
cmp_off(const void *a, const void *b)
{
	const Offender *x = *(Offender * const *) a,
			   *y = *(Offender * const *) b;
	const char *tx,
			   *ty;

	if (kind_rank(x->kind) != kind_rank(y->kind))
		return kind_rank(x->kind) - kind_rank(y->kind);
	if (x->calls != y->calls)
		return x->calls > y->calls ? -1 : 1;
	tx = norm_query_text(x->qkey, NULL, NULL);
	ty = norm_query_text(y->qkey, NULL, NULL);
	if (strcmp(tx ? tx : "", ty ? ty : "") != 0)
		return strcmp(tx ? tx : "", ty ? ty : "");
	return strcmp(x->source, y->source);
}

static int
report(FILE *f)
{
	Offender  **list = malloc((S.noff + 1) * sizeof(Offender *));
	size_t		n = 0;
	int			failed = 0;

	for (size_t i = 0; i <= S.off_mask; i++)
		if (S.off[i].qkey != 0)
			list[n++] = &S.off[i];
	qsort(list, n, sizeof(Offender *), cmp_off);
	if (S.json)
		fputs("[", f);
	for (size_t i = 0; i < n; i++)
	{
		Offender   *o = list[i];
		const char *fp = NULL;
		const char *q = norm_query_text(o->qkey, &fp, NULL);
		const char *pq = o->parent ? norm_query_text(o->parent, NULL, NULL) : NULL;
		char		first[48],
					last[48];

		if (S.fail_on & (1u << o->kind))
			failed = 1;
		format_ts(o->first_us, first, sizeof(first));
		format_ts(o->last_us, last, sizeof(last));
		if (S.json)
		{
			fputs(i ? ",\n {" : "\n {", f);
			fputs("\"kind\": ", f);
			json_str(f, n1_kind_name(o->kind));
			fputs(", \"query\": ", f);
			json_str(f, q ? q : "(text not kept)");
			fputs(", \"parent_query\": ", f);
			json_str(f, o->parent ? (pq ? pq : "(text not kept)") : NULL);
			if (o->log_qid)
				fprintf(f, ", \"queryid\": %lld", (long long) o->log_qid);
			else
				fputs(", \"queryid\": null", f);
			if (o->parent_log_qid)
				fprintf(f, ", \"parent_queryid\": %lld", (long long) o->parent_log_qid);
			else
				fputs(", \"parent_queryid\": null", f);
			fputs(", \"fingerprint\": ", f);
			json_str(f, fp && fp[0] ? fp : NULL);
			fprintf(f, ", \"bursts\": %lld, \"calls\": %lld, \"max_calls\": %lld, \"distinct_params\": %lld, \"total_ms\": %.3f",
					(long long) o->bursts, (long long) o->calls, (long long) o->max_calls,
					(long long) o->distinct, o->exec_us / 1000.0);
			fputs(", \"first_seen\": ", f);
			json_str(f, first);
			fputs(", \"last_seen\": ", f);
			json_str(f, last);
			fputs(", \"application_name\": ", f);
			json_str(f, o->app);
			fputs(", \"source\": ", f);
			json_str(f, o->source[0] ? o->source : NULL);
			fputs(", \"code_line\": ", f);
			json_str(f, o->code_line[0] ? o->code_line : NULL);
			fputs(", \"sample_params\": [", f);
			for (int k = 0; k < o->n_samples; k++)
			{
				if (k)
					fputs(", ", f);
				json_str(f, o->samples[k]);
			}
			fputs("], \"log_file\": ", f);
			json_str(f, o->file);
			fprintf(f, ", \"log_line\": %ld}", o->line);
		}
		else
		{
			fprintf(f, "%s: %s\n", n1_kind_name(o->kind), q ? q : "(text not kept)");
			if (o->parent)
				fprintf(f, "  parent query:    %s\n", pq ? pq : "(text not kept)");
			fprintf(f, "  bursts %lld, calls %lld, max calls %lld, distinct params %lld, total %.3f ms\n",
					(long long) o->bursts, (long long) o->calls, (long long) o->max_calls,
					(long long) o->distinct, o->exec_us / 1000.0);
			fprintf(f, "  first seen %s, last seen %s (log time)", first, last);
			if (o->app[0])
				fprintf(f, ", application %s", o->app);
			fputc('\n', f);
			if (o->source[0])
				fprintf(f, "  source:          %s\n", o->source);
			if (o->code_line[0])
				fprintf(f, "  code line:       %s\n", o->code_line);
			if (o->log_qid)
				fprintf(f, "  queryid %lld\n", (long long) o->log_qid);
			for (int k = 0; k < o->n_samples; k++)
				fprintf(f, "  sample params:   %s\n", o->samples[k]);
			fprintf(f, "  first burst at   %s:%ld\n\n", o->file ? o->file : "?", o->line);
		}
	}
	if (S.json)
		fputs(n ? "\n]\n" : "]\n", f);
	else if (n == 0)
		fputs("no N+1, duplicate or loop found\n", f);
	free(list);
	return failed;
}

/* ---------- main ---------- */

static void
usage(FILE *f)
{
	fputs("Usage: n1scan [OPTION]... [FILE]...\n"
		  "Find N+1 queries, duplicates and loops in PostgreSQL server logs (stderr with a\n"
		  "log_line_prefix, csvlog, jsonlog; plain or gzip; FILE - or none: standard input).\n\n"
		  "  --prefix=STRING       the server's log_line_prefix (default: detect common ones)\n"
		  "  --log-format=F        auto (default), stderr, csv or json\n"
		  "  --format=F            report as text (default) or json\n"
		  "  --fail-on=KINDS       exit 1 if a row of these kinds is found\n"
		  "                        (n_plus_one,duplicate,loop)\n"
		  "  --min-calls=N         calls of one query in a unit that make a burst (default 5)\n"
		  "  --max-gap=MS          idle gap that ends a unit of work (default 100)\n"
		  "  --follow              keep reading a growing log (like tail -F); stop with ^C\n"
		  "  --progress            progress on standard error\n"
		  "  --max-sessions=N      sessions tracked at once (default 1024)\n"
		  "  --max-queries=N       distinct queries whose text is kept (default 100000)\n"
		  "  --max-entry=BYTES     longest log entry read (default 33554432)\n"
		  "  --quiet               no summary on standard error\n", f);
}

static void
on_signal(int sig)
{
	(void) sig;
	n1scan_stop = 1;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"prefix", required_argument, NULL, 'p'},
		{"log-format", required_argument, NULL, 'l'},
		{"format", required_argument, NULL, 'f'},
		{"fail-on", required_argument, NULL, 'F'},
		{"min-calls", required_argument, NULL, 'm'},
		{"max-gap", required_argument, NULL, 'g'},
		{"follow", no_argument, NULL, 'w'},
		{"progress", no_argument, NULL, 'P'},
		{"max-sessions", required_argument, NULL, 's'},
		{"max-queries", required_argument, NULL, 'Q'},
		{"max-entry", required_argument, NULL, 'E'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}
	};
	ReaderOptions ropt = {FMT_AUTO, NULL, false, false, 32 * 1024 * 1024};
	ReaderStats rst = {0};
	NormStats nst;
	size_t		max_queries = 100000;
	int			c;
	int			rc = 0;
	struct timespec t0,
				t1;
	struct rusage ru;
	double		secs;

	S.min_calls = 5;
	S.max_gap_us = 100 * 1000;
	S.max_sessions = 1024;
	S.max_offenders = 100000;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1)
	{
		switch (c)
		{
			case 'p':
				ropt.prefix = optarg;
				break;
			case 'l':
				if (!strcmp(optarg, "stderr"))
					ropt.format = FMT_STDERR;
				else if (!strcmp(optarg, "csv") || !strcmp(optarg, "csvlog"))
					ropt.format = FMT_CSV;
				else if (!strcmp(optarg, "json") || !strcmp(optarg, "jsonlog"))
					ropt.format = FMT_JSON;
				else if (strcmp(optarg, "auto") != 0)
				{
					fprintf(stderr, "n1scan: unknown --log-format \"%s\" (auto, stderr, csv, json)\n", optarg);
					return 2;
				}
				break;
			case 'f':
				if (!strcmp(optarg, "json"))
					S.json = true;
				else if (strcmp(optarg, "text") != 0)
				{
					fprintf(stderr, "n1scan: unknown --format \"%s\" (text, json)\n", optarg);
					return 2;
				}
				break;
			case 'F':
				{
					char	   *copy = strdup(optarg),
							   *save = NULL;

					for (char *k = strtok_r(copy, ",", &save); k; k = strtok_r(NULL, ",", &save))
					{
						if (!strcmp(k, "n_plus_one"))
							S.fail_on |= 1u << N1_KIND_N_PLUS_ONE;
						else if (!strcmp(k, "duplicate"))
							S.fail_on |= 1u << N1_KIND_DUPLICATE;
						else if (!strcmp(k, "loop"))
							S.fail_on |= 1u << N1_KIND_LOOP;
						else
						{
							fprintf(stderr, "n1scan: unknown kind \"%s\" in --fail-on (n_plus_one, duplicate, loop)\n", k);
							free(copy);
							return 2;
						}
					}
					free(copy);
					break;
				}
			case 'm':
				S.min_calls = atoi(optarg);
				if (S.min_calls < 2)
				{
					fprintf(stderr, "n1scan: --min-calls must be at least 2\n");
					return 2;
				}
				break;
			case 'g':
				S.max_gap_us = (int64_t) (atof(optarg) * 1000);
				if (S.max_gap_us < 0)
					S.max_gap_us = 0;
				break;
			case 'w':
				ropt.follow = true;
				break;
			case 'P':
				ropt.progress = true;
				break;
			case 's':
				S.max_sessions = strtoul(optarg, NULL, 10);
				if (S.max_sessions < 1)
					S.max_sessions = 1;
				break;
			case 'Q':
				max_queries = strtoul(optarg, NULL, 10);
				if (max_queries < 16)
					max_queries = 16;
				break;
			case 'E':
				ropt.max_entry = strtoul(optarg, NULL, 10);
				if (ropt.max_entry < 1024)
					ropt.max_entry = 1024;
				break;
			case 'q':
				S.quiet = true;
				break;
			case 'h':
				usage(stdout);
				return 0;
			default:
				usage(stderr);
				return 2;
		}
	}
	if (!ropt.progress && isatty(2) && !S.quiet)
		ropt.progress = true;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	S.nbuckets = S.max_sessions * 2 + 1;
	S.max_extra_units = S.max_sessions;	/* at most twice the sessions' units */
	S.buckets = calloc(S.nbuckets, sizeof(Session *));
	{
		size_t		n = 1024;

		while (n < S.max_offenders * 2)
			n *= 2;
		S.off = calloc(n, sizeof(Offender));
		S.off_mask = n - 1;
	}
	S.qids = calloc(QID_SLOTS, sizeof(QidSlot));
	if (S.buckets == NULL || S.off == NULL || S.qids == NULL)
	{
		fprintf(stderr, "n1scan: out of memory\n");
		return 2;
	}
	norm_init(65536, max_queries);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (optind >= argc)
	{
		if (!read_log("-", &ropt, entry, NULL, &rst))
			rc = 2;
	}
	for (int i = optind; i < argc && !n1scan_stop; i++)
		if (!read_log(argv[i], &ropt, entry, NULL, &rst))
			rc = 2;
	/* nothing readable at all (an unknown prefix, not a log): a failure */
	if (rst.bad_lines > 0 && rst.entries == 0)
		rc = 2;
	/* the end of the input ends every open unit */
	while (S.lru_head)
		session_drop(S.lru_head, N1_END_EXIT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (report(stdout) && rc == 0)
		rc = 1;
	fflush(stdout);
	norm_finish(&nst);
	secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	getrusage(RUSAGE_SELF, &ru);
	if (!S.quiet)
	{
		fprintf(stderr, "n1scan: %lu lines, %lu entries, %lu statements in %.2f s (%.0f lines/s, peak RSS %ld MB)\n",
				(unsigned long) rst.lines, (unsigned long) rst.entries, (unsigned long) S.statements,
				secs, secs > 0 ? rst.lines / secs : 0.0, ru.ru_maxrss / 1024);
		fprintf(stderr, "n1scan: %lu texts parsed by libpg_query (%lu cache hits), %lu not parseable (keyed by their text), %lu unreadable lines, %lu sessions, %zu offenders\n",
				(unsigned long) nst.parsed, (unsigned long) nst.cache_hits, (unsigned long) nst.unparsed,
				(unsigned long) rst.bad_lines, (unsigned long) S.sessions_seen, S.noff);
		if (S.sessions_evicted_active)
			fprintf(stderr, "n1scan: %lu sessions evicted while in a unit (raise --max-sessions)\n",
					(unsigned long) S.sessions_evicted_active);
		if (S.off_dropped || nst.queries_dropped)
			fprintf(stderr, "n1scan: %lu offenders and %lu query texts beyond the caps were not kept\n",
					(unsigned long) S.off_dropped, (unsigned long) nst.queries_dropped);
	}
	free(S.buckets);
	free(S.off);
	free(S.qids);
	return rc;
}
