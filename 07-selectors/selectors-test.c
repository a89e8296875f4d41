/*
 * 07-selectors/selectors-test.c: the selector library's unit tests, on every backend.
 *
 * Teaches: one test suite for four mechanisms. Every group of checks runs on select,
 * poll, epoll and sigio in turn, and each line names the backend: "ok - poll: ...". The
 * pitfalls the tutorials get wrong each have a check here: FD_SETSIZE, EINTR cutting a
 * wait short, a callback unregistering a descriptor later in the same batch; and
 * sigio's: edges kept level, stale signals, the queue's overflow.
 *
 * Build and run:  cc -std=c11 -o selectors-test selectors-test.c selectors.c sel-*.c
 *                 ./selectors-test       (ends with "N passed, N failed"; exit 0 if none failed)
 *
 * Look at: test_batch(), the dispatch loop of the notes' server done by hand, and
 * test_eintr(), a signal in the middle of a 150 ms wait.
 * Pitfall: timing checks need slack on a busy machine; the bounds here are wide on
 * purpose (a 50 ms wait may take up to 500 ms), and only "never early" is strict.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE         /* O_ASYNC, RLIMIT_SIGPENDING: Linux, not POSIX */
#include "selectors.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define BIG_FD 1100             /* above FD_SETSIZE (1024) */
#define MANY 2000               /* pipes registered at once on poll and epoll */

static const char *backend;     /* the backend under test: every line names it */
static int passed, failed;
static char *saved_selector;    /* SELECTOR as the suite found it (NULL: unset) */
static volatile sig_atomic_t alarms;

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* One line per check; a failure also shows the condition that was false. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void check(int ok, const char *cond, const char *fmt, ...)
{
    va_list ap;
    printf("%s - %s: ", ok ? "ok" : "not ok", backend);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("#   false: %s (errno now: %s)\n", cond, strerror(errno));
    }
}

#define CHECK(cond, ...) check((cond) != 0, #cond, __VA_ARGS__)

/* ---------------------------------------------------------------- helpers */

static struct selector *open_selector(void)
{
    struct selector *s = sel_open(backend);
    if (s == NULL)
        die("sel_open");
    return s;
}

static void make_pipe(int p[2])
{
    if (pipe(p) == -1)
        die("pipe");
}

