/*
 * 08-coroutines/runtime-test.c: the coroutine runtime's contract, as co.h states it
 * (and wrap.c's: a pthread is a coroutine).
 *
 * Teaches: what a coroutine runtime promises, one promise per test function, each
 * one a few lines of coroutines doing what the promise is about. The comment above
 * every test quotes (or names) the line of co.h it holds the runtime to.
 *
 * Build and run:  make -C 08-coroutines            (or CTX=ucontext OUT=ucontext)
 *                 08-coroutines/runtime-test       one line per failed check, then
 *                                                  "runtime-test: N checks, M failed";
 *                                                  exit 0 only if none failed
 *                 08-coroutines/runtime-test overflow
 *                                                  a coroutine recurses without end:
 *                                                  the guard page must kill it (SIGSEGV)
 *                 08-coroutines/runtime-test sigpipe
 *                                                  a co_send() to a closed peer with
 *                                                  SIGPIPE at its default: it must kill
 *                                                  it (the contract's run runs this)
 *
 * Pitfall: timing checks need slack on a busy machine (and under sanitizers). The
 * bounds are wide on purpose; only "never early" is strict, since the runtime must
 * never wake a sleeper before its deadline however loaded the machine is.
 */
#define _GNU_SOURCE             /* mincore, MSG_NOSIGNAL, SOCK_CLOEXEC */
#include "co.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WATCHDOG_S 30           /* a runtime that hangs fails the run instead of hanging it */
#define MANY 10000              /* sleepers at once */
#define MANY_MAX_MS 50          /* their deadlines: within this many ms */
#define BIG (4 * 1024 * 1024)   /* bytes pushed through a socketpair a slow reader drains */

static int checks, failures;
static const char *volatile test;   /* the test running: failure lines (and the watchdog) name it */
static long page_size;

/* ---------------------------------------------------------------- checks and helpers */

/* Only failures print: a passing run is one summary line. Returns ok, so that a
 * test can stop where going on would crash (a NULL coroutine, say). */
static int check(int ok, const char *cond, const char *what, int line)
{
    int saved = errno;          /* the failure line shows errno as the call left it */
    checks++;
    if (!ok) {
        failures++;
        printf("FAIL %s: %s (line %d: %s; errno: %s)\n", test, what, line, cond, strerror(saved));
    }
    return ok;
}

#define CHECK(cond, what) check((cond) != 0, #cond, what, __LINE__)

/* Setup that cannot fail on a working system (socketpair, malloc): no test result
 * would mean anything after it, so stop the run. */
static void die(const char *what)
{
    perror(what);
    exit(2);
}

static long long now_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
        die("clock_gettime");
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static double ms_since(long long t0)
{
    return (double)(now_ns() - t0) / 1e6;
}

/* An int travels through co_fn's void * argument and result. */
static void *int_ptr(long v)
{
    return (void *)(intptr_t)v;
}

static long ptr_int(void *p)
{
    return (long)(intptr_t)p;
}

/* The page of the stack the calling function runs on: a coroutine's own. A macro,
 * so the frame is the caller's. */
#define STACK_PAGE() \
    ((void *)((uintptr_t)__builtin_frame_address(0) & ~((uintptr_t)page_size - 1)))

/* Whether a page is mapped: mincore() fails with ENOMEM on an unmapped one. This
 * is how a test sees that the runtime freed a coroutine's stack. */
static int mapped(void *page)
{
    unsigned char in_core;
    if (mincore(page, (size_t)page_size, &in_core) == 0)
        return 1;
    if (errno != ENOMEM)
        die("mincore");
    return 0;
}

static void make_socketpair(int sv[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1)
        die("socketpair");
}

static void close_fd(int fd)
{
    if (close(fd) == -1)
        die("close");
}

/* Write into fd (not known to the runtime) until the kernel says it is full. */
static size_t fill(int fd)
{
    static char block[65536];
    size_t total = 0;
    ssize_t n;
    while ((n = send(fd, block, sizeof block, MSG_DONTWAIT | MSG_NOSIGNAL)) > 0)
        total += (size_t)n;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
        die("send");
    return total;
}

/* A listener on 127.0.0.1, on a port the kernel picks: *addr gets its address. */
static int make_listener(struct sockaddr_in *addr)
{
    socklen_t len = sizeof *addr;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        die("socket");
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr->sin_port = 0;
    if (bind(fd, (struct sockaddr *)addr, sizeof *addr) == -1
            || listen(fd, 16) == -1
            || getsockname(fd, (struct sockaddr *)addr, &len) == -1)
        die("listener");
    return fd;
}

/* co_send may send less than asked, as send() may: loop, counting the calls. */
static ssize_t send_all(int fd, const char *buf, size_t len, int *calls)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = co_send(fd, buf + done, len - done, MSG_NOSIGNAL);
        ++*calls;
        if (n == -1)
            return -1;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

/* A coroutine that sleeps arg ms and returns 0, or errno if the sleep failed. */
static void *sleep_for(void *arg)
{
    return int_ptr(co_sleep_ms(ptr_int(arg)) == -1 ? errno : 0);
}

/* SIGALRM: a test hung (a wake-up the runtime lost). Say which, and fail. */
static void on_watchdog(int sig)
{
    static const char hung[] = "FAIL (hung) ";
    (void)sig;
    /* write() and strlen() are async-signal-safe; a short write cannot be helped. */
    if (write(STDOUT_FILENO, hung, sizeof hung - 1) == -1
            || write(STDOUT_FILENO, test, strlen(test)) == -1
            || write(STDOUT_FILENO, "\n", 1) == -1) {
        /* nothing else to do: the exit status says it */
    }
    _exit(1);
}

static void start_watchdog(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_watchdog;
    if (sigemptyset(&sa.sa_mask) == -1 || sigaction(SIGALRM, &sa, NULL) == -1)
        die("sigaction");
    (void)alarm(WATCHDOG_S);    /* alarm cannot fail; it returns the previous alarm's time */
}

/* ---------------------------------------------------------------- spawn, join, detach */

static int ran;
static void *seen_arg;
static struct co *seen_self;

static void *record(void *arg)
{
    ran++;
    seen_arg = arg;
    seen_self = co_self();
    return arg;
}

/* co_spawn: "a coroutine that runs fn(arg) when the hub next gets to it": not at
 * the spawn, but as soon as the spawner waits, by joining, yielding or sleeping.
 * co_self: "the coroutine that is running". */
static void test_spawn_runs_when_spawner_waits(void)
{
    int tag;
    void *result = NULL;
    struct co *c;

    test = "spawn runs fn(arg) when the spawner waits";
    CHECK(co_self() != NULL, "main is a coroutine too: co_self() is not NULL");

    ran = 0;
    if (!CHECK((c = co_spawn(record, &tag)) != NULL, "co_spawn"))
        return;
    CHECK(ran == 0, "spawning alone runs nothing");
    co_yield();
    CHECK(ran == 1 && seen_arg == &tag, "co_yield: it ran, with arg");
    CHECK(seen_self == c, "inside, co_self() is what co_spawn returned");
    CHECK(co_join(c, &result) == 0 && result == &tag, "co_join gives fn's result");

    ran = 0;
    if (!CHECK((c = co_spawn(record, NULL)) != NULL, "co_spawn"))
        return;
    CHECK(co_sleep_ms(1) == 0 && ran == 1, "co_sleep_ms: it ran meanwhile");
    CHECK(co_join(c, NULL) == 0, "co_join with result NULL");

    ran = 0;
    if (!CHECK((c = co_spawn(record, &tag)) != NULL, "co_spawn"))
        return;
    CHECK(ran == 0, "spawning alone runs nothing");
    CHECK(co_join(c, &result) == 0 && ran == 1 && result == &tag, "co_join: it ran, result back");
}

static void *stack_page_seen;

static void *note_stack(void *arg)
{
    stack_page_seen = STACK_PAGE();
    return arg;
}

/* The same, then a sleep of arg ms: alive a while after it noted its stack. */
static void *note_stack_and_sleep(void *arg)
{
    stack_page_seen = STACK_PAGE();
    return int_ptr(co_sleep_ms(ptr_int(arg)) == -1 ? errno : 0);
}

/* co_join: "wait until c has finished, take its result and free it": a finished
 * coroutine keeps its stack (and result) until the join, which unmaps it. */
static void test_join_frees(void)
{
    void *result = NULL;
    struct co *c;

    test = "co_join takes the result and frees";
    stack_page_seen = NULL;
    if (!CHECK((c = co_spawn(note_stack, int_ptr(42))) != NULL, "co_spawn"))
        return;
    co_yield();
    co_yield();                 /* it has finished by now: it never waits */
    if (!CHECK(stack_page_seen != NULL, "it ran"))
        return;
    CHECK(mapped(stack_page_seen), "finished, not joined: its stack is still there");
    CHECK(co_join(c, &result) == 0 && ptr_int(result) == 42,
          "co_join of a finished one: the result");
    CHECK(!mapped(stack_page_seen), "joined: its stack is unmapped");
}

/* co_joinall: "join them all: the wait is the longest of them, not the sum.
 * results may be NULL." */
static void test_joinall(void)
{
    static const long ms[] = { 200, 100, 300 };    /* the sum is 600, the longest 300 */
    struct co *cs[3];
    void *results[3] = { int_ptr(-1), int_ptr(-1), int_ptr(-1) };

    test = "co_joinall";
    long long t0 = now_ns();
    for (size_t i = 0; i < 3; i++)
        if (!CHECK((cs[i] = co_spawn(sleep_for, int_ptr(ms[i]))) != NULL, "co_spawn"))
            return;
    CHECK(co_joinall(cs, 3, results) == 0, "co_joinall");
    double took = ms_since(t0);
    CHECK(results[0] == NULL && results[1] == NULL && results[2] == NULL,
          "every result in its place (each sleep returned 0)");
    CHECK(took >= 300, "the wait is at least the longest sleep");
    if (!CHECK(took < 500, "the wait is the longest, not the sum (600 ms)"))
        printf("#   took %.0f ms\n", took);

    for (size_t i = 0; i < 2; i++)
        if (!CHECK((cs[i] = co_spawn(record, NULL)) != NULL, "co_spawn"))
            return;
    CHECK(co_joinall(cs, 2, NULL) == 0, "co_joinall with results NULL");
}

