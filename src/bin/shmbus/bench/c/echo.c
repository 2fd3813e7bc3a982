/*
 * echo.c: the C end of `shmbus bench`'s `c` transport. `shmbus bench` compiles it at bench time
 * against libshmbus.a and ffi/include/shmbus.h (see c_echo.rs) and starts it instead of
 * `shmbus bench-child --role echo`; it is never run by hand.
 *
 *   echo BUS PAYLOAD MODE SPIN_NS CPU PARENT_PID DEADLINE_MS
 *   echo --probe BUS
 *
 * It opens the parent's bus, subscribes to `ping`, publishes on `pong`, prints `ready pinned=N`
 * and then sends every message back, exactly as the Rust echo on the copy path does:
 * shmbus_subscriber_recv_timeout copies the message into a private PAYLOAD-byte buffer, the
 * sequence number (bytes 0..8, little-endian) is read from it, and shmbus_publisher_publish
 * copies the buffer into the `pong` slot. Sequence number UINT64_MAX ends the run; it then
 * prints `done count=N lost=0 bytes=0 first_ns=0 last_ns=0` and exits 0.
 *
 * `--probe BUS` only opens the bus and makes a subscriber: it tells the benchmark whether this
 * library can attach to buses of the running shmbus build (same layout), before any run.
 *
 * Bounded like the Rust child: SIGKILL when the parent dies (PR_SET_PDEATHSIG, then a check
 * that the parent is still PARENT_PID), exit on end of file on stdin (a pipe only the parent
 * holds), alarm() at DEADLINE_MS + 3 s, and receives that time out at the deadline.
 *
 * Only functions the C API has had from the start are used: bus open, publisher new, publish,
 * subscriber new, recv with timeout (topic configurations are NULL: accept the parent's).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "shmbus.h"

#define WATCHDOG_EXIT 3
#define END_SEQ UINT64_MAX

static int fail(const char *what, shmbus_result rc) {
  char msg[512];
  shmbus_last_error_message(msg, sizeof msg);
  fprintf(stderr, "shmbus bench c echo: %s: %s: %s\n", what, shmbus_result_str((int)rc), msg);
  return 1;
}

/* The parent never writes to our stdin: end of file (or an error) means it closed or died. */
static void *watch_stdin(void *arg) {
  (void)arg;
  char sink[64];
  for (;;) {
    ssize_t n = read(STDIN_FILENO, sink, sizeof sink);
    if (n > 0 || (n < 0 && errno == EINTR)) continue;
    _exit(WATCHDOG_EXIT);
  }
  return NULL;
}

static int parse_u64(const char *s, unsigned long long *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0') return -1;
  *out = v;
  return 0;
}

