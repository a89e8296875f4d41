/*
 * 07-selectors/sel-sigio.c: the signal-driven backend, the notes' IO model 4.
 *
 * Teaches: signal-driven IO (note 000's five models; TLPI 63.3; Kegel's C10K page,
 * "realtime signals"). On register, the descriptor is told to signal us each time its
 * readiness changes: F_SETOWN_EX names the thread, F_SETSIG a real-time signal of
 * ours (queued one per event, with a siginfo), O_ASYNC turns it on. The signal stays
 * blocked, so no handler ever runs: sel_select() takes each one off the queue with
 * sigtimedwait(), and its siginfo says which descriptor (si_fd) and what happened
 * (si_band: POLLIN, POLLOUT...). That is the first phase of a read, the wait, told by
 * a signal; the second, the copy, is still our recv(), and blocks while it copies:
 * model 4, not asynchronous IO (model 5).
 *
 * Why it is "basically unused" (the README has this machine's numbers):
 *  - one system call per readiness change: sigtimedwait() takes one signal, where
 *    epoll_wait() takes hundreds of events.
 *  - signals are edges, and stale ones: a signal says something happened, not that
 *    it is still true (the data may be read already, the descriptor closed and its
 *    number reused). The selectors contract is level-triggered, so a signal only makes
 *    its descriptor a candidate, poll() says what is true now, and a descriptor
 *    reported ready stays a candidate, asked again each wait until poll() says no.
 *  - the queue is bounded (RLIMIT_SIGPENDING, `ulimit -i`, counted per user): when it
 *    is full the kernel sends a plain SIGIO instead, and which descriptor it was is
 *    lost. Then we drain the queue and poll every registered descriptor (TLPI 63.3).
 *  - a descriptor has one owner: worker processes sharing a listening socket cannot
 *    all be told of new connections (the server refuses -w with sigio).
 *  - signals are the process's: one sigio selector per process (EBUSY for a second),
 *    as a plain SIGIO cannot say whose queue overflowed.
 *
 * Look at: sigio_wait(): take what is queued, poll the candidates, only then sleep.
 * Pitfall: ignoring the overflow: with `ulimit -i 8`, a server that does not treat
 * SIGIO as "poll everyone" stops hearing about most of its clients and stalls.
 */
#define _GNU_SOURCE             /* F_SETSIG, F_SETOWN_EX, gettid(): Linux's, not POSIX */
#include "backend.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static int in_use;              /* a sigio selector is open in this process */

struct sigio_state {
    int signo;                  /* the real-time signal every descriptor sends */
    pid_t tid;                  /* the thread that opened it: the descriptors' owner */
    sigset_t set;               /* signo and SIGIO: blocked while open; what we wait for */
    sigset_t unblock;           /* those of them that were not blocked before sel_open */
    struct pollfd *cand;        /* the candidates: signalled, or reported ready last time */
    int ncand, cap;             /* never more than the keys: cap has room for each */
    unsigned char *marked;      /* by fd: 1 while it is a candidate */
    int nmarked;                /* how many slots marked has */
    int overflow;               /* a SIGIO came: every registered descriptor is a candidate */
};

static int sigio_open(struct selector *s)
{
    struct sigio_state *st;
    sigset_t old;

    if (in_use)
        return sel_fail(EBUSY);
    if ((st = calloc(1, sizeof *st)) == NULL)
        return -1;
    /* A real-time signal: queued once per event, with si_fd and si_band. SIGRTMIN is
     * the first glibc leaves to programs; one that uses it must not open sigio. */
    st->signo = SIGRTMIN;
    sigemptyset(&st->set);
    sigaddset(&st->set, st->signo);
    sigaddset(&st->set, SIGIO);
    /* Blocked, so they wait in the queue for sigtimedwait() instead of running a
     * handler (or, with none, killing us: both signals' default action). One program
     * thread: sigprocmask; with threads, pthread_sigmask in the thread that waits. */
    if (sigprocmask(SIG_BLOCK, &st->set, &old) == -1) {
        free(st);
        return -1;
    }
    sigemptyset(&st->unblock);
    if (!sigismember(&old, st->signo))
        sigaddset(&st->unblock, st->signo);
    if (!sigismember(&old, SIGIO))
        sigaddset(&st->unblock, SIGIO);
    st->tid = gettid();
    in_use = 1;
    s->state = st;
    return 0;
}

