/*
 * 08-coroutines/co.h: a small coroutine runtime, with a choice of two hubs.
 *
 * Coroutines are concurrency inside one thread (notes 003): each has a stack of
 * its own, and switching between them is a function call that swaps stacks, no
 * kernel involved. Three ways to switch, from the notes' three libraries:
 *   - co_switch()            greenlet: run that coroutine now, hand it a value;
 *   - co_yield()             a generator's yield: let the others run, then go on;
 *   - co_recv(), co_sleep_ms() and the rest
 *                            gevent: when the call would block, park here and let
 *                            the hub run someone else until the descriptor is
 *                            ready (or the time has come).
 * The hub is a coroutine of its own (gevent's): it runs every ready coroutine,
 * then waits for the kernel with the nearest sleeper's deadline as timeout.
 * Two hubs, one contract (the Makefile's HUB picks one):
 *   - hub-epoll.c (the default), readiness: an IO call tries the system call and
 *     on EAGAIN parks until epoll_wait() says the descriptor is ready;
 *   - hub-uring.c (HUB=uring), completion: an IO call hands the whole operation
 *     to an io_uring and parks until io_uring_enter() brings its completion. Two
 *     forms, picked at run time: the modern one (the default: multishot accept
 *     and recv, a provided buffer ring, DEFER_TASKRUN) and, with URING=first,
 *     one submission per call; URING_OFF=accept,recv,defer,coop,ringfd turns
 *     features off one by one (see hub-uring.c's header).
 * What follows says "epoll" where the readiness hub is meant; the completion
 * hub keeps every promise, the EBADF of co_close() and the EINTR included.
 *
 * Every function returns an error (-1 or NULL with errno set) and never exits,
 * with two exceptions, both of the completion hub, both one line on stderr and
 * exit 1: on a kernel that refuses io_uring, "io_uring unavailable: REASON" at
 * the first call that needs the hub (it cannot run at all, like a program
 * missing a library); and a ring broken for good (io_uring_enter failing with
 * EBADF, say, or EBADR: a completion lost) while calls are parked on it,
 * "io_uring_enter: REASON", since none of them can return before its
 * operation completes (see ring_broken() in hub-uring.c). With no call parked
 * on the ring, the error is returned, as the epoll hub's is.
 * One thread only: the runtime has no locks.
 */
#ifndef CO_H
#define CO_H

#include <signal.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

struct co;                              /* a coroutine; the runtime owns it */
typedef void *co_fn(void *arg);         /* what a coroutine runs; returns its result */

/* gevent.spawn: a coroutine that runs fn(arg) when the hub next gets to it. */
struct co *co_spawn(co_fn *fn, void *arg);

/* greenlet(fn): a coroutine that starts only when something co_switch()es to it;
 * the value of that first switch is fn's argument. When fn returns, its creator
 * resumes (if it is waiting in co_switch) with fn's result as the switch's value. */
struct co *co_create(co_fn *fn);

/* greenlet's switch: run `to` now, passing it value (what its own co_switch
 * returns, or its argument if it has not started). Returns the value passed by
 * whoever switches back here. `to` must be new or waiting in co_switch (EINVAL). */
void *co_switch(struct co *to, void *value);

/* Let every other ready coroutine run (and the hub look at IO), then go on. */
void co_yield(void);

/* Wait until c has finished, take its result (if result is not NULL) and free it.
 * Each coroutine is joined once, or detached. EDEADLK: nothing could ever wake us. */
int co_join(struct co *c, void **result);

/* Join them all: the wait is the longest of them, not the sum. results may be NULL. */
int co_joinall(struct co **cs, size_t n, void **results);

/* Nobody will join c: free it when it finishes. */
int co_detach(struct co *c);

/* The coroutine that is running (the program's main() is one too). */
struct co *co_self(void);

/* gevent.sleep: park for ms milliseconds on the monotonic clock, others run.
 * -1 with EINTR if a signal interrupted the main coroutine's sleep. */
int co_sleep_ms(long ms);

/* The blocking calls, coroutine style: they look blocking to the caller, but
 * on EAGAIN they park the coroutine until epoll says the descriptor is ready.
 * Otherwise they behave as the libc calls do: co_send() may send less than
 * asked (loop, as send_all() does), co_recv() returns what is there. Their
 * flags are libc's, on both hubs: MSG_DONTWAIT returns -1 with EAGAIN instead
 * of parking; co_recv's MSG_WAITALL (a stream socket) waits for all len bytes,
 * MSG_PEEK leaves them queued, MSG_OOB reads the urgent byte; a co_send() to a
 * stream whose peer has gone raises SIGPIPE, unless MSG_NOSIGNAL (it kills the
 * program at SIGPIPE's default: ignore it, as the lab's servers do). Where
 * they differ from libc: a descriptor's own O_NONBLOCK does not stop a wait
 * (the epoll hub sets it on every descriptor, the completion hub waits
 * anyway): pass MSG_DONTWAIT. MSG_PEEK | MSG_WAITALL peeks once, what is
 * there, as an AF_UNIX stream's recv() does (TCP's would wait for len bytes).
 * A signal interrupts the main coroutine's call alone (co_sigaction below).
 * The runtime makes each descriptor non-blocking and registers it with epoll
 * the first time it sees it, once for its life; close it with co_close(),
 * which takes it out of epoll (close() does so only if no dup() or forked copy
 * keeps the file open: epoll(7)). (One closed with plain close() is taken for
 * new when its number comes back, except within the hub round in which epoll
 * last spoke of it: see recheck() in hub-epoll.c. The completion hub's first
 * form registers nothing; its modern form keeps a multishot recv or accept per
 * socket, and takes a number for new when accept returns it or connect is
 * given it: see forget() in hub-uring.c.) */
int co_accept(int fd, struct sockaddr *addr, socklen_t *len);
int co_connect(int fd, const struct sockaddr *addr, socklen_t len);
ssize_t co_recv(int fd, void *buf, size_t len, int flags);
ssize_t co_send(int fd, const void *buf, size_t len, int flags);
int co_close(int fd);

/* Several processes accepting on one listening socket (server -w, ACCEPT=exclusive):
 * a new client wakes one of them, not all. The readiness hub registers fd with
 * EPOLLEXCLUSIVE (Linux 4.5: "one or more" waiters woken), edge-triggered, for
 * reading only; the completion hub has nothing to do, since io_uring's accept
 * waits that way already (its poll is armed exclusive: io_uring/opdef.c's
 * poll_exclusive), on a listening socket left blocking. Call it before the first
 * co_accept() on fd. 0, or -1 with errno (EINVAL: a file epoll cannot watch). */
int co_exclusive(int fd);

/* How many times a co_accept() that had parked woke to find no connection (EAGAIN:
 * another process took the one it woke for, the thundering herd), since the last
 * call. The completion hub counts those of a non-blocking listening socket, which
 * it waits for with a plain poll; a blocking one's the kernel retries unseen. */
unsigned long co_accept_misses(void);

/* sigaction, with one thing more: when the handler has run, the hub wakes the
 * main coroutine's parked IO call or sleep with EINTR (unless SA_RESTART), as
 * the kernel interrupts a blocked call in the main thread. Without this, a
 * signal arriving while another coroutine runs would set the program's flag,
 * and the main coroutine, parked in co_accept(), would never look at it. */
struct sigaction;        /* declared by <signal.h> only with POSIX asked for */
int co_sigaction(int sig, const struct sigaction *sa, struct sigaction *old);

/* Each coroutine's stack, in bytes, with one inaccessible guard page below it. */
#define CO_STACK_SIZE (256 * 1024)

#endif
