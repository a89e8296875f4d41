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
 *
 * Two forms. The first form is all of the above: one SQE per call, the kernel
 * copying into the caller's own buffer (model 5 at its purest). The modern form
 * (the default) adds what io_uring has served sockets with since Linux 5.19-6.1,
 * each feature probed in hub_init(), each refused one said in one line on
 * stderr, and each switchable off at run time for the benchmark's ablation:
 *   accept   a multishot accept: one SQE per listening socket, not per client;
 *   recv     a multishot recv into a provided buffer ring: the recv stays armed
 *            like an epoll registration, the kernel picks one of the hub's
 *            buffers, and the hub copies it out (into the parked caller's
 *            buffer, or a per-connection queue capped at QUEUE_MAX) and gives
 *            it back at once: see "standing requests" below;
 *   defer    IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN: the kernel finishes
 *            completions only when the hub asks (GETEVENTS), never by
 *            interrupting it; where refused, COOP_TASKRUN (| TASKRUN_FLAG);
 *   coop     COOP_TASKRUN alone (used when defer is off or refused);
 *   ringfd   a registered ring descriptor (IORING_REGISTER_RING_FDS): each
 *            io_uring_enter skips the lookup of the ring's file.
 * Environment: URING=first runs the first form; URING_OFF=accept,recv,... turns
 * those features off; URING_BUFS=N (a power of two, default 512) sizes the
 * buffer ring and URING_CQ=N (a power of two, default 16384) the completion
 * queue, so that tests can force the ring out of buffers or the CQ to overflow.
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
#define BUF_SIZE 2048           /* one provided buffer: 08's server reads 2 KiB at a time */
#define BUF_COUNT 512           /* buffers in the ring (1 MiB), whatever the connections */
#define BUF_GROUP 0             /* the ring's group id: we have one */
#define QUEUE_MAX (64 * 1024)   /* received, not yet taken, per connection: 04-07's cap */
#define ACCEPT_MAX 64           /* accepted, not yet taken, per listening socket */

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
    struct rx *rx;              /* the modern form's standing request, if any */
};

/* ---- the modern form: standing requests ----
 * A multishot recv (or accept) is one request that stays in the kernel and
 * posts a completion each time data (a connection) comes, like an epoll
 * registration that also does the read. Unlike an op, it outlives any one call,
 * so it cannot live on a caller's stack: it is a struct rx in the heap, its
 * address (with the low bit set, which no op's has) its user_data. It is
 * freed only once its last completion (the one without IORING_CQE_F_MORE) has
 * come, whatever co_close() did before: the kernel may still name it until then.
 *
 * Where the received bytes go: the kernel puts them in a buffer of the hub's
 * ring and the hub copies them out at once, into the parked co_recv()'s buffer
 * if one waits, the rest into this connection's queue (taken from the heap
 * while bytes wait, freed when they are taken), and gives the buffer back to
 * the ring. So a ring buffer is never held across a park: a client that never
 * reads cannot empty the ring for the others (liburing's echo-server lets it),
 * and what it costs is bounded by its queue: at QUEUE_MAX the request is
 * cancelled (the socket then fills, and TCP stops the sender), and armed again
 * once the queue has drained to half. */
struct rxwait {                 /* a co_recv() or co_accept() parked on a struct rx */
    struct co *co;
    char *buf;                  /* co_recv: where to copy (the caller's buffer) */
    size_t len;
    int peek;                   /* MSG_PEEK: leave the bytes queued */
    ssize_t got;                /* bytes copied into buf while parked */
    int done, err;              /* woken; with this errno (EBADF: co_close, EINTR) */
};

