/*
 * 08-coroutines/hub.h: between the scheduler (co.c) and a hub, the part of the
 * runtime that waits for the kernel. Two hubs implement it, one per IO model:
 *   hub-epoll.c   readiness (model 3): try the call, park on EAGAIN, wake when
 *                 epoll says the descriptor is ready, try again (gevent, libev);
 *   hub-uring.c   completion (model 5): hand the whole call to an io_uring,
 *                 park, wake when the kernel has done it (IOCP, io_uring).
 * A program links co.c with one of them (the Makefile's HUB=epoll|uring). Each
 * hub defines co.h's IO calls (co_accept... co_close, co_sigaction) itself.
 * Internal: programs include co.h only.
 */
#ifndef HUB_H
#define HUB_H

#include "co.h"

/* ---- what co.c gives a hub ---- */

/* The first call that needs the hub makes it (and calls hub_init()). */
int sched_start(void);

/* Park the running coroutine until sched_wake(): the hub runs others meanwhile.
 * -1 with errno if the wake said so (EINTR, EBADF, EDEADLK). interruptible: a
 * signal may end the main coroutine's wait (sched_interrupt()). */
int sched_park(int interruptible);
void sched_wake(struct co *c, int error);

/* A handler ran: end the main coroutine's interruptible wait with EINTR. */
void sched_interrupt(void);

/* The program's main() as a coroutine. */
struct co *sched_main(void);

/* A call succeeded without waiting: after a few in a row, let the others run
 * (spend); a call that waited starts a fresh budget (refill). */
void sched_spend(void);
void sched_refill(void);

/* ---- what a hub gives co.c ---- */

/* Once, at sched_start(): the kernel object the hub waits on. -1 with errno. */
int hub_init(void);

/* How many coroutines wait for the kernel in this hub: 0 with nothing ready and
 * nobody asleep means nothing could ever wake anyone (EDEADLK). */
int hub_waiting(void);

/* One hub round's wait: up to timeout_ms (-1: until something happens, 0: just
 * look), then wake every coroutine whose wait the kernel ended. 0, or -1 with
 * errno when the hub itself is broken. A signal is not an error here. */
int hub_wait(int timeout_ms);

#endif
