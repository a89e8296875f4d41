/*
 * 07-selectors/selectors.c: the selector library's common part: keys, batches, choice.
 *
 * Teaches: Redis' ae shape (notes 001 and 003): this file keeps the keys and the
 * events array and implements the public API; each backend (sel-select.c, sel-poll.c,
 * sel-epoll.c, sel-sigio.c) keeps its own state behind one small contract, struct
 * backend in backend.h, and only reports "fd is readable/writable". All four are
 * compiled in; sel_open() picks one by name, by SELECTOR, or by what works.
 *
 * Build:  cc -std=c11 -o selectors-test selectors-test.c selectors.c sel-*.c
 *         ./selectors-test          (every check, on every backend)
 *
 * Look at: sel_unregister() and retire(): a callback may unregister any descriptor,
 * even one later in the batch being dispatched; and sel_select()'s EINTR loop.
 * Pitfall: freeing an unregistered key at once, mid-batch: the entries still to be
 * dispatched would point to freed memory (retire() keeps it until the next wait).
 */
#define _POSIX_C_SOURCE 200809L
#include "backend.h"
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A key and the link that keeps it on the retired list (see retire()). */
struct entry {
    struct sel_key key;         /* first: a struct sel_key * is a struct entry * */
    struct entry *next_retired;
};

/* ---------------------------------------------------------------- for the backends */

int sel_fail(int err)
{
    errno = err;
    return -1;
}

/* realloc sets ENOMEM when it fails. */
void *sel_grow(void *arr, int *cap, int need, size_t size)
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

struct sel_key *sel_lookup(const struct selector *s, int fd)
{
    return fd >= 0 && fd < s->nslots ? s->keys[fd] : NULL;
}

/* ---------------------------------------------------------------- the public API */

/* fd must be a descriptor, and registered (known 1) or not (known 0): 0, or -1 with
 * EBADF, ENOENT or EEXIST. */
static int check_fd(const struct selector *s, int fd, int known)
{
    if (fd < 0)
        return sel_fail(EBADF);
    if ((sel_lookup(s, fd) != NULL) != known)
        return sel_fail(known ? ENOENT : EEXIST);
    return 0;
}

/* extra: SEL_EXCLUSIVE too (sel_register's); it is no event, and needs one. */
static int check_events(int events, int extra)
{
    return (events & ALL_EVENTS) == 0 || (events & ~(ALL_EVENTS | extra)) != 0 ? sel_fail(EINVAL) : 0;
}

/* There is room: a backend reports a descriptor once, and the batch has a slot per
 * key. A descriptor we do not know (a stale epoll registration, a queued signal for a
 * descriptor since unregistered) is dropped. */
int sel_report(struct selector *s, int n, int fd, int mask)
{
    struct sel_key *key = sel_lookup(s, fd);
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
    if ((ready = sel_grow(s->ready, &s->ready_cap, s->count, sizeof *ready)) == NULL)
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

    if (check_events(events, SEL_EXCLUSIVE) == -1 || check_fd(s, fd, 0) == -1)
        return NULL;
    /* Only epoll can wake one waiter of several: the others would wake them all. */
    if ((events & SEL_EXCLUSIVE) && s->be != &backend_epoll) {
        errno = EOPNOTSUPP;
        return NULL;
    }
    /* Room first, so nothing can fail once the backend has the descriptor. Each key
     * has its own allocation: growing the table moves pointers, never keys. */
    if ((keys = sel_grow(s->keys, &s->nslots, fd + 1, sizeof *keys)) == NULL)
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
    e->key.events = events & ALL_EVENTS;   /* what it waits for: SEL_EXCLUSIVE is how */
    e->key.data = data;
    s->keys[fd] = &e->key;
    s->count++;
    return &e->key;
}

struct sel_key *sel_modify(struct selector *s, int fd, int events, void *data)
{
    if (check_events(events, 0) == -1 || check_fd(s, fd, 1) == -1)
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

/* ---------------------------------------------------------------- choosing one */

/* sigio is last, and never the default: see sel-sigio.c for why nobody picks it. */
static const struct backend *const backends[] = {
    &backend_select, &backend_poll, &backend_epoll, &backend_sigio,
};

static struct selector *open_backend(const struct backend *be)
{
    struct selector *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->be = be;
    /* Room for a batch from the start: epoll_wait() wants at least one slot. */
    if ((s->ready = sel_grow(NULL, &s->ready_cap, 1, sizeof *s->ready)) == NULL
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
        if (strcmp(backends[i]->name, name) == 0)
            return backends[i];
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
    s->be->close(s);            /* first: sigio's walks the keys, to disarm each */
    for (int fd = 0; fd < s->nslots; fd++)
        free((struct entry *)s->keys[fd]);      /* free(NULL) does nothing */
    free(s->keys);
    free(s->ready);
    free(s);
}
