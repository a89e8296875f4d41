/*
 * 08-coroutines/hub-uring.c: the completion hub (IO model 5, asynchronous IO),
 * as Windows' IOCP and tokio-uring: each IO call hands the whole operation (a
 * recv with its buffer, an accept with its address) to the kernel through an
 * io_uring, parks the coroutine, and wakes it when the kernel says it is done,
 * the data already copied. Both phases of the call, waiting and copying, are
 * the kernel's; the coroutine never tries and never sees EAGAIN.
 * hub-epoll.c is the readiness hub; hub.h is what both give the scheduler.
 *
 * The kernel writes into the buffer after the call was made, so the buffer must
 * live until the completion arrives. A coroutine's stack gives that for free:
 * the caller is parked inside co_recv() and its frame, buffer and all, stays
 * where it is. That is why every call below waits for its completion, even
 * one cancelled by co_close() or a signal: returning earlier would leave the
 * kernel writing into a frame that is gone.
 *
 * Read in this order: the ring (setup, the two queues and their memory
 * ordering); io() (submit, park, take the result) and the co_* calls on it;
 * hub_wait() (one io_uring_enter per round: submit all that is queued, wait for
 * at least one completion); cancellation (co_close) and signals last.
 * No liburing: io_uring_setup and io_uring_enter are called through syscall().
 */
#define _GNU_SOURCE             /* pipe2, NSIG, syscall */
#include "hub.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/io_uring.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SQ_ENTRIES 4096         /* operations queued between two io_uring_enter() */
#define CQ_ENTRIES 16384        /* completions the kernel may post before we reap */

/* One operation in the kernel's hands. It lives on the parked caller's stack,
 * and its address is the operation's user_data: the completion names it. */
struct op {
    struct co *co;              /* parked until done */
    int res;                    /* the completion's result: >= 0, or -errno */
    int done;
    int cancelled;              /* why we cancelled it (EBADF: co_close, EINTR: a
                                 * signal), and what the call then returns */
};

/* Per descriptor: who waits to read and who waits to write (one of each at a
 * time, as in the epoll hub: EBUSY), and their operations, for co_close to
 * cancel. (The coroutines are named here, in the heap, and not only in the ops
 * on their own stacks: LeakSanitizer looks for them in the heap, not in our
 * mmap'd stacks, and would take a coroutine parked at exit for a leak.) */
struct fdslot {
    struct co *reader, *writer;
    struct op *reading, *writing;
};

/* The ring: three regions the kernel shares with us (see hub_init()). The
 * submission queue (SQ) is ours to fill at the tail and the kernel's to consume
 * at the head; the completion queue (CQ) the kernel's to fill at the tail and
 * ours to consume at the head. Each side writes one index and reads the other's. */
static int ring_fd = -1;
static unsigned *sq_head, *sq_tail, *sq_flags, *sq_array, sq_mask, sq_entries;
static struct io_uring_sqe *sqes;
static unsigned *cq_head, *cq_tail, cq_mask;
static struct io_uring_cqe *cqes;
static unsigned sq_next;                /* our tail: SQEs filled, published at *sq_tail */

static struct fdslot *fds;              /* indexed by descriptor */
static int nfds;
static int in_flight;                   /* coroutines parked on an operation */
static int ring_error;                  /* the ring is broken: why (see ring_broken()) */
static struct op *main_op;              /* the main coroutine's, for a signal to cancel */

/* Signals: the self-pipe of the epoll hub, read through the ring. on_signal()
 * reads sigpipe[1] and handlers[sig], and neither is ever half-written when it
 * runs: sigpipe[1] is set before on_signal is first installed and never
 * changed after, and handlers[sig] changes only while sig is blocked (see
 * co_sigaction()). Nothing else a handler touches needs volatile sig_atomic_t. */
static int sigpipe[2] = { -1, -1 };
static struct sigaction handlers[NSIG];
static unsigned char sigbuf[64];
static struct op sigread;               /* the read always pending on sigpipe[0] */

/* ---- the ring ---- */

static int io_uring_setup(unsigned entries, struct io_uring_params *p)
{
    return (int)syscall(__NR_io_uring_setup, entries, p);
}

static int io_uring_enter(unsigned to_submit, unsigned min_complete, unsigned flags,
                          const void *arg, size_t argsz)
{
    return (int)syscall(__NR_io_uring_enter, ring_fd, to_submit, min_complete, flags,
                        arg, argsz);
}

