/*
 * 08-coroutines/co.c: the coroutine runtime (co.h says what it offers).
 *
 * Read in this order: struct co and switch_to() (a switch is ctx_switch plus
 * bookkeeping); park() and wake() (how a coroutine waits and who ends the
 * wait); hub_main() (gevent's hub: run the ready ones, then epoll_wait with the
 * nearest deadline); wait_fd() and the co_* IO calls (try the call, park on
 * EAGAIN, try again), with recheck() and emptied() on what the runtime may take
 * for granted about a descriptor. The sleepers' heap and the ASan notes are plumbing.
 */
#define _GNU_SOURCE             /* accept4, pipe2, MAP_STACK, NSIG, SO_PROTOCOL */
#include "co.h"
#include "ctx.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* AddressSanitizer keeps its own picture of "the" stack; it must be told when
 * we switch to another one, or it takes the new stack for an overflow. */
#if defined(__SANITIZE_ADDRESS__)
#define CO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CO_ASAN 1
#endif
#endif
#ifdef CO_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#define BUDGET 16               /* IO calls that succeed in a row before we yield */
#define MAX_EVENTS 256          /* events taken per epoll_wait() */
#define NOT_SLEEPING SIZE_MAX

enum state {
    NEW,                /* co_create()d, waiting for its first co_switch */
    READY,              /* in the run queue */
    RUNNING,
    PARKED,             /* waiting for IO, a deadline or a join: the runtime wakes it */
    SUSPENDED,          /* left by co_switch(): only another co_switch resumes it */
    DEAD                /* finished; its result waits for co_join */
};

struct co {
    struct ctx ctx;             /* registers and stack pointer while not running */
    enum state state;
    co_fn *fn;
    void *value;                /* fn's argument, then its result */
    struct co *parent;          /* co_create()'s caller: resumed when fn returns */
    int children;               /* co_create()d by us and not yet freed: they point here */
    int freed;                  /* joined, or detached and finished; the struct stays
                                 * while children point here */
    struct co *next;            /* run queue or zombie list */
    struct co *joiner;          /* parked in co_join() on us */
    int detached;
    int wake_error;             /* what the parked call returns in errno: EINTR, EBADF, EDEADLK */
    int interruptible;          /* parked in IO or a sleep: a signal may end it */
    int budget;                 /* IO calls left before a forced co_yield() */
    size_t heap_at;             /* index in sleepers[], or NOT_SLEEPING */
    long long deadline;         /* when a sleep ends, monotonic nanoseconds */
    char *map;                  /* the stack's mapping, guard page first; NULL for main */
    size_t map_size;
#ifdef CO_ASAN
    const void *stack_lo;       /* the usable stack, for ASan */
    size_t stack_len;
    void *fake_stack;           /* ASan's own frames for this coroutine */
#endif
};

/* Per descriptor: who waits to read, who waits to write, and what the runtime
 * knows of the file behind the number (see recheck() for how long it trusts that). */
struct fdslot {
    struct co *reader, *writer;
    enum { UNSEEN, REGISTERED, DIRECT } how;    /* DIRECT: epoll refuses it (a file) */
    int tcp;            /* a TCP socket: a short read empties it (see emptied()) */
    int urgent;         /* urgent data came (EPOLLPRI) or was read: reads stop at its mark */
    int hung_up;        /* the peer shut down, or an error: reads never wait again */
    unsigned long long known;   /* the hub round in which epoll last spoke of it */
    unsigned long long drained; /* the round in which a recv emptied it */
};

/* What the runtime asks epoll about each descriptor: both directions, the peer's
 * half-close, urgent data; edge-triggered. */
#define WATCHED (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET)

static struct co main_co = { .state = RUNNING, .heap_at = NOT_SLEEPING, .budget = BUDGET };
static struct co *current = &main_co;
static struct co *hub;                  /* created at the first call that may need it */
static struct co *ready_head, *ready_tail;
static struct co *zombies;              /* finished detached coroutines, for the hub to free */
static struct co **sleepers;            /* a binary heap: sleepers[0] wakes first */
static size_t nsleepers, sleepers_cap;
static struct fdslot *fds;              /* indexed by descriptor */
static int nfds;
static int waiting_io;                  /* coroutines parked on a descriptor */
static unsigned long long hub_round = 1;    /* one per epoll_wait: news of descriptors */
static int epfd = -1;
static int sigpipe[2] = { -1, -1 };     /* handlers write a byte: the hub wakes up */
static struct sigaction handlers[NSIG]; /* the program's handlers, behind on_signal() */

