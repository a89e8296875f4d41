/*
 * 07-selectors/selectors.c: the selector library, one backend per section.
 *
 * Teaches: Redis' ae shape (notes 001 and 003): the common part keeps the keys and
 * the events array; each backend (select, poll, epoll) keeps its own state behind one
 * small contract, struct backend, and only reports "fd is readable/writable". All
 * three are compiled; sel_open() picks one by name, by SELECTOR, or by what works.
 *
 * Build:  cc -std=c11 -o selectors-test selectors-test.c selectors.c
 *         ./selectors-test          (every check, on every backend)
 *
 * Look at: sel_unregister() and retire(): a callback may unregister any descriptor,
 * even one later in the batch being dispatched; and sel_select()'s EINTR loop.
 * Pitfall: select()'s FD_SET past FD_SETSIZE writes outside the fd_set: select_add()
 * refuses such a descriptor (ERANGE) before any FD_SET.
 */
#define _POSIX_C_SOURCE 200809L
#include "selectors.h"
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

#define ALL_EVENTS (SEL_READ | SEL_WRITE)

/* What a backend does; the common part does the rest (checks, keys, EINTR). add, modify
 * and remove are called before the key table changes (s->count is still the old one);
 * wait fills s->ready through report() and returns how many it put there, or -1 with
 * errno. */
struct backend {
    const char *name;
    int (*open)(struct selector *s);            /* sets s->state; 0 or -1 */
    void (*close)(struct selector *s);
    int (*add)(struct selector *s, int fd, int events);
    int (*modify)(struct selector *s, int fd, int events);
    void (*remove)(struct selector *s, int fd);
    int (*wait)(struct selector *s, int timeout_ms);
};

/* A key and the link that keeps it on the retired list (see retire()). */
struct entry {
    struct sel_key key;         /* first: a struct sel_key * is a struct entry * */
    struct entry *next_retired;
};

struct selector {
    const struct backend *be;
    void *state;                /* the backend's own */
    struct sel_key **keys;      /* indexed by fd; NULL if not registered */
    int nslots;                 /* how many slots keys has */
    int count;                  /* how many keys are registered */
    struct sel_event *ready;    /* the batch sel_select returned */
    int ready_cap;              /* room for one entry per key, from each sel_select on */
    int nready;                 /* > 0 while a batch is out */
    struct entry *retired;      /* unregistered during a batch: freed at the next wait */
};

/* ---------------------------------------------------------------- common part */

/* errno = err, and the -1 of a failed call. */
static int fail(int err)
{
    errno = err;
    return -1;
}

/* arr (cap items of size bytes) with room for at least need, by doubling; the new
 * items are zeroed and *cap updated. NULL with ENOMEM (realloc sets it) if not, and
 * arr is untouched. */
static void *grow(void *arr, int *cap, int need, size_t size)
{
    if (need <= *cap)
        return arr;
    int n = *cap > 0 ? *cap : 16;
    while (n < need)
        n = n > INT_MAX / 2 ? need : 2 * n;
    char *p = realloc(arr, (size_t)n * size);
    if (p == NULL)
        return NULL;
    memset(p + (size_t)*cap * size, 0, (size_t)(n - *cap) * size);
    *cap = n;
    return p;
}

static struct sel_key *lookup(const struct selector *s, int fd)
{
    return fd >= 0 && fd < s->nslots ? s->keys[fd] : NULL;
}

/* fd must be a descriptor, and registered (known 1) or not (known 0): 0, or -1 with
 * EBADF, ENOENT or EEXIST. */
static int check_fd(const struct selector *s, int fd, int known)
{
    if (fd < 0)
        return fail(EBADF);
    if ((lookup(s, fd) != NULL) != known)
        return fail(known ? ENOENT : EEXIST);
    return 0;
}

static int check_events(int events)
{
    return events == 0 || (events & ~ALL_EVENTS) != 0 ? fail(EINVAL) : 0;
}

/* For a backend's wait: fd is ready for mask (errors and hang-ups already turned into
 * ALL_EVENTS). Cut mask to what the key asked for, and append it to the batch of n;
 * there is room, as a backend reports a descriptor once and the batch has a slot per
 * key. A descriptor we do not know (a stale epoll registration) is dropped. */
