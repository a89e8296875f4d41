/*
 * 07-selectors/backend.h: what selectors.c and each backend file share (internal).
 *
 * Teaches: Redis' ae layout (ae_select.c, ae_epoll.c...): the common part, selectors.c,
 * keeps the keys, the batch and the public API; each mechanism lives whole in a file
 * of its own behind this small contract, and only says "fd is readable/writable".
 *     sel-select.c   select(): two bitmaps, copied and scanned each call
 *     sel-poll.c     poll(): an array of the registered descriptors, scanned each call
 *     sel-epoll.c    epoll: the interest list kept in the kernel; only the ready come back
 *     sel-sigio.c    signal-driven IO: a queued real-time signal per readiness change
 * Programs include selectors.h only; this header is for the files above.
 */
#ifndef BACKEND_H
#define BACKEND_H

#include "selectors.h"
#include <stddef.h>

#define ALL_EVENTS (SEL_READ | SEL_WRITE)

struct selector;

/* What a backend does; the common part does the rest (checks, keys, EINTR). add, modify
 * and remove are called before the key table changes (s->count is still the old one);
 * remove cannot fail (the key goes whatever happens). wait fills s->ready through
 * sel_report() and returns how many it put there, or -1 with errno: EINTR makes the
 * common part wait again for what is left of the timeout. */
struct backend {
    const char *name;
    int (*open)(struct selector *s);            /* sets s->state; 0 or -1 */
    void (*close)(struct selector *s);
    int (*add)(struct selector *s, int fd, int events);
    int (*modify)(struct selector *s, int fd, int events);
    void (*remove)(struct selector *s, int fd);
    int (*wait)(struct selector *s, int timeout_ms);
};

extern const struct backend backend_select, backend_poll, backend_epoll, backend_sigio;

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

/* errno = err, and the -1 of a failed call. */
int sel_fail(int err);

/* arr (cap items of size bytes) with room for at least need, by doubling; the new
 * items are zeroed and *cap updated. NULL with ENOMEM if not, and arr is untouched. */
void *sel_grow(void *arr, int *cap, int need, size_t size);

/* fd's key, or NULL if it is not registered (or negative). */
struct sel_key *sel_lookup(const struct selector *s, int fd);

/* For a backend's wait: fd is ready for mask (errors and hang-ups already turned into
 * ALL_EVENTS). Appends it to the batch of n, cut to what its key asks for; returns the
 * new n. A descriptor not registered is dropped. Report each descriptor once a wait. */
int sel_report(struct selector *s, int n, int fd, int mask);

#endif