static void make_socketpair(int sv[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
        die("socketpair");
}

static void close_fd(int fd)
{
    if (close(fd) == -1)
        die("close");
}

static void close_pair(int p[2])
{
    close_fd(p[0]);
    close_fd(p[1]);
}

static void put_byte(int fd)
{
    if (write(fd, "x", 1) != 1)
        die("write");
}

static void now(struct timespec *t)
{
    if (clock_gettime(CLOCK_MONOTONIC, t) == -1)
        die("clock_gettime");
}

static double ms_since(const struct timespec *t0)
{
    struct timespec t;
    now(&t);
    return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

/* The mask key has in a batch of n, or -1 if it is not there. */
static int mask_of(const struct sel_event *ev, int n, const struct sel_key *key)
{
    for (int i = 0; i < n; i++)
        if (ev[i].key == key)
            return ev[i].mask;
    return -1;
}

/* Raise the soft RLIMIT_NOFILE to at least want. 0, or the hard limit if it is lower. */
static rlim_t raise_nofile(rlim_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
        die("getrlimit");
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= want)
        return 0;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
        return rl.rlim_max;
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
        die("setrlimit");
    return 0;
}

/* Put SELECTOR back as the suite found it, so the env checks leave no trace. */
static void restore_selector(void)
{
    if (saved_selector != NULL ? setenv("SELECTOR", saved_selector, 1) : unsetenv("SELECTOR"))
        die("setenv");
}

/* ---------------------------------------------------------------- the checks */

/* sel_open(NULL): SELECTOR, else Python's DefaultSelector order. Backend-independent. */
static void test_default(void)
{
    struct selector *s;

    if (unsetenv("SELECTOR") == -1)
        die("unsetenv");
    s = sel_open(NULL);
    CHECK(s != NULL && strcmp(sel_backend(s), "epoll") == 0, "sel_open(NULL), SELECTOR unset, gives epoll");
    sel_close(s);
    if (setenv("SELECTOR", "", 1) == -1)
        die("setenv");
    s = sel_open(NULL);
    CHECK(s != NULL && strcmp(sel_backend(s), "epoll") == 0, "SELECTOR set but empty counts as unset");
    sel_close(s);
    if (setenv("SELECTOR", "bogus", 1) == -1)
        die("setenv");
    errno = 0;
    s = sel_open(NULL);
    CHECK(s == NULL && errno == EINVAL, "SELECTOR=bogus gives NULL, EINVAL");
    sel_close(s);
    errno = 0;
    s = sel_open("bogus");
    CHECK(s == NULL && errno == EINVAL, "sel_open(\"bogus\") gives NULL, EINVAL");
    restore_selector();
    const char *now_set = getenv("SELECTOR");
    CHECK(saved_selector == NULL ? now_set == NULL : now_set != NULL && strcmp(now_set, saved_selector) == 0,
          "SELECTOR restored as it was (%s)", saved_selector != NULL ? saved_selector : "unset");
}

static void test_open(void)
{
    struct selector *s = sel_open(backend);
    CHECK(s != NULL, "sel_open(\"%s\") opens", backend);
    CHECK(s != NULL && strcmp(sel_backend(s), backend) == 0, "sel_backend gives its name");
    sel_close(s);
    if (setenv("SELECTOR", backend, 1) == -1)
        die("setenv");
    s = sel_open(NULL);
    CHECK(s != NULL && strcmp(sel_backend(s), backend) == 0, "sel_open(NULL) with SELECTOR=%s gives %s",
          backend, backend);
    sel_close(s);
    restore_selector();
}

/* A pipe: the read end is ready once written; the write end is ready while it has room. */
static void test_pipe(void)
{
    struct selector *s = open_selector();
    struct sel_event *ev;
    int p[2], tag, tag2, n;

    make_pipe(p);
    struct sel_key *k = sel_register(s, p[0], SEL_READ, &tag);
    CHECK(k != NULL && k->fd == p[0] && k->events == SEL_READ && k->data == &tag,
          "register returns a key with fd, events and data");
    CHECK(sel_get_key(s, p[0]) == k, "get_key returns that same key");
    n = sel_select(s, 0, &ev);
    CHECK(n == 0, "an empty pipe's read end is not ready");
    put_byte(p[1]);
    n = sel_select(s, 0, &ev);
    CHECK(n == 1 && ev[0].key == k && ev[0].mask == SEL_READ && ev[0].key->data == &tag,
          "one byte written: SEL_READ, with the right key and data");
    struct sel_key *w = sel_register(s, p[1], SEL_WRITE, &tag2);
    n = sel_select(s, 0, &ev);
    CHECK(n == 2 && mask_of(ev, n, w) == SEL_WRITE && mask_of(ev, n, k) == SEL_READ,
          "the write end registered SEL_WRITE is ready too");
    sel_close(s);
    close_pair(p);
}

/* A key registered for both reports only what is ready, in each of the three states. */
static void test_both(void)
{
    struct selector *s = open_selector();
    struct sel_event *ev;
    int sv[2], n, flags;
    char block[4096] = { 0 };

    make_socketpair(sv);
    struct sel_key *k = sel_register(s, sv[0], SEL_READ | SEL_WRITE, NULL);
    n = sel_select(s, 0, &ev);
    CHECK(n == 1 && ev[0].key == k && ev[0].mask == SEL_WRITE, "READ|WRITE, nothing to read: only SEL_WRITE");
    put_byte(sv[1]);
    n = sel_select(s, 0, &ev);
    CHECK(n == 1 && ev[0].mask == (SEL_READ | SEL_WRITE), "READ|WRITE, a byte waiting: both");
    /* Fill sv[0]'s way out until the kernel says EAGAIN: then it is not writable. */
    if ((flags = fcntl(sv[0], F_GETFL)) == -1 || fcntl(sv[0], F_SETFL, flags | O_NONBLOCK) == -1)
        die("fcntl");
    while (write(sv[0], block, sizeof block) > 0)
        continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
        die("write");
    n = sel_select(s, 0, &ev);
    CHECK(n == 1 && ev[0].mask == SEL_READ, "READ|WRITE, send buffer full: only SEL_READ");
    sel_close(s);
    close_pair(sv);
}

/* Hang-ups and errors come as the key's own events, never as one it did not ask for. */
static void test_hangup(void)
{
    struct selector *s = open_selector();
    struct sel_event *ev;
    int p[2], q[2], n;

    make_pipe(p);
    struct sel_key *k = sel_register(s, p[0], SEL_READ, NULL);
    close_fd(p[1]);             /* the writer is gone: read() will return 0 */
    n = sel_select(s, 0, &ev);
    CHECK(n == 1 && ev[0].key == k && ev[0].mask == SEL_READ, "writer closed: the read end reports SEL_READ");
    CHECK(sel_unregister(s, p[0]) == 0, "unregister before close");
    close_fd(p[0]);
    make_pipe(q);
    k = sel_register(s, q[1], SEL_WRITE, NULL);
    close_fd(q[0]);             /* the reader is gone: write() will fail with EPIPE */
    n = sel_select(s, 0, &ev);
    CHECK(n == 1 && ev[0].key == k && ev[0].mask == SEL_WRITE, "reader closed: the write end reports SEL_WRITE");
    sel_close(s);
    close_fd(q[1]);
}

static void test_timeouts(void)
{
    struct selector *s = open_selector();
    struct sel_event *ev;
    struct timespec t0;
    double ms;
    int p[2], n;

    make_pipe(p);
    if (sel_register(s, p[0], SEL_READ, NULL) == NULL)
        die("sel_register");
    now(&t0);
    n = sel_select(s, 0, &ev);
    ms = ms_since(&t0);
    CHECK(n == 0 && ms < 50, "timeout 0 returns at once (%.1f ms)", ms);
    now(&t0);
    n = sel_select(s, 50, &ev);
    ms = ms_since(&t0);
    CHECK(n == 0 && ms >= 45 && ms < 500, "timeout 50, nothing ready: 0 after 45..500 ms (%.1f ms)", ms);
    put_byte(p[1]);
    now(&t0);
    n = sel_select(s, -1, &ev);
    ms = ms_since(&t0);
    CHECK(n == 1 && ms < 50, "timeout -1, something ready: returns at once (%.1f ms)", ms);
    sel_close(s);
    close_pair(p);
}

static void on_alarm(int sig)
{
    (void)sig;
    alarms++;
}

/* A signal 30 ms into a 150 ms wait: the wait goes on for the 120 ms left. */
static void test_eintr(void)
{
    struct selector *s = open_selector();
    struct sigaction sa = { .sa_handler = on_alarm }, old;  /* no SA_RESTART: EINTR */
    struct itimerval it = { .it_value = { .tv_sec = 0, .tv_usec = 30000 } };
    struct sel_event *ev;
    struct timespec t0;
    int p[2];

    make_pipe(p);
    if (sel_register(s, p[0], SEL_READ, NULL) == NULL)
        die("sel_register");
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGALRM, &sa, &old) == -1)
        die("sigaction");
    alarms = 0;
    if (setitimer(ITIMER_REAL, &it, NULL) == -1)
        die("setitimer");
    now(&t0);
    errno = 0;
    int n = sel_select(s, 150, &ev);
    double ms = ms_since(&t0);
    CHECK(alarms == 1, "SIGALRM came during the wait");
    CHECK(n == 0 && ms >= 140 && ms < 1000, "EINTR retried with the time left: 0 after %.1f ms (>= 140)", ms);
    if (sigaction(SIGALRM, &old, NULL) == -1)
        die("sigaction");
    sel_close(s);
    close_pair(p);
}

