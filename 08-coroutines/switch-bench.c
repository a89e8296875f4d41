/*
 * 08-coroutines/switch-bench.c: what a switch costs, measured as the notes do.
 *
 * Teaches: switching alone does not make anything faster (notes 003, "greenlet
 * 实现状态切换" and "效率对比"): f1 adds, f2 multiplies, N times each. Run one
 * after the other, they take the loops' time; switching to each other every
 * iteration, they take that plus 2N switches. The difference divided by 2N is
 * the price of one switch, here measured two ways in one run:
 *   - co_switch() of the runtime, over the build's context switch (ctx_kind:
 *     hand-written, or ucontext with make CTX=ucontext);
 *   - swapcontext() called directly, whatever the build: the portable way,
 *     which saves and restores the signal mask, one system call per switch.
 * The notes measured greenlet at 52.8 s against 11.0 s for 10^8 iterations:
 * about 210 ns per switch in CPython. A stack switch in C takes nanoseconds:
 * a dozen instructions, and a jump the CPU has learnt to predict (ctx.c says
 * why it jumps rather than returns).
 *
 * Build and run:  make      then  ./switch-bench          (about a second)
 *                                  ./switch-bench -n 1000000
 *
 * Output: one line per measurement; each switching line has "N ns per switch".
 * The plain ucontext run does a tenth of the iterations (swapcontext is slow,
 * and the per-switch figure needs no more). A CTX=ucontext build, whose
 * co_switch is swapcontext too, runs 10^6 iterations by default, not 10^7.
 * Exit status: 0.
 */
#define _GNU_SOURCE             /* ucontext is obsolescent in POSIX, still in glibc */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "co.h"
#include "ctx.h"

/* AddressSanitizer intercepts swapcontext() and warns, at the first call, that
 * it "doesn't fully support" it; make check counts any report as a failure. So
 * in a sanitizer build the plain ucontext run says it was skipped. (A sanitizer
 * build with CTX=ucontext draws the same warning from co_switch itself.) */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

#ifdef CTX_UCONTEXT
#define DEFAULT_ITERATIONS 1000000L
#else
#define DEFAULT_ITERATIONS 10000000L
#endif
#define UCONTEXT_SHARE 10               /* the plain ucontext run: N / 10 iterations */
#define UC_STACK_SIZE (64 * 1024)

static const char *prog;                /* argv[0], for messages */
static long iterations = DEFAULT_ITERATIONS;   /* -n: each loop's N */

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void usage(FILE *to)
{
    fprintf(to, "usage: %s [-n N] [-h]\n"
                "  two loops of N iterations, in sequence, then switching every iteration\n"
                "  -n N      iterations of each loop (default %ld; plain ucontext: N/%d)\n"
                "  -h        this help\n", prog, DEFAULT_ITERATIONS, UCONTEXT_SHARE);
}

/* A whole number from 0 to max, or usage and exit 2: "-p 70000" and "-p abc" are errors. */
static long number(int opt, const char *arg, long max)
{
    char *end;
    errno = 0;
    long n = strtol(arg, &end, 10);
    if (errno != 0 || end == arg || *end != '\0' || n < 0 || n > max) {
        fprintf(stderr, "%s: -%c wants a number from 0 to %ld, not '%s'\n", prog, opt, max, arg);
        usage(stderr);
        exit(2);
    }
    return n;
}

