# OmniAudit build. `make` builds everything, `make test` runs every test,
# `make asan` builds and tests under AddressSanitizer + UndefinedBehaviorSanitizer,
# `make run` audits this repository with the whole pipeline.
#
# Each directory adds its programs in its own module.mk with the templates below,
# so that work on one daemon never touches this file.

# The module.mk files define rules before `all` does: without this, a bare
# `make` would build only the first of them.
.DEFAULT_GOAL := all

BUILD   ?= build
SAN     ?=
CC      ?= cc
PYTHON  ?= /usr/bin/python3
# `make test` builds with one job per core: CI has two and a time budget.
JOBS    ?= $(shell nproc 2>/dev/null || echo 2)

CORE_PKGS := libzmq libczmq msgpack lmdb yaml-0.1 libmicrohttpd libcrypto libpq
pkg_cflags = $(if $(strip $(1)),$(shell pkg-config --cflags $(1)))
pkg_libs   = $(if $(strip $(1)),$(shell pkg-config --libs $(1)))

# Hardened as distributions build daemons: stack protector, PIE, full RELRO,
# and _FORTIFY_SOURCE (left out of the sanitizer build, which checks more).
OPT      := -O2 -D_FORTIFY_SOURCE=2
HARDEN   := -fstack-protector-strong -fPIE
ifeq ($(SAN),1)
OPT      := -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
endif
CFLAGS   ?=
# Each function and object in its own section, so that a program's link
# drops the classes' self-tests (nothing in a program calls them) and,
# with them, every reference to the test-support library it does not link.
# Past -Wall -Wextra: no name hiding another, no global function without a
# prototype in a header, printf formats literal (or checked where they are
# built), no variable-length arrays.
WARN     := -Wall -Wextra -Wshadow -Wmissing-prototypes -Wformat=2 -Wvla -Werror
CFLAGS   += -std=c11 -D_GNU_SOURCE $(WARN) -g $(OPT) $(HARDEN) -I. \
            -ffunction-sections -fdata-sections -MMD -MP $(call pkg_cflags,$(CORE_PKGS))
LDFLAGS  += $(filter -fsanitize%,$(OPT)) -pie -Wl,-z,relro,-z,now
CORE_LIBS = $(call pkg_libs,$(CORE_PKGS)) -lpthread -lm

LIBOMNI_SRCS := $(filter-out %/selftest.c $(wildcard */fuzz_*.c),$(wildcard common/*.c proto/*.c client/*.c pg/*.c))
# The one embedding of .sql files into C (pg/embed_sql.sh says why a
# generator); pg/module.mk adds the generated pg/sql/ source to LIBOMNI_SRCS.
EMBED_SQL    := pg/embed_sql.sh
LIBOMNI      := $(BUILD)/lib/libomni.a
# Test support (the test peer, the self-test runner): linked into the
# self-test runners only, never into a program (tools/check-binaries.sh).
# The two libraries refer to each other (the classes' self-tests use the
# test peer, which uses the classes): they are linked as a group.
TESTSUP_SRCS := $(filter-out %/selftest.c,$(wildcard testsupport/*.c))
LIBOMNITEST  := $(BUILD)/lib/libomnitest.a
PROGRAMS     :=
SELFTESTS    :=

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

# $(call program,NAME,SOURCES,PKGS): a daemon or tool in $(BUILD)/bin.
define program
PROGRAMS += $(BUILD)/bin/$(1)
$(BUILD)/bin/$(1): $(call obj,$(2)) $(LIBOMNI)
	@mkdir -p $$(@D)
	$$(CC) $$(LDFLAGS) -Wl,--gc-sections -o $$@ $(call obj,$(2)) $(LIBOMNI) $$(call pkg_libs,$(3)) \
	    $$(CORE_LIBS)
$(call obj,$(2)): CFLAGS += $$(call pkg_cflags,$(3))
endef

# $(call selftest,NAME,SOURCES,PKGS): a self-test runner in $(BUILD)/test.
define selftest
SELFTESTS += $(BUILD)/test/$(1)
$(BUILD)/test/$(1): $(call obj,$(2)) $(LIBOMNITEST) $(LIBOMNI)
	@mkdir -p $$(@D)
	$$(CC) $$(LDFLAGS) -o $$@ $(call obj,$(2)) -Wl,--start-group $(LIBOMNITEST) $(LIBOMNI) \
	    -Wl,--end-group $$(call pkg_libs,$(3)) $$(CORE_LIBS)
$(call obj,$(2)): CFLAGS += $$(call pkg_cflags,$(3))
endef

# What every program prints for --version: the release and the commit built
# from. The stamp changes only with the version, so config.o is rebuilt then.
OMNI_RELEASE := 0.1.0
OMNI_GIT     := $(shell git rev-parse --short=12 HEAD 2>/dev/null)
OMNI_VERSION := $(OMNI_RELEASE)$(if $(OMNI_GIT),+git.$(OMNI_GIT))
$(call obj,common/config.c): CFLAGS += -DOMNI_VERSION='"$(OMNI_VERSION)"'
$(call obj,common/config.c): $(BUILD)/gen/version.stamp
$(BUILD)/gen/version.stamp: FORCE
	@mkdir -p $(@D)
	@[ "$$(cat $@ 2>/dev/null)" = "$(OMNI_VERSION)" ] || echo "$(OMNI_VERSION)" >$@
.PHONY: FORCE

include $(sort $(wildcard */module.mk))