/* ---- ASan: tell it about every stack switch (no-ops otherwise) ---- */

#ifdef CO_ASAN
static struct co *asan_from;

static void asan_leave(struct co *from, struct co *to)
{
    asan_from = from;
    /* A finished coroutine passes NULL: its fake frames can go. */
    __sanitizer_start_switch_fiber(from->state == DEAD ? NULL : &from->fake_stack,
                                   to->stack_lo, to->stack_len);
}

static void asan_arrive(struct co *self)
{
    const void *lo;
    size_t len;
    __sanitizer_finish_switch_fiber(self->fake_stack, &lo, &len);
    if (asan_from == &main_co)
        main_co.stack_lo = lo, main_co.stack_len = len;     /* learnt on the first switch */
}
#else
static void asan_leave(struct co *from, struct co *to) { (void)from, (void)to; }
static void asan_arrive(struct co *self) { (void)self; }
#endif

/* ---- switching ---- */

/* Run `to`, handing it value; returns the value handed to us when we run again.
 * A coroutine resumed with an error (EDEADLK) finds it in errno. Inline, so that
 * in co_switch() ctx_switch is the last call (asan_arrive is empty but under
 * ASan) and becomes a jump: the switch back lands straight in our caller. */
static inline void *switch_to(struct co *to, void *value)
{
    struct co *from = current;
    current = to;
    to->state = RUNNING;
    if (to->wake_error != 0)
        errno = to->wake_error;
    asan_leave(from, to);
    value = ctx_switch(&from->ctx, &to->ctx, value);
    asan_arrive(current);       /* back in `from`, switched to by someone */
    return value;
}

static void enqueue(struct co *c)
{
    c->state = READY;
    c->next = NULL;
    if (ready_tail)
        ready_tail->next = c;
    else
        ready_head = c;
    ready_tail = c;
}

static struct co *dequeue(void)
{
    struct co *c = ready_head;
    if (c && (ready_head = c->next) == NULL)
        ready_tail = NULL;
    return c;
}

/* ---- the sleepers' heap: earliest deadline at the root, O(log n) per change ---- */

static void heap_set(size_t i, struct co *c)
{
    sleepers[i] = c;
    c->heap_at = i;
}

