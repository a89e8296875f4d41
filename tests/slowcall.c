/*
 * tests/slowcall.c: an LD_PRELOAD shim that holds a program just before a call.
 *
 * The tests use it to open a race window wide on purpose. A blocking server
 * checks its stop flag, then blocks in accept() or recv(): a SIGINT that lands
 * between the two sets the flag too late for the check, and the call, which has
 * not started, has nothing to be interrupted. That window is a few instructions
 * wide. This shim sleeps in it, in user space, for as long as asked, so that a
 * test can send the signal there every time.
 *
 *   SLOWCALL=NAME:MS   before each call of NAME (accept, accept4, recv or close):
 *                      say "slowcall: NAME in MS ms" on stderr, then sleep MS ms,
 *                      or until a signal handler has run in this thread; say
 *                      "slowcall: NAME now, after a signal" (or "after MS ms, no
 *                      signal"), then make the real call.
 * Without SLOWCALL, or for any other call, the shim changes nothing.
 * A signal ends the wait early on purpose: its handler has run by then, before the
 * real call, which is the window under test; waiting on would only delay the call.
 * So a test can ask for a wide window (a loaded machine may be slow to send the
 * signal) and still time how fast the server stops after it.
 *
 * Build: cc -std=c11 -shared -fPIC -o slowcall.so slowcall.c   (make does it)
 * Run:   SLOWCALL=accept:500 LD_PRELOAD=$PWD/tests/slowcall.so 01-blocking/server
 * With a program built with ASan, add ASAN_OPTIONS=verify_asan_link_order=0: ASan
 * wants its runtime loaded first, but here it need not be, since the shim only
 * passes each call on to the next library (ASan's interceptor, then libc).
 */
#define _GNU_SOURCE             /* RTLD_NEXT */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Not <sys/socket.h>: with _GNU_SOURCE it declares accept() with a transparent
 * union that a plain definition does not match. These are the same calls to the
 * machine (and <unistd.h> has socklen_t). */
struct sockaddr;
int accept(int fd, struct sockaddr *addr, socklen_t *len);
int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);
ssize_t recv(int fd, void *buf, size_t size, int flags);

static char slow_name[16];              /* the call to hold, from SLOWCALL */
static long slow_ms;
static int (*real_accept)(int, struct sockaddr *, socklen_t *);
static int (*real_accept4)(int, struct sockaddr *, socklen_t *, int);
static ssize_t (*real_recv)(int, void *, size_t, int);
static int (*real_close)(int);

/* The shim's own messages: one write() each, so that lines from threads do not mix. */
static void say(const char *line)
{
    /* Nothing to do if stderr is gone: the test that waits for the line will say so. */
    if (write(STDERR_FILENO, line, strlen(line)) == -1)
        return;
}

static void fail(const char *what)
{
    char line[256];
    snprintf(line, sizeof line, "slowcall: %s\n", what);
    say(line);
    abort();
}

/* The next definition of name after this library: ASan's interceptor or libc's. */
static void find(const char *name, void *fn_ptr)
{
    void *fn = dlsym(RTLD_NEXT, name);
    if (fn == NULL) {
        const char *why = dlerror();
        fail(why != NULL ? why : name);
    }
    /* ISO C has no conversion from void * to a function pointer; copy the bytes. */
    memcpy(fn_ptr, &fn, sizeof fn);
}

/* Resolve everything before main(), while the program has one thread: the
 * wrappers below then only read these pointers, from any thread. */
__attribute__((constructor)) static void setup(void)
{
    find("accept", &real_accept);
    find("accept4", &real_accept4);
    find("recv", &real_recv);
    find("close", &real_close);

    const char *spec = getenv("SLOWCALL");
    if (spec == NULL || *spec == '\0')
        return;
    const char *colon = strchr(spec, ':');
    char *end;
    errno = 0;
    if (colon != NULL)
        slow_ms = strtol(colon + 1, &end, 10);
    if (colon == NULL || (size_t)(colon - spec) >= sizeof slow_name || errno != 0
            || end == colon + 1 || *end != '\0' || slow_ms < 0)
        fail("SLOWCALL wants NAME:MILLISECONDS, e.g. accept:500");
    memcpy(slow_name, spec, (size_t)(colon - spec));
}

/* If SLOWCALL names this call, announce it, then sleep until the time asked
 * has passed or a signal handler has run (EINTR), whichever comes first. */
static void hold(const char *name)
{
    if (strcmp(name, slow_name) != 0)
        return;
    int saved = errno;          /* the real call's caller must not see ours */
    char line[128];
    snprintf(line, sizeof line, "slowcall: %s in %ld ms\n", name, slow_ms);
    say(line);
    struct timespec want = { .tv_sec = slow_ms / 1000, .tv_nsec = slow_ms % 1000 * 1000000 };
    if (nanosleep(&want, NULL) == 0)
        snprintf(line, sizeof line, "slowcall: %s now, after %ld ms, no signal\n", name, slow_ms);
    else if (errno == EINTR)
        snprintf(line, sizeof line, "slowcall: %s now, after a signal\n", name);
    else
        fail("nanosleep failed");
    say(line);
    errno = saved;
}

int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    hold("accept");
    return real_accept(fd, addr, len);
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    hold("accept4");
    return real_accept4(fd, addr, len, flags);
}

ssize_t recv(int fd, void *buf, size_t size, int flags)
{
    hold("recv");
    return real_recv(fd, buf, size, flags);
}

int close(int fd)
{
    hold("close");
    return real_close(fd);
}
