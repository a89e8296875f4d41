/*
 * 07-selectors/workers.h: -w N, worker processes over one listening socket (pre-fork).
 *
 * Teaches: the notes' 001 multi-process dilemma, solved the pre-fork way: fork after
 * listen(), so every worker shares the listening socket and runs its own selector;
 * the parent only sleeps, replaces a worker that dies, and at SIGINT or SIGTERM
 * stops them all and prints what they did, added up. Kept apart from server.c, so
 * that the server reads as 06's plus the selector library.
 *
 * Build:  cc -std=c11 -o server server.c net.c workers.c selectors.c sel-*.c
 */
#ifndef WORKERS_H
#define WORKERS_H

#include <signal.h>

#define MAX_WORKERS 64

/* Fork n workers (1..MAX_WORKERS), pre-fork style: in each worker the call returns
 * that worker's number, 1 to n, with the signal mask of before the call, and the
 * worker goes on to serve; it publishes its counts as it goes. The parent never
 * returns: it waits, replaces a worker that dies (logged on stdout; the replacement
 * returns from this call too), and once *stop is set (the caller's SIGINT and SIGTERM
 * handler sets it) stops them all, prints the shutdown line with the sum of their
 * tallies, and exits 0. A worker that exits with an error status, or a failed fork,
 * stops them all and exits 1. A parent killed outright (SIGKILL) gets no say: the
 * kernel then sends each worker SIGTERM (PR_SET_PDEATHSIG), so the workers stop as
 * they would at SIGINT, and none is left holding the port. SA_RESTART or not, the
 * caller's handlers end the parent's wait (sigsuspend() always returns when one has
 * run); SIGCHLD's handler is run_workers' own, and SIGTERM's, in a worker, must stop
 * it. */
long run_workers(long n, const volatile sig_atomic_t *stop);

/* In a worker: its counts so far, written to its slot of the parent's board. Call it
 * before each wait, so that a worker asleep has published all it did and a SIGKILL
 * loses at most the turn it cuts, and at the end. Outside a worker it does nothing. */
void workers_publish(unsigned long served, unsigned long long echoed);

#endif