static struct co *joined_by_other;

/* Joins joined_by_other; returns 0, or the errno of a failed join. */
static void *join_other(void *arg)
{
    (void)arg;
    return int_ptr(co_join(joined_by_other, NULL) == -1 ? errno : 0);
}

/* co_join: "each coroutine is joined once, or detached": a second joiner, a join
 * of a detached one, a join of oneself or of nothing, are all EINVAL. */
static void test_join_errors(void)
{
    void *result = int_ptr(-1);
    struct co *j;

    test = "co_join refuses what cannot be joined";
    errno = 0;
    CHECK(co_join(NULL, NULL) == -1 && errno == EINVAL, "co_join(NULL): EINVAL");
    errno = 0;
    CHECK(co_join(co_self(), NULL) == -1 && errno == EINVAL, "co_join(co_self()): EINVAL");

    if (!CHECK((joined_by_other = co_spawn(sleep_for, int_ptr(20))) != NULL, "co_spawn")
            || !CHECK((j = co_spawn(join_other, NULL)) != NULL, "co_spawn"))
        return;
    co_yield();                 /* j is now parked, joining the sleeper */
    errno = 0;
    CHECK(co_join(joined_by_other, NULL) == -1 && errno == EINVAL,
          "a second joiner while the first waits: EINVAL");
    CHECK(co_join(j, &result) == 0 && result == NULL, "the first joiner's join succeeds");
}

static int detached_self;

static void *detach_self(void *arg)
{
    stack_page_seen = STACK_PAGE();
    detached_self = co_detach(co_self()) == -1 ? errno : 0;
    return arg;
}

/* co_detach: "nobody will join c: free it when it finishes"; joining or detaching
 * it again is EINVAL. */
static void test_detach(void)
{
    struct co *c;

    test = "co_detach";
    errno = 0;
    CHECK(co_detach(NULL) == -1 && errno == EINVAL, "co_detach(NULL): EINVAL");
    errno = 0;
    CHECK(co_detach(co_self()) == -1 && errno == EINVAL, "co_detach(main): EINVAL");

    /* Finished first, detached after: the detach frees it there and then. */
    stack_page_seen = NULL;
    if (!CHECK((c = co_spawn(note_stack, NULL)) != NULL, "co_spawn"))
        return;
    co_yield();
    co_yield();
    if (!CHECK(stack_page_seen != NULL && mapped(stack_page_seen), "finished, stack still there"))
        return;
    CHECK(co_detach(c) == 0, "co_detach of a finished coroutine");
    CHECK(!mapped(stack_page_seen), "... frees it at once: its stack is unmapped");

    /* Detached while it sleeps: freed when it finishes, and nobody may join it. */
    stack_page_seen = NULL;
    if (!CHECK((c = co_spawn(note_stack_and_sleep, int_ptr(10))) != NULL, "co_spawn"))
        return;
    co_yield();                 /* it runs, notes its stack, parks in its sleep */
    CHECK(co_detach(c) == 0, "co_detach of a sleeping coroutine");
    errno = 0;
    CHECK(co_detach(c) == -1 && errno == EINVAL, "detached twice: EINVAL");
    errno = 0;
    CHECK(co_join(c, NULL) == -1 && errno == EINVAL, "joining a detached coroutine: EINVAL");
    CHECK(stack_page_seen != NULL && mapped(stack_page_seen), "still asleep: its stack is there");
    CHECK(co_sleep_ms(30) == 0, "co_sleep_ms");
    co_yield();
    co_yield();                 /* the hub frees finished detached ones between its rounds */
    CHECK(stack_page_seen != NULL && !mapped(stack_page_seen), "it finished: the runtime freed it");

    /* pthread_detach(pthread_self()): a coroutine detaches itself. */
    stack_page_seen = NULL;
    detached_self = -1;
    if (!CHECK((c = co_spawn(detach_self, NULL)) != NULL, "co_spawn"))
        return;
    co_yield();
    co_yield();
    co_yield();
    CHECK(detached_self == 0, "co_detach(co_self()) from inside: 0");
    CHECK(stack_page_seen != NULL && !mapped(stack_page_seen), "it finished: the runtime freed it");
}

/* ---------------------------------------------------------------- co_create, co_switch */

static struct co *creator;
static void *greeter_arg, *greeter_got;

static void *greeter(void *arg)
{
    greeter_arg = arg;
    greeter_got = co_switch(creator, "from greeter");
    return "greeter's result";
}

/* co_create/co_switch: "the value of that first switch is fn's argument";
 * co_switch "returns the value passed by whoever switches back here"; "when fn
 * returns, its creator resumes (if it is waiting in co_switch) with fn's result". */
static void test_switch_values(void)
{
    void *result = NULL;
    struct co *g;

    test = "co_switch passes values both ways";
    creator = co_self();
    greeter_arg = greeter_got = NULL;
    if (!CHECK((g = co_create(greeter)) != NULL, "co_create"))
        return;
    co_yield();
    CHECK(greeter_arg == NULL, "a co_create()d coroutine does not run until switched to");
    void *back = co_switch(g, "first");
    CHECK(greeter_arg != NULL && strcmp(greeter_arg, "first") == 0,
          "the first switch's value is fn's argument");
    CHECK(back != NULL && strcmp(back, "from greeter") == 0, "its switch back brings its value");
    back = co_switch(g, "second");
    CHECK(greeter_got != NULL && strcmp(greeter_got, "second") == 0,
          "the second switch's value is what its co_switch returns");
    CHECK(back != NULL && strcmp(back, "greeter's result") == 0,
          "fn returned: the creator resumes with its result");
    CHECK(co_join(g, &result) == 0 && result != NULL && strcmp(result, "greeter's result") == 0,
          "co_join of it: the same result");
}

static struct co *inner;

static void *square(void *arg)
{
    long v = ptr_int(arg);
    return int_ptr(v * v);
}

/* Creates and switches to a coroutine of its own: the creator is this one, not main. */
static void *creates_its_own(void *arg)
{
    (void)arg;
    if ((inner = co_create(square)) == NULL)
        return int_ptr(-1);
    void *r = co_switch(inner, int_ptr(7));
    if (co_join(inner, NULL) == -1)
        return int_ptr(-2);
    return r;
}

/* co_create: "its creator resumes", whoever the creator is: here a spawned coroutine. */
static void test_switch_creator(void)
{
    void *result = NULL;
    struct co *c;

    test = "a finished coroutine returns to its creator";
    if (!CHECK((c = co_spawn(creates_its_own, NULL)) != NULL, "co_spawn"))
        return;
    CHECK(co_join(c, &result) == 0 && ptr_int(result) == 49,
          "the spawned creator got square(7) back from its co_switch");
}

/* co_switch: "`to` must be new or waiting in co_switch (EINVAL)": not the running
 * one, not a ready one, not a parked one, not a finished one. */
static void test_switch_errors(void)
{
    struct co *c, *g;

    test = "co_switch refuses what is not new or switched away";
    errno = 0;
    CHECK(co_switch(NULL, NULL) == NULL && errno == EINVAL, "co_switch(NULL): EINVAL");
    errno = 0;
    CHECK(co_switch(co_self(), NULL) == NULL && errno == EINVAL, "to the running one: EINVAL");

    if (!CHECK((c = co_spawn(sleep_for, int_ptr(10))) != NULL, "co_spawn"))
        return;
    errno = 0;
    CHECK(co_switch(c, NULL) == NULL && errno == EINVAL, "to a ready one (spawned): EINVAL");
    co_yield();                 /* now it is parked in its sleep */
    errno = 0;
    CHECK(co_switch(c, NULL) == NULL && errno == EINVAL, "to a parked one (sleeping): EINVAL");
    void *result = int_ptr(-1);
    CHECK(co_join(c, &result) == 0 && result == NULL, "the refused switches did not disturb it");

    if (!CHECK((g = co_create(square)) != NULL, "co_create"))
        return;
    CHECK(ptr_int(co_switch(g, int_ptr(3))) == 9, "a new one runs and returns");
    errno = 0;
    CHECK(co_switch(g, int_ptr(3)) == NULL && errno == EINVAL, "to a finished one: EINVAL");
    CHECK(co_join(g, NULL) == 0, "co_join of the finished one");
}

static void *make_child(void *arg)
{
    (void)arg;
    return co_create(square);   /* never switched to by its creator */
}

/* co_create: "when fn returns, its creator resumes (if it is waiting in co_switch)":
 * a creator that has finished and been freed is not waiting, and the child's end
 * must not touch it. (Under ASan this is where a dangling parent shows.) */
static void test_creator_gone(void)
{
    void *child = NULL, *result = NULL;
    struct co *c;

    test = "a coroutine outlives its creator";
    if (!CHECK((c = co_spawn(make_child, NULL)) != NULL, "co_spawn"))
        return;
    if (!CHECK(co_join(c, &child) == 0 && child != NULL, "the creator finished, joined and freed"))
        return;
    errno = 0;
    CHECK(co_switch(child, int_ptr(5)) == NULL && errno == EDEADLK,
          "main (not its creator) is not switched back to: NULL, EDEADLK");
    CHECK(co_join(child, &result) == 0 && ptr_int(result) == 25, "its result is there for co_join");
}

/* ---------------------------------------------------------------- co_yield */

#define ROUNDS 4
static char order[3 * ROUNDS + 1];
static size_t order_len;

static void *yield_loop(void *arg)
{
    for (int i = 0; i < ROUNDS; i++) {
        if (order_len < sizeof order - 1)
            order[order_len++] = *(const char *)arg;
        co_yield();
    }
    return NULL;
}

/* co_yield: "let every other ready coroutine run, then go on": three that yield
 * in a loop take turns, round-robin, in the order they were spawned. */