/* Where the kernel refuses io_uring, the program cannot run on this hub at all:
 * say so in one line and exit, as the loader does for a missing library. (One
 * of the runtime's two exits, with ring_broken()'s: every other error is
 * returned.) */
static void unavailable(const char *why)
{
    fprintf(stderr, "io_uring unavailable: %s\n", why);
    exit(1);
}

int hub_init(void)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_CQSIZE;
    p.cq_entries = CQ_ENTRIES;
    ring_fd = io_uring_setup(SQ_ENTRIES, &p);      /* close-on-exec by itself */
    if (ring_fd == -1) {
        if (errno == EPERM || errno == EACCES)      /* sysctl, or seccomp's answer */
            unavailable(errno == EPERM ? "Operation not permitted (kernel.io_uring_disabled?)"
                                       : "Permission denied (kernel.io_uring_disabled?)");
        if (errno == ENOSYS)
            unavailable("Function not implemented (a kernel without it, or qemu-user)");
        return -1;              /* ENOMEM, EMFILE: the caller's to report */
    }
    /* Timeouts ride on io_uring_enter (EXT_ARG, 5.11); a read of a pipe at its
     * current position (RW_CUR_POS, 5.6); a completion that finds the CQ full is
     * kept in the kernel until we make room (NODROP, 5.5: IORING_SQ_CQ_OVERFLOW,
     * see submit()). Kept, not promised: if the kernel has no memory for it, it
     * is lost, and io_uring_enter says EBADR from then on (see ring_broken()). */
    unsigned need = IORING_FEAT_EXT_ARG | IORING_FEAT_RW_CUR_POS | IORING_FEAT_NODROP;
    if ((p.features & need) != need)
        unavailable("this kernel's io_uring is older than Linux 5.11 (no IORING_FEAT_EXT_ARG)");

    /* Three regions: the SQ ring (indexes, then an array of SQE numbers), the
     * CQ ring (indexes, then the CQEs themselves), and the SQEs. Since 5.4
     * (SINGLE_MMAP) the two rings are one mapping. */
    size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    int single = (p.features & IORING_FEAT_SINGLE_MMAP) != 0;
    if (single && cq_len > sq_len)
        sq_len = cq_len;
    char *sq = mmap(NULL, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                    ring_fd, IORING_OFF_SQ_RING);
    char *cq = sq;
    if (sq != MAP_FAILED && !single)
        cq = mmap(NULL, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                  ring_fd, IORING_OFF_CQ_RING);
    void *s = MAP_FAILED;
    if (sq != MAP_FAILED && cq != MAP_FAILED)
        s = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_POPULATE, ring_fd, IORING_OFF_SQES);
    if (s == MAP_FAILED) {
        int saved = errno;
        if (cq != MAP_FAILED && cq != sq)
            (void)munmap(cq, cq_len);
        if (sq != MAP_FAILED)
            (void)munmap(sq, sq_len);
        (void)close(ring_fd);
        ring_fd = -1;
        errno = saved;
        return -1;
    }
    sq_head = (unsigned *)(sq + p.sq_off.head);
    sq_tail = (unsigned *)(sq + p.sq_off.tail);
    sq_flags = (unsigned *)(sq + p.sq_off.flags);
    sq_array = (unsigned *)(sq + p.sq_off.array);
    sq_mask = *(unsigned *)(sq + p.sq_off.ring_mask);
    sq_entries = p.sq_entries;
    sqes = s;
    cq_head = (unsigned *)(cq + p.cq_off.head);
    cq_tail = (unsigned *)(cq + p.cq_off.tail);
    cq_mask = *(unsigned *)(cq + p.cq_off.ring_mask);
    cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
    sq_next = *sq_tail;
    return 0;
}

/* Submit what is queued; with wait, also wait for one completion at least, at
 * most timeout_ms (-1: no limit). -1 with errno: EINTR (a signal), EBUSY or
 * EAGAIN (the kernel holds too many completions we have not reaped: reap
 * first), ETIME (the time is up, nothing completed), or a real error. */
