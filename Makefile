# n1detect: PGXS build.  `make && make install` builds against the pg_config on
# PATH (or PG_CONFIG=...).  Tests: tools/test (see README) runs everything;
# the targets below are its building blocks.

MODULE_big = n1detect
# src/core: the detector (plain C, no PostgreSQL headers; shared with n1scan)
# src/server: the extension's front end (hooks, slots, offenders, views)
# src/fast_count: approximate counts
# one concern per file (see the comment at the top of each)
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/core/*.c src/server/*.c src/fast_count/*.c)))

EXTENSION = n1detect
DATA = $(wildcard extension/n1detect--*.sql)
PGFILEDESC = "n1detect - N+1 query detection and fast approximate counts"

# `make installcheck` (after `make install`, as a non-root user) runs:
#  - pg_regress on every sql/*.sql, in a temporary server of its own started
#    with test/regress.conf (n1detect preloaded), never the running server;
#  - the TAP tests test/t/*.pl (PostgreSQL::Test::Cluster).
REGRESS = $(sort $(basename $(notdir $(wildcard sql/*.sql))))
REGRESS_OPTS = --temp-instance=tmp_check_regress --temp-config=$(srcdir)/test/regress.conf
TAP_TESTS = 1
PROVE_TESTS = $(if $(T),$(T),test/t/*.pl)

# PostgreSQL's headers as system headers: -Wextra is for our code, not theirs
PG_CPPFLAGS = -I$(srcdir)/src/core -I$(srcdir)/src/server -I$(srcdir)/src/fast_count -isystem $(includedir_server)
# N1_ASSERT=1: enable Assert() in n1detect's code even on a server built
# without --enable-cassert (tools/test builds this way)
ifeq ($(N1_ASSERT),1)
PG_CPPFLAGS += -DUSE_ASSERT_CHECKING
endif
PG_CFLAGS = -Wall -Wextra -Werror
# the library's version (PG_MODULE_MAGIC_EXT on 18+): the control file's default_version
PG_CPPFLAGS += -DN1_VERSION=\"$(shell sed -n "s/^default_version = '\(.*\)'/\1/p" $(srcdir)/n1detect.control)\"

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# after the include: Makefile.global resets PROVE_FLAGS
PROVE_FLAGS += -I $(srcdir)/test/lib

# The detector has no PostgreSQL dependency: its unit tests build with plain cc.
UNIT_CFLAGS = -std=c99 -O1 -g -Wall -Wextra -Werror -fsanitize=address,undefined -fno-omit-frame-pointer
test/unit/test_detector: test/unit/test_detector.c src/core/detector.c src/core/detector.h
	$(CC) $(UNIT_CFLAGS) -Isrc/core -o $@ test/unit/test_detector.c src/core/detector.c -lm
test/unit/test_query_comment: test/unit/test_query_comment.c src/core/query_comment.c src/core/query_comment.h
	$(CC) $(UNIT_CFLAGS) -Isrc/core -o $@ test/unit/test_query_comment.c src/core/query_comment.c

.PHONY: unitcheck regresscheck tapcheck
unitcheck: test/unit/test_detector test/unit/test_query_comment
	test/unit/test_detector
	test/unit/test_query_comment

regresscheck:
	$(pg_regress_installcheck) $(REGRESS_OPTS) $(REGRESS)

# T=test/t/020_foo.pl runs one TAP test.
tapcheck:
	$(prove_installcheck)

# n1scan (src/scan): a plain-C program reading server logs, with the same
# detector core compiled in; linked with Debian's libpg-query-dev (no
# pkg-config file) and zlib; installed into pg_config's bindir with the
# extension.  n1scan-asan: the same under ASan + UBSan, for the tests.
N1SCAN_SRCS = $(sort $(wildcard src/scan/*.c)) src/core/detector.c src/core/value_hash.c src/core/query_comment.c
N1SCAN_DEPS = $(N1SCAN_SRCS) $(wildcard src/scan/*.h) src/core/detector.h src/core/value_hash.h src/core/query_comment.h
N1SCAN_CFLAGS = -std=gnu11 -O2 -g -Wall -Wextra -Werror -Isrc/core
N1SCAN_LIBS = -lpg_query -lz -lm
src/scan/n1scan: $(N1SCAN_DEPS)
	$(CC) $(N1SCAN_CFLAGS) -o $@ $(N1SCAN_SRCS) $(N1SCAN_LIBS)
src/scan/n1scan-asan: $(N1SCAN_DEPS)
	$(CC) $(N1SCAN_CFLAGS) -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -o $@ $(N1SCAN_SRCS) $(N1SCAN_LIBS)
# built when libpg_query's header is there (tools/install-deps installs it),
# so the extension alone still builds without it
N1SCAN_HEADER ?= $(firstword $(wildcard /usr/include/pg_query.h /usr/local/include/pg_query.h))
ifneq ($(N1SCAN_HEADER),)
all: src/scan/n1scan src/scan/n1scan-asan
install: install-n1scan
else
$(info n1detect: pg_query.h not found (Debian: libpg-query-dev), n1scan not built)
endif
.PHONY: install-n1scan
install-n1scan: src/scan/n1scan
	$(MKDIR_P) '$(DESTDIR)$(bindir)'
	$(INSTALL_PROGRAM) src/scan/n1scan '$(DESTDIR)$(bindir)/n1scan'

EXTRA_CLEAN = test/unit/test_detector test/unit/test_query_comment tmp_check_regress src/scan/n1scan src/scan/n1scan-asan
