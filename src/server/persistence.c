/*
 * persistence.c
 *		Saves n1_offenders to a file at clean shutdown and loads it at start
 *		(n1detect.save), as pg_stat_statements does with its dump file.
 *
 * The file holds a header (magic, format version, entry size, count,
 * n1_info's counters), the entries as they are in shared memory, and a
 * CRC-32C of all that.  It is written only when the server shut down
 * cleanly: the exit code is 0 (pg_stat_statements' rule) and the control
 * file says "shut down", which an immediate shutdown does not (its shared
 * memory may hold half-made updates of backends killed in the middle).
 * Loading checks the checksum and every field of every entry; any mismatch
 * rejects the whole file with a LOG line, and nothing of it is kept.  The
 * file is removed once read, so a crash never resurrects stale data.
 *
 * Must never: run outside the postmaster (or a standalone backend), or let
 * a value the views cannot show (a timestamp out of range, an unknown kind,
 * an unterminated text) into shared memory.
 */
#include "postgres.h"

#include <fcntl.h>
#include <math.h>
#include <unistd.h>

#include "access/xlog_internal.h"
#include "catalog/pg_control.h"
#include "pgstat.h"
#include "port/pg_crc32c.h"
#include "storage/fd.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

#include "n1detect.h"

#define N1_DUMP_FILE PGSTAT_STAT_PERMANENT_DIRECTORY "/n1detect.stat"
#define N1_DUMP_MAGIC 0x4e31444554454354	/* "N1DETECT" */
#define N1_DUMP_VERSION 2

typedef struct DumpHeader
{
	uint64		magic;
	uint32		version;
	uint32		entry_size;
	int64		count;
	int64		dealloc;
	int64		bursts_total;
	int64		counters[N1_NUM_COUNTERS];	/* since stats_reset */
	TimestampTz stats_reset;
} DumpHeader;

/* Did the server just shut down cleanly?  Reads global/pg_control. */
static bool
shutdown_was_clean(void)
{
	ControlFileData control;
	pg_crc32c	crc;
	int			fd;
	ssize_t		got;

	fd = open(XLOG_CONTROL_FILE, O_RDONLY | PG_BINARY, 0);
	if (fd < 0)
		return false;
	got = read(fd, &control, sizeof(control));
	close(fd);
	if (got != sizeof(control))
		return false;
	INIT_CRC32C(crc);
	COMP_CRC32C(crc, &control, offsetof(ControlFileData, crc));
	FIN_CRC32C(crc);
	if (!EQ_CRC32C(crc, control.crc))
		return false;
	return control.state == DB_SHUTDOWNED || control.state == DB_SHUTDOWNED_IN_RECOVERY;
}

static bool
write_crc(FILE *file, const void *data, size_t size, pg_crc32c *crc)
{
	COMP_CRC32C(*crc, data, size);
	return fwrite(data, size, 1, file) == 1;
}

/*
 * Writes the file, at postmaster exit (code: the exit code).  Nothing after
 * a crash or an immediate shutdown.
 */
void
n1_persistence_save(int code)
{
	FILE	   *file;
	DumpHeader	header;
	HASH_SEQ_STATUS status;
	N1Offender *entry;
	pg_crc32c	crc;

	if (code != 0 || !shutdown_was_clean())
	{
		ereport(LOG,
				(errmsg("n1detect did not save n1_offenders: the server did not shut down cleanly")));
		return;
	}

	file = AllocateFile(N1_DUMP_FILE ".tmp", PG_BINARY_W);
	if (file == NULL)
		goto error;

	memset(&header, 0, sizeof(header));
	header.magic = N1_DUMP_MAGIC;
	header.version = N1_DUMP_VERSION;
	header.entry_size = sizeof(N1Offender);
	header.count = hash_get_num_entries(n1_offenders_hash);
	header.dealloc = n1_shared->dealloc;
	header.bursts_total = n1_shared->bursts_total;
	/* every backend has exited: its counters are folded */
	n1_counters_read(header.counters);
	header.stats_reset = n1_shared->stats_reset;

	INIT_CRC32C(crc);
	if (!write_crc(file, &header, sizeof(header), &crc))
		goto error;

	hash_seq_init(&status, n1_offenders_hash);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		if (!write_crc(file, entry, sizeof(N1Offender), &crc))
		{
			hash_seq_term(&status);
			goto error;
		}
	}
	FIN_CRC32C(crc);
	if (fwrite(&crc, sizeof(crc), 1, file) != 1)
		goto error;
	if (FreeFile(file))
	{
		file = NULL;
		goto error;
	}
	(void) durable_rename(N1_DUMP_FILE ".tmp", N1_DUMP_FILE, LOG);
	return;

error:
	ereport(LOG,
			(errcode_for_file_access(),
			 errmsg("could not write file \"%s\": %m", N1_DUMP_FILE ".tmp")));
	if (file)
		FreeFile(file);
	unlink(N1_DUMP_FILE ".tmp");
}

static bool
terminated(const char *s, size_t size)
{
	return memchr(s, '\0', size) != NULL;
}

static bool
valid_timestamp(TimestampTz t)
{
	return IS_VALID_TIMESTAMP(t);
}