static int submit(int wait, int timeout_ms)
{
    /* acquire: the head the kernel moved past SQEs it has finished reading. */
    unsigned to_submit = sq_next - __atomic_load_n(sq_head, __ATOMIC_ACQUIRE);
    unsigned flags = 0;
    /* Completions the CQ had no room for wait in the kernel; GETEVENTS moves them in. */
    if (wait || (__atomic_load_n(sq_flags, __ATOMIC_RELAXED) & IORING_SQ_CQ_OVERFLOW))
        flags |= IORING_ENTER_GETEVENTS;
    if (to_submit == 0 && flags == 0)
        return 0;
    struct __kernel_timespec ts = { .tv_sec = timeout_ms / 1000,
                                    .tv_nsec = (timeout_ms % 1000) * 1000000LL };
    struct io_uring_getevents_arg arg = { .sigmask = 0, .ts = (uintptr_t)&ts };
    if (wait && timeout_ms >= 0) {
        flags |= IORING_ENTER_EXT_ARG;
        return io_uring_enter(to_submit, 1, flags, &arg, sizeof arg) == -1 ? -1 : 0;
    }
    /* Without EXT_ARG the last two arguments are a signal mask: none. */
    return io_uring_enter(to_submit, wait ? 1 : 0, flags, NULL, 0) == -1 ? -1 : 0;
}

static void complete(struct op *op, int res)
{
    op->res = res;
    op->done = 1;
    if (op->co)                 /* sigread has no coroutine: hub_wait() looks at it */
        sched_wake(op->co, 0);
}

/* Take every completion the kernel has posted, and wake their coroutines. */
static void reap(void)
{
    unsigned head = *cq_head;   /* only we write it */
    /* acquire: the kernel wrote the CQEs before it moved the tail past them. */
    unsigned tail = __atomic_load_n(cq_tail, __ATOMIC_ACQUIRE);
    for (; head != tail; head++) {
        const struct io_uring_cqe *cqe = &cqes[head & cq_mask];
        if (cqe->user_data != 0)        /* 0: a cancel's own completion, nothing to do */
            complete((struct op *)(uintptr_t)cqe->user_data, cqe->res);
    }
    /* release: we are done reading those CQEs before the kernel may reuse them. */
    __atomic_store_n(cq_head, head, __ATOMIC_RELEASE);
}

/* The next free SQE, cleared. A full SQ: submit what is queued and try again;
 * the kernel refusing more (EBUSY: too many completions unreaped): reap first. */
static struct io_uring_sqe *get_sqe(void)
{
    for (;;) {
        if (sq_next - __atomic_load_n(sq_head, __ATOMIC_ACQUIRE) < sq_entries) {
            unsigned i = sq_next & sq_mask;
            memset(&sqes[i], 0, sizeof sqes[i]);
            sq_array[i] = i;
            return &sqes[i];
        }
        if (submit(0, -1) == -1) {
            if (errno == EBUSY || errno == EAGAIN)
                reap();         /* wakes coroutines: they run in the hub's next round */
            else if (errno != EINTR)    /* EINTR: a signal, its byte waits in the pipe */
                return NULL;
        }
    }
}

/* The SQE get_sqe() gave is filled in: make it the kernel's. release: the
 * kernel, which reads the tail with acquire, then sees the whole SQE. Nothing is
 * submitted until the hub's next io_uring_enter (or a full SQ's). */
static void queue_sqe(void)
{
    sq_next++;
    __atomic_store_n(sq_tail, sq_next, __ATOMIC_RELEASE);
}

/* ---- the IO calls: submit, park, take the result ---- */

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

/* Hand the operation `want` describes to the kernel and park until it is done.
 * Its result as the system call's: >= 0, or -1 with errno. writing: which of the
 * descriptor's two slots it takes. */
static long io(const struct io_uring_sqe *want, int writing)
{
    int fd = want->fd;
    if (sched_start() == -1)
        return -1;
    if (ring_error != 0) {      /* nothing we queue would ever complete */
        errno = ring_error;
        return -1;
    }
    if (fd < 0) {
        errno = EBADF;
        return -1;
    }
    if (grow(fd) == -1)
        return -1;
    if ((writing ? fds[fd].writer : fds[fd].reader) != NULL) {
        errno = EBUSY;          /* gevent: "already used by another greenlet" */
        return -1;
    }
    struct op op = { .co = co_self() };
    struct io_uring_sqe *sqe = get_sqe();
    if (sqe == NULL)
        return -1;
    *sqe = *want;
    sqe->user_data = (uintptr_t)&op;
    queue_sqe();
    if (writing)
        fds[fd].writer = op.co, fds[fd].writing = &op;
    else
        fds[fd].reader = op.co, fds[fd].reading = &op;
    in_flight++;
    if (op.co == sched_main())
        main_op = &op;
    /* Park until the completion, and only then: the kernel holds &op and the
     * caller's buffer until it posts it. No wake with an error comes to us:
     * co.c's EDEADLK needs hub_waiting() (in_flight, which counts us) at 0, and
     * a ring broken while we are in flight stops the program (ring_broken()).
     * A wake that brought no completion would just park us again. */
    while (!op.done)
        (void)sched_park(0);
    in_flight--;
    if (main_op == &op)
        main_op = NULL;
    if (writing)                /* fds may have moved (realloc): index it again */
        fds[fd].writer = NULL, fds[fd].writing = NULL;
    else
        fds[fd].reader = NULL, fds[fd].reading = NULL;
    if (op.res >= 0)
        return op.res;          /* done before the cancel reached it: the call happened */
    if (op.cancelled && (op.res == -ECANCELED || op.res == -EINTR))
        errno = op.cancelled;   /* EBADF after co_close, EINTR after a signal */
    else
        errno = -op.res;
    return -1;
}

