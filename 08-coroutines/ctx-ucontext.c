/*
 * 08-coroutines/ctx-ucontext.c: the same context switch with ucontext.
 *
 * makecontext/swapcontext do what ctx.c does by hand, portably, and one thing
 * more: swapcontext saves and restores the signal mask, which takes a system
 * call (rt_sigprocmask) on every switch. The benchmark shows what that costs.
 */
#define _GNU_SOURCE             /* ucontext is obsolescent in POSIX, still in glibc */
#include "ctx.h"

#include <stdio.h>
#include <stdlib.h>

const char ctx_kind[] = "ucontext";

int ctx_make(struct ctx *c, void *stack, size_t size, void (*entry)(void))
{
    if (getcontext(&c->uc) == -1)
        return -1;      /* ENOSYS: no ucontext on this libc */
    c->uc.uc_stack.ss_sp = stack;
    c->uc.uc_stack.ss_size = size;
    c->uc.uc_link = NULL;       /* entry never returns */
    makecontext(&c->uc, entry, 0);
    return 0;
}

/* swapcontext carries no value: it waits here for the other side to pick up. */
static void *handed;

void *ctx_switch(struct ctx *from, struct ctx *to, void *value)
{
    handed = value;
    /* It fails only on a bad pointer: the runtime is broken and cannot go on. */
    if (swapcontext(&from->uc, &to->uc) == -1) {
        perror("swapcontext");
        abort();
    }
    return handed;
}
