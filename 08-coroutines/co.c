/*
 * 08-coroutines/co.c: the coroutine runtime's scheduler (co.h says what it
 * offers). The hub's waiting for the kernel is in a file of its own, behind
 * hub.h: hub-epoll.c (readiness) or hub-uring.c (completion).
 *
 * Read in this order: struct co and switch_to() (a switch is ctx_switch plus
 * bookkeeping); park() and wake() (how a coroutine waits and who ends the
 * wait); hub_main() (gevent's hub: run the ready ones, then hub_wait() with the
 * nearest sleeper's deadline); the co_* calls that create, join and put
 * coroutines to sleep. The sleepers' heap and the ASan notes are plumbing.
 */
#define _GNU_SOURCE             /* MAP_STACK */
#include "hub.h"
#include "ctx.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
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

static struct co main_co = { .state = RUNNING, .heap_at = NOT_SLEEPING, .budget = BUDGET };
static struct co *current = &main_co;
static struct co *hub;                  /* created at the first call that may need it */
static struct co *ready_head, *ready_tail;
static struct co *zombies;              /* finished detached coroutines, for the hub to free */
static struct co **sleepers;            /* a binary heap: sleepers[0] wakes first */
static size_t nsleepers, sleepers_cap;

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

/* The first call that needs the hub makes it, and the hub's kernel object. */
int sched_start(void)
{
    if (hub)
        return 0;
    if ((hub = new_co(NULL, hub_main)) == NULL)
        return -1;
    if (hub_init() == -1) {
        int saved = errno;
        free_co(hub);
        hub = NULL;
        errno = saved;
        return -1;
    }
    return 0;
}

struct co *co_spawn(co_fn *fn, void *arg)
{
    struct co *c;
    if (sched_start() == -1 || (c = new_co(fn, entry)) == NULL)
        return NULL;
    c->value = arg;
    enqueue(c);
    return c;
}

struct co *co_create(co_fn *fn)
{
    struct co *c;
    if (sched_start() == -1 || (c = new_co(fn, entry)) == NULL)
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
    if (sched_start() == -1)
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
    if (sched_start() == -1)
        return -1;
    long long now = now_ns(), room = (LLONG_MAX - now) / 1000000;
    /* Beyond the clock's range (~292 years) is forever: clamp, not overflow into the past. */
    current->deadline = now + (ms <= 0 ? 0 : ms > room ? room : ms) * 1000000LL;
    if (heap_push(current) == -1)
        return -1;
    return park(1);
}

/* ---- what the hubs use (hub.h) ---- */

int sched_park(int interruptible)
{
    return park(interruptible);
}

void sched_wake(struct co *c, int error)
{
    wake(c, error);
}

void sched_interrupt(void)
{
    if (main_co.state == PARKED && main_co.interruptible)
        wake(&main_co, EINTR);
}

struct co *sched_main(void)
{
    return &main_co;
}

/* A call succeeded. After BUDGET of them in a row, let the others run: a client
 * whose data is always there would otherwise never let anyone else have a turn. */
void sched_spend(void)
{
    if (--current->budget <= 0) {
        current->budget = BUDGET;
        co_yield();
    }
}

void sched_refill(void)
{
    current->budget = BUDGET;   /* it waited, others ran: a fresh budget */
}

/* ---- the hub ---- */

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
        } else if (hub_waiting() == 0) {
            deadlock(EDEADLK);
            continue;
        }
        if (hub_wait(timeout) == -1) {
            deadlock(errno);    /* the hub's own state is broken */
            continue;
        }
        long long now = now_ns();
        while (nsleepers > 0 && sleepers[0]->deadline <= now)
            wake(sleepers[0], 0);
    }
}