static void test_modify(void)
{
    struct selector *s = open_selector();
    struct sel_event *ev;
    int sv[2], a, b, n;

    make_socketpair(sv);
    struct sel_key *k = sel_register(s, sv[0], SEL_READ, &a);
    n = sel_select(s, 0, &ev);
    CHECK(n == 0, "registered SEL_READ, nothing to read: not ready");
    CHECK(sel_modify(s, sv[0], SEL_WRITE, &a) == k && k->events == SEL_WRITE,
          "modify returns the same key, with the new events");
    n = sel_select(s, 0, &ev);
    CHECK(n == 1 && ev[0].key == k && ev[0].mask == SEL_WRITE, "modify READ to WRITE: SEL_WRITE reported");
    CHECK(sel_modify(s, sv[0], SEL_WRITE, &b) == k && k->data == &b && k->events == SEL_WRITE,
          "modify with the same events changes data only");
    n = sel_select(s, 0, &ev);
    CHECK(n == 1 && ev[0].key->data == &b, "the new data comes back with the event");
    errno = 0;
    CHECK(sel_modify(s, sv[1], SEL_READ, NULL) == NULL && errno == ENOENT, "modify of an unknown fd gives ENOENT");
    errno = 0;
    CHECK(sel_modify(s, sv[0], 0, NULL) == NULL && errno == EINVAL && k->events == SEL_WRITE && k->data == &b,
          "modify with events 0 gives EINVAL and leaves the key as it was");
    /* Inside a batch: a callback takes away what an entry still to come reports. */
    put_byte(sv[1]);
    if (sel_modify(s, sv[0], SEL_READ | SEL_WRITE, &a) == NULL)
        die("sel_modify");
    n = sel_select(s, 0, &ev);
    CHECK(n == 1 && ev[0].mask == (SEL_READ | SEL_WRITE), "READ|WRITE with a byte waiting: both");
    if (sel_modify(s, sv[0], SEL_READ, &a) == NULL)
        die("sel_modify");
    CHECK(ev[0].mask == SEL_READ, "modify to READ inside the batch trims its entry to SEL_READ");
    sel_close(s);
    close_pair(sv);
}