static void test_yield_round_robin(void)
{
    struct co *cs[3];

    test = "co_yield is round-robin";
    memset(order, 0, sizeof order);
    order_len = 0;
    for (size_t i = 0; i < 3; i++)
        if (!CHECK((cs[i] = co_spawn(yield_loop, &"ABC"[i])) != NULL, "co_spawn"))
            return;
    CHECK(co_joinall(cs, 3, NULL) == 0, "co_joinall");
    if (!CHECK(strcmp(order, "ABCABCABCABC") == 0, "turns in order ABCABCABCABC"))
        printf("#   got %s\n", order);
}

/* ---------------------------------------------------------------- co_sleep_ms */

static long woke[3];
static size_t nwoke;
static int woke_early;

static void *sleep_and_note(void *arg)
{
    long ms = ptr_int(arg);
    long long t0 = now_ns();
    if (co_sleep_ms(ms) == -1)
        return int_ptr(errno);
    if (ms_since(t0) < (double)ms)
        woke_early++;
    if (nwoke < 3)
        woke[nwoke++] = ms;
    return NULL;
}

/* co_sleep_ms: "park for ms milliseconds": sleepers wake in the order of their
 * deadlines, not of their spawning, and never early. */
static void test_sleep_order(void)
{
    static const long ms[] = { 30, 10, 20 };
    struct co *cs[3];
    void *results[3];

    test = "sleepers wake in deadline order";
    nwoke = 0;
    woke_early = 0;
    for (size_t i = 0; i < 3; i++)
        if (!CHECK((cs[i] = co_spawn(sleep_and_note, int_ptr(ms[i]))) != NULL, "co_spawn"))
            return;
    CHECK(co_joinall(cs, 3, results) == 0, "co_joinall");
    CHECK(results[0] == NULL && results[1] == NULL && results[2] == NULL, "every sleep returned 0");
    CHECK(nwoke == 3 && woke[0] == 10 && woke[1] == 20 && woke[2] == 30, "woke 10, 20, 30");
    CHECK(woke_early == 0, "none woke early");
}

/* The runtime reads the clock inside co_sleep_ms, where a test cannot: each
 * deadline is ms after a moment between a reading just before the call (before[i])
 * and the next reading by anyone, taken once this one has parked (after[i]). */
static long many_ms[MANY];
static long long many_before[MANY], many_after[MANY];
static size_t many_order[MANY];
static size_t many_woken, many_last = MANY;
static int many_early, many_failed;

/* The clock, read by a sleeper starting or by the one after the last starter:
 * it bounds the deadline the previous starter's co_sleep_ms set. */
static long long many_clock(void)
{
    long long t = now_ns();
    if (many_last < MANY)
        many_after[many_last] = t;
    return t;
}

static void *many_sleeper(void *arg)
{
    size_t i = (size_t)ptr_int(arg);
    many_before[i] = many_clock();
    many_last = i;
    if (co_sleep_ms(many_ms[i]) == -1) {
        many_failed++;
        return NULL;
    }
    if (now_ns() < many_before[i] + many_ms[i] * 1000000LL)
        many_early++;
    if (many_woken < MANY)
        many_order[many_woken++] = i;
    return NULL;
}

static void *many_closer(void *arg)
{
    (void)arg;
    (void)many_clock();
    many_last = MANY;
    return NULL;
}

/* co_sleep_ms, with a heap of sleepers: 10,000 coroutines with random deadlines
 * within 50 ms all wake, none early, in deadline order, and all of it takes about
 * as long as the longest sleep. */
static void test_sleep_many(void)
{
    struct co **cs = malloc((MANY + 1) * sizeof *cs);
    unsigned long long seed = 0x9E3779B97F4A7C15ULL;
    long longest = 0, sum = 0;
    size_t spawned = 0;

    test = "10,000 sleepers";
    if (cs == NULL)
        die("malloc");
    many_woken = 0;
    many_last = MANY;
    many_early = many_failed = 0;
    for (size_t i = 0; i < MANY; i++) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;     /* xorshift64 */
        many_ms[i] = (long)(seed % (MANY_MAX_MS + 1));
        if (many_ms[i] > longest)
            longest = many_ms[i];
        sum += many_ms[i];
    }
    long long t0 = now_ns();
    while (spawned < MANY && (cs[spawned] = co_spawn(many_sleeper, int_ptr((long)spawned))) != NULL)
        spawned++;
    if (!CHECK(spawned == MANY, "spawned all 10,000")
            || !CHECK((cs[MANY] = co_spawn(many_closer, NULL)) != NULL, "co_spawn")) {
        CHECK(co_joinall(cs, spawned, NULL) == 0, "co_joinall of those spawned");
        free(cs);
        return;
    }
    CHECK(co_joinall(cs, MANY + 1, NULL) == 0, "co_joinall");
    double took = ms_since(t0);
    free(cs);
    CHECK(many_failed == 0, "every co_sleep_ms returned 0");
    CHECK(many_woken == MANY, "every sleeper woke");
    CHECK(many_early == 0, "none woke early");
    /* Out of order: a sleeper woke after one whose deadline is surely later. */
    int out_of_order = 0;
    long long passed = 0;       /* the latest deadline surely passed by those woken so far */
    for (size_t k = 0; k < many_woken; k++) {
        size_t i = many_order[k];
        long long ns = many_ms[i] * 1000000LL;
        if (many_after[i] + ns < passed)
            out_of_order++;
        if (many_before[i] + ns > passed)
            passed = many_before[i] + ns;
    }
    if (!CHECK(out_of_order == 0, "woken in deadline order"))
        printf("#   %d wakes came after a later deadline's\n", out_of_order);
    /* The sleeps overlap: the whole takes the longest of them plus the making and
     * freeing of 10,000 coroutines (~0.2 s; twice that under ASan, and seconds on
     * a machine busy with other work), never their sum (~250 s). A twenty-fifth
     * of the sum is a bound for the busiest machine, and still a world away from
     * sleeping one after another. */
    CHECK(took >= (double)longest, "the whole took at least the longest sleep");
    if (!CHECK(took < (double)sum / 25, "the whole took about the longest sleep, not the sum"))
        printf("#   took %.0f ms; longest sleep %ld ms, sum %ld ms\n", took, longest, sum);
}

static long ticks;
static int ticking;

static void *ticker(void *arg)
{
    (void)arg;
    while (ticking) {
        ticks++;
        co_yield();
    }
    return NULL;
}

/* co_sleep_ms(0): a sleep that is over at once is just a yield: the others get a
 * turn, and it comes back right away. */
static void test_sleep_zero(void)
{
    struct co *t;

    test = "co_sleep_ms(0) yields";
    ticks = 0;
    ticking = 1;
    if (!CHECK((t = co_spawn(ticker, NULL)) != NULL, "co_spawn"))
        return;
    long long t0 = now_ns();
    CHECK(co_sleep_ms(0) == 0, "co_sleep_ms(0) returns 0");
    CHECK(ticks > 0, "the others ran meanwhile");
    CHECK(ms_since(t0) < 1000, "and it came back at once (no real sleep)");
    ticking = 0;
    CHECK(co_join(t, NULL) == 0, "co_join");
}

/* ---------------------------------------------------------------- EDEADLK */

static void *switches_back(void *arg)
{
    void *got = co_switch(arg, "suspended");
    return got;                 /* what the switch that ended its suspension brought */
}

/* co_join: "EDEADLK: nothing could ever wake us": main joins a coroutine that is
 * suspended in co_switch, with nothing ready, sleeping or waiting on IO. */
static void test_deadlock_join(void)
{
    void *result = NULL;
    struct co *g;

    test = "co_join: EDEADLK instead of a hang";
    if (!CHECK((g = co_create(switches_back)) != NULL, "co_create"))
        return;
    void *back = co_switch(g, co_self());
    CHECK(back != NULL && strcmp(back, "suspended") == 0, "it switched back and is suspended");
    long long t0 = now_ns();
    errno = 0;
    CHECK(co_join(g, NULL) == -1 && errno == EDEADLK, "co_join of it: -1, EDEADLK");
    CHECK(ms_since(t0) < 1000, "at once");
    /* Nothing is lost: resume it, and it finishes and can be joined. */
    back = co_switch(g, "resumed");
    CHECK(back != NULL && strcmp(back, "resumed") == 0, "resumed, it returned to its creator");
    CHECK(co_join(g, &result) == 0 && result == back, "and is joined now");
}

static struct co *never_started;

static void *joins_never_started(void *arg)
{
    (void)arg;
    return int_ptr(co_join(never_started, NULL) == -1 ? errno : 0);
}

/* The same from co_switch ("every function returns an error and never exits", nor
 * hangs): main switches to a coroutine that parks in a join nothing can end. */
static void test_deadlock_switch(void)
{
    void *result = int_ptr(-1);
    struct co *g;

    test = "co_switch: EDEADLK instead of a hang";
    if (!CHECK((never_started = co_create(square)) != NULL, "co_create")
            || !CHECK((g = co_create(joins_never_started)) != NULL, "co_create"))
        return;
    errno = 0;
    CHECK(co_switch(g, NULL) == NULL && errno == EDEADLK, "co_switch: NULL, EDEADLK");
    errno = 0;
    CHECK(co_join(g, NULL) == -1 && errno == EDEADLK, "co_join of the parked one: EDEADLK too");
    /* Start the one it waits for: it finishes, back to main (its creator) with its
     * result, and the parked one's join ends. */
    CHECK(ptr_int(co_switch(never_started, int_ptr(4))) == 16, "the awaited one ran");
    CHECK(co_join(g, &result) == 0 && result == NULL, "the parked join ended well");
}

/* ---------------------------------------------------------------- IO */

static int io_fd[2];
static double io_waited;
static ssize_t io_got;
static char io_buf[64];

static void *timed_recv(void *arg)
{
    (void)arg;
    long long t0 = now_ns();
    io_got = co_recv(io_fd[0], io_buf, sizeof io_buf - 1, 0);
    io_waited = ms_since(t0);
    return int_ptr(io_got == -1 ? errno : 0);
}

