/*
 * 08-coroutines/ctx.c: a hand-written context switch for x86-64 and aarch64.
 *
 * ctx_switch() is called like any function, so the compiler has already saved
 * every register the calling convention lets a call destroy ("caller-saved").
 * It only has to keep what a callee must preserve: those registers go on the
 * old stack, the stack pointer goes into *from, the stack pointer in *to comes
 * back, and the same registers are popped off the new stack. Then we jump to
 * wherever the new context called ctx_switch() from (or to its entry, the first
 * time). A dozen instructions: this is why a coroutine switch costs nanoseconds
 * and a thread switch (through the kernel) microseconds.
 *
 * Jump, not return: the CPU predicts where a `ret` goes from its own stack of
 * the calls it saw, and a switch always returns into another coroutine's call,
 * so every `ret` here would be mispredicted (about 20 cycles; switch-bench
 * measured 15-19 ns per switch with `ret`, 4-6 ns with the jump). An indirect
 * jump is predicted from the branch history, and switching to and fro is a
 * pattern it learns.
 *
 * The floating-point *control* state (rounding mode, exception masks) is also
 * callee-saved by both ABIs, so it travels with the context; the FP data
 * registers are caller-saved, except aarch64's d8-d15.
 */
#ifdef CTX_UCONTEXT
#error "ctx.c is the hand-written switch: compile it without -DCTX_UCONTEXT, or use ctx-ucontext.c"
#endif
#include "ctx.h"

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)

/*
 * CET, which -fcf-protection asks for (Ubuntu's gcc by default, Fedora's flags),
 * has two halves and this switch keeps neither. The shadow stack, a second stack
 * of return addresses that every ret is checked against, would need one per
 * coroutine and a switch of it here (rstorssp, saveprevssp); indirect branch
 * tracking wants an endbr64 wherever a jmp lands, and ours lands after a call.
 * Compiled with the flag, the object would still claim both (the compiler marks
 * the whole file, and a note of our own cannot take it back: the linker ORs an
 * object's notes), and where CET is enforced the first switch would kill the
 * program. So the promise is not made: this file refuses the flag, and the
 * Makefile builds it with -fcf-protection=none, after any CFLAGS. The program,
 * whose mark is what all its objects claim, then claims nothing, truly.
 */
#if defined(__CET__)
#error "the hand-written switch breaks x86 CET (-fcf-protection): build it with -fcf-protection=none, or use ctx-ucontext.c"
#endif

const char ctx_kind[] = "hand-written x86-64";

/*
 * System V AMD64 ABI: rbx, rbp, r12-r15 and rsp are callee-saved, and so are
 * the control bits of MXCSR (SSE) and the x87 control word. rdi holds from,
 * rsi holds to, rdx the value handed over, returned in rax.
 */
__asm__(
    ".text\n"
    ".globl ctx_switch\n"
    ".type ctx_switch, @function\n"
    "ctx_switch:\n"
    "    pushq %rbp\n"
    "    pushq %rbx\n"
    "    pushq %r12\n"
    "    pushq %r13\n"
    "    pushq %r14\n"
    "    pushq %r15\n"
    "    subq $8, %rsp\n"
    "    stmxcsr (%rsp)\n"              /* SSE control and status */
    "    fnstcw 4(%rsp)\n"              /* x87 control word */
    "    movq %rsp, (%rdi)\n"           /* from->sp = rsp */
    "    movq (%rsi), %rsp\n"           /* rsp = to->sp: now on the other stack */
    "    ldmxcsr (%rsp)\n"
    "    fldcw 4(%rsp)\n"
    "    addq $8, %rsp\n"
    "    popq %r15\n"
    "    popq %r14\n"
    "    popq %r13\n"
    "    popq %r12\n"
    "    popq %rbx\n"
    "    popq %rbp\n"
    "    movq %rdx, %rax\n"            /* the value, as ctx_switch's result */
    "    popq %rcx\n"                  /* where `to` called ctx_switch from: */
    "    jmpq *%rcx\n"                 /* go there (see "Jump, not return") */
    ".size ctx_switch, .-ctx_switch\n");

/* What ctx_switch pops, lowest address first. */
struct frame {
    uint32_t mxcsr;
    uint16_t fpucw;
    uint16_t pad;
    uint64_t r15, r14, r13, r12, rbx, rbp;
    void (*ret)(void);          /* ctx_switch jumps here: the entry */
    void *entry_ret;            /* entry's own return address: none (0 ends a backtrace) */
};

int ctx_make(struct ctx *c, void *stack, size_t size, void (*entry)(void))
{
    /* The ABI wants rsp + 8 to be a multiple of 16 when a function starts (as if
     * a call had just pushed its return address): the top is 16-aligned, the
     * frame's last word sits 8 below it, and entry starts with rsp there. */
    uintptr_t top = ((uintptr_t)stack + size) & ~(uintptr_t)15;
    struct frame *f = (struct frame *)(top - sizeof *f);

    _Static_assert(sizeof(struct frame) == 72, "the frame ctx_switch pops");
    memset(f, 0, sizeof *f);
    f->mxcsr = 0x1F80;          /* the ABI's initial values: every exception masked, */
    f->fpucw = 0x037F;          /* round to nearest, x87 in extended precision */
    f->ret = entry;
    c->sp = f;
    return 0;
}