/* What is wrong with a loaded entry, or NULL. */
static const char *
entry_problem(const N1Offender *e)
{
	if (e->key.userid == InvalidOid || e->key.queryid == 0 || e->key.pad != 0)
		return "invalid key";
	if (e->key.kind != N1_KIND_N_PLUS_ONE && e->key.kind != N1_KIND_DUPLICATE &&
		e->key.kind != N1_KIND_LOOP)
		return "unknown kind";
	if (e->bursts < 1 || e->calls < e->bursts || e->max_calls < 1 ||
		e->max_calls > e->calls || e->max_distinct_params < 0 ||
		e->max_distinct_params > e->max_calls || e->max_parent_rows < 0 ||
		e->total_exec_us < 0)
		return "inconsistent counts";
	if (!valid_timestamp(e->first_seen) || !valid_timestamp(e->last_seen) ||
		e->first_seen > e->last_seen)
		return "timestamp out of range";
	if (isnan(e->usage) || e->usage < 0 || isinf(e->usage))
		return "invalid usage";
	if (!terminated(e->application_name, NAMEDATALEN) ||
		!terminated(e->query, N1_QUERY_TEXT_LEN) ||
		!terminated(e->parent_query, N1_QUERY_TEXT_LEN))
		return "unterminated text";
	if (e->samples.count < 0 || e->samples.count > N1_BURST_SAMPLES)
		return "invalid sample count";
	for (int s = 0; s < N1_BURST_SAMPLES; s++)
		if (!terminated(e->samples.values[s], N1_SAMPLE_LEN))
			return "unterminated sample";
	return NULL;
}

static const char *
header_problem(const DumpHeader *h)
{
	if (h->magic != N1_DUMP_MAGIC || h->version != N1_DUMP_VERSION ||
		h->entry_size != sizeof(N1Offender))
		return "it is of an unknown format";
	if (h->count < 0 || h->dealloc < 0 || h->bursts_total < 0 ||
		!valid_timestamp(h->stats_reset))
		return "its header is invalid";
	for (int c = 0; c < N1_NUM_COUNTERS; c++)
		if (h->counters[c] < 0)
			return "its header is invalid";
	return NULL;
}

static bool
read_crc(FILE *file, void *data, size_t size, pg_crc32c *crc)
{
	if (fread(data, size, 1, file) != 1)
		return false;
	COMP_CRC32C(*crc, data, size);
	return true;
}

/* Removes whatever a rejected file put into shared memory. */
static void
forget_loaded(void)
{
	HASH_SEQ_STATUS status;
	N1Offender *entry;

	hash_seq_init(&status, n1_offenders_hash);
	while ((entry = hash_seq_search(&status)) != NULL)
		hash_search(n1_offenders_hash, &entry->key, HASH_REMOVE, NULL);
}

/*
 * Loads the file at postmaster start.  The whole file or nothing: any
 * problem (format, truncation, checksum, a field out of its range) is
 * logged and nothing of the file is kept.
 */
void
n1_persistence_load(void)
{
	FILE	   *file;
	DumpHeader	header;
	N1Offender *buffer = NULL;
	pg_crc32c	crc;
	pg_crc32c	stored;
	const char *problem = NULL;
	char		problem_buf[128];

	file = AllocateFile(N1_DUMP_FILE, PG_BINARY_R);
	if (file == NULL)
	{
		if (errno != ENOENT)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not read file \"%s\": %m", N1_DUMP_FILE)));
		return;
	}

	INIT_CRC32C(crc);
	if (!read_crc(file, &header, sizeof(header), &crc))
	{
		problem = ferror(file) ? "it could not be read" : "it is truncated";
		goto done;
	}
	if ((problem = header_problem(&header)) != NULL)
		goto done;

	buffer = palloc(sizeof(N1Offender));
	for (int64 i = 0; i < header.count; i++)
	{
		N1Offender *entry;
		bool		found;
		const char *bad;

		if (!read_crc(file, buffer, sizeof(N1Offender), &crc))
		{
			problem = ferror(file) ? "it could not be read" : "it is truncated";
			goto done;
		}
		if ((bad = entry_problem(buffer)) != NULL)
		{
			snprintf(problem_buf, sizeof(problem_buf), "entry %lld: %s",
					 (long long) i + 1, bad);
			problem = problem_buf;
			goto done;
		}
		/* the file may come from a server with a larger n1detect.max_offenders */
		if (hash_get_num_entries(n1_offenders_hash) >= n1_max_offenders)
			continue;
		entry = hash_search(n1_offenders_hash, &buffer->key, HASH_ENTER, &found);
		if (found)
		{
			snprintf(problem_buf, sizeof(problem_buf), "entry %lld: duplicate key",
					 (long long) i + 1);
			problem = problem_buf;
			goto done;
		}
		memcpy(entry, buffer, sizeof(N1Offender));
	}
	FIN_CRC32C(crc);
	if (fread(&stored, sizeof(stored), 1, file) != 1)
		problem = ferror(file) ? "it could not be read" : "it is truncated";
	else if (!EQ_CRC32C(crc, stored))
		problem = "its checksum does not match";
	else if (fgetc(file) != EOF)
		problem = "it has trailing data";

done:
	if (problem)
	{
		forget_loaded();
		ereport(LOG,
				(errmsg("ignoring n1detect file \"%s\": %s", N1_DUMP_FILE, problem),
				 errdetail("n1_offenders starts empty.")));
	}
	else
	{
		n1_shared->dealloc = header.dealloc;
		n1_shared->bursts_total = header.bursts_total;
		memcpy(n1_shared->folded, header.counters, sizeof(n1_shared->folded));
		pg_atomic_write_u64(&n1_shared->slots_skipped,
							(uint64) header.counters[N1_COUNTER_SLOTS_SKIPPED]);
		n1_shared->stats_reset = header.stats_reset;
	}
	if (buffer)
		pfree(buffer);
	FreeFile(file);
	/* loaded (or unusable): remove it so a crash cannot bring it back */
	unlink(N1_DUMP_FILE);
}