static void *send_later(void *arg)
{
    if (co_sleep_ms(ptr_int(arg)) == -1)
        return int_ptr(errno);
    return int_ptr(co_send(io_fd[1], "hello", 5, MSG_NOSIGNAL) == 5 ? 0 : errno);
}

/* "On EAGAIN they park the coroutine until epoll says the descriptor is ready":
 * a reader waits in co_recv while a writer (that could not run if the reader
 * blocked the thread) sleeps, then sends. */
static void test_recv_parks(void)
{
    struct co *r, *w;
    void *rr = int_ptr(-1), *wr = int_ptr(-1);

    test = "co_recv parks until data comes";
    make_socketpair(io_fd);
    memset(io_buf, 0, sizeof io_buf);
    if (!CHECK((r = co_spawn(timed_recv, NULL)) != NULL, "co_spawn")
            || !CHECK((w = co_spawn(send_later, int_ptr(20))) != NULL, "co_spawn"))
        return;
    CHECK(co_join(r, &rr) == 0 && rr == NULL, "the reader's co_recv succeeded");
    CHECK(co_join(w, &wr) == 0 && wr == NULL, "the writer's co_send succeeded");
    CHECK(io_got == 5 && strcmp(io_buf, "hello") == 0, "the reader got what was sent");
    CHECK(io_waited >= 20, "after the writer's 20 ms sleep");
    CHECK(co_close(io_fd[0]) == 0 && co_close(io_fd[1]) == 0, "co_close");
}

static char *big_out;
static size_t big_read;
static size_t read_when_writer_done;
static int big_sends;

static void *big_writer(void *arg)
{
    (void)arg;
    ssize_t n = send_all(io_fd[1], big_out, BIG, &big_sends);
    read_when_writer_done = big_read;
    return int_ptr(n == BIG ? 0 : n == -1 ? errno : -1);
}

/* Reads BIG bytes in small bites with naps in between; checks every byte. */
static void *slow_reader(void *arg)
{
    static char in[65536];
    long bad = 0;
    (void)arg;
    for (int bite = 0; big_read < BIG; bite++) {
        ssize_t n = co_recv(io_fd[0], in, sizeof in, 0);
        if (n <= 0)
            return int_ptr(n == 0 ? -1 : errno);
        for (ssize_t i = 0; i < n; i++)
            if (in[i] != big_out[big_read + (size_t)i])
                bad++;
        big_read += (size_t)n;
        if (bite % 8 == 7 && co_sleep_ms(1) == -1)
            return int_ptr(errno);
    }
    return int_ptr(bad == 0 ? 0 : -2);
}

/* Backpressure: "they look blocking to the caller, but on EAGAIN they park the
 * coroutine": 4 MB sent into a socketpair (a few hundred KB of buffer) to a slow
 * reader. The writer parks each time the buffer is full; the reader runs. */
static void test_send_backpressure(void)
{
    struct co *r, *w;
    void *rr = int_ptr(-1), *wr = int_ptr(-1);

    test = "co_send of 4 MB to a slow reader";
    if ((big_out = malloc(BIG)) == NULL)
        die("malloc");
    for (size_t i = 0; i < BIG; i++)
        big_out[i] = (char)(i % 251);   /* a prime: a misplaced chunk shows */
    big_read = read_when_writer_done = 0;
    big_sends = 0;
    make_socketpair(io_fd);
    if (!CHECK((w = co_spawn(big_writer, NULL)) != NULL, "co_spawn")
            || !CHECK((r = co_spawn(slow_reader, NULL)) != NULL, "co_spawn"))
        return;
    CHECK(co_join(w, &wr) == 0 && wr == NULL, "the writer sent all 4 MB");
    CHECK(co_join(r, &rr) == 0 && rr == NULL, "the reader got all 4 MB, every byte in place");
    CHECK(big_sends > 1, "the buffer filled: co_send came back short and the writer waited");
    CHECK(read_when_writer_done > 0, "the reader ran while the writer waited");
    CHECK(co_close(io_fd[0]) == 0 && co_close(io_fd[1]) == 0, "co_close");
    free(big_out);
    big_out = NULL;
}

/* One byte from io_fd[0]: 0, -1 at EOF, or errno. */
static void *recv_one(void *arg)
{
    char c;
    (void)arg;
    ssize_t n = co_recv(io_fd[0], &c, 1, 0);
    return int_ptr(n == 1 ? 0 : n == 0 ? -1 : errno);
}

/* "one waiter per direction" (co.c; gevent: "already used by another greenlet"):
 * a second coroutine's co_recv on a descriptor another one waits on: EBUSY. */
static void test_recv_ebusy(void)
{
    struct co *a, *b;
    void *ra = int_ptr(-1), *rb = int_ptr(-1);

    test = "a second reader on one fd: EBUSY";
    make_socketpair(io_fd);
    if (!CHECK((a = co_spawn(recv_one, NULL)) != NULL, "co_spawn")
            || !CHECK((b = co_spawn(recv_one, NULL)) != NULL, "co_spawn"))
        return;
    CHECK(co_join(b, &rb) == 0 && ptr_int(rb) == EBUSY, "the second reader: -1, EBUSY");
    if (send(io_fd[1], "x", 1, MSG_NOSIGNAL) != 1)
        die("send");
    CHECK(co_join(a, &ra) == 0 && ra == NULL, "the first still gets the byte");
    CHECK(co_close(io_fd[0]) == 0 && co_close(io_fd[1]) == 0, "co_close");
}

static void *send_block(void *arg)
{
    static char block[65536];
    (void)arg;
    ssize_t n = co_send(io_fd[0], block, sizeof block, MSG_NOSIGNAL);
    return int_ptr(n > 0 ? 0 : errno);
}

/* co_close: whoever waits on the descriptor would wait forever, so it wakes with
 * EBADF, as for a closed descriptor: a reader and a writer, both parked on it. */
static void test_close_wakes(void)
{
    struct co *r, *w;
    void *rr = int_ptr(-1), *wr = int_ptr(-1);

    test = "co_close wakes its waiters with EBADF";
    make_socketpair(io_fd);
    CHECK(fill(io_fd[0]) > 0, "io_fd[0]'s way out is full");
    if (!CHECK((r = co_spawn(recv_one, NULL)) != NULL, "co_spawn")
            || !CHECK((w = co_spawn(send_block, NULL)) != NULL, "co_spawn"))
        return;
    co_yield();                 /* both parked now: nothing to read, no room to write */
    CHECK(co_close(io_fd[0]) == 0, "co_close of the descriptor they wait on");
    CHECK(co_join(r, &rr) == 0 && ptr_int(rr) == EBADF, "the parked reader: EBADF");
    CHECK(co_join(w, &wr) == 0 && ptr_int(wr) == EBADF, "the parked writer: EBADF");
    close_fd(io_fd[1]);
}

static void *close_later(void *arg)
{
    if (co_sleep_ms(ptr_int(arg)) == -1)
        return int_ptr(errno);
    return int_ptr(co_close(io_fd[1]) == 0 ? 0 : errno);
}

/* co_recv is recv(): 0 at end of file, for a reader parked when the peer closes
 * and for one that comes after. */
static void test_recv_eof(void)
{
    struct co *r, *c;
    void *rr = int_ptr(-1), *cr = int_ptr(-1);
    char b;

    test = "co_recv returns 0 at EOF";
    make_socketpair(io_fd);
    if (!CHECK((r = co_spawn(recv_one, NULL)) != NULL, "co_spawn")
            || !CHECK((c = co_spawn(close_later, int_ptr(10))) != NULL, "co_spawn"))
        return;
    CHECK(co_join(r, &rr) == 0 && ptr_int(rr) == -1, "the parked reader woke with 0 (EOF)");
    CHECK(co_join(c, &cr) == 0 && cr == NULL, "the peer closed");
    CHECK(co_recv(io_fd[0], &b, 1, 0) == 0, "a later co_recv: 0 at once");
    CHECK(co_close(io_fd[0]) == 0, "co_close");
}

/* ---------------------------------------------------------------- TCP */

static struct sockaddr_in server_addr;
static int listen_fd;

/* Accepts one client, echoes one message, closes. 0 or errno; -1: not an echo. */
static void *echo_once(void *arg)
{
    struct sockaddr_in peer;
    socklen_t len = sizeof peer;
    char buf[16];
    (void)arg;
    int fd = co_accept(listen_fd, (struct sockaddr *)&peer, &len);
    if (fd == -1)
        return int_ptr(errno);
    if (len != sizeof peer || peer.sin_family != AF_INET
            || peer.sin_addr.s_addr != htonl(INADDR_LOOPBACK)) {
        (void)co_close(fd);     /* already failing: the address is the news */
        return int_ptr(-1);
    }
    ssize_t n = co_recv(fd, buf, sizeof buf, 0);
    if (n <= 0 || co_send(fd, buf, (size_t)n, MSG_NOSIGNAL) != n) {
        int saved = n == 0 ? -1 : errno;
        (void)co_close(fd);     /* already failing: the first error is the news */
        return int_ptr(saved);
    }
    return int_ptr(co_close(fd) == 0 ? 0 : errno);
}

/* Connects, sends "ping", expects "ping" back and then EOF. 0 or errno; -1: wrong reply. */
static void *ping_client(void *arg)
{
    char buf[16];
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    (void)arg;
    if (fd == -1)
        return int_ptr(errno);
    int error = 0;
    if (co_connect(fd, (struct sockaddr *)&server_addr, sizeof server_addr) == -1
            || co_send(fd, "ping", 4, MSG_NOSIGNAL) != 4)
        error = errno;
    else if (co_recv(fd, buf, sizeof buf, 0) != 4 || memcmp(buf, "ping", 4) != 0
                || co_recv(fd, buf, sizeof buf, 0) != 0)
        error = -1;
    if (co_close(fd) == -1 && error == 0)
        error = errno;
    return int_ptr(error);
}