/* A poll SQE's event mask, as the kernel reads it. The field was 16 bits once,
 * and on a big-endian machine those 16 bits sit in the high half of today's 32:
 * so there the kernel swaps the two halves of what it reads, and we must swap
 * them first (as liburing does). aarch64 and x86-64 are little-endian: nothing. */
static uint32_t poll_mask(uint32_t events)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    events = events << 16 | events >> 16;
#endif
    return events;
}

/* The descriptor is non-blocking (the program's own socket, say) and the kernel
 * gave its EAGAIN back instead of waiting: wait for readiness through the ring,
 * then the caller submits the call again. */
static int wait_ready(int fd, int writing)
{
    struct io_uring_sqe want = { .opcode = IORING_OP_POLL_ADD, .fd = fd,
                                 .poll32_events = poll_mask(writing ? POLLOUT : POLLIN) };
    return io(&want, writing) == -1 ? -1 : 0;
}

static unsigned long accept_misses;     /* co_accept_misses() */

unsigned long co_accept_misses(void)
{
    unsigned long n = accept_misses;
    accept_misses = 0;
    return n;
}

/* Nothing to do: an IORING_OP_ACCEPT on a blocking listening socket already
 * waits with an exclusive poll (io_uring/opdef.c: poll_exclusive), since 5.16. */
int co_exclusive(int fd)
{
    if (fd < 0) {
        errno = EBADF;
        return -1;
    }
    return 0;
}

int co_accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    /* The kernel writes the peer's address and its length when it accepts: both
     * stay alive, in our caller, while we are parked. */
    struct io_uring_sqe want = { .opcode = IORING_OP_ACCEPT, .fd = fd,
                                 .addr = (uintptr_t)addr, .addr2 = (uintptr_t)len,
                                 .accept_flags = SOCK_NONBLOCK };  /* as the epoll hub's */
    /* io_uring's accept waits with an exclusive poll, O_NONBLOCK or not: of several
     * processes, one wakes. A non-blocking listening socket (server -w,
     * ACCEPT=shared) is waited for the readiness way instead, to show the herd: a
     * plain poll, which wakes every process polling it, then accept4(), which
     * cannot block and may find the client taken by another (EAGAIN: counted). */
    int flags = fcntl(fd, F_GETFL);
    if (flags == -1)
        return -1;
    for (int woke = 0;; woke = 1) {
        long conn = flags & O_NONBLOCK ? accept4(fd, addr, len, SOCK_NONBLOCK) : io(&want, 0);
        if (conn >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            return (int)conn;   /* EMFILE, ECONNABORTED...: the caller decides */
        accept_misses += (unsigned long)woke;   /* woken for a client another process took */
        if (wait_ready(fd, 0) == -1)
            return -1;
    }
}

int co_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    /* The kernel copies the address when it takes the SQE; off is its length. */
    struct io_uring_sqe want = { .opcode = IORING_OP_CONNECT, .fd = fd,
                                 .addr = (uintptr_t)addr, .off = len };
    /* The kernel waits for the handshake itself; on a non-blocking socket it may
     * answer EINPROGRESS instead: then writable means decided, and asking again
     * tells how (EISCONN is success), as in the epoll hub. */
    for (int tried = 0;; tried = 1) {
        if (io(&want, 1) == 0 || (tried && errno == EISCONN))
            return 0;
        if (errno != EINPROGRESS && errno != EALREADY && errno != EAGAIN)
            return -1;
        if (wait_ready(fd, 1) == -1)
            return -1;
    }
}

/* The whole recv is the kernel's: it waits for data and copies it into buf
 * (which the parked caller keeps alive), and we wake with the byte count.
 * MSG_WAITALL is the kernel's too: io_uring receives again for the rest. */
