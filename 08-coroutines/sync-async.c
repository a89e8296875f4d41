/*
 * 08-coroutines/sync-async.c: the notes' ten tasks, one after the other, then all at once.
 *
 * Teaches: synchronous versus asynchronous (notes 003, "Gevent之同步与异步").
 * Each task sleeps one unit (0.5 s, as in the notes) and says it is done.
 * Synchronously, main calls them in turn: ten units. Asynchronously, main
 * spawns ten coroutines and joins them all: every sleep overlaps the others,
 * and the whole takes one unit. Same code in task(); only who calls it differs.
 *
 * Build and run:  make      then  ./sync-async           (5.5 s)
 *                                  ./sync-async -u 20     (units of 20 ms)
 *
 * Look at: the order of the asynchronous "Task N done" lines: 0 to 9, every run,
 * though all ten wake "at the same time". The hub starts the spawned tasks in
 * spawn order, and each takes its deadline (now + one unit) from the monotonic
 * clock a little after the one before; the runtime's heap of sleepers hands
 * them back earliest deadline first, so they finish in the order they started.
 * The heap is not stable, so two equal deadlines could come out either way;
 * they are not equal here because the clock counts nanoseconds and two tasks
 * start at least two switches apart. Nothing in this file forces the order.
 * Each half ends with its timing on a line of its own.
 * Exit status: 0.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "co.h"

#define NTASKS 10

static const char *prog;                /* argv[0], for messages */
static long unit_ms = 500;              /* -u: each task's sleep, time.sleep(0.5) */

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void usage(FILE *to)
{
    fprintf(to, "usage: %s [-u MILLIS] [-h]\n"
                "  ten tasks that each sleep one unit: called in turn, then spawned and joined\n"
                "  -u MILLIS one task's sleep (default 500)\n"
                "  -h        this help\n", prog);
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
    while ((c = getopt(argc, argv, "u:h")) != -1) {
        switch (c) {
        case 'u': unit_ms = number(c, optarg, 60000); break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind != argc || unit_ms == 0) {     /* 0 would make the demo meaningless */
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

/* The notes' task(pid); the pid travels in the pointer, as spawn(task, i) passes i. */
static void *task(void *pid)
{
    /* The notes' time.sleep(0.5), monkey-patched: gevent.sleep. From main it
     * parks main alone, and nobody else is there to run. */
    if (co_sleep_ms(unit_ms) == -1)
        die("co_sleep_ms");
    printf("Task %d done\n", (int)(intptr_t)pid);
    return NULL;
}

static void synchronous(void)
{
    for (int i = 0; i < NTASKS; i++)
        task((void *)(intptr_t)i);
}

static void asynchronous(void)
{
    struct co *g[NTASKS];
    for (int i = 0; i < NTASKS; i++)
        if ((g[i] = co_spawn(task, (void *)(intptr_t)i)) == NULL)
            die("co_spawn");
    if (co_joinall(g, NTASKS, NULL) == -1)
        die("co_joinall");
    puts("DONE");
}

int main(int argc, char **argv)
{
    parse_options(argc, argv);
    double unit = (double)unit_ms / 1000, start;

    puts("Synchronous:");
    start = now();
    synchronous();
    printf("synchronous took %.3f s (%d tasks of %.3f s, one after the other)\n",
           now() - start, NTASKS, unit);

    puts("Asynchronous:");
    start = now();
    asynchronous();
    printf("asynchronous took %.3f s (%d tasks of %.3f s, all at once)\n",
           now() - start, NTASKS, unit);
    return 0;
}
