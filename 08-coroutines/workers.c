/*
 * 08-coroutines/workers.c: -w N, worker processes over one port (pre-fork), and the herd counted.
 *
 * Teaches: a pre-fork server's parent (notes 001: multi-process plus selectors; note
 * 003: processes x coroutines). The workers are forked after listen(), and each runs
 * its own loop. How they wait for new clients is ACCEPT's:
 *   shared     one listening socket, watched plainly by every worker: a new client
 *              wakes them all, one accept() wins, the others get EAGAIN and go back
 *              to sleep (the thundering herd: harmless, the socket is non-blocking,
 *              but every wake-up is a context switch the kernel pays for);
 *   exclusive  the same socket, registered with EPOLLEXCLUSIVE (Linux 4.5): a new
 *              client wakes one waiter ("one or more", says epoll(7)), the one
 *              that slept last (a LIFO queue: one worker may take them all);
 *   reuseport  a listening socket per worker with SO_REUSEPORT (Linux 3.9): the
 *              kernel hashes each new client to one socket, so one worker.
 * The parent waits for SIGINT or SIGTERM, and for SIGCHLD: a worker that dies is
 * replaced, or its socket (or its share of the shared one) would go unserved.
 *
 * Build:  cc -std=c11 -o server server.c workers.c ... (see server.c)
 *
 * Look at: run_workers(): the parent sleeps in sigsuspend(), with SIGCHLD, SIGINT and
 * SIGTERM blocked everywhere else, so that none is lost whatever its timing; and
 * own_socket(), a reuseport worker's socket on the port the parent bound.
 * Pitfall: tallies sent at a worker's end would be lost with a worker killed outright;
 * they live in shared memory (mmap MAP_SHARED) that each worker updates as it goes,
 * and its wake-ups come from the kernel, in wait4()'s rusage, when it is reaped.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE         /* MAP_ANONYMOUS (in POSIX only since 2024), wait4() */
#include "workers.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>          /* PR_SET_PDEATHSIG: Linux's */
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* What a worker has done, in memory shared with its parent: a worker killed outright
 * still leaves behind what it last wrote here. */
struct tally {
    unsigned long served;       /* connections accepted */
    unsigned long missed;       /* accept() EAGAINs: woken for a client another took */
    unsigned long long echoed;  /* bytes sent back */
    long wakeups;               /* voluntary context switches: the kernel's count, from wait4() */
};

enum { SHARED, EXCLUSIVE, REUSEPORT, MODES };
static const char *const modes[MODES] = { "shared", "exclusive", "reuseport" };
static int mode = REUSEPORT;            /* ACCEPT's */

static long nworkers;
static pid_t workers[MAX_WORKERS];      /* each worker's pid; 0: none */
static pid_t last[MAX_WORKERS];         /* the last pid each slot had, for its line */
static struct tally *board;             /* one slot per worker, in memory shared with them */
static struct tally slots[MAX_WORKERS]; /* what the workers that ended in each slot did */
static struct tally *mine;              /* in a worker: its own slot; NULL in the parent */
static char tag[TAG_MAX];               /* in a worker: " (worker K)" */

/* perror(what), exit 1: as net.h's die(), which 08 has not. */
static void fail(const char *what)
{
    perror(what);
    exit(1);
}

void workers_check(const char *prog, long n, const char *loop)
{
    const char *how = getenv("ACCEPT");
    if (n == 0)
        return;
    if (loop != NULL && loop[0] == '\0')
        loop = NULL;
    /* A descriptor signals one owner (F_SETOWN): one worker would hear of every client. */
    if (loop != NULL && strcmp(loop, "sigio") == 0) {
        fprintf(stderr, "%s: -w does not work with SELECTOR=sigio: the listening socket "
                        "signals one owner process, so one worker would hear of every new client\n", prog);
        exit(2);
    }
    if (how != NULL && how[0] != '\0') {
        for (mode = 0; mode < MODES && strcmp(how, modes[mode]) != 0; mode++)
            continue;
        if (mode == MODES) {
            fprintf(stderr, "%s: ACCEPT=%s: not shared, exclusive or reuseport\n", prog, how);
            exit(2);
        }
    }
    if (mode == EXCLUSIVE && loop != NULL && strcmp(loop, "epoll") != 0) {
        fprintf(stderr, "%s: ACCEPT=exclusive needs epoll's EPOLLEXCLUSIVE, not SELECTOR=%s\n", prog, loop);
        exit(2);
    }
}