/* co_accept and co_connect over TCP on 127.0.0.1: a server coroutine and a client
 * coroutine talk, each parked in turn. */
static void test_tcp(void)
{
    struct co *s, *c;
    void *sr = int_ptr(-2), *cr = int_ptr(-2);

    test = "co_accept and co_connect over TCP";
    listen_fd = make_listener(&server_addr);
    if (!CHECK((s = co_spawn(echo_once, NULL)) != NULL, "co_spawn")
            || !CHECK((c = co_spawn(ping_client, NULL)) != NULL, "co_spawn"))
        return;
    CHECK(co_join(s, &sr) == 0 && sr == NULL, "the server accepted (from 127.0.0.1) and echoed");
    CHECK(co_join(c, &cr) == 0 && cr == NULL, "the client connected, got its echo and EOF");
    CHECK(co_close(listen_fd) == 0, "co_close");
}

/* co_connect: an error is the connect's error: a port nobody listens on is
 * ECONNREFUSED. (The port is held by a bound socket that does not listen, so
 * nobody else can take it meanwhile.) */
static void test_connect_refused(void)
{
    struct sockaddr_in addr;
    socklen_t len = sizeof addr;
    int holder = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    test = "co_connect to a closed port";
    if (holder == -1 || fd == -1)
        die("socket");
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(holder, (struct sockaddr *)&addr, sizeof addr) == -1
            || getsockname(holder, (struct sockaddr *)&addr, &len) == -1)
        die("bind");
    errno = 0;
    CHECK(co_connect(fd, (struct sockaddr *)&addr, sizeof addr) == -1 && errno == ECONNREFUSED,
          "co_connect: -1, ECONNREFUSED");
    CHECK(co_close(fd) == 0, "co_close");
    close_fd(holder);
}

/* ---------------------------------------------------------------- short reads */

/* Wait, letting the others run, until *flag is set or ms milliseconds have
 * passed; returns the flag. A test whose coroutine may stay parked for good (the
 * bug it looks for) then ends the wait with co_close() instead of hanging the run. */
static int wait_for(const int *flag, long ms)
{
    long long t0 = now_ns();
    while (!*flag && ms_since(t0) < (double)ms)
        if (co_sleep_ms(5) == -1)
            die("co_sleep_ms");
    return *flag;
}

static char dgrams_seen[3][16];
static int dgrams_done;

/* Three co_recv()s on io_fd[0], one buffer each; dgrams_done when all came. */
static void *recv_three(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++) {
        ssize_t n = co_recv(io_fd[0], dgrams_seen[i], sizeof dgrams_seen[i] - 1, 0);
        if (n <= 0)
            return int_ptr(n == 0 ? -1 : errno);
        dgrams_seen[i][n] = '\0';
    }
    dgrams_done = 1;
    return NULL;
}

/* co_recv "returns what is there": on a datagram socket that is one datagram per
 * call, shorter than the buffer, with the next one queued behind it. A short read
 * does not mean the socket is empty: three queued, three read. */
static void test_recv_datagrams(void)
{
    static const char *const sent[] = { "one", "two", "three" };
    void *result = int_ptr(-2);
    struct co *r;

    test = "co_recv on a datagram socket";
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, io_fd) == -1)
        die("socketpair");
    memset(dgrams_seen, 0, sizeof dgrams_seen);
    dgrams_done = 0;
    if (!CHECK((r = co_spawn(recv_three, NULL)) != NULL, "co_spawn"))
        return;
    co_yield();                 /* it waits now: nothing to read */
    for (size_t i = 0; i < 3; i++)
        if (send(io_fd[1], sent[i], strlen(sent[i]), 0) != (ssize_t)strlen(sent[i]))
            die("send");
    int done = wait_for(&dgrams_done, 1000);
    CHECK(done, "all three datagrams read within 1 s");
    CHECK(co_close(io_fd[0]) == 0, "co_close (a reader still parked wakes with EBADF)");
    CHECK(co_join(r, &result) == 0 && result == (done ? NULL : int_ptr(EBADF)), "co_join");
    CHECK(strcmp(dgrams_seen[0], "one") == 0 && strcmp(dgrams_seen[1], "two") == 0
              && strcmp(dgrams_seen[2], "three") == 0, "one datagram per co_recv, in order");
    close_fd(io_fd[1]);
}

static char line_seen[16];
static int line_done;

/* co_recv()s on io_fd[0] until a newline; line_done when it came. */
static void *recv_line(void *arg)
{
    size_t got = 0;
    (void)arg;
    while (memchr(line_seen, '\n', got) == NULL && got < sizeof line_seen - 1) {
        ssize_t n = co_recv(io_fd[0], line_seen + got, sizeof line_seen - 1 - got, 0);
        if (n <= 0)
            return int_ptr(n == 0 ? -1 : errno);
        got += (size_t)n;
    }
    line_done = 1;
    return NULL;
}

/* TCP's urgent data: recv() stops at the urgent mark, so on a TCP socket too a
 * read can be short with more behind it. Without SO_OOBINLINE the urgent byte is
 * not in the stream: "abc", urgent "!", "def\n" read as "abcdef\n", in two reads.
 * All three arrive while the reader waits, so one wake-up finds them all there. */
static void test_recv_urgent(void)
{
    struct sockaddr_in addr;
    void *result = int_ptr(-2);
    struct co *r;

    test = "co_recv past TCP's urgent mark";
    int lfd = make_listener(&addr);
    int cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (cfd == -1 || connect(cfd, (struct sockaddr *)&addr, sizeof addr) == -1)
        die("connect");
    if ((io_fd[0] = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) == -1)
        die("accept4");
    memset(line_seen, 0, sizeof line_seen);
    line_done = 0;
    if (!CHECK((r = co_spawn(recv_line, NULL)) != NULL, "co_spawn"))
        return;
    co_yield();                 /* it waits now: nothing to read */
    if (send(cfd, "abc", 3, 0) != 3 || send(cfd, "!", 1, MSG_OOB) != 1
            || send(cfd, "def\n", 4, 0) != 4)
        die("send");
    int done = wait_for(&line_done, 1000);
    CHECK(done, "the whole line read within 1 s");
    CHECK(co_close(io_fd[0]) == 0, "co_close (a reader still parked wakes with EBADF)");
    CHECK(co_join(r, &result) == 0 && result == (done ? NULL : int_ptr(EBADF)), "co_join");
    if (!CHECK(strcmp(line_seen, "abcdef\n") == 0, "abcdef\\n: the urgent byte is out of the stream"))
        printf("#   got \"%s\"\n", line_seen);
    close_fd(cfd);
    close_fd(lfd);
}

static int guard_done, guarded_fd;

/* Unless guard_done comes within arg ms, co_close(guarded_fd): whoever is parked
 * on it wakes with EBADF. 0, or -1 if it had to. */
static void *guard(void *arg)
{
    if (wait_for(&guard_done, ptr_int(arg)))
        return NULL;
    (void)co_close(guarded_fd);         /* already failing: the wake-up is what counts */
    return int_ptr(-1);
}

/* co.h: "registers it ... the first time it sees it, once for its life; close
 * it with co_close()". A program that closes with plain close() leaves the
 * runtime remembering a descriptor that is gone, and socket() gives the next
 * socket the same number. The runtime must take it for the new socket it is
 * (blocking, unregistered) and not for the old one: else co_connect and co_recv
 * block the thread, or park on a descriptor epoll does not watch. */
static void test_close_reuse(void)
{
    int sv[2];
    char buf[8];
    void *sr = int_ptr(-2), *gr = int_ptr(-2);
    struct co *s, *g;
    struct timeval second = { 1, 0 };

    test = "a descriptor closed with close() and reused";
    make_socketpair(sv);
    CHECK(co_send(sv[1], "x", 1, MSG_NOSIGNAL) == 1 && co_recv(sv[0], buf, 1, 0) == 1,
          "both ends of a socketpair known to the runtime");
    close_fd(sv[0]);
    close_fd(sv[1]);            /* plain close(): the runtime is not told */
    listen_fd = make_listener(&server_addr);   /* socket() takes the lowest free number */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        die("socket");
    if (!CHECK((listen_fd == sv[0] && fd == sv[1]) || (listen_fd == sv[1] && fd == sv[0]),
               "a listener and a client socket got the old numbers")) {
        close_fd(fd);
        close_fd(listen_fd);
        return;
    }
    /* A blocking recv() would hang the run: make it a failure after a second. */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &second, sizeof second) == -1)
        die("setsockopt");
    guard_done = 0;
    guarded_fd = fd;
    if (!CHECK((s = co_spawn(echo_once, NULL)) != NULL, "co_spawn")
            || !CHECK((g = co_spawn(guard, int_ptr(2000))) != NULL, "co_spawn"))
        return;
    long long t0 = now_ns();
    CHECK(co_connect(fd, (struct sockaddr *)&server_addr, sizeof server_addr) == 0,
          "co_connect on the new socket");
    CHECK(co_send(fd, "ping", 4, MSG_NOSIGNAL) == 4, "co_send");
    CHECK(co_recv(fd, buf, sizeof buf, 0) == 4 && memcmp(buf, "ping", 4) == 0,
          "co_recv: the echo, from a co_accept on the new listener");
    if (!CHECK(ms_since(t0) < 900, "at once: nothing blocked the thread"))
        printf("#   took %.0f ms\n", ms_since(t0));
    guard_done = 1;
    CHECK(co_join(g, &gr) == 0 && gr == NULL, "no reader parked for good (the guard's 2 s)");
    CHECK(co_join(s, &sr) == 0 && sr == NULL, "the server coroutine accepted and echoed");
    if (gr == NULL)
        CHECK(co_close(fd) == 0, "co_close");
    CHECK(co_close(listen_fd) == 0, "co_close");
}

/* ---------------------------------------------------------------- libc's flags and SIGPIPE */

/* co.h: "otherwise they behave as the libc calls do", and MSG_DONTWAIT is the
 * caller saying "do not wait": recv() with nothing to read and send() with no
 * room return -1, EAGAIN, at once. A hub that parks instead would wait for good:
 * the guard co_close()s the descriptor after a second (the call then says EBADF). */
