/*
 * publisher.c: publishes COUNT messages on a shmbus topic, alternating copy-in publishing and a
 * zero-copy loan. Pair it with subscriber.c (or the C++ / Rust subscribers) in another terminal.
 *
 * Build (from the repository root):
 *   cargo build --release -p shmbus-ffi && make -C examples
 * Run, in two terminals (either may start first):
 *   target/release/examples-c/c-subscriber demo demo/hello 20
 *   target/release/examples-c/c-publisher  demo demo/hello 20 200
 * Arguments: [BUS [TOPIC [COUNT [INTERVAL_MS]]]], defaults demo demo/hello 10 500.
 * Remove the bus afterwards with `shmbus rm demo` (or shmbus_bus_remove).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shmbus.h"

/* Prints the failed call, its result code and the library's message; returns 1. */
static int fail(const char *what, shmbus_result rc) {
  char msg[256];
  shmbus_last_error_message(msg, sizeof msg);
  fprintf(stderr, "%s: %s: %s\n", what, shmbus_result_str((int)rc), msg);
  return 1;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

int main(int argc, char **argv) {
  const char *bus_name = argc > 1 ? argv[1] : "demo";
  const char *topic = argc > 2 ? argv[2] : "demo/hello";
  long count = argc > 3 ? atol(argv[3]) : 10;
  long interval_ms = argc > 4 ? atol(argv[4]) : 500;

  /* With libshmbus.so, the library found at run time must be the one this header describes. */
  if (shmbus_abi_version() != SHMBUS_ABI_VERSION) {
    fprintf(stderr, "libshmbus has C API version %u, this program was built for %u\n",
            (unsigned)shmbus_abi_version(), (unsigned)SHMBUS_ABI_VERSION);
    return 1;
  }
  shmbus_bus *bus = NULL;
  shmbus_publisher *pub = NULL;
  shmbus_result rc = shmbus_bus_open_or_create(bus_name, NULL, &bus);
  if (rc != SHMBUS_RESULT_OK) return fail("shmbus_bus_open_or_create", rc);
  rc = shmbus_publisher_new(bus, topic, NULL, &pub); /* NULL: the bus's default geometry */
  if (rc != SHMBUS_RESULT_OK) return fail("shmbus_publisher_new", rc);
  shmbus_bus_free(bus); /* the publisher keeps the bus mapped */

  int status = 0;
  for (long i = 0; i < count; i++) {
    char text[64];
    int len = snprintf(text, sizeof text, "hello %ld from C", i);
    uint64_t seq = 0;
    if (i % 2 == 0) {
      /* Copy in. */
      rc = shmbus_publisher_publish(pub, (const uint8_t *)text, (size_t)len, &seq);
      if (rc != SHMBUS_RESULT_OK) { status = fail("shmbus_publisher_publish", rc); break; }
    } else {
      /* Zero copy: write straight into the shared slot, then commit. */
      shmbus_loan *loan = NULL;
      uint8_t *data = NULL;
      size_t cap = 0;
      rc = shmbus_publisher_loan(pub, (size_t)len, &loan);
      if (rc != SHMBUS_RESULT_OK) { status = fail("shmbus_publisher_loan", rc); break; }
      rc = shmbus_loan_data(loan, &data, &cap);
      if (rc != SHMBUS_RESULT_OK) { status = fail("shmbus_loan_data", rc); break; }
      memcpy(data, text, cap);
      rc = shmbus_loan_commit(loan, &seq);
      if (rc != SHMBUS_RESULT_OK) { status = fail("shmbus_loan_commit", rc); break; }
    }
    printf("published seq=%llu payload=%s\n", (unsigned long long)seq, text);
    fflush(stdout);
    if (interval_ms > 0 && i + 1 < count) sleep_ms(interval_ms);
  }
  shmbus_publisher_free(pub);
  return status;
}
