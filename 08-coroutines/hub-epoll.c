/*
 * 08-coroutines/hub-epoll.c: the readiness hub (IO model 3, multiplexing), as
 * gevent's libev and Go's netpoller: each IO call tries the system call on a
 * non-blocking descriptor, and on EAGAIN parks the coroutine until epoll says
 * the descriptor is ready, then tries again. The data is copied by that second
 * try, in the coroutine's time: epoll waits for the first phase only.
 * hub-uring.c is the completion hub; hub.h is what both give the scheduler.
 *
 * Read in this order: hub_wait() (one epoll_wait, wake whom it concerns);
 * wait_fd() and the co_* IO calls (try the call, park on EAGAIN, try again),
 * with recheck() and emptied() on what the hub may take for granted about a
 * descriptor; signals (a self-pipe in the same epoll set) last.
 */
#define _GNU_SOURCE             /* accept4, pipe2, NSIG, SO_PROTOCOL */
#include "hub.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define MAX_EVENTS 256          /* events taken per epoll_wait() */


/* Per descriptor: who waits to read, who waits to write, and what the runtime
 * knows of the file behind the number (see recheck() for how long it trusts that). */
struct fdslot {
    struct co *reader, *writer;
    enum { UNSEEN, REGISTERED, DIRECT } how;    /* DIRECT: epoll refuses it (a file) */
    int stream;         /* SOCK_STREAM (TCP, AF_UNIX): MSG_WAITALL waits for all */
    int tcp;            /* a TCP socket: a short read empties it (see emptied()) */
    int urgent;         /* urgent data came (EPOLLPRI) or was read: reads stop at its mark */
    int hung_up;        /* the peer shut down, or an error: reads never wait again */
    unsigned long long known;   /* the hub round in which epoll last spoke of it */
    unsigned long long drained; /* the round in which a recv emptied it */
};

/* What the runtime asks epoll about each descriptor: both directions, the peer's
 * half-close, urgent data; edge-triggered. */
#define WATCHED (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET)

static struct fdslot *fds;              /* indexed by descriptor */
static int nfds;
static int waiting_io;                  /* coroutines parked on a descriptor */
static unsigned long long hub_round = 1;    /* one per epoll_wait: news of descriptors */
static int epfd = -1;
/* Signals: handlers write a byte into sigpipe[1], and the hub, watching
 * sigpipe[0], wakes up. on_signal() reads sigpipe[1] and handlers[sig], and
 * neither is ever half-written when it runs: sigpipe[1] is set before on_signal
 * is first installed and never changed after, and handlers[sig] changes only
 * while sig is blocked (see co_sigaction()). Nothing else a handler touches
 * needs volatile sig_atomic_t. */
static int sigpipe[2] = { -1, -1 };
static struct sigaction handlers[NSIG]; /* the program's handlers, behind on_signal() */

/* ---- the hub ---- */

int hub_init(void)
{
    epfd = epoll_create1(EPOLL_CLOEXEC);
    return epfd == -1 ? -1 : 0;
}

int hub_waiting(void)
{
    return waiting_io;
}


/* A signal handler ran: end the main coroutine's wait, as the kernel would
 * interrupt the main thread's blocked call. */
static void take_signals(void)
{
    unsigned char sigs[64];
    ssize_t n;
    int interrupt = 0;
    /* The pipe is non-blocking: read until EAGAIN says it is empty. */
    while ((n = read(sigpipe[0], sigs, sizeof sigs)) > 0)
        for (ssize_t i = 0; i < n; i++)
            if (!(handlers[sigs[i]].sa_flags & SA_RESTART))
                interrupt = 1;
    if (interrupt)
        sched_interrupt();
}

