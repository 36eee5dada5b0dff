/*
 * n1detect.c
 *		Module entry point: settings (GUCs), shared-memory reservation and
 *		start-up, and installation of the recording hooks.
 *
 * Everything that needs shared memory requires shared_preload_libraries;
 * the fast_count functions work without it (their settings are defined
 * whenever the library is loaded).  n1detect.debug_stop_in_slot_write, a
 * test-only fault injection, exists only in builds with N1_ASSERT=1.
 *
 * Must never: define a PGC_POSTMASTER setting after start-up, or touch
 * shared memory before the startup hook made it.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
#include "utils/memutils.h"
#include "utils/varlena.h"
#if PG_VERSION_NUM >= 160000
#include "nodes/queryjumble.h"
#else
#include "utils/queryjumble.h"
#endif

#include "fast_count.h"
#include "n1detect.h"

#if PG_VERSION_NUM >= 180000
/* name and version as pg_get_loaded_modules() shows them (Makefile: N1_VERSION) */
PG_MODULE_MAGIC_EXT(.name = "n1detect",.version = N1_VERSION);
#else
PG_MODULE_MAGIC;
#endif

int			n1_track = N1_TRACK_TOP;
int			n1_min_calls = 5;
int			n1_max_gap_ms = 100;
int			n1_action = N1_ACTION_NONE;
int			n1_action_kinds = (1 << N1_KIND_N_PLUS_ONE);
int			n1_max_offenders = 1000;
int			n1_max_bursts = 1000;
bool		n1_save = true;
bool		n1_strict = false;

static char *n1_action_kinds_string = NULL;

/* Bumped when a setting the detector is configured with changes (recorder.c compares). */
uint64		n1_settings_version = 1;

/* Bumped when application_name changes (see watch_application_name). */
uint64		n1_application_name_version = 1;
bool		n1_application_name_watched = false;
static GucStringAssignHook prev_assign_application_name = NULL;

#ifdef USE_ASSERT_CHECKING
int			n1_debug_stop = N1_DEBUG_STOP_NONE;
bool		n1_debug_stop_armed = false;

static const struct config_enum_entry debug_stop_options[] = {
	{"none", N1_DEBUG_STOP_NONE, false},
	{"event", N1_DEBUG_STOP_EVENT, false},
	{"burst_end", N1_DEBUG_STOP_BURST_END, false},
	{"read", N1_DEBUG_STOP_READ, false},
	{NULL, 0, false}
};

/* Each SET arms one stop. */
static void
assign_debug_stop(int newval, void *extra pg_attribute_unused())
{
	n1_debug_stop_armed = (newval != N1_DEBUG_STOP_NONE);
}
#endif

static const struct config_enum_entry track_options[] = {
	{"none", N1_TRACK_NONE, false},
	{"top", N1_TRACK_TOP, false},
	{"all", N1_TRACK_ALL, false},
	{NULL, 0, false}
};

static const struct config_enum_entry action_options[] = {
	{"none", N1_ACTION_NONE, false},
	{"log", N1_ACTION_LOG, false},
	{"warning", N1_ACTION_WARNING, false},
	{"error", N1_ACTION_ERROR, false},
	{NULL, 0, false}
};

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

void		_PG_init(void);

/* Parses n1detect.action_kinds ("n_plus_one, duplicate, loop") into a bitmask. */
static bool
check_action_kinds(char **newval, void **extra, GucSource source pg_attribute_unused())
{
	char	   *raw = pstrdup(*newval);
	List	   *names;
	ListCell   *lc;
	int			mask = 0;
	int		   *result;

	if (!SplitIdentifierString(raw, ',', &names))
	{
		GUC_check_errdetail("List syntax is invalid.");
		pfree(raw);
		list_free(names);
		return false;
	}
	foreach(lc, names)
	{
		const char *name = (const char *) lfirst(lc);

		if (pg_strcasecmp(name, "n_plus_one") == 0)
			mask |= (1 << N1_KIND_N_PLUS_ONE);
		else if (pg_strcasecmp(name, "duplicate") == 0)
			mask |= (1 << N1_KIND_DUPLICATE);
		else if (pg_strcasecmp(name, "loop") == 0)
			mask |= (1 << N1_KIND_LOOP);
		else
		{
			GUC_check_errdetail("Unrecognized kind \"%s\".", name);
			GUC_check_errhint("Valid kinds are n_plus_one, duplicate and loop.");
			pfree(raw);
			list_free(names);
			return false;
		}
	}
	pfree(raw);
	list_free(names);

	/*
	 * GUC "extra" data is freed by guc.c: from PostgreSQL 16 on with
	 * guc_free, so it must come from guc_malloc; before 16 with free().
	 */
#if PG_VERSION_NUM >= 160000
	result = (int *) guc_malloc(LOG, sizeof(int));
#else
	result = (int *) malloc(sizeof(int));
#endif
	if (result == NULL)
		return false;
	*result = mask;
	*extra = result;
	return true;
}