static void heap_up(size_t i)
{
    struct co *c = sleepers[i];
    while (i > 0 && sleepers[(i - 1) / 2]->deadline > c->deadline) {
        heap_set(i, sleepers[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(i, c);
}

static void heap_down(size_t i)
{
    struct co *c = sleepers[i];
    for (;;) {
        size_t kid = 2 * i + 1;
        if (kid >= nsleepers)
            break;
        if (kid + 1 < nsleepers && sleepers[kid + 1]->deadline < sleepers[kid]->deadline)
            kid++;
        if (sleepers[kid]->deadline >= c->deadline)
            break;
        heap_set(i, sleepers[kid]);
        i = kid;
    }
    heap_set(i, c);
}

static int heap_push(struct co *c)
{
    if (nsleepers == sleepers_cap) {
        size_t cap = sleepers_cap ? 2 * sleepers_cap : 64;
        struct co **grown = realloc(sleepers, cap * sizeof *grown);
        if (grown == NULL)
            return -1;
        sleepers = grown;
        sleepers_cap = cap;
    }
    heap_set(nsleepers++, c);
    heap_up(nsleepers - 1);
    return 0;
}

static void heap_remove(struct co *c)
{
    size_t i = c->heap_at;
    struct co *last = sleepers[--nsleepers];
    c->heap_at = NOT_SLEEPING;
    if (i == nsleepers)
        return;
    heap_set(i, last);
    heap_up(i);
    heap_down(last->heap_at);
}

static long long now_ns(void)
{
    struct timespec ts;
    /* CLOCK_MONOTONIC cannot fail on Linux; 0 keeps the arithmetic defined if it did. */
    if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
        return 0;
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- parking and waking ---- */

/* Wait until wake(): the hub runs others meanwhile. -1 with errno if the wait
 * ended in an error (EINTR, EBADF, EDEADLK) instead of the event. */
static int park(int interruptible)
{
    current->state = PARKED;
    current->interruptible = interruptible;
    current->wake_error = 0;
    switch_to(hub, NULL);
    current->interruptible = 0;
    if (current->wake_error != 0) {
        errno = current->wake_error;
        return -1;
    }
    return 0;
}

static void wake(struct co *c, int error)
{
    if (c->state != PARKED)
        return;
    c->wake_error = error;
    if (c->heap_at != NOT_SLEEPING)
        heap_remove(c);
    enqueue(c);
}

/* ---- coroutines: create, run, finish, free ---- */

static void free_co(struct co *c)
{
#ifdef CO_ASAN
    /* Frames that never returned left poisoned shadow; the pages may come back. */
    __asan_unpoison_memory_region(c->stack_lo, c->stack_len);
#endif
    /* munmap fails only on a bad range, which this one is not. */
    (void)munmap(c->map, c->map_size);
    c->freed = 1;
    /* The coroutines it created look at their parent when they finish: keep the
     * struct (DEAD, so nobody returns to it) until the last of them is freed. */
    while (c != NULL && c->freed && c->children == 0) {
        struct co *parent = c->parent;
        free(c);
        if (parent != NULL)
            parent->children--;
        c = parent;
    }
}

static void finish(struct co *self)
{
    struct co *to = hub;
    self->state = DEAD;
    if (self->joiner)
        wake(self->joiner, 0);
    if (self->detached) {               /* we are on its stack: the hub frees it */
        self->next = zombies;
        zombies = self;
    }
    /* greenlet: a finished coroutine returns to its creator, if that one waits in
     * co_switch, with the result as the switch's value; otherwise to the hub. */
    if (self->parent && self->parent->state == SUSPENDED)
        to = self->parent;
    switch_to(to, self->value);         /* never comes back */
}

static void entry(void)
{
    struct co *self = current;
    asan_arrive(self);
    self->value = self->fn(self->value);
    finish(self);
}

static void hub_main(void);

static struct co *new_co(co_fn *fn, void (*start_at)(void))
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    struct co *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->map_size = CO_STACK_SIZE + page;
    /* MAP_NORESERVE: only the pages a coroutine touches cost memory, so 10,000
     * stacks of 256 KiB take a few KiB each. */
    c->map = mmap(NULL, c->map_size, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (c->map == MAP_FAILED) {
        free(c);
        return NULL;
    }
    /* The guard page: the stack grows down into it, and an overflow faults at
     * once (SIGSEGV) instead of quietly writing over whatever lies below. */
    if (mprotect(c->map, page, PROT_NONE) == -1
            || ctx_make(&c->ctx, c->map + page, CO_STACK_SIZE, start_at) == -1) {
        int saved = errno;
        (void)munmap(c->map, c->map_size);
        free(c);
        errno = saved;
        return NULL;
    }
#ifdef CO_ASAN
    c->stack_lo = c->map + page;
    c->stack_len = CO_STACK_SIZE;
#endif
    c->fn = fn;
    c->state = NEW;
    c->heap_at = NOT_SLEEPING;
    c->budget = BUDGET;
    return c;
}

/* The first call that needs the hub makes it, and the epoll instance. */
static int start(void)
{
    if (hub)
        return 0;
    if ((epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
        return -1;
    if ((hub = new_co(NULL, hub_main)) == NULL) {
        int saved = errno;
        (void)close(epfd);
        epfd = -1;
        errno = saved;
        return -1;
    }
    return 0;
}

struct co *co_spawn(co_fn *fn, void *arg)
{
    struct co *c;
    if (start() == -1 || (c = new_co(fn, entry)) == NULL)
        return NULL;
    c->value = arg;
    enqueue(c);
    return c;
}

struct co *co_create(co_fn *fn)
{
    struct co *c;
    if (start() == -1 || (c = new_co(fn, entry)) == NULL)
        return NULL;
    c->parent = current;
    current->children++;
    return c;
}

void *co_switch(struct co *to, void *value)
{
    if (to == NULL || to == current || (to->state != NEW && to->state != SUSPENDED)) {
        errno = EINVAL;
        return NULL;
    }
    if (to->state == NEW)
        to->value = value;      /* its fn's argument */
    current->state = SUSPENDED;
    current->wake_error = 0;
    /* NULL with EDEADLK if the hub finds that nothing could ever switch back. */
    return switch_to(to, value);
}

void co_yield(void)
{
    if (start() == -1)
        return;                 /* no hub, so nobody else to run: go on */
    current->wake_error = 0;
    enqueue(current);
    switch_to(hub, NULL);
}

int co_join(struct co *c, void **result)
{
    if (c == NULL || c == current || c == &main_co || c == hub || c->joiner || c->detached) {
        errno = EINVAL;
        return -1;
    }
    while (c->state != DEAD) {
        c->joiner = current;
        int parked = park(0);
        c->joiner = NULL;
        if (parked == -1)
            return -1;
    }
    if (result)
        *result = c->value;
    free_co(c);
    return 0;
}

int co_joinall(struct co **cs, size_t n, void **results)
{
    /* Each join waits only for what is left of the longest: the total is the max. */
    for (size_t i = 0; i < n; i++)
        if (co_join(cs[i], results ? &results[i] : NULL) == -1)
            return -1;
    return 0;
}

int co_detach(struct co *c)
{
    if (c == NULL || c == &main_co || c == hub || c->joiner || c->detached) {
        errno = EINVAL;
        return -1;
    }
    if (c->state == DEAD)
        free_co(c);
    else
        c->detached = 1;
    return 0;
}

struct co *co_self(void)
{
    return current;
}

int co_sleep_ms(long ms)
{
    if (start() == -1)
        return -1;
    long long now = now_ns(), room = (LLONG_MAX - now) / 1000000;
    /* Beyond the clock's range (~292 years) is forever: clamp, not overflow into the past. */
    current->deadline = now + (ms <= 0 ? 0 : ms > room ? room : ms) * 1000000LL;
    if (heap_push(current) == -1)
        return -1;
    return park(1);
}

/* ---- the hub ---- */

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
    if (interrupt && main_co.state == PARKED && main_co.interruptible)
        wake(&main_co, EINTR);
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
        wake(s->reader, 0);
    if (s->writer && (ev->events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
        wake(s->writer, 0);
}

/* Nothing is ready, nobody sleeps or waits on a descriptor: no event can ever
 * wake anyone. Give the main coroutine the error rather than wait forever. */
static void deadlock(int error)
{
    if (main_co.state == PARKED) {
        wake(&main_co, error);
    } else if (main_co.state == SUSPENDED) {
        main_co.wake_error = error;
        enqueue(&main_co);
    }
}

static void hub_main(void)
{
    static struct epoll_event events[MAX_EVENTS];

    asan_arrive(hub);
    for (;;) {
        while (zombies) {
            struct co *z = zombies;
            zombies = z->next;
            free_co(z);
        }
        /* Run the coroutines that are ready now. Those they make ready wait for
         * the next round, so IO is looked at between rounds even if someone
         * yields forever. Each runs until it parks, yields or finishes. */
        struct co *last = ready_tail;
        while (last) {
            struct co *c = dequeue();
            switch_to(c, NULL);
            if (c == last)
                break;
        }

        int timeout = -1;               /* wait for IO alone */
        if (ready_head) {
            timeout = 0;                /* just look */
        } else if (nsleepers > 0) {
            long long left = sleepers[0]->deadline - now_ns();
            long long ms = left / 1000000 + (left % 1000000 > 0);   /* rounded up: never early */
            timeout = ms < 0 ? 0 : ms > INT_MAX ? INT_MAX : (int)ms;
        } else if (waiting_io == 0) {
            deadlock(EDEADLK);
            continue;
        }
        int n = epoll_wait(epfd, events, MAX_EVENTS, timeout);
        hub_round++;            /* from here on, what a slot knew is a round old */
        if (n == -1) {
            if (errno == EINTR)
                continue;       /* a signal: its byte in the pipe is seen next turn */
            deadlock(errno);    /* EBADF, EINVAL: the runtime's own state is broken */
            continue;
        }
        for (int i = 0; i < n; i++) {
            if (events[i].data.fd == sigpipe[0])
                take_signals();
            else
                wake_waiters(&events[i]);
        }
        long long now = now_ns();
        while (nsleepers > 0 && sleepers[0]->deadline <= now)
            wake(sleepers[0], 0);
    }
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
        wake(fds[fd].reader, EBADF);
    if (fds[fd].writer)
        wake(fds[fd].writer, EBADF);
    memset(&fds[fd], 0, sizeof fds[fd]);
}

/* A TCP socket? Looked up once, when the runtime first registers it: see
 * emptied() for why it matters. Not a socket, or unknown: no. */
static int is_tcp(int fd)
{
    int type, protocol;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == -1)
        return 0;
    len = sizeof protocol;
    if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &len) == -1)
        return 0;
    return type == SOCK_STREAM && protocol == IPPROTO_TCP;
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
    fds[fd].tcp = is_tcp(fd);
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
    if (start() == -1)
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
    *waiter = current;
    waiting_io++;
    int parked = park(1);
    waiting_io--;
    /* fds may have moved (realloc) while we were parked: index it again. */
    waiter = writing ? &fds[fd].writer : &fds[fd].reader;
    if (*waiter == current)
        *waiter = NULL;
    return parked;
}

/* A call succeeded. After BUDGET of them in a row, let the others run: a client
 * whose data is always there would otherwise never let anyone else have a turn. */
static void spend(void)
{
    if (--current->budget <= 0) {
        current->budget = BUDGET;
        co_yield();
    }
}

static void refill(void)
{
    current->budget = BUDGET;   /* it waited, others ran: a fresh budget */
}

/* A connection co_accept() just took: a new file, whatever the runtime recalls
 * of its number (one closed without co_close() may come back). accept4 made it
 * non-blocking, and it is TCP if its listener is: register it now, without
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
    fds[conn].tcp = fds[listener].tcp;
    fds[conn].how = REGISTERED;
    fds[conn].known = hub_round;
}

int co_accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    if (prepare(fd, 0) == -1 || recheck(fd) == -1)
        return -1;
    for (;;) {
        int conn = accept4(fd, addr, len, SOCK_NONBLOCK);
        if (conn >= 0) {
            adopt(conn, fd);
            spend();
            return conn;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;          /* EMFILE, ECONNABORTED...: the caller decides */
        if (wait_fd(fd, 0) == -1)
            return -1;
        refill();
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
        refill();
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

ssize_t co_recv(int fd, void *buf, size_t len, int flags)
{
    if (prepare(fd, 0) == -1)
        return -1;
    if (flags & MSG_OOB)
        fds[fd].urgent = 1;     /* its mark stays in the stream: see emptied() */
    for (;;) {
        if (fds[fd].drained != hub_round) {
            /* MSG_DONTWAIT: never block the thread, even on a socket the runtime
             * has not made non-blocking yet (see recheck()). */
            ssize_t n = recv(fd, buf, len, flags | MSG_DONTWAIT);
            if (n >= 0) {
                if (emptied(&fds[fd], n, len, flags))
                    fds[fd].drained = hub_round;
                spend();
                return n;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return -1;      /* ECONNRESET and the like: the caller's to handle */
        }
        if (wait_fd(fd, 0) == -1)
            return -1;
        refill();
    }
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
            spend();
            return n;           /* maybe short, as send()'s may be */
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;          /* EPIPE, ECONNRESET: the peer is gone */
        if (wait_fd(fd, 1) == -1)
            return -1;
        refill();
    }
}

int co_close(int fd)
{
    /* close() itself takes the epoll registration with it. */
    if (fd >= 0 && fd < nfds)
        forget(fd);
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

int co_sigaction(int sig, const struct sigaction *sa, struct sigaction *old)
{
    struct sigaction mine, was, before;
    if (sig <= 0 || sig >= NSIG) {
        errno = EINVAL;
        return -1;
    }
    if (start() == -1)
        return -1;
    was = handlers[sig];
    /* Ignoring, the default, or SA_SIGINFO handlers: passed on as they are. */
    if (sa == NULL || sa->sa_handler == SIG_IGN || sa->sa_handler == SIG_DFL
            || (sa->sa_flags & SA_SIGINFO)) {
        if (sigaction(sig, sa, &before) == -1)
            return -1;
        if (sa != NULL)
            memset(&handlers[sig], 0, sizeof handlers[sig]);
    } else {
        if (sigpipe[0] == -1) {
            struct epoll_event ev = { .events = EPOLLIN };
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
        }
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