static void test_dontwait(void)
{
    char c;
    void *gr = int_ptr(-2);
    struct co *g;

    test = "MSG_DONTWAIT: -1, EAGAIN, no wait";
    make_socketpair(io_fd);
    CHECK(fill(io_fd[0]) > 0, "io_fd[0]'s way out is full");
    guard_done = 0;
    guarded_fd = io_fd[0];
    if (!CHECK((g = co_spawn(guard, int_ptr(1000))) != NULL, "co_spawn"))
        return;
    long long t0 = now_ns();
    errno = 0;
    CHECK(co_recv(io_fd[0], &c, 1, MSG_DONTWAIT) == -1 && errno == EAGAIN,
          "co_recv, nothing to read: -1, EAGAIN");
    errno = 0;
    CHECK(co_send(io_fd[0], "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL) == -1 && errno == EAGAIN,
          "co_send, no room: -1, EAGAIN");
    if (!CHECK(ms_since(t0) < 500, "at once"))
        printf("#   took %.0f ms\n", ms_since(t0));
    guard_done = 1;
    CHECK(co_join(g, &gr) == 0 && gr == NULL, "nobody parked for good (the guard's second)");
    if (gr == NULL)
        CHECK(co_close(io_fd[0]) == 0, "co_close");
    close_fd(io_fd[1]);
}

/* Sends "hello", sleeps arg ms, sends "world": one message in two pieces. */
static void *send_halves(void *arg)
{
    if (co_send(io_fd[1], "hello", 5, MSG_NOSIGNAL) != 5)
        return int_ptr(errno);
    if (co_sleep_ms(ptr_int(arg)) == -1)
        return int_ptr(errno);
    return int_ptr(co_send(io_fd[1], "world", 5, MSG_NOSIGNAL) == 5 ? 0 : errno);
}

/* recv(2): "MSG_WAITALL: this flag requests that the operation block until the
 * full request is satisfied" (on a stream socket), and MSG_PEEK leaves what it
 * read in the queue for the next recv. Both at once, an AF_UNIX stream's recv()
 * peeks what is there (TCP's would wait for len bytes: co.h says so). */
static void test_waitall_peek(void)
{
    char buf[16];
    void *wr = int_ptr(-1);
    struct co *w;

    test = "MSG_WAITALL and MSG_PEEK";
    make_socketpair(io_fd);
    memset(buf, 0, sizeof buf);
    if (!CHECK((w = co_spawn(send_halves, int_ptr(20))) != NULL, "co_spawn"))
        return;
    long long t0 = now_ns();
    ssize_t n = co_recv(io_fd[0], buf, 10, MSG_WAITALL);
    if (!CHECK(n == 10 && memcmp(buf, "helloworld", 10) == 0,
               "MSG_WAITALL: all 10 bytes, sent in two pieces 20 ms apart"))
        printf("#   got %zd: \"%.*s\"\n", n, n > 0 ? (int)n : 0, buf);
    CHECK(ms_since(t0) >= 20, "after the second piece came");
    CHECK(co_join(w, &wr) == 0 && wr == NULL, "the writer's co_sends succeeded");
    memset(buf, 0, sizeof buf);
    CHECK(co_send(io_fd[1], "peek", 4, MSG_NOSIGNAL) == 4, "co_send");
    CHECK(co_recv(io_fd[0], buf, sizeof buf, MSG_PEEK) == 4 && memcmp(buf, "peek", 4) == 0,
          "MSG_PEEK: the bytes");
    memset(buf, 0, sizeof buf);
    n = co_recv(io_fd[0], buf, 8, MSG_PEEK | MSG_WAITALL);
    if (!CHECK(n == 4 && memcmp(buf, "peek", 4) == 0,
               "MSG_PEEK | MSG_WAITALL (AF_UNIX): what is there, once, as recv() gives it"))
        printf("#   got %zd: \"%.*s\"\n", n, n > 0 ? (int)n : 0, buf);
    memset(buf, 0, sizeof buf);
    CHECK(co_recv(io_fd[0], buf, sizeof buf, 0) == 4 && memcmp(buf, "peek", 4) == 0,
          "... still there for the next co_recv");
    CHECK(co_close(io_fd[0]) == 0 && co_close(io_fd[1]) == 0, "co_close");
}

static volatile sig_atomic_t pipes;

static void on_sigpipe(int sig)
{
    (void)sig;
    pipes++;
}

/* send(2) to a stream whose peer has gone: EPIPE, and "the SIGPIPE signal is also
 * sent, unless MSG_NOSIGNAL is set". With a handler (SA_RESTART: the runtime's
 * EINTR for main is not what this is about), it runs once per such send; at its
 * default the signal kills the program, as it kills one calling send():
 * runtime-test in sigpipe mode must die of it (tests/08-runtime.bats runs it, as
 * it runs overflow mode: a fork and exec from here would not run under qemu-user,
 * which hands an aarch64 program's exec to the host). */
static void test_sigpipe(void)
{
    struct sigaction sa, old;

    test = "co_send to a closed peer: SIGPIPE, unless MSG_NOSIGNAL";
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigpipe;
    sa.sa_flags = SA_RESTART;
    if (sigemptyset(&sa.sa_mask) == -1)
        die("sigemptyset");
    if (!CHECK(co_sigaction(SIGPIPE, &sa, &old) == 0, "co_sigaction"))
        return;
    pipes = 0;
    make_socketpair(io_fd);
    close_fd(io_fd[1]);
    errno = 0;
    CHECK(co_send(io_fd[0], "x", 1, 0) == -1 && errno == EPIPE, "co_send: -1, EPIPE");
    CHECK(pipes == 1, "and SIGPIPE came, once");
    errno = 0;
    CHECK(co_send(io_fd[0], "x", 1, MSG_NOSIGNAL) == -1 && errno == EPIPE,
          "co_send with MSG_NOSIGNAL: -1, EPIPE");
    CHECK(pipes == 1, "and no SIGPIPE");
    CHECK(co_close(io_fd[0]) == 0, "co_close");
    CHECK(co_sigaction(SIGPIPE, &old, NULL) == 0, "co_sigaction restores the old action");
}

/* ---------------------------------------------------------------- co_close and copies */

/* Whether the runtime's epoll set holds the file whose inode is ino: 1 or 0,
 * or -1 if there is no epoll set (the completion hub's programs). The kernel
 * lists an epoll set's watches in /proc/self/fdinfo/EPFD, a line each:
 * "tfd: FD events: MASK data: DATA pos:0 ino:INODE sdev:DEV" (hex inode). */
static int epoll_watches(unsigned long ino)
{
    char path[64], target[64], line[256];
    int found = -1;
    for (int fd = 0; fd < 1024; fd++) {
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n == -1)
            continue;           /* ENOENT: fd is not open */
        target[n] = '\0';
        if (strcmp(target, "anon_inode:[eventpoll]") != 0)
            continue;
        snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            die("fopen fdinfo");
        if (found == -1)
            found = 0;
        while (fgets(line, sizeof line, f) != NULL) {
            const char *at = strstr(line, " ino:");
            if (strncmp(line, "tfd:", 4) == 0 && at != NULL && strtoul(at + 5, NULL, 16) == ino)
                found = 1;
        }
        if (fclose(f) == EOF)
            die("fclose");
    }
    return found;
}

/* epoll(7), Q6: close() takes a descriptor out of an epoll set only when it
 * closes the file's last descriptor; a dup() keeps the file, and its watch,
 * alive. co_close() must take the registration out itself: else epoll goes on
 * reporting the old file under the number the next socket() gets. */
static void test_close_copy(void)
{
    int sv[2];
    struct stat st;

    test = "co_close with a dup() of the descriptor open";
    make_socketpair(sv);
    CHECK(co_send(sv[0], "x", 1, MSG_NOSIGNAL) == 1, "co_send: the runtime knows sv[0]");
    int copy = dup(sv[0]);
    if (copy == -1 || fstat(copy, &st) == -1)
        die("dup");
    CHECK(epoll_watches(st.st_ino) != 0, "the runtime's epoll set (if any) watches the file");
    CHECK(co_close(sv[0]) == 0, "co_close");
    CHECK(epoll_watches(st.st_ino) != 1, "after co_close, it does not, though the dup is open");
    close_fd(copy);
    close_fd(sv[1]);
}

/* ---------------------------------------------------------------- fairness */

static long reads, reads_at_first_tick, ticks_at_end;
static size_t fair_bytes;

static void *greedy_reader(void *arg)
{
    char buf[256];
    ssize_t n;
    (void)arg;
    while ((n = co_recv(io_fd[0], buf, sizeof buf, 0)) > 0) {
        fair_bytes += (size_t)n;
        reads++;
        if (ticks > 0 && reads_at_first_tick == 0)
            reads_at_first_tick = reads;
    }
    ticks_at_end = ticks;
    ticking = 0;
    return int_ptr(n == 0 ? 0 : errno);
}

/* "After BUDGET (16) IO calls that succeed in a row, yield" (co.c): a reader whose
 * data is always there never has to wait, yet a coroutine that only counts and
 * yields still gets turns while it reads. */