static int report(struct selector *s, int n, int fd, int mask)
{
    struct sel_key *key = lookup(s, fd);
    if (key == NULL || (mask &= key->events) == 0)
        return n;
    s->ready[n].key = key;
    s->ready[n].mask = mask;
    return n + 1;
}

/* A callback of the current batch changed key to events (0: unregistered it): the
 * batch's entry for it must not report more than that. */
static void trim_batch(struct selector *s, const struct sel_key *key, int events)
{
    for (int i = 0; i < s->nready; i++)
        if (s->ready[i].key == key)
            s->ready[i].mask &= events;
}

/* Free an unregistered key, unless a batch is out: then entries still to be dispatched
 * point to it (their mask is now 0, but a loop may read key->data before it tests the
 * mask), so it waits on the retired list until the next sel_select or sel_close. Its
 * fd -1 makes a loop that forgets to skip mask 0 fail with EBADF, not touch a reused fd. */
static void retire(struct selector *s, struct sel_key *key)
{
    struct entry *e = (struct entry *)key;
    trim_batch(s, key, 0);
    if (s->nready == 0) {
        free(e);
        return;
    }
    key->fd = -1;
    e->next_retired = s->retired;
    s->retired = e;
}

/* The batch is over: free what callbacks retired during it. */
static void end_batch(struct selector *s)
{
    while (s->retired != NULL) {
        struct entry *e = s->retired;
        s->retired = e->next_retired;
        free(e);
    }
    s->nready = 0;
}

/* What is left of timeout_ms since start, rounded up so we never wake early; 0 if none. */
static int ms_left(const struct timespec *start, int timeout_ms)
{
    struct timespec t;
    if (clock_gettime(CLOCK_MONOTONIC, &t) == -1)
        return -1;
    long long ns = timeout_ms * 1000000LL - (t.tv_sec - start->tv_sec) * 1000000000LL
                   - (t.tv_nsec - start->tv_nsec);
    return ns <= 0 ? 0 : (int)((ns + 999999) / 1000000);
}

int sel_select(struct selector *s, int timeout_ms, struct sel_event **events)
{
    struct timespec start = { 0 };
    struct sel_event *ready;
    int n, left = timeout_ms;

    end_batch(s);
    /* Room for one event per key, made here, between batches: a callback may register
     * many descriptors during a batch, and the array the caller walks must not move. */
    if ((ready = grow(s->ready, &s->ready_cap, s->count, sizeof *ready)) == NULL)
        return -1;
    s->ready = ready;
    if (timeout_ms > 0 && clock_gettime(CLOCK_MONOTONIC, &start) == -1)
        return -1;
    /* A signal is not an error (PEP 475): wait again for what is left. When nothing is
     * left, one more look with 0 returns what is ready rather than claim a timeout. */
    while ((n = s->be->wait(s, left)) == -1 && errno == EINTR)
        if (timeout_ms > 0 && (left = ms_left(&start, timeout_ms)) == -1)
            return -1;
    if (n == -1)
        return -1;
    s->nready = n;
    *events = s->ready;
    return n;
}

struct sel_key *sel_register(struct selector *s, int fd, int events, void *data)
{
    struct sel_key **keys;
    struct entry *e;

    if (check_events(events) == -1 || check_fd(s, fd, 0) == -1)
        return NULL;
    /* Room first, so nothing can fail once the backend has the descriptor. Each key
     * has its own allocation: growing the table moves pointers, never keys. */
    if ((keys = grow(s->keys, &s->nslots, fd + 1, sizeof *keys)) == NULL)
        return NULL;
    s->keys = keys;
    /* Not the events array: a batch may be out, and moving it would leave the caller's
     * loop reading freed memory. sel_select() makes room, between batches. */
    if ((e = calloc(1, sizeof *e)) == NULL)
        return NULL;
    if (s->be->add(s, fd, events) == -1) {
        free(e);                /* free() keeps errno (POSIX.1-2024, glibc 2.33) */
        return NULL;
    }
    e->key.fd = fd;
    e->key.events = events;
    e->key.data = data;
    s->keys[fd] = &e->key;
    s->count++;
    return &e->key;
}

struct sel_key *sel_modify(struct selector *s, int fd, int events, void *data)
{
    if (check_events(events) == -1 || check_fd(s, fd, 1) == -1)
        return NULL;
    struct sel_key *key = s->keys[fd];
    if (events != key->events) {
        if (s->be->modify(s, fd, events) == -1)
            return NULL;
        key->events = events;
        trim_batch(s, key, events);
    }
    key->data = data;
    return key;
}