struct rx {
    int fd;                     /* -1 after co_close(): what still comes is dropped */
    int listening;              /* a multishot accept, not a recv */
    int armed;                  /* the kernel holds the request */
    int cancelling;             /* a cancel for it is queued or done */
    int listed;                 /* on the settle list */
    int eof;                    /* a recv returned 0: every later call returns 0 */
    int first;                  /* not a stream socket: its recv is the first form's */
    int err;                    /* an error the next call returns (positive errno) */
    struct rxwait *waiting;
    struct co *co;              /* waiting's coroutine, named in the heap (see fdslot) */
    struct rx *next;            /* on the settle list */
    struct rx *cprev, *cnext;   /* on the closing list, once co_close()d */
    char *q;                    /* recv: bytes received, not taken: q[qhead..qhead+qlen) */
    size_t qhead, qlen, qsize;
    int *fq;                    /* accept: descriptors accepted, not taken */
    unsigned fqlen, fqsize;
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
static struct rxwait *main_rx;          /* the same, parked on a standing request */

/* The modern form: which features are on (probed, and not switched off). */
static int use_accept, use_recv, use_defer, use_coop, use_ringfd;
static int enter_fd = -1;               /* ring_fd, or its registered index (ringfd) */
static unsigned enter_flags;            /* IORING_ENTER_REGISTERED_RING with ringfd */
static struct io_uring_buf_ring *bufring;   /* the provided buffers' ring (recv) */
static char *bufbase;                   /* buffer bid is bufbase + bid * BUF_SIZE */
static unsigned nbufs;
static unsigned short buftail;          /* our tail of bufring: buffers given */
static struct rx *settle_list;          /* standing requests to arm, cancel or free */
/* Closed, their last completion still to come: nobody else names them but the
 * kernel, and LeakSanitizer would take one left at exit for a leak. */
static struct rx *closing;

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
    return (int)syscall(__NR_io_uring_enter, enter_fd, to_submit, min_complete,
                        flags | enter_flags, arg, argsz);
}

static int io_uring_register(unsigned opcode, void *arg, unsigned nr_args)
{
    return (int)syscall(__NR_io_uring_register, ring_fd, opcode, arg, nr_args);
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

/* URING=first, or URING_OFF=a,b,... naming this feature: it stays off. */
static int switched_off(const char *name)
{
    const char *form = getenv("URING"), *p = getenv("URING_OFF");
    size_t n = strlen(name);
    if (form != NULL && strcmp(form, "first") == 0)
        return 1;
    while (p != NULL && *p != '\0') {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0)
            return 1;
        p = comma ? comma + 1 : NULL;
    }
    return 0;
}

/* URING_BUFS, URING_CQ: a power of two from 1 to max; anything else is said
 * in one line, and the default used. */
static unsigned power_of_two(const char *var, unsigned def, unsigned max)
{
    const char *v = getenv(var);
    char *end;
    if (v == NULL || *v == '\0')
        return def;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (errno != 0 || *end != '\0' || n == 0 || n > max || (n & (n - 1)) != 0) {
        fprintf(stderr, "io_uring: %s=%s is not a power of two from 1 to %u: %u instead\n",
                var, v, max, def);
        return def;
    }
    return (unsigned)n;
}

/* The kernel said no (errno) to a feature: one line, and what we do instead. */
static void refused(const char *what, const char *instead)
{
    fprintf(stderr, "io_uring: %s refused by this kernel (%s): %s\n", what,
            strerror(errno), instead);
}

/* io_uring_setup with the task-run flags asked for, dropping what the kernel
 * refuses (EINVAL: a flag it does not know), DEFER_TASKRUN first. The CQ must
 * hold at least as many entries as the SQ: a small URING_CQ shrinks the SQ too. */
static int setup(unsigned cq, struct io_uring_params *p)
{
    unsigned sq = cq < SQ_ENTRIES ? cq : SQ_ENTRIES;
    for (;;) {
        memset(p, 0, sizeof *p);
        p->flags = IORING_SETUP_CQSIZE;
        p->cq_entries = cq;
        if (use_defer)          /* DEFER_TASKRUN requires SINGLE_ISSUER: we are one thread */
            p->flags |= IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
        else if (use_coop)
            p->flags |= IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
        int fd = io_uring_setup(sq, p);         /* close-on-exec by itself */
        if (fd != -1 || errno != EINVAL || (!use_defer && !use_coop))
            return fd;
        if (use_defer) {
            refused("IORING_SETUP_DEFER_TASKRUN (Linux 6.1)",
                    use_coop ? "COOP_TASKRUN instead" : "completions run when they come");
            use_defer = 0;
        } else {
            refused("IORING_SETUP_COOP_TASKRUN (Linux 5.19)", "completions run when they come");
            use_coop = 0;
        }
    }
}

/* IORING_REGISTER_PROBE: whether the kernel knows opcode op. */
static int has_op(const struct io_uring_probe *probe, unsigned op)
{
    return probe != NULL && op <= probe->last_op
        && (probe->ops[op].flags & IO_URING_OP_SUPPORTED) != 0;
}

/* Give buffer bid back to the ring, at our tail. Field by field: the ring's
 * tail lives in the first entry's last two bytes (struct io_uring_buf_ring),
 * which a whole-struct store would overwrite. release: the kernel reads the
 * tail with acquire, then the entries before it. */
