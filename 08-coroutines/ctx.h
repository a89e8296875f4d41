/*
 * 08-coroutines/ctx.h: the context switch under the runtime.
 *
 * A context is what a paused coroutine needs to go on: its stack pointer, and
 * the registers the calling convention says a function must give back as it
 * found them. ctx.c switches by hand (x86-64 and aarch64); ctx-ucontext.c does
 * the same with makecontext/swapcontext. The Makefile picks one (CTX=ucontext).
 */
#ifndef CTX_H
#define CTX_H

#include <stddef.h>

#ifdef CTX_UCONTEXT
#include <ucontext.h>
struct ctx {
    ucontext_t uc;
};
#else
struct ctx {
    void *sp;           /* the rest is saved on the stack this points into */
};
#endif

/* Every file that includes this one must be built for the same switch: co.c
 * sized for ctx.c's one pointer and linked with ctx-ucontext.c would have
 * getcontext() write a whole ucontext_t over the heap. So ctx_make's name says
 * which struct ctx its caller was compiled with, and a mismatched build stops at
 * the link with that name as the advice:
 *   undefined reference to `ctx_make_for_ctx_c__link_ctx_c_or_compile_all_with_DCTX_UCONTEXT'
 * (ctx.c itself refuses -DCTX_UCONTEXT with an #error). */
#ifdef CTX_UCONTEXT
#define ctx_make ctx_make_for_ctx_ucontext_c__link_ctx_ucontext_c_or_compile_all_without_DCTX_UCONTEXT
#else
#define ctx_make ctx_make_for_ctx_c__link_ctx_c_or_compile_all_with_DCTX_UCONTEXT
#endif

/* Prepare c to start entry() on the stack [stack, stack + size) at its first
 * switch. entry() must never return: a finished coroutine switches away.
 * 0, or -1 with errno set. */
int ctx_make(struct ctx *c, void *stack, size_t size, void (*entry)(void));

/* Save the running context in from and resume to, where it last switched
 * away (or at its entry), handing it value: what to's own ctx_switch returns.
 * Returns when something switches back to from, with the value handed over. */
void *ctx_switch(struct ctx *from, struct ctx *to, void *value);

/* Which switch this is, for the benchmark's output. */
extern const char ctx_kind[];

#endif
