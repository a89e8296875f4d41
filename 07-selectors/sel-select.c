/*
 * 07-selectors/sel-select.c: the select backend (notes 000 step 15; 04-select's mechanism).
 *
 * Teaches: select() as a backend: two master fd_sets say what is registered; each
 * wait hands the kernel copies (it overwrites them with the answer) and scans every
 * number up to the highest. A turn costs what is watched, not what is ready.
 *
 * Look at: select_add(), the one place a descriptor enters an fd_set.
 * Pitfall: FD_SET past FD_SETSIZE writes outside the fd_set: select_add() refuses such
 * a descriptor (ERANGE) before any FD_SET.
 */
#define _POSIX_C_SOURCE 200809L
#include "backend.h"
#include <errno.h>
#include <stdlib.h>
#include <sys/select.h>


struct select_state {
    fd_set read, write;         /* the master sets: what is registered */
    int maxfd;                  /* highest registered descriptor, -1 if none */
};

static int select_open(struct selector *s)
{
    struct select_state *st = malloc(sizeof *st);
    if (st == NULL)
        return -1;
    FD_ZERO(&st->read);
    FD_ZERO(&st->write);
    st->maxfd = -1;
    s->state = st;
    return 0;
}

static void select_close(struct selector *s)
{
    free(s->state);
}

static void select_set(struct select_state *st, int fd, int events)
{
    FD_CLR(fd, &st->read);
    FD_CLR(fd, &st->write);
    if (events & SEL_READ)
        FD_SET(fd, &st->read);
    if (events & SEL_WRITE)
        FD_SET(fd, &st->write);
}

static int select_add(struct selector *s, int fd, int events)
{
    struct select_state *st = s->state;
    /* An fd_set holds FD_SETSIZE bits: FD_SET(1100) would write past its end. Every
     * descriptor in the sets passed here first, so it is the only check needed. */
    if (fd >= FD_SETSIZE)
        return sel_fail(ERANGE);
    select_set(st, fd, events);
    if (fd > st->maxfd)
        st->maxfd = fd;
    return 0;
}

static int select_modify(struct selector *s, int fd, int events)
{
    select_set(s->state, fd, events);
    return 0;
}

static void select_remove(struct selector *s, int fd)
{
    struct select_state *st = s->state;
    select_set(st, fd, 0);
    while (st->maxfd >= 0 && !FD_ISSET(st->maxfd, &st->read) && !FD_ISSET(st->maxfd, &st->write))
        st->maxfd--;
}

static int select_wait(struct selector *s, int timeout_ms)
{
    struct select_state *st = s->state;
    /* select() overwrites its sets with the answer: hand it copies of the masters. */
    fd_set rd = st->read, wr = st->write;
    struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
    int n = 0;

    if (select(st->maxfd + 1, &rd, &wr, NULL, timeout_ms < 0 ? NULL : &tv) == -1)
        return -1;
    /* An error or a hang-up shows as readable and writable: nothing more to map. */
    for (int fd = 0; fd <= st->maxfd; fd++) {
        int mask = (FD_ISSET(fd, &rd) ? SEL_READ : 0) | (FD_ISSET(fd, &wr) ? SEL_WRITE : 0);
        if (mask != 0)
            n = sel_report(s, n, fd, mask);
    }
    return n;
}

const struct backend backend_select = {
    "select", select_open, select_close, select_add, select_modify, select_remove, select_wait,
};