static void give_back(unsigned bid)
{
    struct io_uring_buf *b = &bufring->bufs[buftail & (nbufs - 1)];
    b->addr = (uintptr_t)(bufbase + (size_t)bid * BUF_SIZE);
    b->len = BUF_SIZE;
    b->bid = (unsigned short)bid;
    buftail++;
    __atomic_store_n(&bufring->tail, buftail, __ATOMIC_RELEASE);
}

/* The provided buffers (IORING_REGISTER_PBUF_RING, 5.19): a ring of n entries
 * (page-aligned, as the kernel wants) naming n buffers of BUF_SIZE, all given
 * at the start. Their pages are touched only as the kernel fills them. */
static int setup_buffers(unsigned n)
{
    size_t ring_len = n * sizeof(struct io_uring_buf), len = (size_t)n * BUF_SIZE;
    void *ring = mmap(NULL, ring_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ring == MAP_FAILED)
        return -1;
    char *base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct io_uring_buf_reg reg = { .ring_addr = (uintptr_t)ring, .ring_entries = n,
                                    .bgid = BUF_GROUP };
    if (base == MAP_FAILED || io_uring_register(IORING_REGISTER_PBUF_RING, &reg, 1) == -1) {
        int saved = errno;
        if (base != MAP_FAILED)
            (void)munmap(base, len);
        (void)munmap(ring, ring_len);
        errno = saved;
        return -1;
    }
    bufring = ring;
    bufbase = base;
    nbufs = n;
    for (unsigned bid = 0; bid < n; bid++)
        give_back(bid);
    return 0;
}

/* After the ring is made: which of the modern form's features this kernel has.
 * Multishot accept came in 5.19 with IORING_OP_SOCKET, multishot recv in 6.0
 * with IORING_OP_SEND_ZC; the probe knows opcodes, not flags, so those two
 * opcodes stand for them. (Not an EINVAL in a multishot's completion: a
 * listener shut down, as 01's threads-server does to stop, says EINVAL too.) */
static void probe_features(unsigned bufs)
{
    unsigned n = IORING_OP_LAST + 16;
    struct io_uring_probe *probe = calloc(1, sizeof *probe + n * sizeof probe->ops[0]);
    if (probe != NULL && io_uring_register(IORING_REGISTER_PROBE, probe, n) == -1) {
        free(probe);            /* EINVAL on 5.5: as if it knew nothing new */
        probe = NULL;
    }
    if (use_accept && !has_op(probe, IORING_OP_SOCKET)) {
        errno = EINVAL;
        refused("multishot accept (Linux 5.19)", "one accept per call");
        use_accept = 0;
    }
    if (use_recv && !has_op(probe, IORING_OP_SEND_ZC)) {
        errno = EINVAL;
        refused("multishot recv (Linux 6.0)", "one recv per call");
        use_recv = 0;
    }
    free(probe);
    if (use_recv && setup_buffers(bufs) == -1) {
        refused("a provided buffer ring (IORING_REGISTER_PBUF_RING, Linux 5.19)",
                "one recv per call");
        use_recv = 0;
    }
    if (use_ringfd) {
        /* offset -1: the kernel picks the slot, and says which in offset. */
        struct io_uring_rsrc_update up = { .offset = (unsigned)-1, .data = (unsigned)ring_fd };
        if (io_uring_register(IORING_REGISTER_RING_FDS, &up, 1) == 1) {
            enter_fd = (int)up.offset;
            enter_flags = IORING_ENTER_REGISTERED_RING;
        } else {
            refused("a registered ring descriptor (Linux 5.18)", "the ring's own descriptor");
            use_ringfd = 0;
        }
    }
}

int hub_init(void)
{
    struct io_uring_params p;
    use_accept = !switched_off("accept");
    use_recv = !switched_off("recv");
    use_defer = !switched_off("defer");
    use_coop = !switched_off("coop");
    use_ringfd = !switched_off("ringfd");
    unsigned bufs = power_of_two("URING_BUFS", BUF_COUNT, 32768);
    ring_fd = setup(power_of_two("URING_CQ", CQ_ENTRIES, 65536), &p);
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
    enter_fd = ring_fd;
    probe_features(bufs);
    return 0;
}

enum { SUBMIT, LOOK, WAIT };     /* what submit() does besides submitting */