/* No more signals from fd. Errors are ignored, as epoll's DEL does: they mean fd was
 * closed before it was unregistered, and then it sends nothing anyway. */
static void disarm(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags != -1)
        (void)fcntl(fd, F_SETFL, flags & ~O_ASYNC);
    (void)fcntl(fd, F_SETSIG, 0);
    (void)fcntl(fd, F_SETOWN, 0);
}

static void sigio_close(struct selector *s)
{
    struct sigio_state *st = s->state;
    static const struct timespec zero;
    siginfo_t si;

    /* Disarm every descriptor, then drop what is queued, and only then unblock: a
     * real-time signal delivered with no handler would kill the program. */
    for (int fd = 0; fd < s->nslots; fd++)
        if (s->keys[fd] != NULL)
            disarm(fd);
    while (sigtimedwait(&st->set, &si, &zero) != -1 || errno == EINTR)
        continue;               /* until EAGAIN: the queue is empty */
    (void)sigprocmask(SIG_UNBLOCK, &st->unblock, NULL);    /* fails only with bad arguments */
    free(st->cand);
    free(st->marked);
    free(st);
    in_use = 0;
}

/* fd becomes a candidate, once. */
static void put(struct sigio_state *st, int fd)
{
    if (st->marked[fd])
        return;
    st->marked[fd] = 1;
    st->cand[st->ncand++].fd = fd;
}

/* Room for the new key's candidate is made first, so nothing can fail once fd is armed.
 * The owner is this thread (F_OWNER_TID), not the process (F_SETOWN): a signal for the
 * process goes to any thread that does not block it, and a real-time signal with no
 * handler kills. Sent to the thread that waits, where it is blocked, it stays queued
 * for sigtimedwait() whatever other threads do. (The lab's programs have one thread:
 * there both are the same.) */
static int sigio_add(struct selector *s, int fd, int events)
{
    struct sigio_state *st = s->state;
    struct f_owner_ex owner = { .type = F_OWNER_TID, .pid = st->tid };
    struct pollfd *cand;
    unsigned char *marked;
    int flags;

    (void)events;
    if ((cand = sel_grow(st->cand, &st->cap, s->count + 1, sizeof *cand)) == NULL)
        return -1;
    st->cand = cand;
    if ((marked = sel_grow(st->marked, &st->nmarked, fd + 1, 1)) == NULL)
        return -1;
    st->marked = marked;
    /* Owner and signal first, O_ASYNC last: it starts the signals. */
    if (fcntl(fd, F_SETOWN_EX, &owner) == -1 || fcntl(fd, F_SETSIG, st->signo) == -1
        || (flags = fcntl(fd, F_GETFL)) == -1 || fcntl(fd, F_SETFL, flags | O_ASYNC) == -1)
        return -1;
    /* Ready already (data waiting, room to write): no change is coming to signal it. */
    put(st, fd);
    return 0;
}

/* Write interest added: a socket with room sends no signal until it has been full. */
static int sigio_modify(struct selector *s, int fd, int events)
{
    (void)events;
    put(s->state, fd);
    return 0;
}

static void sigio_remove(struct selector *s, int fd)
{
    struct sigio_state *st = s->state;
    /* Off the candidates now, so they never outnumber the keys. Its signals still
     * queued stay there: the wait ignores them (not registered) or, if the number is
     * registered again by then, polls it. Either way nothing false is reported. */
    if (st->marked[fd]) {
        st->marked[fd] = 0;
        for (int i = 0; i < st->ncand; i++)
            if (st->cand[i].fd == fd) {
                st->cand[i] = st->cand[--st->ncand];
                break;
            }
    }
    disarm(fd);
}