ssize_t co_recv(int fd, void *buf, size_t len, int flags)
{
    /* ... which with MSG_PEEK peeks the same bytes again after them ("hello"
     * peeked into 10 bytes: "hellohello"). One peek, then, as the readiness hub. */
    if (flags & MSG_PEEK)
        flags &= ~MSG_WAITALL;
    struct io_uring_sqe want = { .opcode = IORING_OP_RECV, .fd = fd, .addr = (uintptr_t)buf,
                                 .len = len > UINT_MAX ? UINT_MAX : (unsigned)len,
                                 .msg_flags = (unsigned)flags };
    for (;;) {
        long n = io(&want, 0);
        if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            return n;           /* ECONNRESET and the like: the caller's to handle */
        if (flags & MSG_DONTWAIT)
            return -1;          /* the caller asked not to wait: EAGAIN is its answer */
        if (wait_ready(fd, 0) == -1)
            return -1;
    }
}

/* io_uring's send always adds MSG_NOSIGNAL: a stream whose peer has gone
 * answers EPIPE and raises nothing. send() would raise SIGPIPE at the caller
 * (on a stream socket, TCP or AF_UNIX, unless MSG_NOSIGNAL; a datagram's EPIPE
 * raises nothing), and a program may count on it: at its default it ends the
 * program, as it does one that calls send(). So we raise it, as the kernel
 * would have: before the call returns. */
static void raise_sigpipe(int fd, int flags)
{
    int type;
    socklen_t len = sizeof type;
    if (flags & MSG_NOSIGNAL)
        return;
    /* Fails only if fd is not a socket, which send's EPIPE says it is. */
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == -1 || type != SOCK_STREAM)
        return;
    (void)raise(SIGPIPE);       /* fails only for a bad signal number */
}

/* May send less than asked, as send() may: the caller loops. */
ssize_t co_send(int fd, const void *buf, size_t len, int flags)
{
    struct io_uring_sqe want = { .opcode = IORING_OP_SEND, .fd = fd, .addr = (uintptr_t)buf,
                                 .len = len > UINT_MAX ? UINT_MAX : (unsigned)len,
                                 .msg_flags = (unsigned)flags };
    for (;;) {
        long n = io(&want, 1);
        if (n == -1 && errno == EPIPE) {
            raise_sigpipe(fd, flags);
            errno = EPIPE;      /* what the call returns, whatever the handler did */
            return -1;
        }
        if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            return n;           /* ECONNRESET: the peer is gone */
        if (flags & MSG_DONTWAIT)
            return -1;          /* as in co_recv: EAGAIN is the answer */
        if (wait_ready(fd, 1) == -1)
            return -1;
    }
}

/* ---- the hub's round ---- */

int hub_waiting(void)
{
    return in_flight;
}

static void take_signals(void);

/* io_uring_enter failed in a way that no retry mends: ring_fd is not our ring
 * any more (EBADF, EOPNOTSUPP: a plain close() of a stale number took it), the
 * kernel lost a completion (EBADR: hub_init() says when; we cannot tell whose,
 * and the kernel answers EBADR from then on), or we passed it nonsense (EFAULT,
 * EINVAL). Nothing queued will complete. With no coroutine in flight, the hub
 * reports it as the epoll hub does: co.c hands it to the main coroutine's wait,
 * the program's die() prints it, and every IO call fails with it from then on.
 * With one in flight, nobody can be told: a parked call returns only with its
 * completion (until then the kernel may write into its caller's buffer), and
 * none will come; returning anyway hands the kernel a stack frame that is
 * gone, and waiting leaves the program spinning here, deaf to SIGINT (whose
 * wake-up is a completion too). So the runtime stops the program, in one line
 * and exit 1, here and only here: its second exit, beside unavailable(). */
static int ring_broken(void)
{
    ring_error = errno;
    if (in_flight == 0)
        return -1;
    fprintf(stderr, "io_uring_enter: %s\n", ring_error == EBADR
            ? "a completion was lost (EBADR: the kernel had no memory to keep it)"
            : strerror(ring_error));
    exit(1);
}

/* One io_uring_enter for the whole round: it submits everything the coroutines
 * queued since the last one and waits (unless timeout_ms is 0) for at least one
 * completion, the time limit riding along (EXT_ARG): no timer of our own. */