static void test_fairness(void)
{
    struct co *r, *t;
    void *rr = int_ptr(-1);
    int size = 1024 * 1024;

    test = "a reader that never waits does not starve the others";
    make_socketpair(io_fd);
    /* As much as the kernel allows (net.core.wmem_max), so there is a lot queued. */
    if (setsockopt(io_fd[1], SOL_SOCKET, SO_SNDBUF, &size, sizeof size) == -1)
        die("setsockopt");
    size_t queued = fill(io_fd[1]);
    close_fd(io_fd[1]);         /* after the data: EOF, so the reader ends */
    reads = reads_at_first_tick = ticks_at_end = ticks = 0;
    fair_bytes = 0;
    ticking = 1;
    if (!CHECK((r = co_spawn(greedy_reader, NULL)) != NULL, "co_spawn")
            || !CHECK((t = co_spawn(ticker, NULL)) != NULL, "co_spawn"))
        return;
    CHECK(co_join(r, &rr) == 0 && rr == NULL, "the reader read to EOF");
    CHECK(co_join(t, NULL) == 0, "co_join of the counter");
    CHECK(fair_bytes == queued, "it read all that was queued");
    CHECK(reads > 64, "in many reads (all of it was there: no read had to wait)");
    CHECK(ticks_at_end > 0, "the counter advanced while the reader read");
    if (!CHECK(reads_at_first_tick > 0 && reads_at_first_tick <= 64,
               "the counter's first turn came within 64 reads (the budget is 16)"))
        printf("#   first turn after %ld of %ld reads\n", reads_at_first_tick, reads);
    CHECK(co_close(io_fd[0]) == 0, "co_close");
}

/* ---------------------------------------------------------------- signals */

static volatile sig_atomic_t usr1, usr1_other;
static int usr1_at_connect;

static void on_usr1(int sig)
{
    (void)sig;
    usr1++;
}

static void on_usr1_other(int sig)
{
    (void)sig;
    usr1_other++;
}

static int install(void (*handler)(int), int flags, struct sigaction *old)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = flags;
    if (sigemptyset(&sa.sa_mask) == -1)
        die("sigemptyset");
    return co_sigaction(SIGUSR1, &sa, old);
}

/* raise() from a coroutine after arg ms: the signal comes while someone else waits. */
static void *raise_later(void *arg)
{
    if (co_sleep_ms(ptr_int(arg)) == -1)
        return int_ptr(errno);
    return int_ptr(raise(SIGUSR1) == 0 ? 0 : errno);
}

/* co_sigaction: "when the handler has run, the hub wakes the main coroutine's
 * parked IO call ... with EINTR (unless SA_RESTART)": main waits in co_accept
 * with nothing to accept; a coroutine raises SIGUSR1. */
static void test_signal_eintr(void)
{
    struct sigaction old;
    struct sockaddr_in addr;
    void *result = int_ptr(-1);
    struct co *r;

    test = "a signal interrupts main's co_accept";
    if (!CHECK(install(on_usr1, 0, &old) == 0, "co_sigaction"))
        return;
    usr1 = 0;
    int lfd = make_listener(&addr);
    if (!CHECK((r = co_spawn(raise_later, int_ptr(20))) != NULL, "co_spawn"))
        return;
    long long t0 = now_ns();
    errno = 0;
    CHECK(co_accept(lfd, NULL, NULL) == -1 && errno == EINTR, "co_accept: -1, EINTR");
    CHECK(usr1 == 1, "the handler ran once");
    CHECK(ms_since(t0) >= 20 && ms_since(t0) < 1000, "when the signal came, ~20 ms");
    CHECK(co_join(r, &result) == 0 && result == NULL, "raise() succeeded");
    CHECK(co_close(lfd) == 0, "co_close");
    CHECK(co_sigaction(SIGUSR1, &old, NULL) == 0, "co_sigaction restores the old action");
}

static void *connect_later(void *arg)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return int_ptr(errno);
    int error = co_sleep_ms(ptr_int(arg)) == -1 ? errno : 0;
    usr1_at_connect = usr1;
    if (error == 0 && co_connect(fd, (struct sockaddr *)&server_addr, sizeof server_addr) == -1)
        error = errno;
    if (co_close(fd) == -1 && error == 0)
        error = errno;
    return int_ptr(error);
}

/* The same with SA_RESTART: the wait goes on through the signal, until a client
 * connects and co_accept returns its descriptor. */
static void test_signal_restart(void)
{
    struct sigaction old;
    void *rr = int_ptr(-1), *cr = int_ptr(-1);
    struct co *r, *c;

    test = "SA_RESTART: main's co_accept goes on";
    if (!CHECK(install(on_usr1, SA_RESTART, &old) == 0, "co_sigaction"))
        return;
    usr1 = 0;
    usr1_at_connect = -1;
    int lfd = make_listener(&server_addr);
    if (!CHECK((r = co_spawn(raise_later, int_ptr(10))) != NULL, "co_spawn")
            || !CHECK((c = co_spawn(connect_later, int_ptr(40))) != NULL, "co_spawn"))
        return;
    int fd = co_accept(lfd, NULL, NULL);
    CHECK(fd >= 0, "co_accept returned a descriptor, not EINTR");
    CHECK(usr1 == 1 && usr1_at_connect == 1,
          "the signal came (and was handled) before the connect");
    if (fd >= 0)
        CHECK(co_close(fd) == 0, "co_close");
    CHECK(co_join(r, &rr) == 0 && rr == NULL, "raise() succeeded");
    CHECK(co_join(c, &cr) == 0 && cr == NULL, "the client connected");
    CHECK(co_close(lfd) == 0, "co_close");
    CHECK(co_sigaction(SIGUSR1, &old, NULL) == 0, "co_sigaction restores the old action");
}

static double other_slept;

static void *timed_sleep(void *arg)
{
    long long t0 = now_ns();
    int rc = co_sleep_ms(ptr_int(arg));
    other_slept = ms_since(t0);
    return int_ptr(rc == -1 ? errno : 0);
}

/* co_sleep_ms: "-1 with EINTR if a signal interrupted the main coroutine's sleep";
 * and only main's, as the kernel interrupts the main thread's call: another
 * coroutine's sleep goes on to its end. */
static void test_signal_sleep(void)
{
    struct sigaction old;
    void *rr = int_ptr(-1), *sr = int_ptr(-1);
    struct co *r, *s;

    test = "a signal interrupts main's co_sleep_ms only";
    if (!CHECK(install(on_usr1, 0, &old) == 0, "co_sigaction"))
        return;
    usr1 = 0;
    if (!CHECK((r = co_spawn(raise_later, int_ptr(20))) != NULL, "co_spawn")
            || !CHECK((s = co_spawn(timed_sleep, int_ptr(60))) != NULL, "co_spawn"))
        return;
    long long t0 = now_ns();
    errno = 0;
    CHECK(co_sleep_ms(5000) == -1 && errno == EINTR, "main's 5 s sleep: -1, EINTR");
    CHECK(ms_since(t0) < 1000, "cut short");
    CHECK(usr1 == 1, "the handler ran");
    CHECK(co_join(r, &rr) == 0 && rr == NULL, "raise() succeeded");
    CHECK(co_join(s, &sr) == 0 && sr == NULL, "the other coroutine's sleep returned 0");
    CHECK(other_slept >= 60, "after all its 60 ms");
    CHECK(co_sigaction(SIGUSR1, &old, NULL) == 0, "co_sigaction restores the old action");
}

/* co_sigaction is sigaction: old gives back the program's handler (not whatever
 * the runtime put in between), the new handler is the one that runs, and a bad
 * signal number is EINVAL. */
static void test_sigaction_old(void)
{
    struct sigaction dfl, old;

    test = "co_sigaction's old action";
    usr1 = usr1_other = 0;
    if (!CHECK(install(on_usr1, 0, &dfl) == 0, "co_sigaction"))
        return;
    CHECK(dfl.sa_handler == SIG_DFL, "the action before: SIG_DFL");
    CHECK(install(on_usr1_other, 0, &old) == 0, "co_sigaction, a second handler");
    CHECK(old.sa_handler == on_usr1, "old is the program's first handler");
    CHECK(raise(SIGUSR1) == 0 && usr1_other == 1 && usr1 == 0,
          "the second handler is the one that runs");
    CHECK(co_sigaction(SIGUSR1, &dfl, &old) == 0 && old.sa_handler == on_usr1_other,
          "back to SIG_DFL; old is the second handler");
    CHECK(co_sigaction(SIGUSR1, NULL, &old) == 0 && old.sa_handler == SIG_DFL, "SIG_DFL now");
    errno = 0;
    CHECK(co_sigaction(0, NULL, NULL) == -1 && errno == EINVAL, "signal 0: EINVAL");
    errno = 0;
    CHECK(co_sigaction(-1, NULL, NULL) == -1 && errno == EINVAL, "signal -1: EINVAL");
}

/* co_sigaction's EINTR for a signal from outside, while the hub waits in epoll:
 * the signal mask is the thread's. The first call that makes the hub comes
 * while SIGUSR1 is blocked (as 01's threads-server.c blocks SIGINT around
 * pthread_create), and the program unblocks it after. Run first: later, the hub
 * exists already. */
static void test_hub_mask(void)
{
    struct sigaction old;
    sigset_t usr1_set, was;
    struct co *c;

    test = "a signal from outside interrupts main (mask at the hub's making)";
    if (sigemptyset(&usr1_set) == -1 || sigaddset(&usr1_set, SIGUSR1) == -1
            || sigprocmask(SIG_BLOCK, &usr1_set, &was) == -1)
        die("sigprocmask");
    c = co_spawn(record, NULL); /* the first runtime call: the hub is made now */
    if (sigprocmask(SIG_SETMASK, &was, NULL) == -1)
        die("sigprocmask");
    if (!CHECK(c != NULL, "co_spawn") || !CHECK(co_join(c, NULL) == 0, "co_join")
            || !CHECK(install(on_usr1, 0, &old) == 0, "co_sigaction"))
        return;
    usr1 = 0;
    pid_t parent = getpid(), child = fork();
    if (child == -1)
        die("fork");
    if (child == 0) {           /* another process: the signal comes from outside */
        struct timespec nap = { 0, 30 * 1000000L };
        _exit(nanosleep(&nap, NULL) == 0 && kill(parent, SIGUSR1) == 0 ? 0 : 1);
    }
    long long t0 = now_ns();
    errno = 0;
    CHECK(co_sleep_ms(2000) == -1 && errno == EINTR, "main's 2 s sleep: -1, EINTR");
    if (!CHECK(ms_since(t0) < 1000, "when the signal came (~30 ms), not at the sleep's end"))
        printf("#   after %.0f ms\n", ms_since(t0));
    int status;
    if (waitpid(child, &status, 0) == -1)
        die("waitpid");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the other process sent SIGUSR1");
    CHECK(usr1 == 1, "the handler ran");
    CHECK(co_sigaction(SIGUSR1, &old, NULL) == 0, "co_sigaction restores the old action");
}