static void wake_waiters(const struct epoll_event *ev)
{
    struct fdslot *s = &fds[ev->data.fd];
    s->known = hub_round;       /* epoll still has it: the file we registered */
    /* Both sticky, noted even with no reader: co_recv looks at them. The EOF may
     * sit behind data a short recv just took, and the urgent mark behind a
     * short read's end; no edge will come for either again. */
    if (ev->events & (EPOLLRDHUP | EPOLLERR | EPOLLHUP))
        s->hung_up = 1;
    if (ev->events & EPOLLPRI)
        s->urgent = 1;
    /* An error or hang-up wakes both sides: their next call reports it. */
    if (s->reader && (ev->events & (EPOLLIN | EPOLLPRI | EPOLLRDHUP | EPOLLERR | EPOLLHUP)))
        sched_wake(s->reader, 0);
    if (s->writer && (ev->events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
        sched_wake(s->writer, 0);
}

int hub_wait(int timeout_ms)
{
    static struct epoll_event events[MAX_EVENTS];

    int n = epoll_wait(epfd, events, MAX_EVENTS, timeout_ms);
    hub_round++;                /* from here on, what a slot knew is a round old */
    if (n == -1)                /* EINTR: a signal, its byte in the pipe is seen next turn */
        return errno == EINTR ? 0 : -1;     /* EBADF, EINVAL: the hub's own state is broken */
    for (int i = 0; i < n; i++) {
        if (events[i].data.fd == sigpipe[0])
            take_signals();
        else
            wake_waiters(&events[i]);
    }
    return 0;
}

/* ---- descriptors ---- */

/* Make fds[] hold fd. */
static int grow(int fd)
{
    if (fd < nfds)
        return 0;
    int n = nfds ? nfds : 64;
    while (n <= fd)
        n *= 2;
    struct fdslot *grown = realloc(fds, (size_t)n * sizeof *grown);
    if (grown == NULL)
        return -1;
    memset(grown + nfds, 0, (size_t)(n - nfds) * sizeof *grown);
    fds = grown;
    nfds = n;
    return 0;
}

/* The file behind fd is gone: whoever still waits on it would wait forever, so
 * wake them with EBADF, as for a closed descriptor, and forget what we knew. */
static void forget(int fd)
{
    if (fds[fd].reader)
        sched_wake(fds[fd].reader, EBADF);
    if (fds[fd].writer)
        sched_wake(fds[fd].writer, EBADF);
    memset(&fds[fd], 0, sizeof fds[fd]);
}

/* A stream socket, and a TCP one? Looked up once, when the runtime first
 * registers it: see emptied() and recv_all() for why it matters. Not a socket,
 * or unknown: no. */
static void learn_kind(struct fdslot *s, int fd)
{
    int type, protocol;
    socklen_t len = sizeof type;
    s->stream = s->tcp = 0;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == -1 || type != SOCK_STREAM)
        return;
    s->stream = 1;
    len = sizeof protocol;
    if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &len) == -1)
        return;
    s->tcp = protocol == IPPROTO_TCP;
}

/* Register fd with epoll (WATCHED, once for its life) unless epoll has it
 * already, and make it non-blocking. 0: epoll had it, the file the slot
 * describes. 1: a file new to the runtime, its slot started afresh. */
static int watch(int fd)
{
    struct epoll_event ev = { .events = WATCHED, .data.fd = fd };
    int added = epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == 0;
    if (!added && errno == EEXIST && fds[fd].how == REGISTERED) {
        fds[fd].known = hub_round;
        return 0;
    }
    if (!added && errno == EPERM) {     /* a regular file, always ready: calls just run */
        int renewed = fds[fd].how != DIRECT;
        if (renewed)
            forget(fd);
        fds[fd].how = DIRECT;
        fds[fd].known = hub_round;
        return renewed;
    }
    if (!added && errno != EEXIST)
        return -1;
    forget(fd);                         /* whatever was here before is not this file */
    int flags = fcntl(fd, F_GETFL);
    if (flags == -1 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1) {
        int saved = errno;
        if (added)      /* undo; fd stays unknown */
            (void)epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
        errno = saved;
        return -1;
    }
    learn_kind(&fds[fd], fd);
    fds[fd].how = REGISTERED;
    fds[fd].known = hub_round;
    return 1;
}

/* Make fd known: registered with epoll, edge-triggered for both directions,
 * the first time the runtime sees it. A waiter always tries its call first and
 * parks only on EAGAIN, so the edge that follows is the one it waits for. With
 * ask, ask epoll even about a number seen before (recheck()'s question, without
 * its once a round): co_connect does, as a connect begins a socket's life. */
static int prepare(int fd, int ask)
{
    if (sched_start() == -1)
        return -1;
    if (fd < 0) {
        errno = EBADF;
        return -1;
    }
    if (grow(fd) == -1)
        return -1;
    if ((fds[fd].how == UNSEEN || ask) && watch(fd) == -1)
        return -1;
    return 0;
}