static void
assign_action_kinds(const char *newval pg_attribute_unused(), void *extra)
{
	n1_action_kinds = *((int *) extra);
}

static void
n1_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();

	RequestAddinShmemSpace(add_size(n1_offenders_shmem_size(), n1_slots_shmem_size()));
	RequestNamedLWLockTranche("n1detect", 1);
}

/*
 * Saves the offenders at postmaster exit (registered by the postmaster
 * only): persistence.c writes only after a clean shutdown.
 */
static void
n1_shmem_shutdown(int code, Datum arg pg_attribute_unused())
{
	if (n1_shared == NULL || !n1_save)
		return;
	n1_persistence_save(code);
}

static void
n1_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	n1_offenders_shmem_init();
	n1_slots_shmem_init();

	/* Only the postmaster (or a standalone backend) loads and saves. */
	if (!IsUnderPostmaster)
	{
		on_shmem_exit(n1_shmem_shutdown, (Datum) 0);
		n1_persistence_load();
	}
}

/*
 * n1detect's long-lived memory in this backend (normalized query texts,
 * room to sort offenders for eviction): one context of its own under
 * TopMemoryContext, so pg_backend_memory_contexts shows it as "n1detect".
 * Each user bounds what it keeps there by bytes (README, Memory).
 */
MemoryContext
n1_memory_context(void)
{
	static MemoryContext context = NULL;

	if (context == NULL)
		context = AllocSetContextCreate(TopMemoryContext, "n1detect",
										ALLOCSET_SMALL_SIZES);
	return context;
}

/* Raises the error every detection function gives without preloading. */
void
n1_require_preload(void)
{
	if (n1_shared == NULL || n1_offenders_hash == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("n1detect must be loaded via shared_preload_libraries"),
				 errdetail("N+1 detection records statements from shared memory that is reserved at server start."),
				 errhint("Add n1detect to shared_preload_libraries in postgresql.conf and restart the server.")));
}

static void
assign_detector_int(int newval pg_attribute_unused(), void *extra pg_attribute_unused())
{
	n1_settings_version++;
}

static void
assign_detector_bool(bool newval pg_attribute_unused(), void *extra pg_attribute_unused())
{
	n1_settings_version++;
}

static void
assign_application_name_watched(const char *newval, void *extra)
{
	if (prev_assign_application_name)
		prev_assign_application_name(newval, extra);
	n1_application_name_version++;
}

/*
 * A change of application_name ends a unit of work.  Comparing the name at
 * every statement costs a strncmp; instead, application_name's own assign
 * hook (called by the GUC machinery for every change of its value: SET,
 * set_config(), a function's SET clause, RESET, the end of a transaction or
 * function restoring a value) is wrapped so that it counts changes, and the
 * recorder compares one counter.  Without the setting found, the recorder
 * compares the text at every statement.
 */
static void
watch_application_name(void)
{
	struct config_generic *gen = NULL;

#if PG_VERSION_NUM >= 160000
	gen = find_option("application_name", false, true, ERROR);
#else
	struct config_generic **vars = get_guc_variables();
	int			n = GetNumConfigOptions();

	for (int i = 0; i < n; i++)
	{
		if (strcmp(vars[i]->name, "application_name") == 0)
		{
			gen = vars[i];
			break;
		}
	}
#endif
	if (gen == NULL || gen->vartype != PGC_STRING)
		return;
	prev_assign_application_name = ((struct config_string *) gen)->assign_hook;
	((struct config_string *) gen)->assign_hook = assign_application_name_watched;
	n1_application_name_watched = true;
}