static void test_unregister(void)
{
    struct selector *s = open_selector();
    struct sel_event *ev;
    int p[2], n;

    make_pipe(p);
    put_byte(p[1]);
    if (sel_register(s, p[0], SEL_READ, NULL) == NULL)
        die("sel_register");
    CHECK(sel_unregister(s, p[0]) == 0, "unregister gives 0");
    n = sel_select(s, 0, &ev);
    CHECK(n == 0, "unregistered: its readiness is no longer reported");
    errno = 0;
    CHECK(sel_unregister(s, p[0]) == -1 && errno == ENOENT, "unregister of an unknown fd gives ENOENT");
    errno = 0;
    CHECK(sel_get_key(s, p[0]) == NULL && errno == ENOENT, "get_key after unregister gives NULL, ENOENT");
    struct sel_key *k = sel_register(s, p[0], SEL_READ, NULL);
    CHECK(k != NULL, "register again after unregister works");
    n = sel_select(s, 0, &ev);
    CHECK(n == 1 && ev[0].key == k, "and it is reported again");
    sel_close(s);
    close_pair(p);
}

/* The notes' dispatch loop, by hand: the first callback unregisters and closes the
 * other ready descriptor; a new pipe then takes its number in the same batch. */
static void test_batch(void)
{
    struct selector *s = open_selector();
    struct sel_event *ev;
    int a[2], b[2], q[2], x, y, z, n;

    make_pipe(a);
    make_pipe(b);
    put_byte(a[1]);
    put_byte(b[1]);
    struct sel_key *ka = sel_register(s, a[0], SEL_READ, &x);
    struct sel_key *kb = sel_register(s, b[0], SEL_READ, &y);
    if (ka == NULL || kb == NULL)
        die("sel_register");
    n = sel_select(s, 0, &ev);
    CHECK(n == 2, "two ready pipes: 2 events");
    if (n != 2) {
        sel_close(s);
        close_pair(a);
        close_pair(b);
        return;
    }
    /* "Dispatching" ev[0]: its callback is done with the other connection. */
    int gone = ev[1].key->fd;
    CHECK(sel_unregister(s, gone) == 0, "a callback unregisters a descriptor later in the batch");
    close_fd(gone);
    CHECK(ev[1].mask == 0, "its entry now has mask 0: the loop skips it");
    CHECK(ev[1].key->fd == -1, "and its retired key reads fd -1, not a reusable number");
    CHECK(ev[0].mask == SEL_READ, "the entry being dispatched is untouched");
    /* Still in the batch: a new descriptor takes the closed one's number. */
    make_pipe(q);               /* the lowest free number: gone's, most likely */
    if (q[0] != gone) {
        if (dup2(q[0], gone) == -1)
            die("dup2");
        close_fd(q[0]);
    }
    put_byte(q[1]);
    struct sel_key *kn = sel_register(s, gone, SEL_READ, &z);
    CHECK(kn != NULL && kn != ev[1].key, "fd %d reused in the same batch: a new key", gone);
    CHECK(ev[1].mask == 0, "the old entry still has mask 0");
    CHECK(sel_get_key(s, gone) == kn, "get_key gives the new key");
    int dispatched = 0;
    for (int i = 0; i < n; i++)
        if (ev[i].mask != 0)
            dispatched++;
    CHECK(dispatched == 1, "the dispatch loop runs one callback of the two");
    int self = ev[0].key->fd;
    CHECK(sel_unregister(s, self) == 0 && ev[0].mask == 0, "a callback unregistering its own key zeroes its entry");
    /* The next wait frees the retired keys: ASan would see any later use. */
    n = sel_select(s, 0, &ev);
    CHECK(n == 1 && ev[0].key == kn && ev[0].key->data == &z, "next sel_select: only the new pipe");
    sel_close(s);
    close_pair(a);              /* a[0] or b[0] is now the new pipe's read end */
    close_pair(b);
    close_fd(q[1]);
}

