/*
 * 08-coroutines/wrap.c: monkey patching, the C way (gevent's monkey.patch_all).
 *
 * threads-server.c beside this file is 01-blocking's, byte for byte. The
 * Makefile links it with -Wl,--wrap=accept (and the rest of its WRAPPED list):
 * the linker then sends the program's every call to accept() to
 * __wrap_accept() here. Each wrapper does what the libc call promised, with
 * the runtime underneath: pthread_create() spawns a coroutine, accept() and
 * recv() park the coroutine instead of the thread. The program cannot tell;
 * its "threads" are coroutines in one OS thread (the notes' DummyThread).
 *
 * What --wrap cannot catch, and gevent's patch can: calls made inside libc
 * (getaddrinfo's own sockets, fprintf's write), inside other libraries, or by
 * pointer; and the patch holds only for the objects linked with it. gevent
 * patches modules at import time; --wrap patches references at link time.
 * The README lists the calls patched here and what the patch cannot see.
 */
#define _GNU_SOURCE
#include "co.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

int __wrap_pthread_create(pthread_t *tid, const pthread_attr_t *attr,
                          void *(*fn)(void *), void *arg);
int __wrap_pthread_detach(pthread_t tid);
int __wrap_pthread_join(pthread_t tid, void **result);
pthread_t __wrap_pthread_self(void);
int __wrap_accept(int fd, struct sockaddr *addr, socklen_t *len);
int __wrap_connect(int fd, const struct sockaddr *addr, socklen_t len);
ssize_t __wrap_recv(int fd, void *buf, size_t len, int flags);
ssize_t __wrap_send(int fd, const void *buf, size_t len, int flags);
int __wrap_close(int fd);
int __wrap_sigaction(int sig, const struct sigaction *sa, struct sigaction *old);
int __wrap_nanosleep(const struct timespec *want, struct timespec *left);

/* A thread is a coroutine; its pthread_t is the coroutine's address. Of its
 * attributes, the one that matters here is honoured: created detached, the
 * coroutine frees itself when it ends, as the thread would (else nobody would
 * ever join it: a leak per connection). The others cannot be: every coroutine
 * has CO_STACK_SIZE of stack, whatever size or stack of its own attr asks for
 * (one that needs more dies on its guard page, loudly), and scheduling policy,
 * priority, scope and CPU affinity mean nothing inside one OS thread. */
int __wrap_pthread_create(pthread_t *tid, const pthread_attr_t *attr,
                          void *(*fn)(void *), void *arg)
{
    int state = PTHREAD_CREATE_JOINABLE, err;
    if (attr != NULL && (err = pthread_attr_getdetachstate(attr, &state)) != 0)
        return err;             /* pthread functions return the error, not -1 */
    struct co *c = co_spawn(fn, arg);
    if (c == NULL)
        return EAGAIN;
    if (state == PTHREAD_CREATE_DETACHED)
        (void)co_detach(c);     /* cannot fail: c is new, neither joined nor detached */
    *tid = (pthread_t)(uintptr_t)c;
    return 0;
}

int __wrap_pthread_detach(pthread_t tid)
{
    return co_detach((struct co *)(uintptr_t)tid) == -1 ? errno : 0;
}

/* co_join: EINVAL for a thread detached or already being joined. Joining
 * oneself is EDEADLK, as pthread_join says (co_join calls it EINVAL). */
int __wrap_pthread_join(pthread_t tid, void **result)
{
    struct co *c = (struct co *)(uintptr_t)tid;
    if (c == co_self())
        return EDEADLK;
    return co_join(c, result) == -1 ? errno : 0;
}

/* The running coroutine, so that pthread_detach(pthread_self()) and
 * pthread_join of a pthread_t from pthread_create speak of the same thing. */
pthread_t __wrap_pthread_self(void)
{
    return (pthread_t)(uintptr_t)co_self();
}

int __wrap_accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    return co_accept(fd, addr, len);
}

int __wrap_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    return co_connect(fd, addr, len);
}

ssize_t __wrap_recv(int fd, void *buf, size_t len, int flags)
{
    return co_recv(fd, buf, len, flags);
}

ssize_t __wrap_send(int fd, const void *buf, size_t len, int flags)
{
    return co_send(fd, buf, len, flags);
}

int __wrap_close(int fd)
{
    return co_close(fd);
}

/* So that a signal still interrupts the main "thread"'s accept() with EINTR. */
int __wrap_sigaction(int sig, const struct sigaction *sa, struct sigaction *old)
{
    return co_sigaction(sig, sa, old);
}

/* The program's pause while out of descriptors: the others go on meanwhile. */
int __wrap_nanosleep(const struct timespec *want, struct timespec *left)
{
    if (want->tv_nsec < 0 || want->tv_nsec > 999999999) {
        errno = EINVAL;
        return -1;
    }
    long ms = LONG_MAX;         /* a sleep longer than LONG_MAX ms is forever */
    if (want->tv_sec < LONG_MAX / 1000 - 1)
        ms = (long)want->tv_sec * 1000 + (want->tv_nsec + 999999) / 1000000;
    if (co_sleep_ms(ms) == -1) {
        if (left)
            *left = *want;      /* the runtime does not say how much was left: all of it */
        return -1;
    }
    return 0;
}