int sel_unregister(struct selector *s, int fd)
{
    if (check_fd(s, fd, 1) == -1)
        return -1;
    struct sel_key *key = s->keys[fd];
    s->be->remove(s, fd);
    s->keys[fd] = NULL;
    s->count--;
    retire(s, key);
    return 0;
}

struct sel_key *sel_get_key(struct selector *s, int fd)
{
    return check_fd(s, fd, 1) == -1 ? NULL : s->keys[fd];
}

const char *sel_backend(const struct selector *s)
{
    return s->be->name;
}

/* ---------------------------------------------------------------- select backend */

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
        return fail(ERANGE);
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
            n = report(s, n, fd, mask);
    }
    return n;
}

/* ---------------------------------------------------------------- poll backend */

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
    struct pollfd *fds = grow(st->fds, &st->cap, s->count + 1, sizeof *fds);
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
            n = report(s, n, st->fds[i].fd, mask);
    }
    return n;
}

/* ---------------------------------------------------------------- epoll backend */

struct epoll_state {
    int epfd;
    struct epoll_event *evs;    /* epoll_wait()'s answer: one slot per key */
    int cap;
};

static int epoll_open(struct selector *s)
{
    struct epoll_state *st = calloc(1, sizeof *st);
    if (st == NULL || (st->evs = grow(NULL, &st->cap, 1, sizeof *st->evs)) == NULL
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

/* Level-triggered, like select and poll; data.fd brings the descriptor back. */
static int epoll_ctl_events(struct epoll_state *st, int op, int fd, int events)
{
    struct epoll_event ev = { .events = (events & SEL_READ ? EPOLLIN : 0u)
                                        | (events & SEL_WRITE ? EPOLLOUT : 0u) };
    ev.data.fd = fd;
    return epoll_ctl(st->epfd, op, fd, &ev);
}

static int epoll_add(struct selector *s, int fd, int events)
{
    struct epoll_state *st = s->state;
    struct epoll_event *evs = grow(st->evs, &st->cap, s->count + 1, sizeof *evs);
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
        n = report(s, n, st->evs[i].data.fd, mask);
    }
    return n;
}

/* ---------------------------------------------------------------- choosing one */

static const struct backend backends[] = {
    { "select", select_open, select_close, select_add, select_modify, select_remove, select_wait },
    { "poll", poll_open, poll_close, poll_add, poll_modify, poll_remove, poll_wait },
    { "epoll", epoll_open, epoll_close, epoll_add, epoll_modify, epoll_remove, epoll_wait_ready },
};

static struct selector *open_backend(const struct backend *be)
{
    struct selector *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->be = be;
    /* Room for a batch from the start: epoll_wait() wants at least one slot. */
    if ((s->ready = grow(NULL, &s->ready_cap, 1, sizeof *s->ready)) == NULL
        || be->open(s) == -1) {
        free(s->ready);
        free(s);
        return NULL;
    }
    return s;
}

static const struct backend *by_name(const char *name)
{
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
        if (strcmp(backends[i].name, name) == 0)
            return &backends[i];
    errno = EINVAL;
    return NULL;
}

struct selector *sel_open(const char *backend)
{
    const struct backend *be;
    struct selector *s;

    /* SELECTOR= (set, but empty) counts as unset. */
    if (backend == NULL && (backend = getenv("SELECTOR")) != NULL && backend[0] == '\0')
        backend = NULL;
    if (backend != NULL)
        return (be = by_name(backend)) == NULL ? NULL : open_backend(be);
    /* DefaultSelector's choice: epoll if the kernel has it, else poll. select would
     * come next, but poll() is in every Linux: it fails only where select would. */
    if ((s = open_backend(by_name("epoll"))) != NULL || errno != ENOSYS)
        return s;
    return open_backend(by_name("poll"));
}

void sel_close(struct selector *s)
{
    if (s == NULL)
        return;
    end_batch(s);
    for (int fd = 0; fd < s->nslots; fd++)
        free((struct entry *)s->keys[fd]);      /* free(NULL) does nothing */
    s->be->close(s);
    free(s->keys);
    free(s->ready);
    free(s);
}
