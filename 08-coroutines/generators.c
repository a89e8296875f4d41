/*
 * 08-coroutines/generators.c: the notes' two generators, f1 and f2, resumed in turn.
 *
 * Teaches: a generator is a coroutine that hands control back to its caller.
 * Notes 003, "自己写一个IO切换": f1 prints 11, yields, 22, yields, 33; f2 prints
 * 55, 66, 77; next(v1), next(v2), ... resume them alternately. Nothing runs
 * concurrently: each next() runs one generator up to its next yield, then the
 * caller goes on, so the output is always 11 55 22 66 33 77, one per line.
 *
 * Build and run:  make      then  ./generators
 *
 * Look at: next(), which switches to the generator and passes who to come back
 * to, and yield_to(), which switches back to that caller. Both are one
 * co_switch(): the generator's frame (its loop counter, where it stopped) waits
 * on its own stack in between, as a Python generator's frame waits in the
 * generator object.
 * Exit status: 0.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "co.h"

static const char *prog;                /* argv[0], for messages */

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void usage(FILE *to)
{
    fprintf(to, "usage: %s [-h]\n"
                "  prints 11 55 22 66 33 77: two generators resumed in turn\n"
                "  -h        this help\n", prog);
}

static void parse_options(int argc, char **argv)
{
    int c;
    prog = argv[0];
    while ((c = getopt(argc, argv, "h")) != -1) {
        switch (c) {
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind != argc) {
        usage(stderr);
        exit(2);
    }
}

/* Every switch in this program passes a non-NULL value (a coroutine, or "done"),
 * so a NULL back from co_switch() can only be its error. */
static void *switch_or_die(struct co *to, void *value)
{
    void *got = co_switch(to, value);
    if (got == NULL)
        die("co_switch");
    return got;
}

/* Python's yield: back to whoever resumed us. Returns when someone resumes us
 * again, with that someone, the caller of the next yield. */
static struct co *yield_to(struct co *caller)
{
    return switch_or_die(caller, co_self());
}

/* The first next() starts the generator: its argument is the first caller. */
static void *f1(void *caller)
{
    puts("11");
    caller = yield_to(caller);
    puts("22");
    caller = yield_to(caller);
    puts("33");
    /* Python's third next(v1) would raise StopIteration here. Our generator
     * returns, and a finished coroutine goes back to its creator (co.h). */
    return "done";
}

static void *f2(void *caller)
{
    puts("55");
    caller = yield_to(caller);
    puts("66");
    caller = yield_to(caller);
    puts("77");
    return "done";
}

/* Python's next(gen): run gen until it yields (or ends), then come back here. */
static void next(struct co *gen)
{
    switch_or_die(gen, co_self());
}

int main(int argc, char **argv)
{
    parse_options(argc, argv);

    /* v1 = f1(): a generator object, nothing of f1 has run yet. */
    struct co *v1 = co_create(f1);
    struct co *v2 = co_create(f2);
    if (v1 == NULL || v2 == NULL)
        die("co_create");

    next(v1);
    next(v2);
    next(v1);
    next(v2);
    next(v1);       /* f1 prints 33 and returns */
    next(v2);       /* f2 prints 77 and returns */

    /* Both have finished: joining them frees their stacks at once. */
    if (co_join(v1, NULL) == -1 || co_join(v2, NULL) == -1)
        die("co_join");
    return 0;
}
