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
int __wrap_accept(int fd, struct sockaddr *addr, socklen_t *len);
int __wrap_connect(int fd, const struct sockaddr *addr, socklen_t len);
ssize_t __wrap_recv(int fd, void *buf, size_t len, int flags);
ssize_t __wrap_send(int fd, const void *buf, size_t len, int flags);
int __wrap_close(int fd);
int __wrap_sigaction(int sig, const struct sigaction *sa, struct sigaction *old);
int __wrap_nanosleep(const struct timespec *want, struct timespec *left);

/* A thread is a coroutine; its pthread_t is the coroutine's address. */
int __wrap_pthread_create(pthread_t *tid, const pthread_attr_t *attr,
                          void *(*fn)(void *), void *arg)
{
    (void)attr;                 /* stack size and the like: every coroutine gets CO_STACK_SIZE */
    struct co *c = co_spawn(fn, arg);
    if (c == NULL)
        return EAGAIN;          /* pthread functions return the error, not -1 */
    *tid = (pthread_t)(uintptr_t)c;
    return 0;
}

int __wrap_pthread_detach(pthread_t tid)
{
    return co_detach((struct co *)(uintptr_t)tid) == -1 ? errno : 0;
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
