/*
 * 08-coroutines/ctx-ucontext.c: the same context switch with ucontext.
 *
 * makecontext/swapcontext do what ctx.c does by hand, portably, and one thing
 * more: swapcontext saves and restores the signal mask, which takes a system
 * call (rt_sigprocmask) on every switch, and a second one here keeps the mask
 * the thread's rather than each context's. switch-bench shows what they cost.
 */
#define _GNU_SOURCE             /* ucontext is obsolescent in POSIX, still in glibc */
#ifndef CTX_UCONTEXT
#define CTX_UCONTEXT            /* this file is that switch, even compiled alone */
#endif
#include "ctx.h"

#include <signal.h>
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
    /* swapcontext would install the signal mask `to` had when it last left (the
     * hub's: from the runtime's first call). The mask belongs to the thread, as
     * with the hand-written switch: hand the current one over. Both calls fail
     * only on a bad pointer: the runtime is broken and cannot go on. */
    if (sigprocmask(SIG_SETMASK, NULL, &to->uc.uc_sigmask) == -1
            || swapcontext(&from->uc, &to->uc) == -1) {
        perror("swapcontext");
        abort();
    }
    return handed;
}
