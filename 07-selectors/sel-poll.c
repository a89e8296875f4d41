/*
 * 07-selectors/sel-poll.c: the poll backend (05-poll's mechanism).
 *
 * Teaches: poll() as a backend: one array of the registered descriptors, rebuilt
 * from the keys when registrations changed, handed whole to the kernel each wait and
 * scanned whole for revents. No FD_SETSIZE; still a turn costs what is watched.
 *
 * Look at: poll_wait(): POLLERR, POLLHUP and POLLNVAL come unasked.
 * Pitfall: allocating in the wait: room is made in poll_add(), so a wait never fails
 * for memory.
 */
#define _POSIX_C_SOURCE 200809L
#include "backend.h"
#include <poll.h>
#include <stdlib.h>


struct poll_state {
    struct pollfd *fds;         /* one per registered descriptor, when not dirty */
    int cap;                    /* room in fds: at least one per key */
    int nfds;
    int dirty;                  /* registrations changed: rebuild fds before poll() */
};

static int poll_open(struct selector *s)
{
    struct poll_state *st = calloc(1, sizeof *st);
    if (st == NULL)
        return -1;
    s->state = st;
    return 0;
}

static void poll_close(struct selector *s)
{
    struct poll_state *st = s->state;
    free(st->fds);
    free(st);
}

/* Room is made here, so the rebuild in poll_wait() never allocates. */
static int poll_add(struct selector *s, int fd, int events)
{
    struct poll_state *st = s->state;
    struct pollfd *fds = sel_grow(st->fds, &st->cap, s->count + 1, sizeof *fds);
    (void)fd, (void)events;
    if (fds == NULL)
        return -1;
    st->fds = fds;
    st->dirty = 1;
    return 0;
}

static int poll_modify(struct selector *s, int fd, int events)
{
    (void)fd, (void)events;
    ((struct poll_state *)s->state)->dirty = 1;
    return 0;
}

static void poll_remove(struct selector *s, int fd)
{
    (void)fd;
    ((struct poll_state *)s->state)->dirty = 1;
}

static void poll_rebuild(struct selector *s, struct poll_state *st)
{
    st->nfds = 0;
    for (int fd = 0; fd < s->nslots; fd++) {
        struct sel_key *key = s->keys[fd];
        if (key == NULL)
            continue;
        st->fds[st->nfds].fd = fd;
        st->fds[st->nfds].events = (short)((key->events & SEL_READ ? POLLIN : 0)
                                           | (key->events & SEL_WRITE ? POLLOUT : 0));
        st->nfds++;
    }
    st->dirty = 0;
}

static int poll_wait(struct selector *s, int timeout_ms)
{
    struct poll_state *st = s->state;
    int n = 0;

    if (st->dirty)
        poll_rebuild(s, st);
    if (poll(st->fds, (nfds_t)st->nfds, timeout_ms) == -1)
        return -1;
    for (int i = 0; i < st->nfds; i++) {
        short re = st->fds[i].revents;
        /* POLLERR, POLLHUP and POLLNVAL come unasked: report them as whatever the key
         * waits for, so its read or write meets the error. */
        int mask = (re & POLLIN ? SEL_READ : 0) | (re & POLLOUT ? SEL_WRITE : 0)
                   | (re & (POLLERR | POLLHUP | POLLNVAL) ? ALL_EVENTS : 0);
        if (mask != 0)
            n = sel_report(s, n, st->fds[i].fd, mask);
    }
    return n;
}

const struct backend backend_poll = {
    "poll", poll_open, poll_close, poll_add, poll_modify, poll_remove, poll_wait,
};
