# The IO-models lab.
#   make              build every stage (binaries beside their sources) and the test tool
#   make test         run the bats suite; ends with "N passed, N failed, N skipped"
#   make check        the same suite with every program built under ASan + UBSan (in .san/)
#   make demo         the instructor's walk through the stages, with measured numbers
#   make bench        every stage measured side by side (QUICK=1: a smoke test of the tool)
#   make pitfalls     each stage's classic bugs (NN-*/pitfalls/*.patch), applied one at a time
#                     to a scratch copy: the test named in each patch must catch it
#   make clean
# CC and CFLAGS may be overridden (make CC=clang); WERROR=1 turns warnings into errors.

CFLAGS ?= -O2 -g
WARNINGS = -std=c11 -Wall -Wextra -Wpedantic -Wshadow -Wconversion
ifeq ($(WERROR),1)
WARNINGS += -Werror
endif
SANITIZE = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer

# Every .c file in a stage directory is one program, built from that file alone,
# except a stage's library: 07's programs also link its selectors.c. 08 has its own
# Makefile: all its programs link its coroutine runtime, with a choice of context switch.
LIBRARIES := 07-selectors/selectors.c
SOURCES := $(filter-out $(LIBRARIES) 08-coroutines/%,$(sort $(wildcard [0-9][0-9]-*/*.c))) \
	tests/probe.c tests/long-reply.c tests/bench/loadgen.c tests/bench/baseline.c tests/bench/floor.c
PROGRAMS := $(SOURCES:.c=)
SAN_PROGRAMS := $(addprefix .san/,$(PROGRAMS))
SELECTORS := $(wildcard 07-selectors/selectors.[ch])
SAN_REPORTS := $(CURDIR)/.san/reports

all: $(PROGRAMS) stage08 tests/slowcall.so

# Both context switches are built, so that the tests run both: the hand-written
# one beside the sources, the ucontext one in 08-coroutines/ucontext/.
stage08:
	$(MAKE) -C 08-coroutines CC='$(CC)' CFLAGS='$(CFLAGS)' WERROR='$(WERROR)'
	$(MAKE) -C 08-coroutines CC='$(CC)' CFLAGS='$(CFLAGS)' WERROR='$(WERROR)' \
		CTX=ucontext OUT=ucontext

# Only the hand-written switch is built with sanitizers: ASan's swapcontext
# interceptor logs a warning on first use, and any log fails `make check`. The tests
# run the ucontext build as built by `make`.
san-stage08:
	$(MAKE) -C 08-coroutines CC='$(CC)' CFLAGS='$(CFLAGS)' WERROR='$(WERROR)' \
		EXTRA='$(SANITIZE)' OUT=$(CURDIR)/.san/08-coroutines

# 07's programs are rebuilt when its library changes (after all: the first target is the default).
$(filter 07-selectors/%,$(PROGRAMS)) $(filter .san/07-selectors/%,$(SAN_PROGRAMS)): $(SELECTORS)

# -pthread is harmless where no thread is used, and keeps one rule for every program.
$(PROGRAMS): %: %.c
	$(CC) $(WARNINGS) $(CFLAGS) -o $@ $(filter %.c,$^) -pthread

# Sanitizer builds live in .san/ so they never overwrite the normal binaries.
$(SAN_PROGRAMS): .san/%: %.c
	@mkdir -p $(dir $@)
	$(CC) $(WARNINGS) $(CFLAGS) $(SANITIZE) -o $@ $(filter %.c,$^) -pthread

# The tests' LD_PRELOAD shim (tests/signals.bats), one library for plain and .san/ builds.
tests/slowcall.so: tests/slowcall.c
	$(CC) $(WARNINGS) $(CFLAGS) -shared -fPIC -o $@ $< -ldl

test: all
	tests/run

# ASan reports go to files (any file is a failure); every test also scans the stderr it
# captured, since gcc's UBSan ignores log_path when ASan is linked in.
check: all $(SAN_PROGRAMS) san-stage08
	rm -rf $(SAN_REPORTS) && mkdir -p $(SAN_REPORTS)
	LAB_BIN=$(CURDIR)/.san \
	ASAN_OPTIONS=log_path=$(SAN_REPORTS)/asan:detect_leaks=1 \
	UBSAN_OPTIONS=log_path=$(SAN_REPORTS)/ubsan:print_stacktrace=1 \
	tests/run
	@if [ -n "$$(ls -A $(SAN_REPORTS))" ]; then \
		cat $(SAN_REPORTS)/*; echo "sanitizer reports: see above"; exit 1; \
	else echo "sanitizers: no reports"; fi

demo: all
	tests/demo

bench: all
	tests/bench/run

# Builds in scratch copies of its own: it needs nothing built here.
pitfalls:
	tests/pitfalls

clean:
	rm -f $(PROGRAMS) tests/slowcall.so
	$(MAKE) -C 08-coroutines clean
	rm -rf 08-coroutines/ucontext
	rm -rf .san

.PHONY: all stage08 san-stage08 test check demo bench pitfalls clean