/* The sequence number: bytes 0..8, little-endian (the benchmark's message header). */
static uint64_t get_seq(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

static int probe(const char *bus_name) {
  shmbus_bus *bus;
  shmbus_subscriber *sub;
  shmbus_result rc = shmbus_bus_open(bus_name, NULL, &bus);
  if (rc != SHMBUS_RESULT_OK) return fail("open bus", rc);
  rc = shmbus_subscriber_new(bus, "probe", NULL, NULL, &sub);
  shmbus_bus_free(bus);
  if (rc != SHMBUS_RESULT_OK) return fail("subscriber", rc);
  shmbus_subscriber_free(sub);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--probe") == 0) return probe(argv[2]);
  if (argc != 8) {
    fprintf(stderr,
            "usage: %s BUS PAYLOAD MODE SPIN_NS CPU PARENT_PID DEADLINE_MS | --probe BUS\n"
            "(started by shmbus bench, not by hand)\n",
            argv[0]);
    return 2;
  }
  const char *bus_name = argv[1];
  const char *mode = argv[3];
  unsigned long long payload, spin_ns, parent, deadline_ms;
  long cpu = strtol(argv[5], NULL, 10);
  if (parse_u64(argv[2], &payload) || parse_u64(argv[4], &spin_ns) ||
      parse_u64(argv[6], &parent) || parse_u64(argv[7], &deadline_ms) || payload < 8) {
    fprintf(stderr, "shmbus bench c echo: bad arguments\n");
    return 2;
  }

  /* Watchdogs first, as the Rust child does. */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || (unsigned long long)getppid() != parent) {
    _exit(WATCHDOG_EXIT);
  }
  pthread_t watcher;
  if (pthread_create(&watcher, NULL, watch_stdin, NULL) != 0) return 1;
  pthread_detach(watcher);
  alarm((unsigned)(deadline_ms / 1000 + 3));
  uint64_t deadline_ns = shmbus_monotonic_ns() + (uint64_t)deadline_ms * 1000000u;

  int pinned = 0;
  if (cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET((int)cpu, &set);
    pinned = sched_setaffinity(0, sizeof set, &set) == 0;
  }

  shmbus_subscriber_config cfg = shmbus_subscriber_config_default();
  if (strcmp(mode, "spin") == 0) {
    cfg.wait = SHMBUS_WAIT_STRATEGY_SPIN;
  } else if (strcmp(mode, "park") == 0) {
    cfg.wait = SHMBUS_WAIT_STRATEGY_PARK;
  } else if (strcmp(mode, "spin-then-park") == 0) {
    cfg.wait = SHMBUS_WAIT_STRATEGY_SPIN_THEN_PARK;
    cfg.spin_ns = spin_ns;
  } else {
    fprintf(stderr, "shmbus bench c echo: unknown mode %s\n", mode);
    return 2;
  }

  shmbus_bus *bus;
  shmbus_subscriber *sub = NULL;
  shmbus_publisher *pub = NULL;
  shmbus_result rc = shmbus_bus_open(bus_name, NULL, &bus);
  if (rc != SHMBUS_RESULT_OK) return fail("open bus", rc);
  rc = shmbus_subscriber_new(bus, "ping", NULL, &cfg, &sub);
  if (rc == SHMBUS_RESULT_OK) rc = shmbus_publisher_new(bus, "pong", NULL, &pub);
  shmbus_bus_free(bus); /* the handles keep the bus mapped */
  if (rc != SHMBUS_RESULT_OK) {
    shmbus_subscriber_free(sub);
    return fail("topics", rc);
  }
  uint8_t *buf = malloc((size_t)payload);
  if (buf == NULL) {
    fprintf(stderr, "shmbus bench c echo: out of memory\n");
    return 1;
  }
  memset(buf, 0, (size_t)payload);

  printf("ready pinned=%d\n", pinned);
  fflush(stdout);

  int status = 0;
  unsigned long long count = 0;
  for (;;) {
    uint64_t now = shmbus_monotonic_ns();
    uint64_t left = deadline_ns > now ? deadline_ns - now : 0;
    shmbus_message_info info;
    shmbus_loss loss;
    rc = shmbus_subscriber_recv_timeout(sub, buf, (size_t)payload, left, &info, &loss);
    if (rc == SHMBUS_RESULT_OK) {
      uint64_t seq = get_seq(buf);
      if (seq == END_SEQ) break;
      rc = shmbus_publisher_publish(pub, buf, (size_t)payload, NULL);
      if (rc != SHMBUS_RESULT_OK) {
        status = fail("publish", rc);
        break;
      }
      count++;
    } else if (rc == SHMBUS_RESULT_TIMEOUT && left > 0) {
      continue;
    } else if (rc == SHMBUS_RESULT_TIMEOUT) {
      fprintf(stderr, "shmbus bench c echo: no end-of-run message before the deadline\n");
      status = 1;
      break;
    } else if (rc == SHMBUS_RESULT_LOST) {
      fprintf(stderr, "shmbus bench c echo: %llu messages lost\n",
              (unsigned long long)loss.count);
      status = 1;
      break;
    } else {
      status = fail("recv", rc);
      break;
    }
  }
  if (status == 0) {
    printf("done count=%llu lost=0 bytes=0 first_ns=0 last_ns=0\n", count);
    fflush(stdout);
  }
  free(buf);
  shmbus_publisher_free(pub);
  shmbus_subscriber_free(sub);
  return status;
}