#elif defined(__aarch64__)

/*
 * Branch protection (-mbranch-protection, the default of some distributions'
 * gcc) is a promise this switch can keep, and does. BTI faults an indirect
 * branch (br, blr) that does not land on a bti instruction, and our br x30
 * lands after a call; but ret is not checked. PAC signs a function's return
 * address with its stack pointer and checks it at its return: every coroutine's
 * frames keep their own sp, and x30 goes back as it came, unsigned. So, built
 * for BTI, the switch begins with its landing pad and ends with ret, paying the
 * misprediction "Jump, not return" avoids; the object claims BTI and PAC, truly.
 */
#if defined(__ARM_FEATURE_BTI_DEFAULT)
#define LANDING_PAD "    hint #34\n"   /* bti c; a no-op before ARMv8.5 */
#define RESUME      "    ret\n"        /* BTI does not check a return */
#else
#define LANDING_PAD ""
#define RESUME      "    br x30\n"     /* br, not ret (see "Jump, not return") */
#endif

const char ctx_kind[] = "hand-written aarch64";

/*
 * AAPCS64: x19-x28, the frame pointer x29, the link register x30, sp, and the
 * low 64 bits of v8-v15 (d8-d15) are callee-saved, and so is FPCR (rounding
 * mode and exception traps). x0 holds from, x1 holds to, x2 the value handed
 * over, returned in x0. sp stays 16-aligned.
 */
__asm__(
    ".text\n"
    ".globl ctx_switch\n"
    ".type ctx_switch, %function\n"
    "ctx_switch:\n"
    LANDING_PAD
    "    sub sp, sp, #176\n"
    "    stp x19, x20, [sp, #0]\n"
    "    stp x21, x22, [sp, #16]\n"
    "    stp x23, x24, [sp, #32]\n"
    "    stp x25, x26, [sp, #48]\n"
    "    stp x27, x28, [sp, #64]\n"
    "    stp x29, x30, [sp, #80]\n"    /* x30: where to return to */
    "    stp d8, d9, [sp, #96]\n"
    "    stp d10, d11, [sp, #112]\n"
    "    stp d12, d13, [sp, #128]\n"
    "    stp d14, d15, [sp, #144]\n"
    "    mrs x9, fpcr\n"
    "    str x9, [sp, #160]\n"
    "    mov x9, sp\n"
    "    str x9, [x0]\n"                /* from->sp = sp */
    "    ldr x9, [x1]\n"
    "    mov sp, x9\n"                  /* sp = to->sp: now on the other stack */
    "    ldp x19, x20, [sp, #0]\n"
    "    ldp x21, x22, [sp, #16]\n"
    "    ldp x23, x24, [sp, #32]\n"
    "    ldp x25, x26, [sp, #48]\n"
    "    ldp x27, x28, [sp, #64]\n"
    "    ldp x29, x30, [sp, #80]\n"
    "    ldp d8, d9, [sp, #96]\n"
    "    ldp d10, d11, [sp, #112]\n"
    "    ldp d12, d13, [sp, #128]\n"
    "    ldp d14, d15, [sp, #144]\n"
    "    ldr x9, [sp, #160]\n"
    "    msr fpcr, x9\n"
    "    add sp, sp, #176\n"
    "    mov x0, x2\n"                  /* the value, as ctx_switch's result */
    RESUME                              /* where `to` called ctx_switch from */
    ".size ctx_switch, .-ctx_switch\n");

/* What ctx_switch loads, lowest address first. */
struct frame {
    uint64_t x19_x28[10];
    uint64_t x29;               /* frame pointer: 0 ends a backtrace */
    void (*x30)(void);          /* ctx_switch branches here: the entry */
    uint64_t d8_d15[8];
    uint64_t fpcr;              /* 0: round to nearest, no traps */
    uint64_t pad;               /* keeps the frame a multiple of 16 */
};

int ctx_make(struct ctx *c, void *stack, size_t size, void (*entry)(void))
{
    uintptr_t top = ((uintptr_t)stack + size) & ~(uintptr_t)15;
    struct frame *f = (struct frame *)(top - sizeof *f);

    _Static_assert(sizeof(struct frame) == 176, "the frame ctx_switch loads");
    memset(f, 0, sizeof *f);
    f->x30 = entry;             /* entry starts with sp = top, 16-aligned */
    c->sp = f;
    return 0;
}

#else
#error "no hand-written switch for this machine: build with CTX=ucontext"
#endif

/* An executable stack is never needed: say so, or the linker assumes it is. */
__asm__(".section .note.GNU-stack,\"\",%progbits\n.text\n");