int hub_wait(int timeout_ms)
{
    if (sigread.done)
        take_signals();         /* reaped outside a round, by a full SQ's submit */
    /* Completions already posted: just take them. */
    int wait = timeout_ms != 0
        && __atomic_load_n(cq_tail, __ATOMIC_ACQUIRE) == *cq_head;
    if (submit(wait, timeout_ms) == -1 && errno != EINTR && errno != ETIME
            && errno != EBUSY && errno != EAGAIN)
        return ring_broken();   /* the ring itself is broken */
    /* EINTR: a signal, whose byte completes sigread; ETIME: a sleeper is due;
     * EBUSY, EAGAIN: too many unreaped, which is what we do now. */
    reap();
    if (sigread.done)
        take_signals();
    return 0;
}

/* ---- cancellation ---- */

/* Ask the kernel to cancel op; its own completion then comes with -ECANCELED
 * (or its result, if it was done first), and io() returns why. */
static int cancel(struct op *op, int why)
{
    struct io_uring_sqe *sqe = get_sqe();
    if (sqe == NULL)
        return -1;
    op->cancelled = why;
    sqe->opcode = IORING_OP_ASYNC_CANCEL;
    sqe->addr = (uintptr_t)op;          /* the user_data to look for */
    sqe->user_data = 0;                 /* its own completion: ignored */
    queue_sqe();
    return 0;
}

/* The kernel holds its own reference to a file under an operation, so close()
 * alone would not end the operation (nor send the FIN): cancel them first, and
 * submit now, so that no number reused after the close can meet an operation
 * still queued for the old file. The parked callers return -1, EBADF. (A plain
 * close() under a parked operation therefore leaves it parked until the peer
 * acts: with this hub too, co_close() is the way to close. Nothing else of a
 * number is remembered, so its reuse after a plain close() is no concern.) */
int co_close(int fd)
{
    if (fd >= 0 && fd < nfds && (fds[fd].reading || fds[fd].writing)) {
        int queued = 0;
        if (fds[fd].reading && cancel(fds[fd].reading, EBADF) == 0)
            queued = 1;
        if (fds[fd].writing && cancel(fds[fd].writing, EBADF) == 0)
            queued = 1;
        while (queued && submit(0, -1) == -1) {
            if (errno == EBUSY || errno == EAGAIN)
                reap();
            else if (errno != EINTR)
                break;          /* the ring is broken: the next round reports it */
        }
    }
    return close(fd);
}

/* ---- signals ---- */

/* The read that waits for a handler's byte. (The pipe's read end is blocking:
 * on a non-blocking one the kernel would answer EAGAIN instead of waiting.) */
static int arm_signals(void)
{
    struct io_uring_sqe *sqe = get_sqe();
    if (sqe == NULL)
        return -1;
    sigread.done = 0;
    sqe->opcode = IORING_OP_READ;
    sqe->fd = sigpipe[0];
    sqe->addr = (uintptr_t)sigbuf;
    sqe->len = sizeof sigbuf;
    sqe->off = (uint64_t)-1;            /* a pipe: from where it is */
    sqe->user_data = (uintptr_t)&sigread;
    queue_sqe();
    return 0;
}

/* A handler ran (its byte came): end the main coroutine's wait with EINTR, as
 * the kernel would interrupt the main thread's blocked call. Parked in an
 * operation, its wait ends when the cancelled operation completes. */
static void take_signals(void)
{
    int interrupt = 0;
    for (int i = 0; i < sigread.res; i++)       /* <= 0: nothing read */
        if (!(handlers[sigbuf[i]].sa_flags & SA_RESTART))
            interrupt = 1;
    if (interrupt && main_op != NULL) {
        /* Done already (woken, not yet run): it returns its result, as a call
         * the signal came too late for; the program's flag is set all the same. */
        if (!main_op->done && !main_op->cancelled)
            (void)cancel(main_op, EINTR);       /* fails only with the ring broken */
    } else if (interrupt) {
        sched_interrupt();      /* a sleep (co_sleep_ms) */
    }
    /* Read the next one. If that fails the ring is broken, and so is the hub. */
    (void)arm_signals();
}

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

/* The self-pipe, made at the first handler: only the write end non-blocking
 * (a handler must never block; the ring's read waits on the read end). */
static int open_sigpipe(void)
{
    int flags;
    if (sigpipe[0] != -1)
        return 0;
    if (pipe2(sigpipe, O_CLOEXEC) == -1)
        return -1;
    /* F_GETFL first: F_SETFL sets every status flag at once, not just ours. */
    if ((flags = fcntl(sigpipe[1], F_GETFL)) == -1
            || fcntl(sigpipe[1], F_SETFL, flags | O_NONBLOCK) == -1 || arm_signals() == -1) {
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
