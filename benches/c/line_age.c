/*
 * line_age: what a cache line costs to hand from one core to another, as a function of how many
 * lines a ring cycles through and of the time between two messages. No shmbus code: two threads
 * pinned to two CPUs ping-pong an 8-byte stamp through two rings (one per direction) of `slots`
 * 64-byte lines each; message i goes to line i % slots, as in any ring buffer. The echo may wait
 * `gap_ns` (busy, reading the clock) before it answers. Prints the median and p90 of half the
 * round trip, minus half the gap.
 *
 * docs/benchmarks.md quotes its output ("Reproduced without shmbus, and with time between
 * messages"). Build and run:
 *   cc -O2 -pthread benches/c/line_age.c -o line_age
 *   ./line_age [slots=1] [gap_ns=0] [round_trips=500000] [cpu_a cpu_b]
 * The CPUs default to the first two this process may use. Two busy-spinning threads: give it two
 * otherwise idle CPUs (with fewer than two it says so and does nothing). A watchdog ends it after
 * 60 s.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LINE 64

struct line {
    _Alignas(LINE) _Atomic uint64_t stamp;
};

static struct line *rings; /* ring 0: a -> b, ring 1: b -> a; `slots` lines each */
static uint64_t slots = 1, gap_ns = 0, round_trips = 500000;
static const uint64_t warmup = 10000;
static int cpu_a = -1, cpu_b = -1;

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    int err = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    if (err != 0) {
        fprintf(stderr, "line_age: cannot pin to CPU %d: %s\n", cpu, strerror(err));
        exit(2);
    }
}

static _Atomic uint64_t *slot(int ring, uint64_t i)
{
    return &rings[(uint64_t)ring * slots + i % slots].stamp;
}

static void send(int ring, uint64_t i)
{
    atomic_store_explicit(slot(ring, i), i + 1, memory_order_release);
}

static void wait_for(int ring, uint64_t i)
{
    while (atomic_load_explicit(slot(ring, i), memory_order_acquire) != i + 1)
        cpu_relax();
}

static void *echo(void *arg)
{
    (void)arg;
    pin(cpu_b);
    for (uint64_t i = 0; i < warmup + round_trips; i++) {
        wait_for(0, i);
        if (gap_ns) {
            uint64_t until = now_ns() + gap_ns;
            while (now_ns() < until)
                ;
        }
        send(1, i);
    }
    return NULL;
}

static int by_value(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static uint64_t arg(int argc, char **argv, int i, uint64_t dflt)
{
    if (argc <= i)
        return dflt;
    char *end;
    unsigned long long v = strtoull(argv[i], &end, 10);
    if (*argv[i] == '\0' || *end != '\0') {
        fprintf(stderr, "line_age: not a number: %s\n", argv[i]);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    slots = arg(argc, argv, 1, 1);
    gap_ns = arg(argc, argv, 2, 0);
    round_trips = arg(argc, argv, 3, 500000);
    if (argc > 5) {
        cpu_a = (int)arg(argc, argv, 4, 0);
        cpu_b = (int)arg(argc, argv, 5, 0);
    } else {
        cpu_set_t allowed;
        if (sched_getaffinity(0, sizeof allowed, &allowed) == 0) {
            for (int c = 0; c < CPU_SETSIZE && cpu_b < 0; c++) {
                if (!CPU_ISSET(c, &allowed))
                    continue;
                if (cpu_a < 0)
                    cpu_a = c;
                else
                    cpu_b = c;
            }
        }
        if (cpu_b < 0) {
            printf("line_age: needs two CPUs to pin its threads to; nothing measured\n");
            return 0;
        }
    }
    if (slots == 0 || slots > (1u << 24) || round_trips == 0 || round_trips > 100000000) {
        fprintf(stderr, "usage: line_age [slots 1..2^24] [gap_ns] [round_trips 1..1e8] [cpu_a] [cpu_b]\n");
        return 2;
    }
    alarm(60); /* watchdog: a lost peer must not leave a spinning process behind */
    rings = aligned_alloc(LINE, 2 * slots * sizeof *rings);
    uint64_t *half_rtt = malloc(round_trips * sizeof *half_rtt);
    if (!rings || !half_rtt) {
        fprintf(stderr, "line_age: out of memory\n");
        return 2;
    }
    memset(rings, 0, 2 * slots * sizeof *rings);
    pin(cpu_a);
    pthread_t t;
    if (pthread_create(&t, NULL, echo, NULL) != 0) {
        fprintf(stderr, "line_age: cannot start the echo thread\n");
        return 2;
    }
    for (uint64_t i = 0; i < warmup + round_trips; i++) {
        uint64_t t0 = now_ns();
        send(0, i);
        wait_for(1, i);
        if (i >= warmup)
            half_rtt[i - warmup] = (now_ns() - t0 - gap_ns) / 2;
    }
    pthread_join(t, NULL);
    qsort(half_rtt, round_trips, sizeof *half_rtt, by_value);
    printf("slots %8llu  gap %7llu ns  half round trip: p50 %4llu ns  p90 %4llu ns\n",
           (unsigned long long)slots, (unsigned long long)gap_ns,
           (unsigned long long)half_rtt[round_trips / 2],
           (unsigned long long)half_rtt[round_trips * 9 / 10]);
    free(half_rtt);
    free(rings);
    return 0;
}
