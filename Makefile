# The IO-models lab.
#   make              build every stage (binaries beside their sources) and the test tool
#   make test         run the bats suite; ends with "N passed, N failed, N skipped"
#   make check        the same suite with every program built under ASan + UBSan (in .san/)
#   make demo         the instructor's walk through the stages, with measured numbers
#                     (STAGE=06: one stage only; PAUSE=1: wait for Enter before each step)
#   make bench        every stage measured side by side (QUICK=1: a smoke test of the tool)
#   make pictures     redraw each stage's timeline.svg from a real run, 04's slow reader
#                     (as is, and with a pitfall), 07 on sigio, 08 on io_uring, and
#                     five-models.svg
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
# except a stage's library: from 04 to 07 the server and the client link the stage's
# net.c (the helpers every program has had since 01); 07's programs also link its
# selector library (selectors.c and one sel-*.c per backend), and both its servers workers.c.
# 08 has its own Makefile: all its programs link its coroutine runtime, with a choice
# of context switch.
NET := $(wildcard [0-9][0-9]-*/net.[ch])
SELECTORS := $(wildcard 07-selectors/selectors.[ch] 07-selectors/backend.h 07-selectors/sel-*.c)
WORKERS := $(wildcard 07-selectors/workers.[ch])
LIBRARIES := $(filter %.c,$(NET) $(SELECTORS) $(WORKERS))
SOURCES := $(filter-out $(LIBRARIES) 08-coroutines/%,$(sort $(wildcard [0-9][0-9]-*/*.c))) \
	tests/probe.c tests/long-reply.c tests/bench/loadgen.c tests/bench/baseline.c tests/bench/floor.c
PROGRAMS := $(SOURCES:.c=)
SAN_PROGRAMS := $(addprefix .san/,$(PROGRAMS))
SAN_REPORTS := $(CURDIR)/.san/reports

all: $(PROGRAMS) stage08 tests/slowcall.so

# Both context switches are built, so that the tests run both: the hand-written
# one beside the sources, the ucontext one in 08-coroutines/ucontext/; and both
# hubs: the completion hub (io_uring, hand-written switch) in 08-coroutines/uring/.
stage08:
	$(MAKE) -C 08-coroutines CC='$(CC)' CFLAGS='$(CFLAGS)' WERROR='$(WERROR)'
	$(MAKE) -C 08-coroutines CC='$(CC)' CFLAGS='$(CFLAGS)' WERROR='$(WERROR)' \
		CTX=ucontext OUT=ucontext
	$(MAKE) -C 08-coroutines CC='$(CC)' CFLAGS='$(CFLAGS)' WERROR='$(WERROR)' \
		HUB=uring OUT=uring

# Only the hand-written switch is built with sanitizers: ASan's swapcontext
# interceptor logs a warning on first use, and any log fails `make check`. The tests
# run the ucontext build as built by `make`.
san-stage08:
	$(MAKE) -C 08-coroutines CC='$(CC)' CFLAGS='$(CFLAGS)' WERROR='$(WERROR)' \
		EXTRA='$(SANITIZE)' OUT=$(CURDIR)/.san/08-coroutines
	$(MAKE) -C 08-coroutines CC='$(CC)' CFLAGS='$(CFLAGS)' WERROR='$(WERROR)' \
		EXTRA='$(SANITIZE)' HUB=uring OUT=$(CURDIR)/.san/08-coroutines/uring

# 07's programs link its library, and are rebuilt when it changes (after all: the first
# target is the default).
$(filter 07-selectors/%,$(PROGRAMS)) $(filter .san/07-selectors/%,$(SAN_PROGRAMS)): $(SELECTORS)
07-selectors/server .san/07-selectors/server \
	07-selectors/framed-server .san/07-selectors/framed-server: $(WORKERS)
04-select/server 04-select/client .san/04-select/server .san/04-select/client: $(filter 04-select/%,$(NET))
05-poll/server 05-poll/client .san/05-poll/server .san/05-poll/client: $(filter 05-poll/%,$(NET))
06-epoll/server 06-epoll/client .san/06-epoll/server .san/06-epoll/client: $(filter 06-epoll/%,$(NET))
07-selectors/server 07-selectors/client .san/07-selectors/server .san/07-selectors/client \
	07-selectors/framed-server .san/07-selectors/framed-server: $(filter 07-selectors/%,$(NET))

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

# Each picture is drawn from a run of its own (tests/pictures/draw; strace if present).
pictures: all
	tests/pictures/draw 01-blocking/server 01-blocking/timeline.svg
	tests/pictures/draw 01-blocking/threads-server 01-blocking/threads-timeline.svg
	tests/pictures/draw 02-nonblocking/server 02-nonblocking/timeline.svg
	tests/pictures/draw 03-nonblocking-list/server 03-nonblocking-list/timeline.svg
	tests/pictures/draw 04-select/server 04-select/timeline.svg
	tests/pictures/draw 04-select/server 04-select/slow-reader.svg slow-reader
	tests/pictures/draw -p 04-select/pitfalls/blocking-send.patch 04-select/server \
		04-select/slow-reader-blocking-send.svg slow-reader
	tests/pictures/draw 05-poll/server 05-poll/timeline.svg
	tests/pictures/draw 06-epoll/server 06-epoll/timeline.svg
	tests/pictures/draw 07-selectors/server 07-selectors/timeline.svg
	SELECTOR=sigio tests/pictures/draw 07-selectors/server 07-selectors/sigio-timeline.svg
	for mode in shared exclusive reuseport; do \
		tests/pictures/draw 07-selectors/server 07-selectors/herd-$$mode.svg herd-$$mode || exit 1; done
	tests/pictures/draw 08-coroutines/server 08-coroutines/timeline.svg
	tests/pictures/draw 08-coroutines/uring/server 08-coroutines/uring-timeline.svg
	tests/pictures/five-models five-models.svg

# Builds in scratch copies of its own: it needs nothing built here.
pitfalls:
	tests/pitfalls

clean:
	rm -f $(PROGRAMS) tests/slowcall.so
	$(MAKE) -C 08-coroutines clean
	rm -rf 08-coroutines/ucontext 08-coroutines/uring
	rm -rf .san

.PHONY: all stage08 san-stage08 test check demo bench pictures pitfalls clean
