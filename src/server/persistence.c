/*
 * persistence.c
 *		Saves n1_offenders to a file at clean shutdown and loads it at start
 *		(n1detect.save), as pg_stat_statements does with its dump file.
 *
 * The file holds a header (magic, format version, struct size, count) and
 * the entries as they are in shared memory.  It is removed once loaded, so a
 * crash never resurrects stale data; a file of another format is ignored
 * with a LOG line.
 */
#include "postgres.h"

#include <unistd.h>

#include "pgstat.h"
#include "storage/fd.h"
#include "utils/hsearch.h"

#include "n1detect.h"

#define N1_DUMP_FILE PGSTAT_STAT_PERMANENT_DIRECTORY "/n1detect.stat"
#define N1_DUMP_MAGIC 0x4e31444554454354	/* "N1DETECT" */
#define N1_DUMP_VERSION 1

typedef struct DumpHeader
{
	uint64		magic;
	uint32		version;
	uint32		entry_size;
	int64		count;
	int64		dealloc;
	TimestampTz stats_reset;
} DumpHeader;

void
n1_persistence_save(void)
{
	FILE	   *file;
	DumpHeader	header;
	HASH_SEQ_STATUS status;
	N1Offender *entry;

	file = AllocateFile(N1_DUMP_FILE ".tmp", PG_BINARY_W);
	if (file == NULL)
		goto error;

	header.magic = N1_DUMP_MAGIC;
	header.version = N1_DUMP_VERSION;
	header.entry_size = sizeof(N1Offender);
	header.count = hash_get_num_entries(n1_offenders_hash);
	header.dealloc = n1_shared->dealloc;
	header.stats_reset = n1_shared->stats_reset;
	if (fwrite(&header, sizeof(header), 1, file) != 1)
		goto error;

	hash_seq_init(&status, n1_offenders_hash);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		if (fwrite(entry, sizeof(N1Offender), 1, file) != 1)
		{
			hash_seq_term(&status);
			goto error;
		}
	}
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

void
n1_persistence_load(void)
{
	FILE	   *file;
	DumpHeader	header;
	N1Offender *buffer;

	file = AllocateFile(N1_DUMP_FILE, PG_BINARY_R);
	if (file == NULL)
	{
		if (errno != ENOENT)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not read file \"%s\": %m", N1_DUMP_FILE)));
		return;
	}

	if (fread(&header, sizeof(header), 1, file) != 1 ||
		header.magic != N1_DUMP_MAGIC ||
		header.version != N1_DUMP_VERSION ||
		header.entry_size != sizeof(N1Offender) ||
		header.count < 0)
	{
		ereport(LOG,
				(errmsg("ignoring n1detect file \"%s\" of an unknown format", N1_DUMP_FILE)));
		goto done;
	}

	buffer = palloc(sizeof(N1Offender));
	for (int64 i = 0; i < header.count; i++)
	{
		N1Offender *entry;
		bool		found;

		if (fread(buffer, sizeof(N1Offender), 1, file) != 1)
		{
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not read file \"%s\": %m", N1_DUMP_FILE)));
			break;
		}
		/* the file may come from a server with a larger n1detect.max_offenders */
		if (hash_get_num_entries(n1_offenders_hash) >= n1_max_offenders)
			break;
		buffer->query[N1_QUERY_TEXT_LEN - 1] = '\0';
		buffer->parent_query[N1_QUERY_TEXT_LEN - 1] = '\0';
		buffer->application_name[NAMEDATALEN - 1] = '\0';
		buffer->samples.count = Min(Max(buffer->samples.count, 0), N1_BURST_SAMPLES);
		for (int s = 0; s < N1_BURST_SAMPLES; s++)
			buffer->samples.values[s][N1_SAMPLE_LEN - 1] = '\0';
		entry = hash_search(n1_offenders_hash, &buffer->key, HASH_ENTER, &found);
		memcpy(entry, buffer, sizeof(N1Offender));
	}
	pfree(buffer);
	n1_shared->dealloc = header.dealloc;
	n1_shared->stats_reset = header.stats_reset;

done:
	FreeFile(file);
	/* loaded (or unusable): remove it so a crash cannot bring it back */
	unlink(N1_DUMP_FILE);
}