/* Submit what is queued; with LOOK, also have the kernel finish the completions
 * it holds back for us (DEFER_TASKRUN, or COOP_TASKRUN's IORING_SQ_TASKRUN);
 * with WAIT, also wait for one completion at least, at most timeout_ms (-1: no
 * limit). -1 with errno: EINTR (a signal), EBUSY or EAGAIN (the kernel holds
 * too many completions we have not reaped: reap first), ETIME (the time is up,
 * nothing completed), or a real error. */
static int submit(int mode, int timeout_ms)
{
    int wait = mode == WAIT;
    /* acquire: the head the kernel moved past SQEs it has finished reading. */
    unsigned to_submit = sq_next - __atomic_load_n(sq_head, __ATOMIC_ACQUIRE);
    unsigned flags = 0, sqf = __atomic_load_n(sq_flags, __ATOMIC_RELAXED);
    /* Completions the CQ had no room for wait in the kernel; GETEVENTS moves them
     * in. With DEFER_TASKRUN the kernel finishes nothing until we pass GETEVENTS;
     * with COOP_TASKRUN it tells us (TASKRUN) that it has work we should let run. */
    if (wait || (sqf & IORING_SQ_CQ_OVERFLOW)
            || (mode == LOOK && (use_defer || (sqf & IORING_SQ_TASKRUN))))
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

static void standing(struct rx *rx, int res, unsigned flags);

/* Take every completion the kernel has posted, and wake their coroutines. */
static void reap(void)
{
    unsigned head = *cq_head;   /* only we write it */
    /* acquire: the kernel wrote the CQEs before it moved the tail past them. */
    unsigned tail = __atomic_load_n(cq_tail, __ATOMIC_ACQUIRE);
    for (; head != tail; head++) {
        const struct io_uring_cqe *cqe = &cqes[head & cq_mask];
        uint64_t data = cqe->user_data;
        if (data & 1)           /* a struct rx: a multishot's, see "standing requests" */
            standing((struct rx *)(uintptr_t)(data - 1), cqe->res, cqe->flags);
        else if (data != 0)     /* 0: a cancel's own completion, nothing to do */
            complete((struct op *)(uintptr_t)data, cqe->res);
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
        if (submit(SUBMIT, -1) == -1) {
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

/* ---- the modern form: standing requests (see struct rx above) ---- */

#define FIRST_FORM (-2)         /* recv_standing(), accept_standing(): use the first form */

static void free_rx(struct rx *rx)
{
    if (rx->fd < 0) {           /* off the closing list */
        if (rx->cprev)
            rx->cprev->cnext = rx->cnext;
        else
            closing = rx->cnext;
        if (rx->cnext)
            rx->cnext->cprev = rx->cprev;
    }
    free(rx->q);
    free(rx->fq);
    free(rx);
}

/* Put the request in the kernel's hands again. */
static int arm(struct rx *rx)
{
    struct io_uring_sqe *sqe = get_sqe();
    if (sqe == NULL)
        return -1;
    sqe->fd = rx->fd;
    if (rx->listening) {
        sqe->opcode = IORING_OP_ACCEPT;
        sqe->ioprio = IORING_ACCEPT_MULTISHOT;
        sqe->accept_flags = SOCK_NONBLOCK;      /* as the first form's */
    } else {
        /* No buffer of ours: the kernel takes one of group BUF_GROUP per completion. */
        sqe->opcode = IORING_OP_RECV;
        sqe->ioprio = IORING_RECV_MULTISHOT;
        sqe->flags = IOSQE_BUFFER_SELECT;
        sqe->buf_group = BUF_GROUP;
    }
    sqe->user_data = (uintptr_t)rx + 1;
    queue_sqe();
    rx->armed = 1;
    rx->cancelling = 0;
    return 0;
}

/* Ask the kernel to end the request; its last completion (no F_MORE) says when. */
static int stop(struct rx *rx)
{
    struct io_uring_sqe *sqe = get_sqe();
    if (sqe == NULL)
        return -1;
    sqe->opcode = IORING_OP_ASYNC_CANCEL;
    sqe->addr = (uintptr_t)rx + 1;
    sqe->user_data = 0;
    queue_sqe();
    rx->cancelling = 1;
    return 0;
}

/* What the request should be now, done: armed while there is room for what it
 * brings and nothing ended it, cancelled when its queue is full, freed once
 * closed and finished. reap() cannot do this itself (get_sqe() may reap), so it
 * lists the requests, and hub_wait() settles them after each reap. */
static void settle(struct rx *rx)
{
    if (rx->fd < 0) {           /* co_close()d */
        if (!rx->armed)
            free_rx(rx);
        else if (!rx->cancelling)
            (void)stop(rx);     /* fails only with the ring broken */
        return;
    }
    int full = rx->listening ? rx->fqlen >= ACCEPT_MAX : rx->qlen >= QUEUE_MAX;
    int room = rx->listening ? rx->fqlen < ACCEPT_MAX / 2 : rx->qlen <= QUEUE_MAX / 2;
    if (rx->armed && full && !rx->cancelling)
        (void)stop(rx);
    else if (!rx->armed && room && !rx->eof && rx->err == 0)
        (void)arm(rx);          /* fails only with the ring broken: the call will say */
}

static void to_settle(struct rx *rx)
{
    if (!rx->listed) {
        rx->listed = 1;
        rx->next = settle_list;
        settle_list = rx;
    }
}

static void settle_all(void)
{
    while (settle_list != NULL) {
        struct rx *rx = settle_list;
        settle_list = rx->next;
        rx->listed = 0;
        settle(rx);             /* may free rx */
    }
}

/* Wake the call parked on rx, if any, with err (0: look again). */
static void wake_rx(struct rx *rx, int err)
{
    struct rxwait *w = rx->waiting;
    if (w == NULL || w->done)
        return;
    w->done = 1;
    w->err = err;
    sched_wake(w->co, 0);
}

/* n bytes received: into the parked caller's buffer first, the rest queued. */
static void deliver(struct rx *rx, const char *data, size_t n)
{
    struct rxwait *w = rx->waiting;
    if (w != NULL && !w->done && !w->peek && rx->qlen == 0) {
        size_t k = n < w->len ? n : w->len;
        memcpy(w->buf, data, k);
        w->got = (ssize_t)k;
        wake_rx(rx, 0);
        data += k;
        n -= k;
    }
    if (n == 0)
        return;
    if (rx->qhead + rx->qlen + n > rx->qsize) {
        /* Move what is queued to the front; grow if that is not room enough. */
        if (rx->qhead > 0)
            memmove(rx->q, rx->q + rx->qhead, rx->qlen);
        rx->qhead = 0;
        if (rx->qlen + n > rx->qsize) {
            size_t size = rx->qsize ? rx->qsize : BUF_SIZE;
            while (size < rx->qlen + n)
                size *= 2;
            char *grown = realloc(rx->q, size);
            if (grown == NULL) {        /* the bytes cannot be kept: the call says so */
                rx->err = ENOMEM;
                wake_rx(rx, 0);
                return;
            }
            rx->q = grown;
            rx->qsize = size;
        }
    }
    memcpy(rx->q + rx->qhead + rx->qlen, data, n);
    rx->qlen += n;
    wake_rx(rx, 0);
}

/* One completion of a standing request. */
static void standing(struct rx *rx, int res, unsigned flags)
{
    /* Without F_MORE the request is over, whatever the reason (an error, a
     * cancel, EOF, or the CQ overflowing): settle() arms it again if it should. */
    if (!(flags & IORING_CQE_F_MORE)) {
        rx->armed = 0;
        to_settle(rx);
    }
    /* A buffer is ours only if the completion says so (F_BUFFER): an error or an
     * EOF carries none, and its flags' upper bits are not a buffer id (frevib's
     * echo server gave buffer 0 back on those, and two clients got each
     * other's bytes). It goes back to the ring at once, its bytes copied out. */
    if (flags & IORING_CQE_F_BUFFER) {
        unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
        if (res > 0 && rx->fd >= 0)
            deliver(rx, bufbase + (size_t)bid * BUF_SIZE, (size_t)res);
        give_back(bid);
        if (rx->qlen >= QUEUE_MAX)
            to_settle(rx);      /* over the cap: stop receiving until it drains */
        if (res > 0)
            return;
    }
    if (rx->listening && res >= 0) {
        if (rx->fd < 0) {       /* co_close()d: nobody will take it */
            (void)close(res);
            return;
        }
        if (rx->fqlen == rx->fqsize) {
            /* At ACCEPT_MAX the request is cancelled, but what the kernel accepted
             * before the cancel reached it still comes: room for it, not a close. */
            unsigned size = rx->fqsize ? 2 * rx->fqsize : ACCEPT_MAX;
            int *grown = realloc(rx->fq, size * sizeof *grown);
            if (grown == NULL) {        /* no memory: the client sees a close */
                (void)close(res);
                return;
            }
            rx->fq = grown;
            rx->fqsize = size;
        }
        rx->fq[rx->fqlen++] = res;
        if (rx->fqlen >= ACCEPT_MAX)
            to_settle(rx);
        wake_rx(rx, 0);
        return;
    }
    if (rx->fd < 0)
        return;
    if (res == 0) {             /* a recv's EOF */
        rx->eof = 1;
    } else if (res != -ENOBUFS && res != -ECANCELED) {
        /* -ENOBUFS: the ring was empty when data came: the data is still in the
         * socket, and settle() arms the request again after this reap, which has
         * given buffers back. -ECANCELED: we stopped it (its queue was full). */
        rx->err = -res;
    }
    wake_rx(rx, 0);
}

/* Park on rx until a completion or a co_close() or a signal wakes us. */
static int park_rx(struct rx *rx, struct rxwait *w)
{
    rx->waiting = w;
    rx->co = w->co;
    in_flight++;
    if (w->co == sched_main())
        main_rx = w;
    while (!w->done)
        (void)sched_park(0);
    in_flight--;
    if (main_rx == w)
        main_rx = NULL;
    if (w->err != 0) {          /* co_close() (rx may be gone) or a signal */
        if (w->err == EINTR)
            rx->waiting = NULL, rx->co = NULL;
        errno = w->err;
        return -1;
    }
    rx->waiting = NULL;
    rx->co = NULL;
    return 0;
}

static struct rx *close_rx(int fd);

/* A number the program closed with plain close() and that came back for a new
 * file: what we kept for the old one is not the new one's (the old file lives
 * on in the kernel, held by its multishot, until the cancel). We see it come
 * back where a socket starts: from accept, at connect, as a listener. (A
 * socketpair() given straight to co_recv() after a plain close() of its number
 * is not seen: close with co_close(), as co.h says.) */
static void forget(int fd)
{
    if (fd >= 0 && fd < nfds && fds[fd].rx != NULL)
        (void)close_rx(fd);
}

/* The standing request of fd (new ones start unarmed), or NULL with errno, or
 * NULL with errno 0: serve this descriptor with the first form. */
static struct rx *rx_of(int fd, int listening)
{
    if (ring_error != 0) {
        errno = ring_error;
        return NULL;
    }
    if (fd < 0) {
        errno = EBADF;
        return NULL;
    }
    if (grow(fd) == -1)
        return NULL;
    struct rx *rx = fds[fd].rx;
    if (rx != NULL && rx->listening != listening && rx->waiting == NULL) {
        forget(fd);             /* a recv's number became a listener's, or back */
        rx = NULL;
    }
    if (rx == NULL) {
        /* A byte stream only: a datagram's (or SEQPACKET's) boundaries would be
         * lost in our queue. Asked once per descriptor, not per call. */
        int type = SOCK_STREAM;
        socklen_t tlen = sizeof type;
        if (!listening && getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) == -1) {
            errno = 0;          /* not a socket, or not open: the first form says so */
            return NULL;
        }
        if ((rx = calloc(1, sizeof *rx)) == NULL)
            return NULL;
        rx->fd = fd;
        rx->listening = listening;
        rx->first = type != SOCK_STREAM;
        fds[fd].rx = rx;
    }
    if (rx->waiting != NULL || rx->listening != listening || fds[fd].reader != NULL) {
        errno = EBUSY;          /* one reader at a time, as the first form */
        return NULL;
    }
    if (rx->first) {
        errno = 0;
        return NULL;
    }
    return rx;
}

/* The queued bytes to buf: taken, or (peek) left. */
static size_t take(struct rx *rx, char *buf, size_t len, int peek)
{
    size_t k = len < rx->qlen ? len : rx->qlen;
    if (k == 0)
        return 0;               /* a zero-length recv: 0, as recv() gives */
    memcpy(buf, rx->q + rx->qhead, k);
    if (peek)
        return k;
    rx->qhead += k;
    rx->qlen -= k;
    if (rx->qlen == 0) {        /* drained: the memory goes back (an idle connection's is 0) */
        free(rx->q);
        rx->q = NULL;
        rx->qhead = rx->qsize = 0;
    }
    if (!rx->armed)
        settle(rx);             /* below half its cap: receive again */
    return k;
}

/* co_recv on a multishot recv: what is queued, or park until something comes.
 * One call's worth: MSG_WAITALL loops in co_recv(). */
static ssize_t recv_standing(int fd, char *buf, size_t len, int flags)
{
    struct rx *rx = rx_of(fd, 0);
    int peek = (flags & MSG_PEEK) != 0, looked = 0;
    if (rx == NULL)
        return errno == 0 ? FIRST_FORM : -1;
    for (;;) {
        if (rx->qlen > 0 || len == 0) {
            size_t k = take(rx, buf, len, peek);
            sched_spend();      /* no wait: after a few, let the others run */
            return (ssize_t)k;
        }
        if (rx->err != 0) {     /* after what was received before it, as recv() */
            errno = rx->err;
            if (!peek)
                rx->err = 0;    /* said once; the next call asks the kernel again */
            return -1;
        }
        if (rx->eof)
            return 0;
        if (!rx->armed && arm(rx) == -1)
            return -1;
        if (flags & MSG_DONTWAIT) {
            /* What the kernel has for us, without waiting: one look, then EAGAIN. */
            if (looked) {
                errno = EAGAIN;
                return -1;
            }
            looked = 1;
            if (submit(LOOK, -1) == -1 && errno != EINTR && errno != EBUSY && errno != EAGAIN)
                return -1;
            reap();
            continue;
        }
        struct rxwait w = { .co = co_self(), .buf = buf, .len = len, .peek = peek };
        if (park_rx(rx, &w) == -1)
            return -1;
        if (w.got > 0) {
            sched_refill();
            return w.got;
        }
    }
}

/* co_accept on a multishot accept: a descriptor accepted already, or park. The
 * peer's address is not in a multishot's completion: getpeername() asks. */
static int accept_standing(int fd, struct sockaddr *addr, socklen_t *len)
{
    struct rx *rx = rx_of(fd, 1);
    if (rx == NULL)
        return errno == 0 ? FIRST_FORM : -1;
    for (;;) {
        if (rx->fqlen > 0) {
            int conn = rx->fq[0];
            memmove(rx->fq, rx->fq + 1, --rx->fqlen * sizeof *rx->fq);
            if (!rx->armed)
                settle(rx);
            /* ENOTCONN: the peer reset it already; accept() would have given the
             * address, but the connection is as good as gone: an empty address. */
            if (addr != NULL && len != NULL && getpeername(conn, addr, len) == -1)
                *len = 0;
            forget(conn);
            sched_spend();
            return conn;
        }
        if (rx->err != 0) {     /* EMFILE and the like: the caller decides, then asks again */
            errno = rx->err;
            rx->err = 0;
            return -1;
        }
        if (!rx->armed && arm(rx) == -1)
            return -1;
        struct rxwait w = { .co = co_self() };
        if (park_rx(rx, &w) == -1)
            return -1;
        sched_refill();
    }
}

/* co_close(fd) of a standing request: the parked call returns EBADF, what was
 * queued goes, and the request is cancelled; freed when its last completion
 * comes (settle()). Returns it if that completion is still to come. */
static struct rx *close_rx(int fd)
{
    struct rx *rx = fds[fd].rx;
    fds[fd].rx = NULL;
    wake_rx(rx, EBADF);
    rx->waiting = NULL;
    rx->co = NULL;
    for (unsigned i = 0; i < rx->fqlen; i++)
        (void)close(rx->fq[i]);         /* accepted, never taken: nobody else has them */
    rx->fqlen = 0;
    free(rx->q);
    rx->q = NULL;
    rx->qhead = rx->qlen = rx->qsize = 0;
    rx->fd = -1;
    rx->cprev = NULL;
    rx->cnext = closing;
    if (closing)
        closing->cprev = rx;
    closing = rx;
    if (rx->listed)
        return rx->armed ? rx : NULL;   /* settled (freed, if done) after the round */
    if (!rx->armed) {
        settle(rx);             /* frees it */
        return NULL;
    }
    settle(rx);                 /* queues its cancel */
    return rx;
}

/* Until a standing request's last completion, the kernel holds its file: a
 * close() then would not close the socket (a listener would go on taking
 * connections, a connection would send no FIN), nor would the program's exit
 * at once (io_uring ends its requests after the process is gone). So co_close()
 * waits for it: the cancel is done at once, or at the next GETEVENTS under
 * DEFER_TASKRUN. Others' completions reaped meanwhile wake their coroutines. */
static void wait_closed(struct rx *rx)
{
    for (;;) {
        reap();                 /* never frees rx: only settle_all() does */
        if (!rx->armed)
            return;
        if (submit(WAIT, 1000) == -1 && errno != EINTR && errno != ETIME
                && errno != EBUSY && errno != EAGAIN)
            return;             /* the ring is broken: the next round reports it */
    }
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
    if (sched_start() == -1)    /* hub_init() decides use_accept */
        return -1;
    /* io_uring's accept waits with an exclusive poll, O_NONBLOCK or not, multishot
     * or not: of several processes, one wakes. A non-blocking listening socket
     * (server -w, ACCEPT=shared) is waited for the readiness way instead, to show
     * the herd: a plain poll, which wakes every process polling it, then accept4(),
     * which cannot block and may find the client taken by another (EAGAIN: counted). */
    int flags = fcntl(fd, F_GETFL);
    if (flags == -1)
        return -1;
    if (use_accept && !(flags & O_NONBLOCK)) {
        int conn = accept_standing(fd, addr, len);
        if (conn != FIRST_FORM)
            return conn;
    }
    /* The kernel writes the peer's address and its length when it accepts: both
     * stay alive, in our caller, while we are parked. */
    struct io_uring_sqe want = { .opcode = IORING_OP_ACCEPT, .fd = fd,
                                 .addr = (uintptr_t)addr, .addr2 = (uintptr_t)len,
                                 .accept_flags = SOCK_NONBLOCK };  /* as the epoll hub's */
    for (int woke = 0;; woke = 1) {
        long conn = flags & O_NONBLOCK ? accept4(fd, addr, len, SOCK_NONBLOCK) : io(&want, 0);
        if (conn >= 0)
            forget((int)conn);  /* a number closed with plain close(), come back */
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
    if (sched_start() == -1)
        return -1;
    forget(fd);                 /* a socket being connected is a new one */
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
    if (sched_start() == -1)    /* hub_init() decides use_recv */
        return -1;
    /* The modern form: from the multishot's queue. Flags it cannot serve
     * (MSG_OOB: the urgent byte is not in the stream) go to the first form. */
    if (use_recv && (flags & ~(MSG_DONTWAIT | MSG_PEEK | MSG_WAITALL | MSG_NOSIGNAL)) == 0) {
        size_t got = 0;
        ssize_t n;
        do {
            n = recv_standing(fd, (char *)buf + got, len - got, flags);
            if (n > 0)
                got += (size_t)n;
        } while (n > 0 && (flags & MSG_WAITALL) && got < len);
        if (got > 0)            /* MSG_WAITALL ends early at EOF or an error, as recv() */
            return (ssize_t)got;
        if (n != FIRST_FORM)
            return n;
    }
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
    int posted = __atomic_load_n(cq_tail, __ATOMIC_ACQUIRE) != *cq_head;
    int mode = posted ? SUBMIT : timeout_ms == 0 ? LOOK : WAIT;
    if (submit(mode, timeout_ms) == -1 && errno != EINTR && errno != ETIME
            && errno != EBUSY && errno != EAGAIN)
        return ring_broken();   /* the ring itself is broken */
    /* EINTR: a signal, whose byte completes sigread; ETIME: a sleeper is due;
     * EBUSY, EAGAIN: too many unreaped, which is what we do now. */
    reap();
    settle_all();               /* re-arm, cancel, free what the completions asked for */
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
 * acts: with this hub too, co_close() is the way to close. The first form
 * remembers nothing else of a number; the modern form's standing request is
 * what forget() drops when a number comes back.) A standing request is also
 * waited for, not only cancelled: see wait_closed(). */
int co_close(int fd)
{
    if (fd >= 0 && fd < nfds && (fds[fd].reading || fds[fd].writing || fds[fd].rx)) {
        int queued = 0;
        struct rx *gone = NULL;
        if (fds[fd].rx) {
            gone = close_rx(fd);        /* queues its cancel if it is armed */
            queued = 1;
        }
        if (fds[fd].reading && cancel(fds[fd].reading, EBADF) == 0)
            queued = 1;
        if (fds[fd].writing && cancel(fds[fd].writing, EBADF) == 0)
            queued = 1;
        while (queued && submit(SUBMIT, -1) == -1) {
            if (errno == EBUSY || errno == EAGAIN)
                reap();
            else if (errno != EINTR)
                break;          /* the ring is broken: the next round reports it */
        }
        if (gone != NULL)
            wait_closed(gone);
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
    if (interrupt && main_rx != NULL) {
        /* Parked on a standing request: nothing of the kernel's to wait for. */
        main_rx->done = 1;
        main_rx->err = EINTR;
        sched_wake(main_rx->co, 0);
        main_rx = NULL;
    } else if (interrupt && main_op != NULL) {
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
