/*
 * 08-coroutines/greenlet.c: the notes' greenlet eat/play, switching by hand.
 *
 * Teaches: greenlet's switch (notes 003, "Greenlet模块"): g1.switch('egon')
 * starts eat('egon'); eat and play then pass control to each other by name,
 * each switch resuming the other exactly where it stopped. It prints
 *     egon eat 1 / egon play 1 / egon eat 2 / egon play 2
 * Switching is all greenlet does: a switch that would wait for IO would block
 * the whole thread (that is gevent's job, see gevent.c).
 *
 * Build and run:  make      then  ./greenlet
 *
 * Look at: the first switch's value becomes eat's argument, as in greenlet; and
 * what happens when play returns: a finished coroutine resumes its creator
 * (main, waiting in its co_switch), not the coroutine that switched to it last.
 * eat is left suspended in its second switch and never prints more, as in the
 * notes, where the program simply ends there.
 * Exit status: 0.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "co.h"

static const char *prog;                /* argv[0], for messages */
static struct co *g1, *g2;              /* globals, as in the notes: eat and play name each other */

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void usage(FILE *to)
{
    fprintf(to, "usage: %s [-h]\n"
                "  greenlet's eat and play, switching to each other by hand\n"
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

/* greenlet's switch() passes None where no value is given; we pass the name
 * each time instead, so that a NULL back from co_switch() can only be its error. */
static void *switch_or_die(struct co *to, void *value)
{
    void *got = co_switch(to, value);
    if (got == NULL)
        die("co_switch");
    return got;
}

static void *eat(void *name)
{
    printf("%s eat 1\n", (char *)name);
    switch_or_die(g2, name);            /* g2.switch('egon'): starts play('egon') */
    printf("%s eat 2\n", (char *)name);
    switch_or_die(g2, name);            /* g2.switch(): never comes back */
    return name;
}

static void *play(void *name)
{
    printf("%s play 1\n", (char *)name);
    switch_or_die(g1, name);            /* g1.switch(): eat goes on after its switch */
    printf("%s play 2\n", (char *)name);
    return name;                    /* back to main, which created us */
}

int main(int argc, char **argv)
{
    parse_options(argc, argv);

    if ((g1 = co_create(eat)) == NULL || (g2 = co_create(play)) == NULL)
        die("co_create");
    switch_or_die(g1, "egon");          /* g1.switch('egon'): only the first switch needs it */

    /* play has finished: free it. eat waits forever in a switch nobody will
     * make; joining it would be a deadlock (EDEADLK), so it is left as it is,
     * and the process's exit takes its stack. */
    if (co_join(g2, NULL) == -1)
        die("co_join");
    return 0;
}