/* A callback that registers many descriptors (a burst of accepts) must not move the
 * batch being dispatched. Under ASan (make check) a moved array is a use-after-free. */
static void test_batch_grows(void)
{
    struct selector *s = open_selector();
    struct sel_event *ev;
    int first[2], more[64][2], x, n;

    make_pipe(first);
    put_byte(first[1]);
    if (sel_register(s, first[0], SEL_READ, &x) == NULL)
        die("sel_register");
    n = sel_select(s, 0, &ev);
    for (int i = 0; i < 64; i++) {
        make_pipe(more[i]);
        put_byte(more[i][1]);
        if (sel_register(s, more[i][0], SEL_READ, &x) == NULL)
            die("sel_register");
    }
    CHECK(n == 1 && ev[0].mask == SEL_READ && ev[0].key->data == &x,
          "64 registered during a batch: the batch is still readable where it was");
    n = sel_select(s, 0, &ev);
    CHECK(n == 65, "the next sel_select reports all 65");
    sel_close(s);
    close_pair(first);
    for (int i = 0; i < 64; i++)
        close_pair(more[i]);
}

static void test_errors(void)
{
    struct selector *s = open_selector();
    int p[2];

    make_pipe(p);
    if (sel_register(s, p[0], SEL_READ, NULL) == NULL)
        die("sel_register");
    errno = 0;
    CHECK(sel_register(s, p[0], SEL_READ, NULL) == NULL && errno == EEXIST, "register twice gives EEXIST");
    errno = 0;
    CHECK(sel_register(s, p[1], 0, NULL) == NULL && errno == EINVAL, "register with events 0 gives EINVAL");
    errno = 0;
    CHECK(sel_get_key(s, p[1]) == NULL && errno == ENOENT, "a failed register leaves nothing registered");
    errno = 0;
    CHECK(sel_register(s, p[1], 4, NULL) == NULL && errno == EINVAL, "register with events 4 gives EINVAL");
    errno = 0;
    CHECK(sel_register(s, p[1], -1, NULL) == NULL && errno == EINVAL, "register with events -1 gives EINVAL");
    errno = 0;
    CHECK(sel_register(s, p[1], SEL_WRITE | 8, NULL) == NULL && errno == EINVAL,
          "register with events WRITE|8 gives EINVAL");
    errno = 0;
    CHECK(sel_register(s, p[1], SEL_EXCLUSIVE, NULL) == NULL && errno == EINVAL,
          "register with SEL_EXCLUSIVE and no event gives EINVAL");
    /* One waiter woken of several: epoll's EPOLLEXCLUSIVE, which the others lack. */
    errno = 0;
    if (strcmp(sel_backend(s), "epoll") == 0) {
        CHECK(sel_register(s, p[1], SEL_WRITE | SEL_EXCLUSIVE, NULL) != NULL
              && sel_get_key(s, p[1])->events == SEL_WRITE,
              "register with WRITE|SEL_EXCLUSIVE works on epoll, and the key waits for WRITE");
        errno = 0;
        CHECK(sel_modify(s, p[1], SEL_WRITE | SEL_EXCLUSIVE, NULL) == NULL && errno == EINVAL,
              "modify with SEL_EXCLUSIVE gives EINVAL");
        if (sel_unregister(s, p[1]) == -1)
            die("sel_unregister");
    } else {
        CHECK(sel_register(s, p[1], SEL_WRITE | SEL_EXCLUSIVE, NULL) == NULL && errno == EOPNOTSUPP,
              "register with SEL_EXCLUSIVE gives EOPNOTSUPP off epoll");
    }
    errno = 0;
    CHECK(sel_register(s, -1, SEL_READ, NULL) == NULL && errno == EBADF, "register fd -1 gives EBADF");
    errno = 0;
    CHECK(sel_unregister(s, -1) == -1 && errno == EBADF, "unregister fd -1 gives EBADF");
    sel_close(s);
    close_pair(p);
}

