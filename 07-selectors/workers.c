/*
 * 07-selectors/workers.c: -w N, worker processes over one listening socket (pre-fork).
 *
 * Teaches: a pre-fork server's parent (notes 001: multi-process plus selectors). The
 * workers are forked after listen(), so all share the listening socket, and each runs
 * its own selector. A new connection makes the socket readable in every worker's
 * selector: all wake, one accept() wins, the others get EAGAIN and go back to sleep
 * (the thundering herd; harmless here, since the socket is non-blocking). The parent
 * waits for SIGINT or SIGTERM, and for SIGCHLD: a worker that dies is replaced, or the
 * listening socket would go on completing handshakes that nobody serves.
 *
 * Build:  cc -std=c11 -o server server.c net.c workers.c selectors.c sel-*.c
 *
 * Look at: run_workers(): the parent sleeps in sigsuspend(), with SIGCHLD, SIGINT and
 * SIGTERM blocked everywhere else, so that none is lost whatever its timing.
 * Pitfall: tallies sent at a worker's end would be lost with a worker killed outright;
 * they live in shared memory (mmap MAP_SHARED) that each worker updates as it goes.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE         /* MAP_ANONYMOUS: in POSIX only since 2024 */
#include "net.h"
#include "workers.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>          /* PR_SET_PDEATHSIG: Linux's */
#include <sys/wait.h>
#include <unistd.h>

/* What a worker has done, in memory shared with its parent: a worker killed outright
 * still leaves behind what it last wrote here. */
struct tally {
    unsigned long served;       /* connections accepted */
    unsigned long long echoed;  /* bytes sent back */
};

static long nworkers;
static pid_t workers[MAX_WORKERS];      /* each worker's pid; 0: none */
static struct tally *board;             /* one slot per worker, in memory shared with them */
static struct tally total;              /* what the workers that ended did */
static struct tally *mine;              /* in a worker: its own slot; NULL in the parent */

static void on_child(int sig)
{
    (void)sig;          /* it only ends sigsuspend(); waitpid() finds who ended */
}

/* A worker has ended and been reaped: add its tally to the total. One killed
 * outright counts what it had published: all but the turn it died in. */
static void collect(long i)
{
    total.served += board[i].served;
    total.echoed += board[i].echoed;
    board[i] = (struct tally){ 0, 0 };
    workers[i] = 0;
}

/* Stop every worker and wait for each: at SIGINT, and before the parent gives up. */
static void stop_workers(void)
{
    for (long i = 0; i < nworkers; i++)
        if (workers[i] > 0 && kill(workers[i], SIGTERM) == -1)
            perror("kill");
    for (long i = 0; i < nworkers; i++) {
        if (workers[i] <= 0)
            continue;
        while (waitpid(workers[i], NULL, 0) == -1) {
            if (errno != EINTR) {   /* EINTR: a signal, wait again */
                perror("waitpid");
                break;
            }
        }
        collect(i);
    }
}

/* The parent cannot go on: stop the workers first, so that none is left behind
 * holding the port, then exit 1. */
static void give_up(const char *what)
{
    perror(what);
    stop_workers();
    exit(1);
}

/* Start worker i (worker i + 1 in the log), in its slot. Returns 1 in the new
 * worker, with the signal mask of before run_workers() back, and 0 in the parent. */
static int start_worker(long i, const sigset_t *mask)
{
    pid_t parent = getpid();    /* now: in the worker, getppid() may already be another */
    pid_t pid = fork();
    if (pid == -1)
        give_up("fork");        /* EAGAIN: out of processes; stop those started */
    if (pid > 0) {
        workers[i] = pid;
        return 0;
    }
    /* A parent killed outright (SIGKILL) stops no one: its workers would go on
     * serving and holding the port, and a new server could not bind it. Linux can
     * send us a signal when the parent dies: SIGTERM, which stops a worker as the
     * parent's own stop_workers() does. (It is blocked until the mask is restored
     * below, so it waits, pending, for the handler that sets stop.) */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) == -1)
        die("prctl");
    /* The parent may have died before that call, and then no signal comes: we have
     * been handed to init (or a subreaper) already, so getppid() is another pid. */
    if (getppid() != parent)
        _exit(0);               /* not exit(): the parent's stdio buffers are not ours to flush */
    if (sigprocmask(SIG_SETMASK, mask, NULL) == -1)
        die("sigprocmask");
    mine = &board[i];
    return 1;
}

/* SIGCHLD: reap every worker that ended. One that exited with an error has said
 * why on stderr, and a new one would fail the same way: give up. Any other is
 * replaced, with a warning that -q does not hide. Returns 0 in the parent; in a
 * replacement, its number, for run_workers() to return. */
static long reap_workers(const sigset_t *mask)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        long i = 0;
        while (i < nworkers && workers[i] != pid)
            i++;
        if (i == nworkers)
            continue;           /* not a worker: we fork nothing else */
        collect(i);
        char how[64];
        if (WIFSIGNALED(status))
            snprintf(how, sizeof how, "killed by signal %d", WTERMSIG(status));
        else
            snprintf(how, sizeof how, "exited with status %d", WEXITSTATUS(status));
        if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
            fprintf(stderr, "worker %ld (pid %ld) %s: stopping\n", i + 1, (long)pid, how);
            stop_workers();
            exit(1);
        }
        if (start_worker(i, mask))
            return i + 1;
        printf("worker %ld (pid %ld) %s: replaced by pid %ld\n", i + 1, (long)pid, how, (long)workers[i]);
    }
    if (pid == -1 && errno != ECHILD)
        give_up("waitpid");
    return 0;
}

void workers_publish(unsigned long served, unsigned long long echoed)
{
    if (mine != NULL) {
        mine->served = served;
        mine->echoed = echoed;
    }
}

long run_workers(long n, const volatile sig_atomic_t *stop)
{
    sigset_t blocked, old;
    struct sigaction sa = { .sa_handler = on_child, .sa_flags = SA_NOCLDSTOP };
    long me = 0;                /* in a worker, its number */
    nworkers = n;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGCHLD, &sa, NULL) == -1)
        die("sigaction");
    /* SIGCHLD, SIGINT and SIGTERM stay blocked except inside sigsuspend(), which
     * unblocks them atomically: one that comes while we fork or reap stays pending
     * and ends the next sigsuspend() at once. None is lost, whatever its timing. */
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGCHLD);
    sigaddset(&blocked, SIGINT);
    sigaddset(&blocked, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &blocked, &old) == -1)
        die("sigprocmask");
    /* The tallies live in memory shared with the workers: one killed outright still
     * leaves its counts behind, where a report at its end would be lost with it. */
    board = mmap(NULL, MAX_WORKERS * sizeof *board, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (board == MAP_FAILED)
        die("mmap");
    for (long i = 0; i < nworkers; i++)
        if (start_worker(i, &old))
            return i + 1;
    while (!*stop) {
        sigsuspend(&old);       /* returns -1 (EINTR) once a handler has run */
        if (!*stop && (me = reap_workers(&old)) > 0)
            return me;
    }
    stop_workers();
    printf("shutdown: served %lu connections, echoed %llu bytes\n", total.served, total.echoed);
    exit(0);
}