/* Is fd still the file the runtime registered? A plain close() (not co_close)
 * takes the epoll registration with it and the runtime never hears of it; the
 * next socket() gets the same number (the lowest free one), a blocking socket
 * that epoll does not watch. Only epoll can tell: EPOLL_CTL_ADD fails with
 * EEXIST for the file it has, and succeeds for a new one. That costs a system
 * call, so we ask where trusting the slot could do harm, at most once per hub
 * round: before parking on fd (a wait epoll would never end), and before
 * accept4 (on a blocking socket it blocks the whole thread; recv and send are
 * given MSG_DONTWAIT and cannot; co_connect always asks). In the round in which
 * epoll last spoke of fd (an event, or our registration) the slot is trusted:
 * a descriptor closed and its number reused within that one round is the case
 * this misses. 0: as we knew it; 1: a new file, registered now; -1: error. */
static int recheck(int fd)
{
    if (fds[fd].known == hub_round)
        return 0;
    return watch(fd);
}

/* Park until fd is readable (or writable); one waiter per direction. 0 means
 * "try the call again", which may be at once. */
static int wait_fd(int fd, int writing)
{
    int renewed = recheck(fd);
    if (renewed != 0)
        return renewed == 1 ? 0 : -1;   /* a new file: try the call on it first */
    if (fds[fd].how == DIRECT)
        return 0;               /* cannot be waited for: the caller just tries again */
    struct co **waiter = writing ? &fds[fd].writer : &fds[fd].reader;
    if (*waiter) {
        errno = EBUSY;          /* gevent: "already used by another greenlet" */
        return -1;
    }
    *waiter = co_self();
    waiting_io++;
    int parked = sched_park(1);
    waiting_io--;
    /* fds may have moved (realloc) while we were parked: index it again. */
    waiter = writing ? &fds[fd].writer : &fds[fd].reader;
    if (*waiter == co_self())
        *waiter = NULL;
    return parked;
}

/* A connection co_accept() just took: a new file, whatever the runtime recalls
 * of its number (one closed without co_close() may come back). accept4 made it
 * non-blocking, and it is TCP (a stream) if its listener is: register it now, without
 * asking the kernel again. If that fails, its slot stays unseen and the first
 * call on it tries again and reports the error. */
static void adopt(int conn, int listener)
{
    struct epoll_event ev = { .events = WATCHED, .data.fd = conn };
    if (grow(conn) == -1)
        return;                 /* beyond the table: unseen anyway */
    forget(conn);
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, conn, &ev) == -1)
        return;
    fds[conn].stream = fds[listener].stream;
    fds[conn].tcp = fds[listener].tcp;
    fds[conn].how = REGISTERED;
    fds[conn].known = hub_round;
}

static unsigned long accept_misses;     /* co_accept_misses() */

unsigned long co_accept_misses(void)
{
    unsigned long n = accept_misses;
    accept_misses = 0;
    return n;
}

/* Registered again, as epoll allows EPOLLEXCLUSIVE only at EPOLL_CTL_ADD; for
 * reading alone, since with it epoll takes no more than IN, OUT, ET and WAKEUP. */
int co_exclusive(int fd)
{
    struct epoll_event ev = { .events = EPOLLIN | EPOLLET | EPOLLEXCLUSIVE, .data.fd = fd };
    if (prepare(fd, 0) == -1)
        return -1;
    if (fds[fd].how != REGISTERED) {
        errno = EINVAL;         /* a regular file: nothing waits on it */
        return -1;
    }
    if (epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL) == -1 || epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == -1)
        return -1;
    return 0;
}

int co_accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    if (prepare(fd, 0) == -1 || recheck(fd) == -1)
        return -1;
    for (int woke = 0;; woke = 1) {
        int conn = accept4(fd, addr, len, SOCK_NONBLOCK);
        if (conn >= 0) {
            adopt(conn, fd);
            sched_spend();
            return conn;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;          /* EMFILE, ECONNABORTED...: the caller decides */
        accept_misses += (unsigned long)woke;   /* woken for a client another process took */
        if (wait_fd(fd, 0) == -1)
            return -1;
        sched_refill();
    }
}

int co_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    int tried = 0;
    if (prepare(fd, 1) == -1)
        return -1;
    /* Non-blocking connect: EINPROGRESS, then writable when it is decided. Asking
     * again tells how: EISCONN is success, or the error (ECONNREFUSED...). */
    for (;;) {
        if (connect(fd, addr, len) == 0 || (tried && errno == EISCONN))
            return 0;
        if (errno != EINPROGRESS && errno != EALREADY && errno != EAGAIN)
            return -1;
        tried = 1;
        if (wait_fd(fd, 1) == -1)
            return -1;
        sched_refill();
    }
}