/* The contract is level-triggered: a descriptor reported ready and left as it was is
 * reported again, until it is drained. (sigio: the signal came once; the backend must
 * remember the descriptor and ask again.) */
static void test_again(void)
{
    struct selector *s = open_selector();
    struct sel_event *ev;
    int p[2], sv[2], n;
    char c;

    make_pipe(p);
    make_socketpair(sv);
    struct sel_key *k = sel_register(s, p[0], SEL_READ, NULL);
    struct sel_key *w = sel_register(s, sv[0], SEL_WRITE, NULL);
    if (k == NULL || w == NULL)
        die("sel_register");
    put_byte(p[1]);             /* after the register: the change is signalled (sigio) */
    n = sel_select(s, 0, &ev);
    CHECK(n == 2 && mask_of(ev, n, k) == SEL_READ && mask_of(ev, n, w) == SEL_WRITE,
          "a byte written: the read end ready, and the socket writable");
    n = sel_select(s, 100, &ev);
    CHECK(n == 2 && mask_of(ev, n, k) == SEL_READ && mask_of(ev, n, w) == SEL_WRITE,
          "left undrained: both reported again by the next sel_select (%d)", n);
    if (read(p[0], &c, 1) != 1)
        die("read");
    n = sel_select(s, 0, &ev);
    CHECK(n == 1 && ev[0].key == w, "the byte read: only the writable socket is left");
    put_byte(p[1]);
    n = sel_select(s, 0, &ev);
    CHECK(n == 2 && mask_of(ev, n, k) == SEL_READ, "written again: the read end is back");
    sel_close(s);
    close_pair(p);
    close_pair(sv);
}

/* Unregister leaves the descriptor as it found it: no O_ASYNC, no owner (sigio turns
 * both on; the others never touch them). */