.PHONY: all deps programs test test-unit test-integration asan fuzz run bench clean format format-check \
        install uninstall chaos fuzz-build
all: deps
	@$(MAKE) --no-print-directory programs

deps:
	@tools/install-deps.sh

programs: $(PROGRAMS) $(SELFTESTS)
	@tools/check-binaries.sh $(PROGRAMS)
	@tools/check-layers.sh

$(LIBOMNI): $(call obj,$(LIBOMNI_SRCS))
	@mkdir -p $(@D)
	$(AR) rcs $@ $^

$(LIBOMNITEST): $(call obj,$(TESTSUP_SRCS))
	@mkdir -p $(@D)
	$(AR) rcs $@ $^

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# The whole suite: unit self-tests and integration tests under the sanitizers,
# the decoder fuzzer, then the integration tests on the optimised build.
test:
	@tools/install-deps.sh --test
	@$(MAKE) --no-print-directory format-check
	@$(MAKE) --no-print-directory -j$(JOBS) programs
	@$(MAKE) --no-print-directory -j$(JOBS) BUILD=build-asan SAN=1 programs
	@tools/with-test-services.sh $(MAKE) --no-print-directory BUILD=build-asan test-unit
	@$(MAKE) --no-print-directory -j$(JOBS) fuzz
	@tools/with-test-services.sh $(MAKE) --no-print-directory test-integration

asan:
	@tools/install-deps.sh --test
	@$(MAKE) --no-print-directory BUILD=build-asan SAN=1 programs
	@tools/with-test-services.sh $(MAKE) --no-print-directory BUILD=build-asan test-unit
	@tools/with-test-services.sh $(MAKE) --no-print-directory BUILD=build-asan test-integration

test-unit: $(SELFTESTS)
	@tools/run-selftests.sh $(SELFTESTS)

# On TEST_WORKERS pytest-xdist workers (0: in pytest's own process). Most of
# the suite's time is spent waiting (outages staged for seconds, kills, drains),
# which a second worker fills; each worker keeps to ports of its own
# (tests/omni.py, worker_port).
TEST_WORKERS ?= $(JOBS)
test-integration:
	OMNI_BIN=$(abspath $(BUILD))/bin $(PYTHON) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) \
	    tests $(PYTEST_ARGS)

.PHONY: test-deploy
# The production compose stack run for real with podman, no registry (deploy/test-deploy.sh).
test-deploy: all
	OMNI_BIN=$(abspath $(BUILD))/bin deploy/test-deploy.sh