static void parse_options(int argc, char **argv)
{
    int c;
    prog = argv[0];
    while ((c = getopt(argc, argv, "n:h")) != -1) {
        switch (c) {
        case 'n': iterations = number(c, optarg, 1000000000); break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind != argc || iterations == 0) {     /* 0 would make the demo meaningless */
        usage(stderr);
        exit(2);
    }
}

static double now(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
        die("clock_gettime");
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- (a) sequential: f1(), then f2() ---- */

/* The notes' res of f1 and f2. volatile: the compiler must do every addition
 * and multiplication, not the closed form of the sum, nor nothing at all since
 * nobody reads them. Unsigned, so a long run's overflow is defined (it wraps). */
static volatile uint64_t sum, product;

static void f1_alone(long n)
{
    sum = 1;
    for (long i = 0; i < n; i++)
        sum += (uint64_t)i;
}

static void f2_alone(long n)
{
    product = 1;
    for (long i = 0; i < n; i++)
        product *= (uint64_t)i;
}

/* ---- (b) the runtime: f1 and f2 co_switch() to each other every iteration ---- */

static struct co *g1, *g2;
static long co_iterations;

/* A NULL from co_switch() is its error: every switch here passes a non-NULL value. */
static void *f1_co(void *token)
{
    sum = 1;
    for (long i = 0; i < co_iterations; i++) {
        sum += (uint64_t)i;
        if (co_switch(g2, token) == NULL)       /* g2.switch() */
            die("co_switch");
    }
    return token;       /* to our creator, main */
}

static void *f2_co(void *token)
{
    product = 1;
    for (long i = 0; i < co_iterations; i++) {
        product *= (uint64_t)i;
        if (co_switch(g1, token) == NULL)       /* g1.switch() */
            die("co_switch");
    }
    return token;
}

/* Seconds for n iterations of each, 2n switches between them (and 4 more: main
 * starts f1, f1 ends, main resumes f2 so that it ends too, f2 ends). */
static double run_co(long n)
{
    static char token[] = "switch";
    co_iterations = n;
    if ((g1 = co_create(f1_co)) == NULL || (g2 = co_create(f2_co)) == NULL)
        die("co_create");
    double start = now();
    if (co_switch(g1, token) == NULL || co_switch(g2, token) == NULL)
        die("co_switch");
    double took = now() - start;
    if (co_join(g1, NULL) == -1 || co_join(g2, NULL) == -1)
        die("co_join");
    return took;
}

/* ---- (c) the same with swapcontext() directly, no runtime ---- */

static ucontext_t uc_main, uc1, uc2;
static long uc_iterations;

static void f1_uc(void)
{
    sum = 1;
    for (long i = 0; i < uc_iterations; i++) {
        sum += (uint64_t)i;
        if (swapcontext(&uc1, &uc2) == -1)
            die("swapcontext");
    }
}                       /* returning resumes uc_link: main */

static void f2_uc(void)
{
    product = 1;
    for (long i = 0; i < uc_iterations; i++) {
        product *= (uint64_t)i;
        if (swapcontext(&uc2, &uc1) == -1)
            die("swapcontext");
    }
}

static void make_uc(ucontext_t *uc, void (*fn)(void), void *stack)
{
    if (getcontext(uc) == -1)
        die("getcontext");
    uc->uc_stack.ss_sp = stack;
    uc->uc_stack.ss_size = UC_STACK_SIZE;
    uc->uc_link = &uc_main;
    makecontext(uc, fn, 0);
}

static double run_uc(long n)
{
    void *stack1 = malloc(UC_STACK_SIZE), *stack2 = malloc(UC_STACK_SIZE);
    if (stack1 == NULL || stack2 == NULL)
        die("malloc");
    uc_iterations = n;
    make_uc(&uc1, f1_uc, stack1);
    make_uc(&uc2, f2_uc, stack2);
    double start = now();
    if (swapcontext(&uc_main, &uc1) == -1 || swapcontext(&uc_main, &uc2) == -1)
        die("swapcontext");
    double took = now() - start;
    free(stack1);
    free(stack2);
    return took;
}

int main(int argc, char **argv)
{
    parse_options(argc, argv);
    long n = iterations;
    long m = n / UCONTEXT_SHARE > 0 ? n / UCONTEXT_SHARE : 1;

    double start = now();
    f1_alone(n);
    f2_alone(n);
    double seq = now() - start;
    double seq_ns_per_iteration = seq * 1e9 / (double)n;   /* both loops' share */
    printf("sequential: 2 loops x %ld iterations in %.3f s\n", n, seq);

    /* What the switching run took beyond the loops themselves, per switch. */
    double co = run_co(n);
    double co_ns = (co * 1e9 - seq_ns_per_iteration * (double)n) / (2.0 * (double)n);
    printf("switching with co_switch (%s): %ld switches in %.3f s, %.1f ns per switch\n",
           ctx_kind, 2 * n, co, co_ns);

#ifdef UNDER_ASAN
    (void)run_uc;
    (void)m;
    puts("switching with swapcontext (plain ucontext): skipped, AddressSanitizer build");
#else
    double uc = run_uc(m);
    double uc_ns = (uc * 1e9 - seq_ns_per_iteration * (double)m) / (2.0 * (double)m);
    printf("switching with swapcontext (plain ucontext, N/%d iterations): "
           "%ld switches in %.3f s, %.1f ns per switch, %.1fx co_switch's\n",
           UCONTEXT_SHARE, 2 * m, uc, uc_ns, uc_ns / co_ns);
#endif
    return 0;
}