/* co_sleep_ms: "park for ms milliseconds", however many: LONG_MAX is as good as
 * forever, and must not wrap around into the past and return at once. Main's
 * sleep, so that a signal can end it (and the test). */
static void test_sleep_forever(void)
{
    struct sigaction old;
    void *result = int_ptr(-1);
    struct co *r;

    test = "co_sleep_ms(LONG_MAX) sleeps";
    if (!CHECK(install(on_usr1, 0, &old) == 0, "co_sigaction"))
        return;
    usr1 = 0;
    if (!CHECK((r = co_spawn(raise_later, int_ptr(20))) != NULL, "co_spawn"))
        return;
    long long t0 = now_ns();
    errno = 0;
    CHECK(co_sleep_ms(LONG_MAX) == -1 && errno == EINTR, "it lasted until the signal: -1, EINTR");
    CHECK(ms_since(t0) >= 20, "after the signal's 20 ms, not at once");
    CHECK(co_join(r, &result) == 0 && result == NULL, "raise() succeeded");
    CHECK(co_sigaction(SIGUSR1, &old, NULL) == 0, "co_sigaction restores the old action");
}

/* ---------------------------------------------------------------- the guard page */

/* Finds, in /proc/self/maps, the mapping this coroutine's stack is in and the one
 * just below it. 0, or -1 if the stack was not found. */
static void *look_at_own_stack(void *arg)
{
    unsigned long *found = arg;     /* stack lo, hi; guard lo, hi, inaccessible */
    uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
    char line[4096], perms[8];
    unsigned long lo, hi;
    FILE *f = fopen("/proc/self/maps", "r");
    if (f == NULL)
        return int_ptr(errno);
    for (int pass = 0; pass < 2; pass++) {
        rewind(f);
        while (fgets(line, sizeof line, f) != NULL) {
            if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3)
                continue;           /* the rest of a line longer than line[] */
            if (pass == 0 && sp >= lo && sp < hi)
                found[0] = lo, found[1] = hi;
            if (pass == 1 && hi == found[0])
                found[2] = lo, found[3] = hi, found[4] = strncmp(perms, "---", 3) == 0;
        }
    }
    int error = ferror(f) ? EIO : 0;
    if (fclose(f) == EOF && error == 0)
        error = errno;
    return int_ptr(found[0] == 0 ? -1 : error);
}

/* CO_STACK_SIZE: "each coroutine's stack, in bytes, with one inaccessible guard
 * page below it": look at the mappings (the overflow mode makes it fault). */
static void test_guard_page(void)
{
    unsigned long found[5] = { 0, 0, 0, 0, 0 };
    void *result = int_ptr(-2);
    struct co *c;

    test = "a guard page below every stack";
    if (!CHECK((c = co_spawn(look_at_own_stack, found)) != NULL, "co_spawn"))
        return;
    CHECK(co_join(c, &result) == 0 && result == NULL, "its stack is in /proc/self/maps");
    CHECK(found[1] - found[0] >= CO_STACK_SIZE, "the stack's mapping holds CO_STACK_SIZE");
    CHECK(found[3] == found[0] && found[3] - found[2] >= (unsigned long)page_size,
          "a mapping of a page or more just below it");
    CHECK(found[4], "... that is inaccessible (---p)");
}

/* ---------------------------------------------------------------- wrap.c's threads */

/* runtime-test is linked like threads-server, with --wrap, but for the pthread
 * calls only (see the Makefile): each pthread_ call below is wrap.c's, and a
 * thread is a coroutine. */

/* A thread created detached (by its attributes, not by pthread_detach) is freed
 * when it ends, as the real one's stack would be: not leaked. And the attributes
 * are still the caller's to destroy. */
static void test_wrap_detached(void)
{
    pthread_attr_t attr;
    pthread_t t;

    test = "wrap.c: a thread created detached";
    if (pthread_attr_init(&attr) != 0
            || pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) != 0)
        die("pthread_attr");
    stack_page_seen = NULL;
    CHECK(pthread_create(&t, &attr, note_stack, NULL) == 0, "pthread_create, detached");
    if (pthread_attr_destroy(&attr) != 0)
        die("pthread_attr_destroy");
    co_yield();
    co_yield();
    co_yield();                 /* it ran and finished; the hub frees between rounds */
    CHECK(stack_page_seen != NULL, "it ran");
    CHECK(stack_page_seen != NULL && !mapped(stack_page_seen),
          "it finished: the runtime freed its coroutine (no leak)");
}

/* pthread_join is co_join: it waits for the thread's end and takes its result.
 * Joining oneself is EDEADLK, joining a detached thread EINVAL, as POSIX says. */
static void test_wrap_join(void)
{
    pthread_attr_t attr;
    pthread_t t;
    void *result = int_ptr(-1);

    test = "wrap.c: pthread_join";
    stack_page_seen = NULL;
    if (!CHECK(pthread_create(&t, NULL, note_stack_and_sleep, int_ptr(20)) == 0, "pthread_create"))
        return;
    long long t0 = now_ns();
    CHECK(pthread_join(t, &result) == 0 && result == NULL, "pthread_join: 0, and the result");
    CHECK(ms_since(t0) >= 20, "after the thread's 20 ms sleep");
    CHECK(stack_page_seen != NULL && !mapped(stack_page_seen), "joined: freed");
    CHECK(pthread_join(pthread_self(), NULL) == EDEADLK, "joining oneself: EDEADLK");

    if (pthread_attr_init(&attr) != 0)
        die("pthread_attr_init");
    CHECK(pthread_create(&t, &attr, note_stack_and_sleep, int_ptr(10)) == 0,
          "pthread_create with attributes, joinable");
    if (pthread_attr_destroy(&attr) != 0)
        die("pthread_attr_destroy");
    CHECK(pthread_detach(t) == 0, "pthread_detach");
    CHECK(pthread_join(t, NULL) == EINVAL, "joining it now: EINVAL");
    CHECK(co_sleep_ms(30) == 0, "co_sleep_ms: it ends meanwhile, freed by the runtime");
}

/* ---------------------------------------------------------------- overflow mode */

static volatile int depth_limit = INT_MAX;     /* never reached: the stack ends first */

/* Recursion the compiler must keep: a volatile array in every frame, read after
 * the call (so it is not a tail call) and a limit it cannot see through. */
static int recurse(int depth)
{
    volatile char frame[512];   /* well under a page: each frame lands in the guard */
    frame[depth % 512] = (char)depth;
    if (depth == depth_limit)
        return frame[0];
    return recurse(depth + 1) + frame[(depth * 7) % 512];
}

static void *overflow(void *arg)
{
    (void)arg;
    return int_ptr(recurse(0));
}

/* test_sigpipe's other half, in a process of its own: SIGPIPE at its default,
 * a co_send (no MSG_NOSIGNAL) to a peer that has gone must kill it. */
static int run_sigpipe(void)
{
    struct sigaction sa;
    int sv[2];
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;    /* whatever the parent had: exec keeps SIG_IGN */
    if (sigemptyset(&sa.sa_mask) == -1 || sigaction(SIGPIPE, &sa, NULL) == -1)
        die("sigaction");
    make_socketpair(sv);
    close_fd(sv[1]);
    ssize_t n = co_send(sv[0], "x", 1, 0);
    fprintf(stderr, "runtime-test: co_send to a closed peer returned %zd (%s), and SIGPIPE did not kill us\n",
            n, strerror(errno));
    return 1;
}

/* The guard page at work: this process must die of SIGSEGV. */
static int run_overflow(void)
{
    struct co *c = co_spawn(overflow, NULL);
    if (c == NULL)
        die("co_spawn");
    if (co_join(c, NULL) == -1)
        die("co_join");
    fprintf(stderr, "runtime-test: a coroutine overflowed its stack and lived\n");
    return 1;
}

int main(int argc, char **argv)
{
    page_size = sysconf(_SC_PAGESIZE);
    if (page_size <= 0)
        die("sysconf");
    if (argc == 2 && strcmp(argv[1], "overflow") == 0)
        return run_overflow();
    if (argc == 2 && strcmp(argv[1], "sigpipe") == 0)
        return run_sigpipe();
    if (argc != 1) {
        fprintf(stderr, "usage: runtime-test [overflow | sigpipe]\n");
        return 2;
    }
    if (setvbuf(stdout, NULL, _IOLBF, 0) != 0)     /* failures in order even into a pipe */
        die("setvbuf");
    test = "setup";
    start_watchdog();

    test_hub_mask();            /* first: it needs the runtime not yet started */
    test_spawn_runs_when_spawner_waits();
    test_join_frees();
    test_joinall();
    test_join_errors();
    test_detach();
    test_switch_values();
    test_switch_creator();
    test_switch_errors();
    test_yield_round_robin();
    test_sleep_order();
    test_sleep_many();
    test_sleep_zero();
    test_deadlock_join();
    test_deadlock_switch();
    test_recv_parks();
    test_send_backpressure();
    test_recv_ebusy();
    test_close_wakes();
    test_recv_eof();
    test_tcp();
    test_connect_refused();
    test_recv_datagrams();
    test_recv_urgent();
    test_close_reuse();
    test_dontwait();
    test_waitall_peek();
    test_sigpipe();
    test_close_copy();
    test_fairness();
    test_signal_eintr();
    test_signal_restart();
    test_signal_sleep();
    test_sigaction_old();
    test_guard_page();
    /* Last, as they found bugs (a sleep's deadline overflowing, a finished
     * coroutine reading its freed creator): on a runtime that has them, UBSan and
     * ASan stop the run at them, and every other check has run before. */
    test_sleep_forever();
    test_creator_gone();
    test_wrap_detached();
    test_wrap_join();           /* the real pthread_join on a coroutine would crash */

    printf("runtime-test: %d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
