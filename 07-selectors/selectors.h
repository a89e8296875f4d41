/*
 * 07-selectors/selectors.h: Python's selectors module in C, over select, poll, epoll or signals.
 *
 * Teaches: one API over four readiness mechanisms (notes 000 §15, 001, 003). A key
 * ties a descriptor to the events it waits for and to a pointer of yours (Python's
 * SelectorKey.data: a callback, a connection); sel_select() returns the ready keys,
 * each with what is ready. The backend is chosen at run time, so one program, and one
 * test suite, runs on all four: SELECTOR=select|poll|epoll|sigio. sigio is the notes'
 * IO model 4, signal-driven IO (sel-sigio.c): there for the lesson, never the default.
 *
 * Build:  cc -std=c11 -o prog prog.c selectors.c sel-*.c
 *
 * Look at: the dispatch loop below, and why it skips an event whose mask is 0.
 * Pitfall: unregister before close, as Python requires. A descriptor closed while
 * still registered leaves a stale registration: select() fails with EBADF, poll()
 * reports POLLNVAL (seen here as ready), and epoll drops it silently in the kernel,
 * or, if a dup of it is still open, goes on reporting it under the old number.
 *
 * A dispatch loop, as Python's `for key, mask in sel.select()`:
 *
 *     struct sel_event *ev;
 *     int n = sel_select(s, -1, &ev);
 *     for (int i = 0; i < n; i++) {
 *         if (ev[i].mask == 0)
 *             continue;       // skip: an earlier callback unregistered its key
 *         struct handler *h = ev[i].key->data;
 *         h->callback(s, ev[i].key, ev[i].mask);
 *     }
 *
 * Errors: every call that fails returns NULL or -1 and sets errno; nothing is printed
 * and nothing exits. One errno per case:
 *
 *     EEXIST  sel_register of a descriptor already registered   (Python: KeyError)
 *     ENOENT  sel_modify, sel_unregister or sel_get_key of a
 *             descriptor that is not registered                  (Python: KeyError)
 *     EINVAL  events 0, or with bits other than SEL_READ|SEL_WRITE (Python: ValueError),
 *             SEL_EXCLUSIVE aside in sel_register;
 *             sel_open of an unknown backend name, or SELECTOR set to one
 *     EBADF   a negative descriptor                              (Python: ValueError)
 *     ERANGE  select backend only: a descriptor >= FD_SETSIZE, refused before it
 *             touches an fd_set           (Python: ValueError "filedescriptor out of
 *                                          range in select()")
 *     EBUSY   sigio backend only: sel_open while another sigio selector is open in
 *             this process (the overflow signal, SIGIO, cannot say whose queue it was)
 *     EOPNOTSUPP  SEL_EXCLUSIVE on a backend other than epoll
 *     ENOMEM  out of memory
 *     other   a failed backend call keeps that call's errno (epoll_ctl's, poll's...);
 *             a failed sel_register leaves nothing registered, a failed sel_modify
 *             leaves the key as it was.
 */
#ifndef SELECTORS_H
#define SELECTORS_H

/* What a key waits for, and what a ready key reports: Python's EVENT_READ, EVENT_WRITE.
 * SEL_EXCLUSIVE, for sel_register only, and with an event: of several processes
 * whose selectors watch the same file (a listening socket shared by workers), one
 * is woken when it is ready, not all (EPOLLEXCLUSIVE, Linux 4.5: "one or more").
 * epoll backend only (EOPNOTSUPP elsewhere); the key's events do not keep it, and
 * epoll refuses to modify such a key (EINVAL): unregister, register again. */
enum { SEL_READ = 1, SEL_WRITE = 2, SEL_EXCLUSIVE = 4 };

/* One registration, Python's SelectorKey without fileobj. The selector owns it: the
 * pointer sel_register returns stays valid (and keeps its address) until the
 * descriptor is unregistered. Read it; change it only through sel_modify. */
struct sel_key {
    int fd;
    int events;     /* SEL_READ, SEL_WRITE or both */
    void *data;     /* yours: the selector only hands it back */
};

/* One ready key and what is ready. mask is never more than key->events: an error or
 * hang-up is reported as the events the key registered, so your read or write finds
 * it. mask 0 means "skip me": an earlier callback of this batch unregistered the key
 * (its fd is then -1), or modified it and took away what was ready. */
struct sel_event {
    struct sel_key *key;
    int mask;
};

struct selector;    /* opaque */

/* A new selector. backend is "select", "poll", "epoll" or "sigio"; NULL means the SELECTOR
 * environment variable if it is set and not empty (an unknown name there is EINVAL,
 * as it is here), else the best there is, as Python's DefaultSelector picks: epoll,
 * then poll (when epoll_create1 fails with ENOSYS), then select. NULL with errno on
 * failure. sigio, while open, keeps SIGRTMIN and SIGIO blocked in the calling thread
 * (the program must not use them) and sets O_ASYNC on the descriptors registered;
 * use it from the thread that opened it. */
struct selector *sel_open(const char *backend);

/* The backend's name: "select", "poll", "epoll" or "sigio". */
const char *sel_backend(const struct selector *s);

/* Free the selector, its keys and its events array. The descriptors stay open: they
 * are yours. */
void sel_close(struct selector *s);

/* Watch fd for events (SEL_READ, SEL_WRITE or both), with data handed back in its
 * key. Returns the key, or NULL with errno: EBADF, EINVAL, EEXIST, ERANGE (select),
 * ENOMEM, or the backend's. */
struct sel_key *sel_register(struct selector *s, int fd, int events, void *data);

/* Change a registered fd's events and data; returns its key (the same pointer), or
 * NULL with errno: EBADF, EINVAL, ENOENT, or the backend's. The same events only
 * replace data, without a call into the backend (Python does the same). */
struct sel_key *sel_modify(struct selector *s, int fd, int events, void *data);

/* Stop watching fd: 0, or -1 with errno EBADF or ENOENT. Its key is gone; call this
 * before close(fd). Safe from inside a batch, for any descriptor: the key's entries in
 * the current events array get mask 0, and its memory lives until the next sel_select
 * or sel_close, so the array never points to freed memory. */
int sel_unregister(struct selector *s, int fd);

/* fd's key, or NULL with errno EBADF or ENOENT (not registered). */
struct sel_key *sel_get_key(struct selector *s, int fd);

/* Wait until a registered descriptor is ready. timeout_ms: -1 waits for ever, 0 does
 * not wait, more waits at most that long. Sets *events to the ready keys (an array the
 * selector owns, one entry per ready key, valid until the next sel_select or
 * sel_close) and returns how many there are; 0 on timeout; -1 with errno on error.
 * A signal (EINTR) is never returned: the wait resumes for what is left of the
 * timeout, measured on CLOCK_MONOTONIC. Skip an event whose mask is 0: an earlier
 * callback unregistered its key. */
int sel_select(struct selector *s, int timeout_ms, struct sel_event **events);

#endif
