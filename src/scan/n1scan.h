/*
 * n1scan.h
 *		n1scan: N+1 detection from PostgreSQL server logs, for servers that
 *		cannot load the extension (RDS, Cloud SQL, Azure, stock CI images).
 *		The same detector core as the extension (src/core/detector.c) is fed
 *		statement events read from the log.
 *
 * Files (one concern each):
 *	 logread.c	 reading log files (plain, gzip, stdin, --follow) and turning
 *				 their lines into entries: stderr with a log_line_prefix
 *				 (compiled from --prefix or detected), csvlog, jsonlog;
 *				 multi-line entries; DETAIL lines joined to their entry.
 *	 normalize.c statement texts -> query keys: a lexical pass (constants,
 *				 comments and spacing removed, IN-list / ANY shape, literal
 *				 values), a bounded cache of it, and libpg_query's
 *				 fingerprint and normalized text once per new text shape.
 *	 n1scan.c	 the program: options, statement events out of entries,
 *				 sessions and units (bounded), the detector, offenders (one
 *				 per query, parent, kind and source: the request's tags from
 *				 src/core/query_comment.c) and the report (text or JSON),
 *				 --fail-on.
 *
 * Nothing here may abort on bad input: a line that cannot be read is
 * reported with its file and line, and reading carries on.  Memory is
 * bounded whatever the log size (sessions, queries, offenders and the
 * cache have caps).
 */
#ifndef N1SCAN_H
#define N1SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum LogFormat
{
	FMT_AUTO = 0,
	FMT_STDERR,
	FMT_CSV,
	FMT_JSON
} LogFormat;

/* A growable byte buffer, always NUL-terminated. */
typedef struct Buf
{
	char	   *data;
	size_t		len;
	size_t		cap;
} Buf;

extern void buf_reset(Buf *b);
extern void buf_append(Buf *b, const char *p, size_t n);
extern void buf_free(Buf *b);

/* One log entry (a message with its DETAIL), as the readers give it. */
typedef struct LogEntry
{
	const char *file;
	long		line;			/* line where the entry starts */
	int64_t		ts_us;			/* log time, microseconds since 1970 (0: unknown) */
	int64_t		ts_precision_us;	/* 1000 for %m, 1000000 for %t */
	char		session[48];	/* session id (%c, session_id), "" if unknown */
	int			pid;
	bool		has_app;
	char		app[64];		/* application_name when logged */
	char		vxid[32];		/* virtual transaction id when logged, else "" */
	bool		has_query_id;
	int64_t		query_id;
	char		severity[16];
	Buf			message;
	Buf			detail;
} LogEntry;

typedef void (*EntryHandler) (LogEntry *entry, void *arg);

typedef struct ReaderOptions
{
	LogFormat	format;
	const char *prefix;			/* stderr: log_line_prefix, or NULL to detect */
	bool		follow;
	bool		progress;
	size_t		max_entry;		/* longest entry kept, bytes */
} ReaderOptions;

typedef struct ReaderStats
{
	uint64_t	lines;
	uint64_t	entries;
	uint64_t	bad_lines;		/* lines that could not be read (reported) */
	uint64_t	bytes;
} ReaderStats;

/* Reads one file ("-" = stdin); returns false if it could not be opened. */
extern bool read_log(const char *path, const ReaderOptions *opt, EntryHandler handler,
					 void *arg, ReaderStats *stats);
/* stop --follow (signal handler) */
extern volatile int n1scan_stop;

/* ---------- normalize.c ---------- */

#define NORM_MAX_SAMPLE 160

typedef enum StmtClass
{
	STMT_TRACKED = 0,			/* SELECT, INSERT, UPDATE, DELETE, WITH, VALUES, TABLE, MERGE */
	STMT_BEGIN,
	STMT_END_BLOCK,				/* COMMIT, END, ROLLBACK, ABORT (not ROLLBACK TO) */
	STMT_OTHER					/* utility: activity only */
} StmtClass;

typedef struct NormResult
{
	uint64_t	key;			/* query key (fingerprint + shape); never 0 for tracked */
	StmtClass	cls;
	uint64_t	param_hash;		/* literal constants of the text (0 if none) */
	int			n_literals;
	bool		placeholders;	/* the text has $n parameters */
	bool		cursor;			/* DECLARE CURSOR: key, values of its query */
	char		sample[NORM_MAX_SAMPLE];	/* the literal constants, as text */
} NormResult;

typedef struct NormStats
{
	uint64_t	statements;
	uint64_t	cache_hits;
	uint64_t	parsed;			/* texts given to libpg_query */
	uint64_t	unparsed;		/* of those, rejected: keyed by their raw text */
	uint64_t	queries;		/* distinct query keys */
	uint64_t	queries_dropped;	/* beyond the cap: text not kept */
} NormStats;

extern void norm_init(size_t cache_entries, size_t max_queries);
extern void norm_statement(const char *text, size_t len, NormResult *out);
/* text, fingerprint (hex) and parse state of a key, or NULL */
extern const char *norm_query_text(uint64_t key, const char **fingerprint, bool *unparsed);
extern void norm_finish(NormStats *stats);

/* hash of a parameter value list "$1 = '5', $2 = NULL" (extended protocol) */
extern uint64_t norm_param_hash(const char *params, size_t len);

#endif							/* N1SCAN_H */