void
_PG_init(void)
{
	/* Settings used by fast_count work with or without preloading. */
	n1_fast_count_define_gucs();

	DefineCustomEnumVariable("n1detect.track",
							 "Selects which statements n1detect records.",
							 "top records statements issued by clients; all also records statements inside functions; none turns recording off.",
							 &n1_track, N1_TRACK_TOP, track_options,
							 PGC_SUSET, 0, NULL, NULL, NULL);

	DefineCustomIntVariable("n1detect.min_calls",
							"Calls of one query within a unit of work that make a burst.",
							NULL,
							&n1_min_calls, 5, 2, 1000000,
							PGC_USERSET, 0, NULL, assign_detector_int, NULL);

	DefineCustomBoolVariable("n1detect.strict",
							 "Reports a loop of 2 calls or more once its parent is proven by values.",
							 "For test suites: a query whose parameter values came from the rows of an earlier query is an N+1 from its 2nd call; other kinds still need n1detect.min_calls calls.",
							 &n1_strict, false,
							 PGC_USERSET, 0, NULL, assign_detector_bool, NULL);

	DefineCustomIntVariable("n1detect.max_gap",
							"Idle time between two statements that ends a unit of work.",
							NULL,
							&n1_max_gap_ms, 100, 0, 3600 * 1000,
							PGC_USERSET, GUC_UNIT_MS, NULL, assign_detector_int, NULL);

	DefineCustomEnumVariable("n1detect.action",
							 "What to do when a query crosses n1detect.min_calls.",
							 "none only records; log writes a LOG line; warning sends a WARNING to the client; error raises an ERROR.",
							 &n1_action, N1_ACTION_NONE, action_options,
							 PGC_USERSET, 0, NULL, NULL, NULL);

	DefineCustomStringVariable("n1detect.action_kinds",
							   "Kinds of burst that n1detect.action applies to.",
							   "Comma-separated list of n_plus_one, duplicate, loop.",
							   &n1_action_kinds_string, "n_plus_one",
							   PGC_USERSET, GUC_LIST_INPUT,
							   check_action_kinds, assign_action_kinds, NULL);

	DefineCustomBoolVariable("n1detect.save",
							 "Saves n1_offenders across server shutdowns.",
							 NULL,
							 &n1_save, true,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);

#ifdef USE_ASSERT_CHECKING
	DefineCustomEnumVariable("n1detect.debug_stop_in_slot_write",
							 "Test only: stops this backend (SIGSTOP) in its next slot write of this kind.",
							 NULL,
							 &n1_debug_stop, N1_DEBUG_STOP_NONE, debug_stop_options,
							 PGC_SUSET, GUC_NOT_IN_SAMPLE, NULL, assign_debug_stop, NULL);
#endif

	/*
	 * Settings that size shared memory exist only when preloading: defining
	 * a PGC_POSTMASTER setting after start-up is an error.
	 */
	if (process_shared_preload_libraries_in_progress)
	{
		DefineCustomIntVariable("n1detect.max_offenders",
								"Maximum number of rows kept in n1_offenders.",
								NULL,
								&n1_max_offenders, 1000, 100, 1000000,
								PGC_POSTMASTER, 0, NULL, NULL, NULL);

		DefineCustomIntVariable("n1detect.max_bursts",
								"Number of recent bursts kept for n1_bursts.",
								NULL,
								&n1_max_bursts, 1000, 10, 1000000,
								PGC_POSTMASTER, 0, NULL, NULL, NULL);
	}

	MarkGUCPrefixReserved("n1detect");

	if (!process_shared_preload_libraries_in_progress)
		return;

	/* Query ids are what bursts are made of: have core compute them. */
	EnableQueryId();

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = n1_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = n1_shmem_startup;

	n1_recorder_install_hooks();
	watch_application_name();
}