/* Take one signal off the queue, waiting at most *ts (NULL: for ever). 1 if one was
 * taken, 0 if none came in time (EAGAIN), -1 with errno (EINTR: a handler ran). */
static int take(struct selector *s, struct sigio_state *st, const struct timespec *ts)
{
    siginfo_t si;
    int sig = sigtimedwait(&st->set, &si, ts);

    if (sig == -1)
        return errno == EAGAIN ? 0 : -1;
    if (sig == SIGIO)
        st->overflow = 1;       /* the queue was full: some signals were never queued */
    else if (sel_lookup(s, si.si_fd) != NULL)
        put(st, si.si_fd);      /* si_band says what happened; poll() says what is true */
    return 1;                   /* else a stale signal: its descriptor was unregistered */
}

/* Take every queued signal without waiting. A bound, so that clients sending without
 * pause cannot keep us here: what is left stays queued for the next call. */
static int drain(struct selector *s, struct sigio_state *st)
{
    static const struct timespec zero;
    int got = 1;

    for (int i = 0; got == 1 && i < 2 * s->count + 16; i++)
        got = take(s, st, &zero);
    return got == -1 ? -1 : 0;
}

/* Ask poll() about every candidate, without waiting. Report the ready ones and keep
 * them: the contract is level-triggered, and if the caller does not drain one, no new
 * signal will come for it. Drop the rest: a change makes them signal again. */
static int poll_candidates(struct selector *s, struct sigio_state *st)
{
    int n = 0, kept = 0;

    if (st->overflow) {         /* TLPI 63.3: after the overflow, everyone */
        st->overflow = 0;
        for (int fd = 0; fd < s->nslots; fd++)
            if (s->keys[fd] != NULL)
                put(st, fd);
    }
    for (int i = 0; i < st->ncand; i++) {
        int events = s->keys[st->cand[i].fd]->events;   /* a candidate is registered */
        st->cand[i].events = (short)((events & SEL_READ ? POLLIN : 0) | (events & SEL_WRITE ? POLLOUT : 0));
    }
    /* EINTR: the candidates stay, and the common part calls us again. */
    if (st->ncand > 0 && poll(st->cand, (nfds_t)st->ncand, 0) == -1)
        return -1;
    for (int i = 0; i < st->ncand; i++) {
        struct pollfd p = st->cand[i];
        /* POLLERR, POLLHUP and POLLNVAL come unasked: reported as what the key waits for. */
        int mask = (p.revents & POLLIN ? SEL_READ : 0) | (p.revents & POLLOUT ? SEL_WRITE : 0)
                   | (p.revents & (POLLERR | POLLHUP | POLLNVAL) ? ALL_EVENTS : 0);
        if (mask != 0) {
            n = sel_report(s, n, p.fd, mask);
            st->cand[kept++] = p;
        } else {
            st->marked[p.fd] = 0;
        }
    }
    st->ncand = kept;
    return n;
}

static int sigio_wait(struct selector *s, int timeout_ms)
{
    struct sigio_state *st = s->state;
    struct timespec ts = { .tv_sec = timeout_ms / 1000, .tv_nsec = (timeout_ms % 1000) * 1000000L };
    int n;

    /* What is queued, then what is ready: without sleeping. */
    if (drain(s, st) == -1 || (n = poll_candidates(s, st)) == -1)
        return -1;
    if (n > 0 || timeout_ms == 0)
        return n;
    /* Nothing ready: sleep until a signal comes, or the time is up (0 ready). */
    int got = take(s, st, timeout_ms < 0 ? NULL : &ts);
    if (got != 1)
        return got;
    if (drain(s, st) == -1 || (n = poll_candidates(s, st)) == -1)
        return -1;
    /* Only old news (the data read already, the descriptor gone): as after a signal
     * handler, EINTR makes the common part wait again for what is left of the time. */
    return n > 0 ? n : sel_fail(EINTR);
}

const struct backend backend_sigio = {
    "sigio", sigio_open, sigio_close, sigio_add, sigio_modify, sigio_remove, sigio_wait,
};