static void test_disarmed(void)
{
    struct selector *s = open_selector();
    int p[2], flags;

    make_pipe(p);
    if (sel_register(s, p[0], SEL_READ, NULL) == NULL)
        die("sel_register");
    if ((flags = fcntl(p[0], F_GETFL)) == -1)
        die("fcntl");
    int sigio = strcmp(backend, "sigio") == 0;
    CHECK(((flags & O_ASYNC) != 0) == sigio, "registered: O_ASYNC %s", sigio ? "on" : "off");
    CHECK((fcntl(p[0], F_GETOWN) != 0) == sigio, "registered: %s", sigio ? "an owner" : "no owner");
    if (sel_unregister(s, p[0]) == -1)
        die("sel_unregister");
    if ((flags = fcntl(p[0], F_GETFL)) == -1)
        die("fcntl");
    CHECK((flags & O_ASYNC) == 0, "unregistered: O_ASYNC off (F_GETFL)");
    CHECK(fcntl(p[0], F_GETOWN) == 0, "unregistered: no owner (F_GETOWN 0)");
    if (sel_register(s, p[1], SEL_WRITE, NULL) == NULL)
        die("sel_register");
    sel_close(s);
    if ((flags = fcntl(p[1], F_GETFL)) == -1)
        die("fcntl");
    CHECK((flags & O_ASYNC) == 0, "sel_close with a key registered: O_ASYNC off");
    close_pair(p);
}

/* Readiness news about a descriptor that is gone: unregistered, or closed and its
 * number registered again for an empty pipe. Nothing false is reported. */
static void test_stale(void)
{
    struct selector *s = open_selector();
    struct sel_event *ev;
    int a[2], b[2], n;

    make_pipe(a);
    if (sel_register(s, a[0], SEL_READ, NULL) == NULL)
        die("sel_register");
    put_byte(a[1]);             /* sigio: a signal for a[0] is queued */
    int num = a[0];
    if (sel_unregister(s, num) == -1)
        die("sel_unregister");
    n = sel_select(s, 0, &ev);
    CHECK(n == 0, "written, then unregistered: nothing reported");
    if (sel_register(s, num, SEL_READ, NULL) == NULL)
        die("sel_register");
    put_byte(a[1]);
    if (sel_unregister(s, num) == -1)
        die("sel_unregister");
    close_pair(a);
    make_pipe(b);               /* the lowest free numbers: a[0]'s, most likely */
    if (b[0] != num) {
        if (dup2(b[0], num) == -1)
            die("dup2");
        close_fd(b[0]);
        b[0] = num;
    }
    struct sel_key *k = sel_register(s, num, SEL_READ, NULL);
    n = sel_select(s, 50, &ev);
    CHECK(k != NULL && n == 0, "fd %d closed and reused by an empty pipe: not reported", num);
    put_byte(b[1]);
    n = sel_select(s, 0, &ev);
    CHECK(n == 1 && ev[0].key == k, "until the new pipe has data");
    sel_close(s);
    close_pair(b);
}

/* sigio: the real-time queue holds RLIMIT_SIGPENDING signals (per user); past it the
 * kernel sends a plain SIGIO and the descriptors are not named. Every ready one must
 * be found all the same. Harmless to the other backends, which queue nothing. */
static void test_overflow(void)
{
    enum { PIPES = 64 };
    struct selector *s = open_selector();
    struct sel_event *ev;
    struct rlimit rl, low;
    int p[PIPES][2], n;

    for (int i = 0; i < PIPES; i++) {
        make_pipe(p[i]);
        if (sel_register(s, p[i][0], SEL_READ, NULL) == NULL)
            die("sel_register");
    }
    n = sel_select(s, 0, &ev);  /* sigio: the first check of new keys is done */
    if (getrlimit(RLIMIT_SIGPENDING, &rl) == -1)
        die("getrlimit");
    low = rl;
    low.rlim_cur = 4;           /* the soft limit only: it can be raised back */
    if (setrlimit(RLIMIT_SIGPENDING, &low) == -1)
        die("setrlimit");
    for (int i = 0; i < PIPES; i++)
        put_byte(p[i][1]);
    if (setrlimit(RLIMIT_SIGPENDING, &rl) == -1)
        die("setrlimit");
    n = sel_select(s, 1000, &ev);
    CHECK(n == PIPES, "%d pipes written with `ulimit -i 4`: all %d reported (%d)", PIPES, PIPES, n);
    n = sel_select(s, 0, &ev);
    CHECK(n == PIPES, "and all %d again, undrained", PIPES);
    sel_close(s);
    for (int i = 0; i < PIPES; i++)
        close_pair(p[i]);
}