static void on_child(int sig)
{
    (void)sig;          /* it only ends sigsuspend(); wait4() finds who ended */
}

/* Worker i has ended and been reaped: add its tally, and the wake-ups the kernel
 * counted for it (ru_nvcsw: each time it slept and was woken), to its slot. One
 * killed outright counts what it had published: all but the turn it died in. A
 * replaced worker's line is its slot's: every process that was worker i + 1,
 * under the pid of the last. */
static void collect(long i, const struct rusage *ru)
{
    slots[i].served += board[i].served;
    slots[i].missed += board[i].missed;
    slots[i].echoed += board[i].echoed;
    slots[i].wakeups += ru->ru_nvcsw;
    board[i] = (struct tally){ 0, 0, 0, 0 };
    workers[i] = 0;
}

/* Stop every worker and wait for each: at SIGINT, and before the parent gives up. */
static void stop_workers(void)
{
    struct rusage ru;
    for (long i = 0; i < nworkers; i++)
        if (workers[i] > 0 && kill(workers[i], SIGTERM) == -1)
            perror("kill");
    for (long i = 0; i < nworkers; i++) {
        if (workers[i] <= 0)
            continue;
        memset(&ru, 0, sizeof ru);
        while (wait4(workers[i], NULL, 0, &ru) == -1) {
            if (errno != EINTR) {   /* EINTR: a signal, wait again */
                perror("wait4");
                break;
            }
        }
        collect(i, &ru);
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

/* reuseport: a listening socket of the worker's own, bound where lfd is, with
 * SO_REUSEPORT, which lfd has too: the kernel then spreads new clients over the
 * group by a hash of their addresses. It takes lfd's place, and lfd's O_NONBLOCK
 * (the loop expects what it made). */
static int own_socket(int lfd)
{
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    int one = 1, fd, flags;
    if (getsockname(lfd, (struct sockaddr *)&addr, &len) == -1)
        fail("getsockname");
    if ((flags = fcntl(lfd, F_GETFL)) == -1)
        fail("fcntl");
    if ((fd = socket(addr.ss_family, SOCK_STREAM, 0)) == -1)
        fail("socket");
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == -1
            || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == -1)
        fail("setsockopt");
    if (bind(fd, (struct sockaddr *)&addr, len) == -1)
        fail("bind");
    if (listen(fd, SOMAXCONN) == -1)
        fail("listen");
    if (fcntl(fd, F_SETFL, flags) == -1)
        fail("fcntl");
    if (close(lfd) == -1)       /* worker 1's, which the parent keeps open for it */
        fail("close");
    return fd;
}

/* Start worker i (worker i + 1 in the log), in its slot. Returns 1 in the new
 * worker, with the signal mask of before run_workers() back, and 0 in the parent. */
static int start_worker(long i, const sigset_t *mask, int *lfd)
{
    pid_t parent = getpid();    /* now: in the worker, getppid() may already be another */
    pid_t pid = fork();
    if (pid == -1)
        give_up("fork");        /* EAGAIN: out of processes; stop those started */
    if (pid > 0) {
        workers[i] = last[i] = pid;
        return 0;
    }
    /* A parent killed outright (SIGKILL) stops no one: its workers would go on
     * serving and holding the port, and a new server could not bind it. Linux can
     * send us a signal when the parent dies: SIGTERM, which stops a worker as the
     * parent's own stop_workers() does. (It is blocked until the mask is restored
     * below, so it waits, pending, for the handler that sets stop.) */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) == -1)
        fail("prctl");
    /* The parent may have died before that call, and then no signal comes: we have
     * been handed to init (or a subreaper) already, so getppid() is another pid. */
    if (getppid() != parent)
        _exit(0);               /* not exit(): the parent's stdio buffers are not ours to flush */
    /* reuseport: worker 1 accepts on the parent's socket, a member of the group
     * since the others joined it; left to nobody, its share of clients would wait
     * for ever. Each other worker makes its own. */
    if (mode == REUSEPORT && i > 0)
        *lfd = own_socket(*lfd);
    if (sigprocmask(SIG_SETMASK, mask, NULL) == -1)
        fail("sigprocmask");
    mine = &board[i];
    snprintf(tag, sizeof tag, " (worker %ld)", i + 1);
    return 1;
}