/* Whether a recv that got n bytes of the len asked emptied the socket, so that
 * another would only say EAGAIN until epoll reports a new edge: co_recv then
 * parks without it, which saves a system call per request (Tokio and Go do the
 * same). It holds only where it is true:
 *  - a TCP socket (SO_TYPE SOCK_STREAM, SO_PROTOCOL IPPROTO_TCP, looked up at
 *    registration) and a plain recv (flags 0: MSG_PEEK, MSG_OOB read otherwise).
 *    A datagram socket (UDP, AF_UNIX SOCK_DGRAM) returns one datagram per call,
 *    shorter than asked with the next one queued; an AF_UNIX stream stops at
 *    passed descriptors and between writers whose credentials differ.
 *  - no urgent data. TCP's recv stops at the urgent mark: "abc", urgent "!",
 *    "def\n" all queued read as "abc", then "def\n". epoll reports EPOLLPRI
 *    while the mark is ahead, so once the hub has seen it (or the program read
 *    the urgent byte, MSG_OOB) short reads on that socket are never trusted
 *    again: it is rare, and costs a recv per request. Urgent data that came
 *    after the hub last looked has its event still pending, and that event ends
 *    the wait as any new data's does. (SIOCATMARK after each short read would
 *    tell exactly, for the very system call the shortcut saves.)
 *  - no EOF or error seen (hung_up): the EOF may sit behind data a short recv
 *    just took, and no edge will come for it again.
 *  - in the round in which epoll last spoke of fd (see recheck()). The next
 *    round's events are news: "emptied" holds only for the round it was seen in.
 */
static int emptied(const struct fdslot *s, ssize_t n, size_t len, int flags)
{
    return n > 0 && (size_t)n < len && flags == 0 && s->how == REGISTERED && s->tcp
        && !s->urgent && !s->hung_up && s->known == hub_round;
}

/* One recv: what is there, parking first if nothing is. */
static ssize_t recv_some(int fd, void *buf, size_t len, int flags)
{
    for (;;) {
        /* Drained in this round: a recv could only say EAGAIN. The caller's
         * MSG_DONTWAIT wants that answer from the kernel, so it asks anyway. */
        if (fds[fd].drained != hub_round || (flags & MSG_DONTWAIT)) {
            /* MSG_DONTWAIT: never block the thread, even on a socket the runtime
             * has not made non-blocking yet (see recheck()). */
            ssize_t n = recv(fd, buf, len, flags | MSG_DONTWAIT);
            if (n >= 0) {
                if (emptied(&fds[fd], n, len, flags))
                    fds[fd].drained = hub_round;
                sched_spend();
                return n;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return -1;      /* ECONNRESET and the like: the caller's to handle */
            if (flags & MSG_DONTWAIT)
                return -1;      /* the caller asked not to wait: EAGAIN is its answer */
        }
        if (wait_fd(fd, 0) == -1)
            return -1;
        sched_refill();
    }
}

/* MSG_WAITALL on a stream socket: recv() waits until all len bytes have come,
 * and returns fewer only at EOF, an error or a signal (recv(2)). Our own
 * MSG_DONTWAIT makes the kernel return what is there, so the rest of the wait
 * is ours: recv again for the rest, parking as any recv does. Bytes that came
 * before an EOF, an error or EINTR are returned, as the kernel returns them
 * (the error itself, taken by our recv, is not said again). */
static ssize_t recv_all(int fd, char *buf, size_t len, int flags)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = recv_some(fd, buf + got, len - got, flags);
        if (n == -1 && got == 0)
            return -1;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

ssize_t co_recv(int fd, void *buf, size_t len, int flags)
{
    if (prepare(fd, 0) == -1)
        return -1;
    if (flags & MSG_OOB)
        fds[fd].urgent = 1;     /* its mark stays in the stream: see emptied() */
    /* With MSG_PEEK each recv looks at the queue's start again: nothing to add
     * up. On a datagram socket MSG_WAITALL means nothing (one datagram a call). */
    if ((flags & MSG_WAITALL) && !(flags & (MSG_DONTWAIT | MSG_PEEK)) && fds[fd].stream)
        return recv_all(fd, buf, len, flags);
    return recv_some(fd, buf, len, flags);
}

/* No shortcut here: a send that took less than offered did fill the buffer (for
 * TCP), but the caller, looping, would only wait after its next try anyway. */
ssize_t co_send(int fd, const void *buf, size_t len, int flags)
{
    if (prepare(fd, 0) == -1)
        return -1;
    for (;;) {
        ssize_t n = send(fd, buf, len, flags | MSG_DONTWAIT);   /* as in co_recv */
        if (n >= 0) {
            sched_spend();
            return n;           /* maybe short, as send()'s may be */
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;          /* EPIPE, ECONNRESET: the peer is gone */
        if (flags & MSG_DONTWAIT)
            return -1;          /* as in co_recv: EAGAIN is the answer */
        if (wait_fd(fd, 1) == -1)
            return -1;
        sched_refill();
    }
}

/* close() takes the epoll registration with it only when it closes the file's
 * last descriptor (epoll(7), Q6): a dup() of fd, a child's copy after fork(),
 * or one passed to another process keeps the file open, and epoll registered
 * the file, not the number. It would go on reporting that file's events as
 * fd's, to whoever holds fd's number next. The runtime cannot know whether a
 * copy exists, so it always takes the registration out itself, first. */
int co_close(int fd)
{
    if (fd >= 0 && fd < nfds) {
        /* Its errors need nothing done: ENOENT, not registered any more (a
         * plain close() took it, and the number is a new file's); EBADF, fd is
         * not open, which close() says next. */
        if (fds[fd].how == REGISTERED)
            (void)epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
        forget(fd);
    }
    return close(fd);
}

/* ---- signals ---- */

static void on_signal(int sig)
{
    int saved = errno;          /* a handler must leave errno as it found it */
    handlers[sig].sa_handler(sig);
    unsigned char b = (unsigned char)sig;
    if (write(sigpipe[1], &b, 1) == -1) {
        /* EAGAIN: the pipe is full, so the hub has a wake-up waiting already. */
    }
    errno = saved;
}

/* The self-pipe, made at the first handler, both ends non-blocking: a
 * handler must never block, and take_signals() reads until EAGAIN. */
static int open_sigpipe(void)
{
    struct epoll_event ev = { .events = EPOLLIN };
    if (sigpipe[0] != -1)
        return 0;
    if (pipe2(sigpipe, O_NONBLOCK | O_CLOEXEC) == -1)
        return -1;
    ev.data.fd = sigpipe[0];
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, sigpipe[0], &ev) == -1) {
        int saved = errno;
        (void)close(sigpipe[0]);
        (void)close(sigpipe[1]);
        sigpipe[0] = sigpipe[1] = -1;
        errno = saved;
        return -1;
    }
    return 0;
}

