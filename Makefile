# Tern build.
#   make            release build: build/tern
#   make run        build, then run a development server on 127.0.0.1:2525 (./run/)
#   make test       install test dependencies, build with ASan+UBSan, run all tests
#   make check      the quick loop: layout check, unit and integration tests on the
#                   ASan+UBSan build (no package installs, no clang build, no fuzzing)
#   make bench      tern vs Postfix, side by side (see docs/PERFORMANCE.md)
#   make bench-baseline  build/baseline/tern: the code issue 12 was filed against,
#                   run by make bench's spool part beside today's (git history needed)
#   make journal-probe  the spool's candidate commit designs measured side by side
#                   (issue 12; not part of make test; see docs/PERFORMANCE.md)
#   make fuzz-long  HOURS=N: fuzz every target for a share of N CPU-hours and merge
#                   what it finds into tests/fuzz/corpus/ (see docs/SECURITY.md)
#   make crash-test TRIALS=N   kill -9 under load, N times: nothing acknowledged may be
#                   lost (root; not part of `make test`; see docs/SECURITY.md)
#   make install    PREFIX=/usr/local DESTDIR=
#   make man        regenerate man/tern.conf.5 from the parameter table

CC      ?= cc
PREFIX  ?= /usr/local
DESTDIR ?=
PKGS    := libevent libevent_pthreads libevent_openssl libunbound openssl libseccomp libidn2 zlib libpcre2-8 libpq gmime-3.0 jansson
WARN    := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wformat=2 -Wno-format-nonliteral \
           -Wmissing-prototypes -Wstrict-prototypes
CSTD    := -std=c17 -D_GNU_SOURCE
# libpq-fe.h is under /usr/include/postgresql on Debian; GMime's headers
# (capture mode's MIME parser) need glib's include paths.
INCS    := -Isrc $(shell pkg-config --cflags libpq gmime-3.0 2>/dev/null || echo -I/usr/include/postgresql)
LIBS     = $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lunbound -levent_openssl -levent_pthreads -levent -lssl -lcrypto -lseccomp -lidn2 -lz -lpcre2-8 -lpq -lgmime-3.0 -lgobject-2.0 -lglib-2.0 -ljansson) -lcrypt -lpthread

SRC_ALL := $(shell find src -name '*.c' | sort)
SRC_LIB := $(filter-out src/main.c,$(SRC_ALL))
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
# Each object depends on the headers it includes (-MMD -MP .d files), so touching
# one .c rebuilds one object; and on the Makefile, so changed flags rebuild all.
DEPFLAGS := -MMD -MP

# Release build
BUILD   := build
CFLAGS_REL := $(CSTD) $(WARN) $(INCS) -O2 -g
# Test build (sanitizers)
TBUILD  := build/asan
SANITIZE := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
CFLAGS_TST := $(CSTD) $(WARN) $(INCS) -O1 -g $(SANITIZE) -DTERN_TEST_BUILD

