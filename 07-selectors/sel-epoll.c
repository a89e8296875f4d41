/*
 * 07-selectors/sel-epoll.c: the epoll backend, the default (06-epoll's mechanism).
 *
 * Teaches: epoll as a backend: the interest list lives in the kernel (epoll_ctl on
 * register, modify and unregister), and epoll_wait() returns only the ready
 * descriptors, so a turn costs what is ready. Level-triggered, as the contract is.
 *
 * Look at: epoll_wait_ready(): never more events than the batch has room for.
 * Pitfall: a descriptor closed before it is unregistered: EPOLL_CTL_DEL then fails
 * (ignored: the key goes all the same), and if a dup of it is still open, epoll goes
 * on reporting it; sel_report() drops a number it does not know.
 */
#define _POSIX_C_SOURCE 200809L
#include "backend.h"
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>


struct epoll_state {
    int epfd;
    struct epoll_event *evs;    /* epoll_wait()'s answer: one slot per key */
    int cap;
};

static int epoll_open(struct selector *s)
{
    struct epoll_state *st = calloc(1, sizeof *st);
    if (st == NULL || (st->evs = sel_grow(NULL, &st->cap, 1, sizeof *st->evs)) == NULL
        || (st->epfd = epoll_create1(EPOLL_CLOEXEC)) == -1) {
        if (st != NULL)
            free(st->evs);
        free(st);
        return -1;
    }
    s->state = st;
    return 0;
}

static void epoll_close(struct selector *s)
{
    struct epoll_state *st = s->state;
    close(st->epfd);            /* nothing to do if it fails: the memory goes anyway */
    free(st->evs);
    free(st);
}

/* Level-triggered, like select and poll; data.fd brings the descriptor back.
 * SEL_EXCLUSIVE (at EPOLL_CTL_ADD only) wakes one of the epoll instances that wait
 * on the file, not all: the wait queue's exclusive flag, taken for epoll in 4.5. */
static int epoll_ctl_events(struct epoll_state *st, int op, int fd, int events)
{
    struct epoll_event ev = { .events = (events & SEL_READ ? EPOLLIN : 0u)
                                        | (events & SEL_WRITE ? EPOLLOUT : 0u)
                                        | (events & SEL_EXCLUSIVE ? EPOLLEXCLUSIVE : 0u) };
    ev.data.fd = fd;
    return epoll_ctl(st->epfd, op, fd, &ev);
}

static int epoll_add(struct selector *s, int fd, int events)
{
    struct epoll_state *st = s->state;
    struct epoll_event *evs = sel_grow(st->evs, &st->cap, s->count + 1, sizeof *evs);
    if (evs == NULL)
        return -1;
    st->evs = evs;
    return epoll_ctl_events(st, EPOLL_CTL_ADD, fd, events);
}

static int epoll_modify(struct selector *s, int fd, int events)
{
    return epoll_ctl_events(s->state, EPOLL_CTL_MOD, fd, events);
}

static void epoll_remove(struct selector *s, int fd)
{
    struct epoll_event ev = { 0 };  /* kernels before 2.6.9 wanted one, even for DEL */
    /* The result is ignored on purpose, as Python does: DEL fails only when fd was
     * closed before it was unregistered, and the key is forgotten all the same. */
    (void)epoll_ctl(((struct epoll_state *)s->state)->epfd, EPOLL_CTL_DEL, fd, &ev);
}

static int epoll_wait_ready(struct selector *s, int timeout_ms)
{
    struct epoll_state *st = s->state;
    /* Never take more than the batch can hold (both have room for 16 from the start). */
    int max = st->cap < s->ready_cap ? st->cap : s->ready_cap;
    int got = epoll_wait(st->epfd, st->evs, max, timeout_ms);
    int n = 0;

    if (got == -1)
        return -1;
    for (int i = 0; i < got; i++) {
        uint32_t re = st->evs[i].events;
        /* EPOLLERR and EPOLLHUP come unasked: report them as what the key waits for. */
        int mask = (re & EPOLLIN ? SEL_READ : 0) | (re & EPOLLOUT ? SEL_WRITE : 0)
                   | (re & (EPOLLERR | EPOLLHUP) ? ALL_EVENTS : 0);
        n = sel_report(s, n, st->evs[i].data.fd, mask);
    }
    return n;
}

const struct backend backend_epoll = {
    "epoll", epoll_open, epoll_close, epoll_add, epoll_modify, epoll_remove, epoll_wait_ready,
};
