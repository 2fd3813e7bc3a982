/*
 * subscriber.c: receives COUNT messages from a shmbus topic and prints them. Pair it with
 * publisher.c (or the C++ / Rust publishers) in another terminal.
 *
 * Build (from the repository root):
 *   cargo build --release -p shmbus-ffi && make -C examples
 * Run, in two terminals (either may start first: the subscriber starts at the oldest message
 * still in the ring):
 *   target/release/examples-c/c-subscriber demo demo/hello 20
 *   target/release/examples-c/c-publisher  demo demo/hello 20 200
 * Arguments: [BUS [TOPIC [COUNT [IDLE_TIMEOUT_MS]]]], defaults demo demo/hello 10 10000;
 * COUNT 0 means forever. Exits with 1 if no message arrives for IDLE_TIMEOUT_MS.
 */
#include <stdio.h>
#include <stdlib.h>

#include "shmbus.h"

static int fail(const char *what, shmbus_result rc) {
  char msg[256];
  shmbus_last_error_message(msg, sizeof msg);
  fprintf(stderr, "%s: %s: %s\n", what, shmbus_result_str((int)rc), msg);
  return 1;
}

int main(int argc, char **argv) {
  const char *bus_name = argc > 1 ? argv[1] : "demo";
  const char *topic = argc > 2 ? argv[2] : "demo/hello";
  long count = argc > 3 ? atol(argv[3]) : 10;
  long idle_ms = argc > 4 ? atol(argv[4]) : 10000;

  /* With libshmbus.so, the library found at run time must be the one this header describes. */
  if (shmbus_abi_version() != SHMBUS_ABI_VERSION) {
    fprintf(stderr, "libshmbus has C API version %u, this program was built for %u\n",
            (unsigned)shmbus_abi_version(), (unsigned)SHMBUS_ABI_VERSION);
    return 1;
  }
  shmbus_bus *bus = NULL;
  shmbus_subscriber *sub = NULL;
  shmbus_result rc = shmbus_bus_open_or_create(bus_name, NULL, &bus);
  if (rc != SHMBUS_RESULT_OK) return fail("shmbus_bus_open_or_create", rc);
  shmbus_subscriber_config cfg = shmbus_subscriber_config_default();
  cfg.start = SHMBUS_START_OLDEST;
  rc = shmbus_subscriber_new(bus, topic, NULL, &cfg, &sub);
  if (rc != SHMBUS_RESULT_OK) return fail("shmbus_subscriber_new", rc);
  shmbus_bus_free(bus);

  size_t cap = 0;
  shmbus_subscriber_capacity(sub, &cap);
  uint8_t *buf = malloc(cap + 1); /* a buffer of `capacity` bytes always suffices */
  if (buf == NULL) return 1;
  int status = 0;
  for (long received = 0; count == 0 || received < count;) {
    shmbus_message_info info;
    shmbus_loss loss;
    rc = shmbus_subscriber_recv_timeout(sub, buf, cap, (uint64_t)idle_ms * 1000000u, &info,
                                        &loss);
    if (rc == SHMBUS_RESULT_LOST) {
      printf("lost seq=%llu count=%llu\n", (unsigned long long)loss.first_seq,
             (unsigned long long)loss.count);
      continue;
    }
    if (rc != SHMBUS_RESULT_OK) {
      status = fail("shmbus_subscriber_recv_timeout", rc);
      break;
    }
    buf[info.len] = 0;
    printf("seq=%llu payload=%s\n", (unsigned long long)info.seq, (const char *)buf);
    fflush(stdout);
    received++;
  }
  free(buf);
  shmbus_subscriber_free(sub);
  return status;
}