# The capture page's files, compiled in (src/capture/capture_web.h), with
# DOMPurify from Debian's node-dompurify.
WEB_SRC := $(sort $(wildcard src/capture/web/*))
DOMPURIFY := /usr/share/nodejs/dompurify/dist/purify.es.js
GEN_WEB := build/gen/capture_web_assets.c
$(GEN_WEB): $(WEB_SRC) $(DOMPURIFY) scripts/embed-web.py
	@mkdir -p $(dir $@)
	$(Q)/usr/bin/python3 scripts/embed-web.py $@ $(foreach f,$(WEB_SRC),$(notdir $f)=$f) purify.js=$(DOMPURIFY)

OBJ_REL := $(SRC_LIB:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/$(GEN_WEB:.c=.o)
OBJ_TST := $(SRC_LIB:%.c=$(TBUILD)/obj/%.o) $(TBUILD)/obj/$(GEN_WEB:.c=.o)

.PHONY: all run test check check-tools unit integration bench bench-baseline crash-test install man deps deps-test deps-bench journal-probe clean check-clang check-man check-layout fuzz fuzz-long

all: $(BUILD)/tern

deps:
	@scripts/deps.sh build

deps-test:
	@scripts/deps.sh test

Q := @
$(BUILD)/obj/%.o: %.c Makefile
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_REL) $(DEPFLAGS) -c -o $@ $<

$(BUILD)/libtern.a: $(OBJ_REL)
	@rm -f $@
	$(Q)ar rcs $@ $^

$(BUILD)/tern: src/main.c $(BUILD)/libtern.a
	$(CC) $(CFLAGS_REL) $(DEPFLAGS) -o $@ $< $(BUILD)/libtern.a $(LIBS)

$(TBUILD)/obj/%.o: %.c Makefile
	@mkdir -p $(dir $@)
	@echo "  CC+SAN  $<"
	$(Q)$(CC) $(CFLAGS_TST) $(DEPFLAGS) -c -o $@ $<

$(TBUILD)/libtern.a: $(OBJ_TST)
	@rm -f $@
	$(Q)ar rcs $@ $^

$(TBUILD)/tern: src/main.c $(TBUILD)/libtern.a
	$(CC) $(CFLAGS_TST) $(DEPFLAGS) -o $@ $< $(TBUILD)/libtern.a $(LIBS)

$(TBUILD)/tests/%: tests/unit/%.c $(TBUILD)/libtern.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_TST) $(DEPFLAGS) -Itests/unit -o $@ $< $(TBUILD)/libtern.a $(LIBS) -lcmocka -lyaml

UNIT_BINS := $(UNIT_SRC:tests/unit/%.c=$(TBUILD)/tests/%)

run: deps $(BUILD)/tern run/tls/cert.pem
	@# As root, smtpd and the queue run as mail_owner (tern), an account of their own;
	@# tern never falls back to a shared one such as nobody, so make it here.
	@if [ "$$(id -u)" = 0 ] && ! getent passwd tern >/dev/null; then \
	  echo "make run: creating the system user tern (mail_owner)"; \
	  useradd --system --home-dir /var/spool/tern --no-create-home --shell /usr/sbin/nologin tern; fi
	$(BUILD)/tern -c run dev

# A throwaway self-signed certificate for `make run`, so STARTTLS can be tried.
run/tls/cert.pem:
	@mkdir -p run/tls
	@openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
	  -subj /CN=localhost -addext subjectAltName=DNS:localhost \
	  -keyout run/tls/key.pem -out run/tls/cert.pem 2>/dev/null && chmod 600 run/tls/key.pem

test: deps-test
	@# One step after the other, so `make -j test` parallelises builds, never test runs.
	@for step in check-tools check-layout check-clang check-man unit integration fuzz; do \
	  $(MAKE) --no-print-directory $$step || exit 1; done

# The developer's quick loop: what `make test` runs, less installing, clang and fuzzing.
check:
	@for step in check-tools check-layout unit integration; do $(MAKE) --no-print-directory $$step || exit 1; done

# Every tool the tests use is here and can do what they ask (names the missing package).
check-tools:
	@scripts/check-tools.sh

# src/ keeps the layout docs/ARCHITECTURE.md describes (folders, headers, file lengths).
check-layout:
	@/usr/bin/python3 scripts/check-layout.py

# Conformance data (is_email vectors) lives in ../shared/testdata beside the checkout.
TESTDATA ?= $(abspath $(CURDIR)/../shared/testdata)
unit: $(UNIT_BINS) $(TBUILD)/tern
	@TERN_TESTDATA=$(TESTDATA) scripts/run-unit.sh $(UNIT_BINS)

integration: $(TBUILD)/tern $(BUILD)/tern
	TERN_BIN=$(CURDIR)/$(TBUILD)/tern /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration

bench: deps-test $(BUILD)/tern
	bench/run.sh

# The tern issue 12 was filed against (the last commit before its work), built
# from git history into build/baseline/: the spool part of make bench then runs
# it beside today's code as "tern-at-filing", the issue's "today's" CPU.
BASELINE_COMMIT ?= 85670fed^
bench-baseline:
	rm -rf $(BUILD)/baseline-src && mkdir -p $(BUILD)/baseline-src $(BUILD)/baseline
	git archive --format=tar $(BASELINE_COMMIT) | tar -x -C $(BUILD)/baseline-src
	$(MAKE) -C $(BUILD)/baseline-src build/tern
	cp $(BUILD)/baseline-src/build/tern $(BUILD)/baseline/tern
	rm -rf $(BUILD)/baseline-src

# The spool journal probe (bench/journal_probe.c): commit designs side by side on
# this machine's disk, in a scratch directory on the tree's file system (removed
# afterwards). About 8 minutes of disk-heavy work with the defaults (3 rounds of
# 3 s runs, then one round with a noisy neighbour), so never part of make test.
# More options: JOURNAL_PROBE_ARGS="--rounds R --seconds S --sessions 1,20,50
# --cands seg,rocksdb,... --paired-bare --noisy" (see the top of the source).
JOURNAL_PROBE_DIR ?= $(CURDIR)/build/journal-scratch
JOURNAL_PROBE_ARGS ?= --noisy
deps-bench:
	@scripts/deps.sh bench
journal-probe: deps-bench $(BUILD)/journal_probe
	$(BUILD)/journal_probe --dir $(JOURNAL_PROBE_DIR) $(JOURNAL_PROBE_ARGS)
$(BUILD)/journal_probe: bench/journal_probe.c Makefile | deps-bench
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) -O2 -g -o $@ $< -lrocksdb -llmdb -lsqlite3 -lpthread

# Crash trials on the release build: each starts a tern under a paced load of SMTP and
# sendmail submissions, kills every tern process with SIGKILL at a random moment,
# restarts it and checks that every acknowledged message reached all its recipients.
# Minutes per hundred trials, as root, so never part of `make test`.
# More options: CRASH_ARGS="--seed S --messages N --budget SECONDS -v" (see --help).
TRIALS ?= 1000
CRASH_ARGS ?=
crash-test: $(BUILD)/tern
	/usr/bin/python3 tests/crash/crash_test.py --trials $(TRIALS) $(CRASH_ARGS)

# Both compilers must build warning-free.
check-clang:
	@$(MAKE) --no-print-directory CC=clang BUILD=build/clang build/clang/tern

# tern.conf(5) is generated from the parameter table and must match it.
check-man: $(BUILD)/tern
	@$(BUILD)/tern config man | diff -u man/tern.conf.5 - || \
	  { echo "man/tern.conf.5 is stale: run make man" >&2; exit 1; }

# Fuzz targets (libFuzzer, clang): tests/fuzz/fuzz_*.c, with their corpus kept
# in tests/fuzz/corpus/<target>/ (docs/SECURITY.md, "Fuzzing").
# make fuzz: each target for FUZZ_SECONDS on a copy of its corpus in build/
# (22 targets x 7 s keeps make test's fuzz step near 2.5 minutes).
# make fuzz-long HOURS=N: the targets share N CPU-hours, FUZZ_JOBS parallel
# jobs each (at most nproc), and what they find is merged back, minimized,
# into tests/fuzz/corpus/.
FUZZ_SECONDS ?= 7
HOURS ?= 0.5
FUZZ_JOBS ?= 1
FBUILD := build/fuzz
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS := $(FUZZ_SRC:tests/fuzz/%.c=$(FBUILD)/%)
CFLAGS_FUZZ := $(CSTD) $(INCS) -O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -DTERN_TEST_BUILD
OBJ_FUZZ := $(SRC_LIB:%.c=$(FBUILD)/obj/%.o) $(FBUILD)/obj/$(GEN_WEB:.c=.o)
$(FBUILD)/obj/%.o: %.c Makefile
	@mkdir -p $(dir $@)
	@echo "  CC+FUZZ $<"
	$(Q)clang $(CFLAGS_FUZZ) $(DEPFLAGS) -c -o $@ $<
$(FBUILD)/libtern.a: $(OBJ_FUZZ)
	@rm -f $@
	$(Q)ar rcs $@ $^
$(FBUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FBUILD)/libtern.a
	$(Q)clang $(CSTD) $(INCS) $(WARN) $(DEPFLAGS) -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -DTERN_TEST_BUILD \
	  -o $@ $< $(FBUILD)/libtern.a $(LIBS)
fuzz: $(FUZZ_BINS)
	@scripts/fuzz-run.sh smoke $(FUZZ_SECONDS) $(FUZZ_BINS)
fuzz-long: $(FUZZ_BINS)
	@scripts/fuzz-run.sh long $(HOURS) $(FUZZ_JOBS) $(FUZZ_BINS)

man: $(BUILD)/tern
	$(BUILD)/tern config man > man/tern.conf.5

install: $(BUILD)/tern
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man8
	install -m 755 $(BUILD)/tern $(DESTDIR)$(PREFIX)/sbin/tern
	ln -sf tern $(DESTDIR)$(PREFIX)/sbin/sendmail
	ln -sf tern $(DESTDIR)$(PREFIX)/sbin/mailq
	ln -sf tern $(DESTDIR)$(PREFIX)/sbin/newaliases
	install -m 644 man/tern.8 $(DESTDIR)$(PREFIX)/share/man/man8/tern.8
	install -m 644 man/tern.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/tern.conf.5
	@echo "Installed. Create the unprivileged user once: useradd --system --home-dir /var/spool/tern --no-create-home --shell /usr/sbin/nologin tern"

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