/* Whether on_signal goes in front of this action: a plain handler does.
 * Ignoring, the default, or SA_SIGINFO handlers are passed on as they are. */
static int wrapped(const struct sigaction *sa)
{
    return sa != NULL && sa->sa_handler != SIG_IGN && sa->sa_handler != SIG_DFL
        && !(sa->sa_flags & SA_SIGINFO);
}

/* co_sigaction's work, with sig blocked. */
static int set_action(int sig, const struct sigaction *sa, struct sigaction *old)
{
    struct sigaction mine, was = handlers[sig], before;
    if (!wrapped(sa)) {
        if (sigaction(sig, sa, &before) == -1)
            return -1;
        if (sa != NULL)
            memset(&handlers[sig], 0, sizeof handlers[sig]);
    } else {
        handlers[sig] = *sa;    /* before on_signal can run and look for it */
        mine = *sa;
        mine.sa_handler = on_signal;
        if (sigaction(sig, &mine, &before) == -1) {
            handlers[sig] = was;
            return -1;
        }
    }
    if (old)
        *old = before.sa_handler == on_signal ? was : before;
    return 0;
}

int co_sigaction(int sig, const struct sigaction *sa, struct sigaction *old)
{
    sigset_t just_sig, mask;
    if (sig <= 0 || sig >= NSIG) {
        errno = EINVAL;
        return -1;
    }
    if (sched_start() == -1)
        return -1;
    if (wrapped(sa) && open_sigpipe() == -1)
        return -1;
    /* A handler may read only what it cannot catch half-written, and on_signal
     * reads handlers[sig], a struct: block sig while it changes (a signal that
     * comes meanwhile waits, and finds the new action). EINVAL: a signal libc
     * keeps for itself, which sigaction() would refuse as well. */
    if (sigemptyset(&just_sig) == -1 || sigaddset(&just_sig, sig) == -1
            || sigprocmask(SIG_BLOCK, &just_sig, &mask) == -1)
        return -1;
    int rc = set_action(sig, sa, old);
    int saved = errno;
    (void)sigprocmask(SIG_SETMASK, &mask, NULL);    /* cannot fail: a mask it gave us */
    errno = saved;
    return rc;
}
