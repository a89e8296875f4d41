/*
 * 08-coroutines/workers.h: -w N, worker processes over one port (pre-fork), and how they share it.
 *
 * Teaches: the notes' 001 multi-process dilemma, solved the pre-fork way: fork after
 * listen(), every worker runs its own loop (07's selector, 08's hub and coroutines);
 * the parent only sleeps, replaces a worker that dies, and at SIGINT or SIGTERM
 * stops them all and prints what each did, then the sum. How the workers wait for
 * new clients is ACCEPT=shared|exclusive|reuseport, and what each way costs is
 * counted in every worker: connections accepted, accept() EAGAINs (woken for a
 * client another worker took), wake-ups (voluntary context switches). The same
 * file in 07 and 08 (tests/08-coroutines.bats checks it), kept apart from server.c,
 * so that each server reads as its stage's idea.
 *
 * Build:  cc -std=c11 -o server server.c workers.c ... (see server.c)
 */
#ifndef WORKERS_H
#define WORKERS_H

#include <signal.h>

#define MAX_WORKERS 64
#define TAG_MAX 32              /* " (worker N)": what a worker's log lines may end with */

/* Before anything starts, with n the -w count (0: no workers, nothing checked):
 * read ACCEPT, and refuse with one line on stderr and exit 2 what cannot work:
 * an unknown ACCEPT; loop (what the workers wait in: 07's SELECTOR, NULL or ""
 * for the default) "sigio", whose descriptors signal one owner process; and
 * exclusive with a loop that is not "epoll" (EPOLLEXCLUSIVE is epoll's). ACCEPT
 * unset or empty: reuseport (the READMEs say why). */
void workers_check(const char *prog, long n, const char *loop);

/* Fork n workers (1..MAX_WORKERS) sharing *lfd, a listening socket the caller has
 * made. In each worker the call returns that worker's tag, " (worker K)", with the
 * signal mask of before the call, and *lfd the socket it accepts on (with
 * reuseport, one of its own); the worker goes on to serve and publishes its counts
 * as it goes. The parent never returns: it waits, replaces a worker that dies
 * (logged on stdout; the replacement returns from this call too), and once *stop
 * is set (the caller's SIGINT and SIGTERM handler sets it) stops them all, prints
 * a line per worker and the shutdown line with their sum, and exits 0. A worker
 * that exits with an error status, or a failed fork, stops them all and exits 1.
 * A parent killed outright (SIGKILL) gets no say: the kernel then sends each
 * worker SIGTERM (PR_SET_PDEATHSIG), so the workers stop as they would at SIGINT,
 * and none is left holding the port. SA_RESTART or not, the caller's handlers end
 * the parent's wait (sigsuspend() always returns when one has run); SIGCHLD's
 * handler is run_workers' own, and SIGTERM's, in a worker, must stop it. */
const char *run_workers(long n, int *lfd, const volatile sig_atomic_t *stop);

/* 1 in a worker of ACCEPT=exclusive: register the listening socket so that a new
 * client wakes one waiter, not all (EPOLLEXCLUSIVE). 0 otherwise. */
int workers_exclusive(void);

/* In a worker: its counts so far, written to its slot of the parent's board, and 1.
 * Call it before each wait, so that a worker asleep has published all it did and a
 * SIGKILL loses at most the turn it cuts, and at the end. Outside a worker: 0. */
int workers_publish(unsigned long served, unsigned long long echoed);

/* In a worker: n more accept() EAGAINs, each a wake-up for a client that another
 * worker took (the thundering herd). Outside a worker it does nothing. */
void workers_missed(unsigned long n);

#endif