/* fd 1100: past what an fd_set can hold. select refuses it; poll and epoll take it. */
static void test_big_fd(void)
{
    struct selector *s;
    struct sel_event *ev;
    rlim_t hard = raise_nofile(BIG_FD + 100);
    int p[2], big, n;

    if (hard != 0) {
        CHECK(1, "%s (skipped: RLIMIT_NOFILE hard limit %llu < %d)",
              strcmp(backend, "select") == 0 ? "ERANGE" : "fd >= FD_SETSIZE accepted",
              (unsigned long long)hard, BIG_FD + 100);
        return;
    }
    s = open_selector();
    make_pipe(p);
    if ((big = fcntl(p[0], F_DUPFD, BIG_FD)) == -1)
        die("fcntl");
    errno = 0;
    struct sel_key *k = sel_register(s, big, SEL_READ, NULL);
    if (strcmp(backend, "select") == 0) {
        CHECK(k == NULL && errno == ERANGE, "fd %d >= FD_SETSIZE (%d) gives ERANGE", big, FD_SETSIZE);
        CHECK(sel_get_key(s, big) == NULL, "and leaves nothing registered");
    } else {
        CHECK(k != NULL, "fd %d >= FD_SETSIZE (%d) is accepted", big, FD_SETSIZE);
        put_byte(p[1]);
        n = sel_select(s, 0, &ev);
        CHECK(n == 1 && ev[0].key == k, "and reported when ready");
    }
    sel_close(s);
    close_fd(big);
    close_pair(p);
}

/* Many descriptors registered, one made ready: exactly one event; then all of them. */
static void test_many(void)
{
    int count = strcmp(backend, "select") == 0 ? 400 : MANY;  /* select: all below 1024 */
    int want = 2 * count + 100;
    rlim_t hard = raise_nofile((rlim_t)want);
    struct sel_event *ev;

    if (hard != 0) {
        CHECK(1, "%d pipes (skipped: RLIMIT_NOFILE hard limit %llu < %d)", count,
              (unsigned long long)hard, want);
        return;
    }
    struct selector *s = open_selector();
    int (*p)[2] = calloc((size_t)count, sizeof *p);
    int registered = 0;
    if (p == NULL)
        die("calloc");
    for (int i = 0; i < count; i++) {
        make_pipe(p[i]);
        registered += sel_register(s, p[i][0], SEL_READ, &p[i]) != NULL;
    }
    CHECK(registered == count, "%d pipe read ends registered", count);
    int n = sel_select(s, 0, &ev);
    CHECK(n == 0, "none of them ready: 0 events");
    put_byte(p[count / 2][1]);
    n = sel_select(s, 0, &ev);
    CHECK(n == 1 && ev[0].key->fd == p[count / 2][0] && ev[0].key->data == &p[count / 2],
          "one of %d made ready: exactly one event, its own", count);
    for (int i = 0; i < count; i++)
        if (i != count / 2)
            put_byte(p[i][1]);
    n = sel_select(s, 0, &ev);
    CHECK(n == count, "all %d ready: %d events", count, n);
    sel_close(s);
    for (int i = 0; i < count; i++)
        close_pair(p[i]);
    free(p);
}

int main(void)
{
    static const char *const backends[] = { "select", "poll", "epoll", "sigio" };
    const char *env = getenv("SELECTOR");

    setvbuf(stdout, NULL, _IOLBF, 0);   /* lines in order even into a pipe */
    if (env != NULL && (saved_selector = strdup(env)) == NULL)
        die("strdup");
    backend = "default";
    test_default();
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++) {
        backend = backends[i];
        test_open();
        test_pipe();
        test_both();
        test_hangup();
        test_timeouts();
        test_eintr();
        test_modify();
        test_unregister();
        test_batch();
        test_batch_grows();
        test_again();
        test_disarmed();
        test_stale();
        test_overflow();
        test_errors();
        test_big_fd();
        test_many();
    }
    free(saved_selector);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
