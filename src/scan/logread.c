/*
 * logread.c
 *		n1scan's log readers: opens a file (plain or gzip, through zlib; "-"
 *		is standard input), splits it into lines, and turns lines into
 *		entries (LogEntry) for the caller:
 *		- stderr: every entry starts with the log_line_prefix, compiled from
 *		  --prefix or detected among the common ones (Debian's
 *		  '%m [%p] %q%u@%d ', PostgreSQL's '%m [%p] ', RDS
 *		  '%t:%r:%u@%d:[%p]:', Azure '%t-%c-'); lines starting with a tab
 *		  continue the entry; DETAIL lines of the same process join it;
 *		- csvlog: one CSV record per entry (quoted fields may span lines);
 *		- jsonlog: one JSON object per line.
 *		--follow keeps reading a growing file (and reopens it when rotated).
 *
 * Must never: abort or stop on a bad line (report file:line, count, carry
 * on), read past a line, keep more than max_entry bytes of one entry.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "n1scan.h"

volatile int n1scan_stop = 0;

/* ---------- buffers ---------- */

void
buf_reset(Buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

void
buf_append(Buf *b, const char *p, size_t n)
{
	if (b->len + n + 1 > b->cap)
	{
		size_t		cap = b->cap ? b->cap : 256;

		while (cap < b->len + n + 1)
			cap *= 2;
		b->data = realloc(b->data, cap);
		if (b->data == NULL)
		{
			fprintf(stderr, "n1scan: out of memory\n");
			exit(2);
		}
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void
buf_free(Buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

/* ---------- lines ---------- */

typedef struct LineReader
{
	const char *path;
	gzFile		gz;
	int			fd;
	char	   *buf;
	size_t		cap;
	size_t		start;
	size_t		end;
	bool		eof;
	bool		follow;
	bool		drained;		/* --follow after a stop: the last read is done */
	bool		old_drained;	/* --follow: rotated file read to its end */
	ino_t		ino;
	long		lineno;
	size_t		max_line;
	bool		truncated;		/* the last line returned was cut at max_line */
	ReaderStats *stats;
} LineReader;

static bool
lr_open(LineReader *lr)
{
	struct stat st;

	if (strcmp(lr->path, "-") == 0)
		lr->fd = dup(0);
	else
		lr->fd = open(lr->path, O_RDONLY);
	if (lr->fd < 0)
		return false;
	if (fstat(lr->fd, &st) == 0)
		lr->ino = st.st_ino;
	lr->gz = gzdopen(lr->fd, "rb");
	if (lr->gz == NULL)
	{
		close(lr->fd);
		return false;
	}
	gzbuffer(lr->gz, 256 * 1024);
	return true;
}

/* in --follow mode: wait for more data, reopening a rotated file */
static bool
lr_wait(LineReader *lr)
{
	struct stat st;

	if (!lr->follow || strcmp(lr->path, "-") == 0)
		return false;
	if (n1scan_stop)
	{
		/* stopped: one last read of what was written before, then the end */
		if (lr->drained)
			return false;
		lr->drained = true;
		gzclearerr(lr->gz);
		return true;
	}
	usleep(200 * 1000);
	if (stat(lr->path, &st) == 0 && st.st_ino != lr->ino)
	{
		/* rotated: read the rest of the old file, then open the new one */
		if (!lr->old_drained)
		{
			lr->old_drained = true;
			gzclearerr(lr->gz);
			return true;
		}
		lr->old_drained = false;
		gzclose(lr->gz);
		lr->gz = NULL;
		if (!lr_open(lr))
		{
			fprintf(stderr, "n1scan: could not reopen \"%s\" after rotation: %s\n", lr->path, strerror(errno));
			return false;
		}
		lr->lineno = 0;
	}
	else
		gzclearerr(lr->gz);
	return true;				/* (a stop during the sleep: the next call drains) */
}

/*
 * Next line (without its newline) in *line and *len; false at the end.  A line
 * longer than max_line is cut (truncated set) and the rest skipped.
 */
static bool
lr_next(LineReader *lr, char **line, size_t *len)
{
	size_t		scan_from = lr->start;

	for (;;)
	{
		char	   *nl = memchr(lr->buf + scan_from, '\n', lr->end - scan_from);
		int			n;

		if (nl != NULL || (lr->eof && lr->end > lr->start))
		{
			size_t		stop = nl ? (size_t) (nl - lr->buf) : lr->end;

			*line = lr->buf + lr->start;
			*len = stop - lr->start;
			if (*len > 0 && (*line)[*len - 1] == '\r')
				(*len)--;
			lr->start = nl ? stop + 1 : stop;
			lr->stats->bytes += *len + 1;
			if (lr->truncated)
			{
				/* tail of a cut line (already counted): skip it */
				lr->truncated = false;
				scan_from = lr->start;
				continue;
			}
			lr->lineno++;
			lr->stats->lines++;
			return true;
		}
		if (lr->eof)
		{
			if (lr_wait(lr))
			{
				lr->eof = false;
				continue;
			}
			return false;
		}
		/* make room: move the partial line to the front, grow if needed */
		if (lr->start > 0)
		{
			memmove(lr->buf, lr->buf + lr->start, lr->end - lr->start);
			lr->end -= lr->start;
			lr->start = 0;
		}
		scan_from = lr->end;
		if (lr->end >= lr->max_line && lr->truncated)
		{
			/* still in the tail of a cut line: drop it */
			lr->stats->bytes += lr->end;
			lr->start = lr->end = 0;
			scan_from = 0;
		}
		else if (lr->end >= lr->max_line)
		{
			/* cut: return what we have, skip up to the next newline */
			*line = lr->buf;
			*len = lr->end;
			lr->start = lr->end = 0;
			lr->lineno++;
			lr->stats->lines++;
			lr->truncated = true;
			fprintf(stderr, "n1scan: %s:%ld: line longer than %zu bytes, cut\n",
					lr->path, lr->lineno, lr->max_line);
			return true;
		}
		if (lr->cap - lr->end < 64 * 1024)
		{
			lr->cap *= 2;
			lr->buf = realloc(lr->buf, lr->cap);
			if (lr->buf == NULL)
			{
				fprintf(stderr, "n1scan: out of memory\n");
				exit(2);
			}
		}
		n = gzread(lr->gz, lr->buf + lr->end, (unsigned) (lr->cap - lr->end));
		if (n < 0)
		{
			int			err;
			const char *msg = gzerror(lr->gz, &err);

			fprintf(stderr, "n1scan: %s:%ld: read error: %s\n", lr->path, lr->lineno + 1, msg);
			lr->eof = true;
			if (err != Z_ERRNO)
				lr->follow = false;
			continue;
		}
		if (n == 0)
			lr->eof = true;
		lr->end += n;
	}
}

/* ---------- timestamps ---------- */

static int64_t
days_from_civil(int y, int m, int d)
{
	y -= m <= 2;
	{
		int64_t		era = (y >= 0 ? y : y - 399) / 400;
		int64_t		yoe = y - era * 400;
		int64_t		doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
		int64_t		doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

		return era * 146097 + doe - 719468;
	}
}

static int
digits(const char *p, size_t avail, int n)
{
	int			v = 0;

	if (avail < (size_t) n)
		return -1;
	for (int i = 0; i < n; i++)
	{
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	return v;
}

/*
 * "YYYY-MM-DD HH:MM:SS[.fff] [TZ]" at p; returns bytes used or -1.  The time
 * zone name is skipped (one log has one zone).  with_zone: a zone follows.
 */
static int
parse_timestamp(const char *p, size_t avail, bool with_zone, int64_t *us, int64_t *precision)
{
	int			y = digits(p, avail, 4),
				mo,
				d,
				h,
				mi,
				s;
	size_t		i = 19;
	int64_t		frac = 0,
				scale = 1000000;

	if (y < 0 || avail < 19 || p[4] != '-' || p[7] != '-' || (p[10] != ' ' && p[10] != 'T') ||
		p[13] != ':' || p[16] != ':')
		return -1;
	mo = digits(p + 5, 2, 2);
	d = digits(p + 8, 2, 2);
	h = digits(p + 11, 2, 2);
	mi = digits(p + 14, 2, 2);
	s = digits(p + 17, 2, 2);
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 24 || mi < 0 || mi > 59 || s < 0 || s > 60)
		return -1;
	*precision = 1000000;
	if (i < avail && p[i] == '.')
	{
		i++;
		while (i < avail && p[i] >= '0' && p[i] <= '9')
		{
			if (scale > 1)
			{
				scale /= 10;
				frac += (p[i] - '0') * scale;
				*precision = scale;
			}
			i++;
		}
	}
	if (with_zone && i < avail && p[i] == ' ')
	{
		/* a zone abbreviation ("UTC", "CEST") or a numeric one ("+03", "-0430") */
		size_t		j = i + 1;

		if (j < avail && (p[j] == '+' || p[j] == '-'))
			for (j++; j < avail && p[j] >= '0' && p[j] <= '9'; j++)
				;
		else
			while (j < avail && ((p[j] >= 'A' && p[j] <= 'Z') || (p[j] >= 'a' && p[j] <= 'z')))
				j++;
		if (j > i + 1)
			i = j;
	}
	*us = ((days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s) * (int64_t) 1000000) + frac;
	return (int) i;
}

/* ---------- log_line_prefix ---------- */

#define MAX_ELEMS 32

typedef struct PrefixElem
{
	char		esc;			/* 0: literal */
	const char *lit;
	size_t		litlen;
} PrefixElem;

typedef struct Prefix
{
	char	   *text;			/* owns the literals */
	int			n;
	int			q_at;			/* index of %q, or -1 */
	PrefixElem	e[MAX_ELEMS];
} Prefix;

static bool
compile_prefix(const char *src, Prefix *px)
{
	size_t		len = strlen(src);
	char	   *t = malloc(len + 1);
	size_t		o = 0;

	px->text = t;
	px->n = 0;
	px->q_at = -1;
	for (size_t i = 0; i < len;)
	{
		if (px->n >= MAX_ELEMS)
			return false;
		if (src[i] == '%' && i + 1 < len && src[i + 1] != '%')
		{
			i++;
			/* padding (%-10a, %5p) */
			if (src[i] == '-')
				i++;
			while (i < len && src[i] >= '0' && src[i] <= '9')
				i++;
			if (i >= len)
				return false;
			if (src[i] == 'q')
				px->q_at = px->n;
			else if (!strchr("aubdrhpPcltmnisveQ", src[i]))
				return false;
			else
				px->e[px->n++] = (PrefixElem) {src[i], NULL, 0};
			i++;
		}
		else
		{
			size_t		start = o;

			while (i < len && !(src[i] == '%' && i + 1 < len && src[i + 1] != '%'))
			{
				if (src[i] == '%' && i + 1 < len)
					i++;		/* %% */
				t[o++] = src[i++];
			}
			px->e[px->n++] = (PrefixElem) {0, t + start, o - start};
		}
	}
	return px->n > 0;
}

static size_t
span(const char *p, size_t avail, const char *set)
{
	size_t		i = 0;

	while (i < avail && p[i] && strchr(set, p[i]))
		i++;
	return i;
}

static void
copy_field(char *dst, size_t dstsize, const char *p, size_t n)
{
	while (n > 0 && p[n - 1] == ' ')
		n--;
	while (n > 0 && *p == ' ')
		p++, n--;
	if (n >= dstsize)
		n = dstsize - 1;
	memcpy(dst, p, n);
	dst[n] = '\0';
}

static const char *const severities[] = {
	"LOG", "ERROR", "FATAL", "PANIC", "WARNING", "NOTICE", "INFO", "DEBUG", "DEBUG1",
	"DEBUG2", "DEBUG3", "DEBUG4", "DEBUG5", "DETAIL", "HINT", "CONTEXT", "STATEMENT",
	"QUERY", "LOCATION", NULL
};

/* "SEVERITY:  " at p: its length (with the two spaces) or -1 */
static long
match_severity(const char *p, size_t avail, char *sev, size_t sevsize)
{
	size_t		n = span(p, avail, "ABCDEFGHIJKLMNOPQRSTUVWXYZ12345");

	if (n == 0 || n + 3 > avail || p[n] != ':' || p[n + 1] != ' ' || p[n + 2] != ' ')
		return -1;
	for (int i = 0; severities[i]; i++)
		if (strlen(severities[i]) == n && memcmp(severities[i], p, n) == 0)
		{
			copy_field(sev, sevsize, p, n);
			return (long) n + 3;
		}
	return -1;
}

/*
 * Matches elements [k, upto) of the prefix at line + pos, then a severity;
 * fills e; returns the offset of the message or -1.  A free-text element
 * (%a, %u, %d, %r, %h, %b, %i) followed by a literal tries each occurrence of
 * that literal in turn (backtracking), so an application_name with spaces
 * still reads.
 */
static long
match_elems(const Prefix *px, int k, int upto, const char *line, size_t len, size_t pos, LogEntry *e)
{
	for (; k < upto; k++)
	{
		const PrefixElem *el = &px->e[k];
		const char *p = line + pos;
		size_t		avail = len - pos;
		size_t		n;

		switch (el->esc)
		{
			case 0:
				if (avail < el->litlen || memcmp(p, el->lit, el->litlen) != 0)
					return -1;
				n = el->litlen;
				break;
			case 'm':
			case 't':
			case 's':
				{
					int64_t		us,
								prec;
					int			r = parse_timestamp(p, avail, true, &us, &prec);

					if (r < 0)
						return -1;
					if (el->esc != 's')
					{
						e->ts_us = us;
						e->ts_precision_us = prec;
					}
					n = r;
					break;
				}
			case 'n':
				{
					n = span(p, avail, "0123456789.");
					if (n == 0)
						return -1;
					e->ts_us = (int64_t) (strtod(p, NULL) * 1e6);
					e->ts_precision_us = 1000;
					break;
				}
			case 'p':
			case 'P':
			case 'l':
			case 'x':
				n = span(p, avail, " ");
				n += span(p + n, avail - n, "0123456789");
				if (el->esc == 'p')
				{
					if (n == 0)
						return -1;
					e->pid = atoi(p);
				}
				break;
			case 'Q':
				n = span(p, avail, "-0123456789");
				if (n > 0 && n < 32)
				{
					char		tmp[32];

					memcpy(tmp, p, n);
					tmp[n] = '\0';
					e->query_id = strtoll(tmp, NULL, 10);
					e->has_query_id = e->query_id != 0;
				}
				break;
			case 'c':
				n = span(p, avail, "0123456789abcdef.");
				if (n == 0 || n >= sizeof(e->session))
					return -1;
				memcpy(e->session, p, n);
				e->session[n] = '\0';
				break;
			case 'v':
				n = span(p, avail, "0123456789/");
				copy_field(e->vxid, sizeof(e->vxid), p, n);
				break;
			case 'e':
				n = span(p, avail, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ");
				break;
			default:
				{
					/* free text: up to an occurrence of the next literal */
					const PrefixElem *next = k + 1 < upto ? &px->e[k + 1] : NULL;
					const char *stop;

					if (next != NULL && next->esc == 0)
					{
						const char *from = p;

						while ((stop = memmem(from, line + len - from, next->lit, next->litlen)) != NULL)
						{
							long		r;

							if (el->esc == 'a')
							{
								copy_field(e->app, sizeof(e->app), p, stop - p);
								e->has_app = true;
							}
							r = match_elems(px, k + 1, upto, line, len, stop - line, e);
							if (r >= 0)
								return r;
							from = stop + 1;
						}
						return -1;
					}
					else if (next == NULL)
					{
						/* last element: up to the last space before "WORD:  " */
						stop = memmem(p, avail, ":  ", 3);
						if (stop == NULL)
							return -1;
						while (stop > p && stop[-1] != ' ')
							stop--;
						n = stop - p;
					}
					else
						return -1;
					if (el->esc == 'a')
					{
						copy_field(e->app, sizeof(e->app), p, n);
						e->has_app = true;
					}
					break;
				}
		}
		pos += n;
	}
	{
		long		sl = match_severity(line + pos, len - pos, e->severity, sizeof(e->severity));

		return sl < 0 ? -1 : (long) pos + sl;
	}
}

/* prefix + severity; returns the offset of the message or -1 */
static long
match_line_q(const Prefix *px, const char *line, size_t len, LogEntry *e, bool allow_q)
{
	long		pos = match_elems(px, 0, px->n, line, len, 0, e);

	if (pos < 0 && allow_q && px->q_at >= 0)
		pos = match_elems(px, 0, px->q_at, line, len, 0, e);
	return pos;
}

static long
match_line(const Prefix *px, const char *line, size_t len, LogEntry *e)
{
	return match_line_q(px, line, len, e, true);
}

static const char *const known_prefixes[] = {
	"%t:%r:%u@%d:[%p]:",		/* Amazon RDS / Aurora */
	"%t-%c-",					/* Azure */
	"%m [%p] %q%u@%d ",			/* Debian */
	"%m [%p] ",					/* PostgreSQL's default */
	"%m [%p] %q[%c] %a %Q ",
	"%m [%p] %q%u@%d %a ",
	"%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ",	/* pgbadger's advice */
	"%t [%p]: [%l-1] ",
	"%m [%p]: [%l-1] db=%d,user=%u ",	/* Cloud SQL's text payload */
	"%t [%p]: ",
	"%m:%r:%u@%d:[%p]:",
	"%m-%c-",
	NULL
};

/* ---------- entries ---------- */

typedef struct Reader
{
	LineReader	lr;
	const ReaderOptions *opt;
	EntryHandler handler;
	void	   *arg;
	ReaderStats *stats;
	LogEntry	entry;			/* the entry being assembled */
	bool		pending;
	bool		cut;			/* entry longer than max_entry: the rest dropped */
	Buf			*part;			/* message or detail: where continuation lines go */
	Prefix		prefix;
	bool		have_prefix;
	int			detect_tries;
	int			redetect;		/* prefix detections redone */
	Buf			record;			/* csv: a record spanning lines */
	long		record_line;
} Reader;

static void
bad_line(Reader *r, long line, const char *why)
{
	r->stats->bad_lines++;
	if (r->stats->bad_lines <= 20)
		fprintf(stderr, "n1scan: %s:%ld: %s\n", r->lr.path, line, why);
	else if (r->stats->bad_lines == 21)
		fprintf(stderr, "n1scan: %s: more unreadable lines, not shown\n", r->lr.path);
}

static void
flush_entry(Reader *r)
{
	if (!r->pending)
		return;
	r->pending = false;
	r->stats->entries++;
	r->handler(&r->entry, r->arg);
}

static void
start_entry(Reader *r, long line)
{
	LogEntry   *e = &r->entry;

	e->file = r->lr.path;
	e->line = line;
	e->ts_us = 0;
	e->ts_precision_us = 1000;
	e->session[0] = '\0';
	e->pid = 0;
	e->has_app = false;
	e->app[0] = '\0';
	e->vxid[0] = '\0';
	e->has_query_id = false;
	e->query_id = 0;
	e->severity[0] = '\0';
	buf_reset(&e->message);
	buf_reset(&e->detail);
	r->cut = false;
	r->pending = true;
	r->part = &e->message;
}

static void
append_part(Reader *r, Buf *b, const char *p, size_t n)
{
	if (b->len + n > r->opt->max_entry)
	{
		if (!r->cut)
			fprintf(stderr, "n1scan: %s:%ld: entry longer than %zu bytes, cut\n",
					r->lr.path, r->entry.line, r->opt->max_entry);
		r->cut = true;
		n = b->len < r->opt->max_entry ? r->opt->max_entry - b->len : 0;
	}
	buf_append(b, p, n);
}

/*
 * Picks the known prefix that reads this line: first one that matches it
 * whole, else one that matches up to its %q (a line of a process without a
 * session: postmaster, checkpointer).  Called again on a line the detected
 * prefix does not read, so a log starting with postmaster lines still ends
 * up with the right prefix.
 */
static bool
detect_prefix(Reader *r, const char *line, size_t len)
{
	LogEntry	scratch;

	memset(&scratch, 0, sizeof(scratch));
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; known_prefixes[i]; i++)
		{
			Prefix		px;

			if (!compile_prefix(known_prefixes[i], &px))
			{
				free(px.text);
				continue;
			}
			if (match_line_q(&px, line, len, &scratch, pass == 1) >= 0)
			{
				if (r->have_prefix)
					free(r->prefix.text);
				r->prefix = px;
				r->have_prefix = true;
				if (r->opt->progress)
					fprintf(stderr, "n1scan: %s:%ld: log_line_prefix '%s'\n", r->lr.path,
							r->lr.lineno, known_prefixes[i]);
				return true;
			}
			free(px.text);
		}
	return false;
}

static void
stderr_line(Reader *r, const char *line, size_t len)
{
	LogEntry	probe;
	long		off;

	if (len > 0 && line[0] == '\t')
	{
		if (r->pending)
		{
			append_part(r, r->part, "\n", 1);
			append_part(r, r->part, line + 1, len - 1);
		}
		return;
	}
	if (len == 0)
		return;
	if (!r->have_prefix)
	{
		if (!detect_prefix(r, line, len))
		{
			if (++r->detect_tries <= 20)
			{
				bad_line(r, r->lr.lineno, "line does not match any known log_line_prefix (give it with --prefix)");
				return;
			}
			fprintf(stderr, "n1scan: %s: cannot recognise the log_line_prefix in the first lines; "
					"give the server's with --prefix '...'\n", r->lr.path);
			r->detect_tries = -1000000;	/* stop trying: keep reporting lines as unreadable */
			return;
		}
	}
	memset(&probe, 0, sizeof(probe));
	off = match_line(&r->prefix, line, len, &probe);
	if (off < 0 && r->opt->prefix == NULL && r->redetect < 100)
	{
		/* a detected prefix that does not read this line: detect again */
		r->redetect++;
		if (detect_prefix(r, line, len))
		{
			memset(&probe, 0, sizeof(probe));
			off = match_line(&r->prefix, line, len, &probe);
		}
	}
	if (off < 0)
	{
		bad_line(r, r->lr.lineno, "line does not match the log_line_prefix");
		return;
	}
	if (r->pending && (strcmp(probe.severity, "DETAIL") == 0 || strcmp(probe.severity, "HINT") == 0 ||
					   strcmp(probe.severity, "CONTEXT") == 0 || strcmp(probe.severity, "STATEMENT") == 0 ||
					   strcmp(probe.severity, "QUERY") == 0 || strcmp(probe.severity, "LOCATION") == 0) &&
		probe.pid == r->entry.pid)
	{
		if (strcmp(probe.severity, "DETAIL") == 0)
		{
			r->part = &r->entry.detail;
			append_part(r, r->part, line + off, len - off);
		}
		else
			r->part = &r->entry.detail; /* continuation lines of HINT etc.: keep out of the message */
		return;
	}
	flush_entry(r);
	start_entry(r, r->lr.lineno);
	{
		Buf			m = r->entry.message,
					d = r->entry.detail;
		const char *file = r->entry.file;
		long		ln = r->entry.line;

		r->entry = probe;
		r->entry.message = m;
		r->entry.detail = d;
		r->entry.file = file;
		r->entry.line = ln;
		if (r->entry.ts_precision_us == 0)
			r->entry.ts_precision_us = 1000;
	}
	append_part(r, &r->entry.message, line + off, len - off);
}

/* ---------- csvlog ---------- */

#define CSV_MAX_FIELDS 32

/*
 * Splits a complete CSV record in place (quotes removed, "" unescaped);
 * returns the number of fields, or -1 if a quote is still open.
 */
static int
csv_split(char *s, size_t len, char **f, size_t *flen, int max)
{
	size_t		i = 0;
	int			n = 0;

	while (n < max)
	{
		if (i < len && s[i] == '"')
		{
			size_t		o = i;
			bool		closed = false;

			f[n] = s + o;
			i++;
			while (i < len)
			{
				if (s[i] == '"')
				{
					if (i + 1 < len && s[i + 1] == '"')
					{
						s[o++] = '"';
						i += 2;
						continue;
					}
					closed = true;
					i++;
					break;
				}
				s[o++] = s[i++];
			}
			if (!closed)
				return -1;
			flen[n] = s + o - f[n];
		}
		else
		{
			f[n] = s + i;
			while (i < len && s[i] != ',')
				i++;
			flen[n] = s + i - f[n];
		}
		n++;
		if (i >= len)
			break;
		if (s[i] != ',')
			return -2;			/* junk after a quoted field */
		i++;
	}
	return n;
}

/* is the record complete (an even number of quotes)? */
static bool
csv_complete(const char *s, size_t len)
{
	size_t		q = 0;

	for (const char *p = s; (p = memchr(p, '"', s + len - p)) != NULL; p++)
		q++;
	return q % 2 == 0;
}

static void
csv_record(Reader *r)
{
	char	   *f[CSV_MAX_FIELDS];
	size_t		fl[CSV_MAX_FIELDS];
	int			n = csv_split(r->record.data, r->record.len, f, fl, CSV_MAX_FIELDS);
	LogEntry   *e;
	int64_t		prec;

	if (n < 23)
	{
		bad_line(r, r->record_line, "not a csvlog record");
		return;
	}
	start_entry(r, r->record_line);
	e = &r->entry;
	if (parse_timestamp(f[0], fl[0], true, &e->ts_us, &prec) < 0)
	{
		r->pending = false;
		bad_line(r, r->record_line, "csvlog record without a valid log_time");
		return;
	}
	e->ts_precision_us = prec;
	e->pid = atoi(f[3]);
	copy_field(e->session, sizeof(e->session), f[5], fl[5]);
	copy_field(e->vxid, sizeof(e->vxid), f[9], fl[9]);
	copy_field(e->severity, sizeof(e->severity), f[11], fl[11]);
	append_part(r, &e->message, f[13], fl[13]);
	append_part(r, &e->detail, f[14], fl[14]);
	copy_field(e->app, sizeof(e->app), f[22], fl[22]);
	e->has_app = true;
	if (n >= 26 && fl[25] > 0 && fl[25] < 24)
	{
		char		tmp[24];

		memcpy(tmp, f[25], fl[25]);
		tmp[fl[25]] = '\0';
		e->query_id = strtoll(tmp, NULL, 10);
		e->has_query_id = e->query_id != 0;
	}
	flush_entry(r);
}

static void
csv_line(Reader *r, const char *line, size_t len)
{
	if (r->record.len == 0)
		r->record_line = r->lr.lineno;
	else
		buf_append(&r->record, "\n", 1);
	if (r->record.len + len > r->opt->max_entry)
	{
		bad_line(r, r->record_line, "csvlog record longer than the entry limit, skipped");
		buf_reset(&r->record);
		return;
	}
	buf_append(&r->record, line, len);
	if (!csv_complete(r->record.data, r->record.len))
		return;
	csv_record(r);
	buf_reset(&r->record);
}

/* ---------- jsonlog ---------- */

/* a JSON string at *pp (after the opening quote) into out; false on error */
static bool
json_string(const char **pp, const char *end, Buf *out)
{
	const char *p = *pp;

	while (p < end)
	{
		const char *q = p;

		while (q < end && *q != '"' && *q != '\\')
			q++;
		if (out)
			buf_append(out, p, q - p);
		p = q;
		if (p >= end)
			return false;
		if (*p == '"')
		{
			*pp = p + 1;
			return true;
		}
		/* escape */
		if (p + 1 >= end)
			return false;
		{
			char		c = p[1],
						o[4];
			int			on = 1;

			p += 2;
			switch (c)
			{
				case 'n':
					o[0] = '\n';
					break;
				case 't':
					o[0] = '\t';
					break;
				case 'r':
					o[0] = '\r';
					break;
				case 'b':
					o[0] = '\b';
					break;
				case 'f':
					o[0] = '\f';
					break;
				case 'u':
					{
						unsigned	cp = 0;

						if (end - p < 4)
							return false;
						for (int i = 0; i < 4; i++)
						{
							char		h = p[i];

							cp <<= 4;
							if (h >= '0' && h <= '9')
								cp |= h - '0';
							else if (h >= 'a' && h <= 'f')
								cp |= h - 'a' + 10;
							else if (h >= 'A' && h <= 'F')
								cp |= h - 'A' + 10;
							else
								return false;
						}
						p += 4;
						if (cp < 0x80)
							o[0] = (char) cp;
						else if (cp < 0x800)
						{
							o[0] = (char) (0xC0 | (cp >> 6));
							o[1] = (char) (0x80 | (cp & 0x3F));
							on = 2;
						}
						else
						{
							o[0] = (char) (0xE0 | (cp >> 12));
							o[1] = (char) (0x80 | ((cp >> 6) & 0x3F));
							o[2] = (char) (0x80 | (cp & 0x3F));
							on = 3;
						}
						break;
					}
				default:
					o[0] = c;
			}
			if (out)
				buf_append(out, o, on);
		}
	}
	return false;
}

/* skips a JSON value of any kind at *pp; false if malformed */
static bool
json_skip(const char **pp, const char *end)
{
	const char *p = *pp;
	int			depth = 0;

	while (p < end)
	{
		char		c = *p;

		if (c == '"')
		{
			p++;
			if (!json_string(&p, end, NULL))
				return false;
			if (depth == 0)
				break;
			continue;
		}
		if (c == '{' || c == '[')
			depth++;
		else if (c == '}' || c == ']')
		{
			if (depth == 0)
				break;			/* the enclosing object ends: a scalar ended */
			if (--depth == 0)
			{
				p++;
				break;
			}
		}
		else if (c == ',' && depth == 0)
			break;
		p++;
	}
	*pp = p;
	return depth == 0;
}

/*
 * A Cloud Logging entry (Cloud SQL's export: one JSON object a line): the
 * top-level "textPayload", a stderr log line with Cloud SQL's prefix, into
 * out; false if there is none.
 */
static bool
json_text_payload(const char *p, const char *end, Buf *out)
{
	Buf			key = {0};
	bool		found = false;

	while (p < end && *p != '{')
		p++;
	p++;
	while (p < end && !found)
	{
		while (p < end && (*p == ' ' || *p == ','))
			p++;
		if (p >= end || *p != '"')
			break;
		p++;
		buf_reset(&key);
		if (!json_string(&p, end, &key))
			break;
		while (p < end && (*p == ' ' || *p == ':'))
			p++;
		if (key.len == 11 && strcmp(key.data, "textPayload") == 0 && p < end && *p == '"')
		{
			p++;
			found = json_string(&p, end, out);
		}
		else if (!json_skip(&p, end))
			break;
	}
	buf_free(&key);
	return found;
}

static void
json_line(Reader *r, const char *line, size_t len)
{
	const char *p = line,
			   *end = line + len;
	LogEntry   *e;
	Buf			key = {0},
				val = {0};
	bool		ok = false;

	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (p >= end)
		return;
	if (*p != '{')
	{
		bad_line(r, r->lr.lineno, "not a jsonlog object");
		return;
	}
	if (memmem(p, end - p, "\"textPayload\"", 13) != NULL)
	{
		Buf			payload = {0};

		if (json_text_payload(p, end, &payload))
		{
			/* its lines are stderr lines: DETAIL entries join theirs */
			for (const char *q = payload.data, *qe = payload.data + payload.len; q < qe;)
			{
				const char *nl = memchr(q, '\n', qe - q);
				size_t		n = nl ? (size_t) (nl - q) : (size_t) (qe - q);

				stderr_line(r, q, n);
				q += n + 1;
			}
			buf_free(&payload);
			return;
		}
		buf_free(&payload);
	}
	flush_entry(r);
	start_entry(r, r->lr.lineno);
	e = &r->entry;
	p++;
	for (;;)
	{
		bool		is_string;
		const char *vstart;

		while (p < end && (*p == ' ' || *p == ','))
			p++;
		if (p < end && *p == '}')
		{
			ok = true;
			break;
		}
		if (p >= end || *p != '"')
			break;
		p++;
		buf_reset(&key);
		if (!json_string(&p, end, &key))
			break;
		while (p < end && *p == ' ')
			p++;
		if (p >= end || *p != ':')
			break;
		p++;
		while (p < end && *p == ' ')
			p++;
		if (p >= end)
			break;
		buf_reset(&val);
		is_string = *p == '"';
		vstart = p;
		if (is_string)
		{
			p++;
			if (!json_string(&p, end, &val))
				break;
		}
		else if (*p == '{' || *p == '[')
		{
			if (!json_skip(&p, end))
				break;
			continue;			/* (jsonlog is flat: nested values are not ours) */
		}
		else
		{
			while (p < end && *p != ',' && *p != '}')
				p++;
			buf_append(&val, vstart, p - vstart);
		}
		if (key.len == 0)
			continue;
		if (strcmp(key.data, "timestamp") == 0)
		{
			int64_t		prec;

			if (parse_timestamp(val.data, val.len, true, &e->ts_us, &prec) >= 0)
				e->ts_precision_us = prec;
		}
		else if (strcmp(key.data, "pid") == 0)
			e->pid = atoi(val.data);
		else if (strcmp(key.data, "session_id") == 0)
			copy_field(e->session, sizeof(e->session), val.data, val.len);
		else if (strcmp(key.data, "vxid") == 0)
			copy_field(e->vxid, sizeof(e->vxid), val.data, val.len);
		else if (strcmp(key.data, "error_severity") == 0)
			copy_field(e->severity, sizeof(e->severity), val.data, val.len);
		else if (strcmp(key.data, "message") == 0)
			append_part(r, &e->message, val.data, val.len);
		else if (strcmp(key.data, "detail") == 0)
			append_part(r, &e->detail, val.data, val.len);
		else if (strcmp(key.data, "application_name") == 0)
		{
			copy_field(e->app, sizeof(e->app), val.data, val.len);
			e->has_app = true;
		}
		else if (strcmp(key.data, "query_id") == 0)
		{
			e->query_id = strtoll(val.data, NULL, 10);
			e->has_query_id = e->query_id != 0;
		}
	}
	buf_free(&key);
	buf_free(&val);
	if (!ok || e->ts_us == 0 || e->severity[0] == '\0')
	{
		r->pending = false;
		bad_line(r, r->lr.lineno, ok ? "jsonlog object without timestamp or error_severity" : "malformed jsonlog object");
		return;
	}
	if (!e->has_app)
		e->has_app = true;		/* jsonlog omits empty fields: no key means "" */
	flush_entry(r);
}

/* ---------- driver ---------- */

static LogFormat
guess_format(const char *path, const char *line, size_t len)
{
	size_t		n = strlen(path);
	int64_t		us,
				prec;
	int			t;

	if (n > 3 && strcmp(path + n - 3, ".gz") == 0)
		n -= 3;
	if (n > 4 && strncmp(path + n - 4, ".csv", 4) == 0)
		return FMT_CSV;
	if (n > 5 && strncmp(path + n - 5, ".json", 5) == 0)
		return FMT_JSON;
	if (len > 0 && line[0] == '{')
		return FMT_JSON;
	t = parse_timestamp(line, len, true, &us, &prec);
	if (t > 0 && (size_t) t < len && line[t] == ',')
		return FMT_CSV;
	return FMT_STDERR;
}

bool
read_log(const char *path, const ReaderOptions *opt, EntryHandler handler, void *arg,
		 ReaderStats *stats)
{
	Reader		r;
	char	   *line;
	size_t		len;
	LogFormat	fmt = opt->format;
	uint64_t	next_progress = 1000000;

	memset(&r, 0, sizeof(r));
	r.lr.path = path;
	r.lr.cap = 1024 * 1024;
	r.lr.buf = malloc(r.lr.cap);
	r.lr.follow = opt->follow;
	r.lr.max_line = opt->max_entry + 1024;
	r.lr.stats = stats;
	r.opt = opt;
	r.handler = handler;
	r.arg = arg;
	r.stats = stats;
	if (!lr_open(&r.lr))
	{
		fprintf(stderr, "n1scan: could not open \"%s\": %s\n", path, strerror(errno));
		free(r.lr.buf);
		return false;
	}
	if (opt->prefix != NULL)
	{
		if (!compile_prefix(opt->prefix, &r.prefix))
		{
			fprintf(stderr, "n1scan: cannot use --prefix '%s': unknown escape or too many elements\n", opt->prefix);
			exit(2);
		}
		r.have_prefix = true;
	}
	/* a stop (SIGINT, SIGTERM) ends a plain read at once; --follow reads what is there first */
	while ((!n1scan_stop || opt->follow) && lr_next(&r.lr, &line, &len))
	{
		if (fmt == FMT_AUTO)
			fmt = guess_format(path, line, len);
		switch (fmt)
		{
			case FMT_CSV:
				csv_line(&r, line, len);
				break;
			case FMT_JSON:
				json_line(&r, line, len);
				break;
			default:
				stderr_line(&r, line, len);
				break;
		}
		if (opt->progress && stats->lines >= next_progress)
		{
			fprintf(stderr, "n1scan: %s: %lu lines\n", path, (unsigned long) stats->lines);
			next_progress += 1000000;
		}
	}
	if (r.record.len > 0)
		bad_line(&r, r.record_line, "csvlog record truncated at the end of the file");
	flush_entry(&r);
	if (r.lr.gz)
		gzclose(r.lr.gz);
	free(r.lr.buf);
	free(r.prefix.text);
	buf_free(&r.record);
	buf_free(&r.entry.message);
	buf_free(&r.entry.detail);
	return true;
}