/* SIGCHLD: reap every worker that ended. One that exited with an error has said
 * why on stderr, and a new one would fail the same way: give up. Any other is
 * replaced, with a warning that -q does not hide. Returns 0 in the parent, 1 in a
 * replacement (for run_workers() to return). */
static int reap_workers(const sigset_t *mask, int *lfd)
{
    int status;
    pid_t pid;
    struct rusage ru;
    while ((pid = wait4(-1, &status, WNOHANG, &ru)) > 0) {
        long i = 0;
        while (i < nworkers && workers[i] != pid)
            i++;
        if (i == nworkers)
            continue;           /* not a worker: we fork nothing else */
        collect(i, &ru);
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
        if (start_worker(i, mask, lfd))
            return 1;
        printf("worker %ld (pid %ld) %s: replaced by pid %ld\n", i + 1, (long)pid, how, (long)workers[i]);
    }
    if (pid == -1 && errno != ECHILD)
        give_up("wait4");
    return 0;
}

int workers_exclusive(void)
{
    return mine != NULL && mode == EXCLUSIVE;
}

int workers_publish(unsigned long served, unsigned long long echoed)
{
    if (mine == NULL)
        return 0;
    mine->served = served;
    mine->echoed = echoed;
    return 1;
}

void workers_missed(unsigned long n)
{
    if (mine != NULL)
        mine->missed += n;      /* only this worker writes its slot */
}

/* At the end: a line per worker, then their sum. */
static void summary(void)
{
    struct tally total = { 0, 0, 0, 0 };
    for (long i = 0; i < nworkers; i++) {
        printf("worker %ld (pid %ld): %lu accepted, %lu accept() EAGAIN, %ld wakeups\n",
               i + 1, (long)last[i], slots[i].served, slots[i].missed, slots[i].wakeups);
        total.served += slots[i].served;
        total.echoed += slots[i].echoed;
    }
    printf("shutdown: served %lu connections, echoed %llu bytes\n", total.served, total.echoed);
}

const char *run_workers(long n, int *lfd, const volatile sig_atomic_t *stop)
{
    sigset_t blocked, old;
    struct sigaction sa = { .sa_handler = on_child, .sa_flags = SA_NOCLDSTOP };
    int one = 1, flags;
    nworkers = n;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGCHLD, &sa, NULL) == -1)
        fail("sigaction");
    /* shared: a worker woken for a client another took must find EAGAIN, not sleep
     * in accept() while its other clients wait (07's loop made it so already; 08's
     * completion hub then waits with a plain poll, which wakes every worker). */
    if (mode == SHARED && ((flags = fcntl(*lfd, F_GETFL)) == -1
                           || fcntl(*lfd, F_SETFL, flags | O_NONBLOCK) == -1))
        fail("fcntl");
    /* reuseport: the workers' sockets join this one's group, which takes
     * SO_REUSEPORT on every member; set after bind, it is asked of the next. */
    if (mode == REUSEPORT && setsockopt(*lfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == -1)
        fail("setsockopt");
    /* SIGCHLD, SIGINT and SIGTERM stay blocked except inside sigsuspend(), which
     * unblocks them atomically: one that comes while we fork or reap stays pending
     * and ends the next sigsuspend() at once. None is lost, whatever its timing. */
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGCHLD);
    sigaddset(&blocked, SIGINT);
    sigaddset(&blocked, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &blocked, &old) == -1)
        fail("sigprocmask");
    /* The tallies live in memory shared with the workers: one killed outright still
     * leaves its counts behind, where a report at its end would be lost with it. */
    board = mmap(NULL, MAX_WORKERS * sizeof *board, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (board == MAP_FAILED)
        fail("mmap");
    for (long i = 0; i < nworkers; i++)
        if (start_worker(i, &old, lfd))
            return tag;
    while (!*stop) {
        sigsuspend(&old);       /* returns -1 (EINTR) once a handler has run */
        if (!*stop && reap_workers(&old, lfd))
            return tag;
    }
    stop_workers();
    summary();
    exit(0);
}