# libFuzzer targets, each FUZZ_SECONDS in `make test`: the record decoder
# (and, on the same bytes, the split of a JetStream batch message),
# ingestd's handling of an intake message (fuzz_intake, the whole round:
# frames, records, journal, reply) and a writer's handling of what ingestd
# sends it (fuzz_delivery). The last two include the file they test, so it
# is left out of the library they link.
FUZZ_SECONDS ?= 60
FUZZ_CC      = clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -I. \
               $(call pkg_cflags,$(CORE_PKGS))
# The record fuzzer's oracle reads records with msgpack-c's C++ parser
# (proto/fuzz_oracle.h): another decoder than the one it checks.
FUZZ_CXX     = clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -I.
fuzz: fuzz-build
	@tools/run-fuzzers.sh $(FUZZ_SECONDS)

# Three targets so that `make -j` builds them side by side.
FUZZ_BINS := build-fuzz/fuzz_record build-fuzz/fuzz_intake build-fuzz/fuzz_delivery
FUZZ_HDRS := $(wildcard common/*.h proto/*.h client/*.h pg/*.h ingestd/*.h testsupport/*.h)
fuzz-build: $(FUZZ_BINS)

build-fuzz/fuzz_record: proto/fuzz_record.c proto/fuzz_oracle.cpp $(LIBOMNI_SRCS) $(FUZZ_HDRS)
	@mkdir -p build-fuzz/corpus
	$(FUZZ_CXX) -c -o build-fuzz/fuzz_oracle.o proto/fuzz_oracle.cpp
	$(FUZZ_CC) -fsanitize-link-c++-runtime -o $@ proto/fuzz_record.c build-fuzz/fuzz_oracle.o \
	    proto/record.c proto/kinds.c proto/mpjson.c proto/jsbatch.c common/util.c common/log.c \
	    common/buf.c testsupport/selftest_runner.c $(CORE_LIBS) -lstdc++

# (it includes server.c: the other classes of ingestd are linked)
INGESTD_FUZZ_SRCS := $(filter-out ingestd/server.c,$(INGESTD_CLASSES))
build-fuzz/fuzz_intake: ingestd/fuzz_intake.c ingestd/server.c $(INGESTD_FUZZ_SRCS) $(LIBOMNI_SRCS) \
                         $(TESTSUP_SRCS) $(FUZZ_HDRS)
	@mkdir -p build-fuzz/corpus-intake
	$(FUZZ_CC) -o $@ ingestd/fuzz_intake.c $(INGESTD_FUZZ_SRCS) \
	    $(LIBOMNI_SRCS) $(TESTSUP_SRCS) $(CORE_LIBS) $(call pkg_libs,libnats)

build-fuzz/fuzz_delivery: client/fuzz_delivery.c $(LIBOMNI_SRCS) $(TESTSUP_SRCS) $(FUZZ_HDRS)
	@mkdir -p build-fuzz/corpus-delivery
	$(FUZZ_CC) -o $@ client/fuzz_delivery.c \
	    $(filter-out client/writer.c,$(LIBOMNI_SRCS)) $(TESTSUP_SRCS) $(CORE_LIBS) \
	    $(call pkg_libs,libnats)

run: all
	@tools/omni-run.sh

bench: all
	@tools/install-deps.sh --test
	@$(PYTHON) bench/run.py

# 1,000,000 records through every writer while processes are killed and the
# stores stopped (bench/chaos.py; results in docs/reliability.md).
chaos: all
	@tools/install-deps.sh --test
	OMNI_BIN=$(abspath $(BUILD))/bin $(PYTHON) bench/chaos.py $(CHAOS_ARGS)

# `make install PREFIX=/usr DESTDIR=/tmp/pkg`: the programs (not the self-tests).
PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
install: all
	install -d $(DESTDIR)$(BINDIR)
	install -m 0755 $(filter $(BUILD)/bin/%,$(PROGRAMS)) $(DESTDIR)$(BINDIR)/

uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(notdir $(PROGRAMS)))

clean:
	rm -rf build build-asan build-fuzz

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

# The layout of .clang-format, checked in `make test`; `make format` applies it.
format-check:
	@clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')
