/*
 * 08-coroutines/gevent.c: the notes' gevent eat/play: a sleep lets the other run.
 *
 * Teaches: gevent's automatic switch on blocking (notes 003, "Gevent模块",
 * 用法介绍): eat sleeps 2 units, play 1; gevent.sleep() parks the greenlet and
 * the hub runs the other, so joinall() returns after 2 units, the longest
 * sleep, not 3, their sum. It prints
 *     egon eat 1 / egon play 1 / egon play 2 / egon eat 2 / main
 * (the notes print 主, "main"), then how long it took, on a line of its own.
 *
 * Build and run:  make      then  ./gevent          (2 s)
 *                                  ./gevent -u 100   (units of 100 ms: 0.2 s)
 *
 * Look at: nothing in eat() or play() mentions the other: co_sleep_ms() is
 * where the switch happens, inside the runtime (co.c: park() and hub_main()).
 * Exit status: 0.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "co.h"

static const char *prog;                /* argv[0], for messages */
static long unit_ms = 1000;             /* -u: gevent.sleep(1) in milliseconds */

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void usage(FILE *to)
{
    fprintf(to, "usage: %s [-u MILLIS] [-h]\n"
                "  gevent's eat (sleeps 2 units) and play (sleeps 1), spawned and joined\n"
                "  -u MILLIS one unit of sleep (default 1000)\n"
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

/* gevent.sleep(units): park this coroutine; the hub runs the others meanwhile. */
static void sleep_units(long units)
{
    if (co_sleep_ms(units * unit_ms) == -1)
        die("co_sleep_ms");
}

static void *eat(void *name)
{
    printf("%s eat 1\n", (char *)name);
    sleep_units(2);
    printf("%s eat 2\n", (char *)name);
    return NULL;
}

static void *play(void *name)
{
    printf("%s play 1\n", (char *)name);
    sleep_units(1);
    printf("%s play 2\n", (char *)name);
    return NULL;
}

int main(int argc, char **argv)
{
    parse_options(argc, argv);

    double start = now();
    /* gevent.spawn: ready to run, but nothing runs until main waits (joinall). */
    struct co *g[2];
    if ((g[0] = co_spawn(eat, "egon")) == NULL || (g[1] = co_spawn(play, "egon")) == NULL)
        die("co_spawn");
    if (co_joinall(g, 2, NULL) == -1)
        die("co_joinall");
    puts("main");
    double took = now() - start;
    printf("took %.3f s (sleeps of 2 and 1 units of %.3f s: the longest, not the sum)\n",
           took, (double)unit_ms / 1000);
    return 0;
}
