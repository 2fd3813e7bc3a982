/*
 * C tests of the shmbus C API: ownership, NULL handling of every function, the error codes a C
 * caller can reach, loans, lossless delivery (backpressure, borrowed samples), and fork()-based
 * exchanges between two processes (lossy and lossless).
 *
 * Run by `cargo test -p shmbus-ffi --test c_tests`, which builds this file with
 *   cc -std=c11 -Wall -Wextra -Werror -pedantic -fsanitize=address,undefined \
 *      -Iffi/include ffi/tests/c/test_shmbus.c TARGET/libshmbus.a -lpthread -ldl -lm
 * Every wait is bounded: receives use timeouts, and alarm() kills a hung process.
 * Bus names contain the pid, and each test removes its bus.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shmbus.h"

static int failures;

#define CHECK(cond)                                                                  \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);       \
      failures++;                                                                    \
    }                                                                                \
  } while (0)

/* Checks that `expr` returns `want`; on a mismatch prints both names and the last error. */
#define CHECK_RC(expr, want)                                                         \
  do {                                                                               \
    shmbus_result got_ = (expr);                                                     \
    if (got_ != (want)) {                                                            \
      char msg_[512];                                                                \
      shmbus_last_error_message(msg_, sizeof msg_);                                  \
      fprintf(stderr, "%s:%d: %s returned %s, want %s (last error: %s)\n", __FILE__, \
              __LINE__, #expr, shmbus_result_str((int)got_),                         \
              shmbus_result_str((int)(want)), msg_);                                 \
      failures++;                                                                    \
    }                                                                                \
  } while (0)

#define OK(expr) CHECK_RC(expr, SHMBUS_RESULT_OK)

/* Bounded receive timeout used everywhere a message is expected: 5 s. */
#define RECV_NS (5ull * 1000 * 1000 * 1000)

static void bus_name(char *buf, size_t len, const char *tag) {
  snprintf(buf, len, "ctest-%ld-%s", (long)getpid(), tag);
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* A small bus, created fresh (any leftover of the same name is removed first). */
static shmbus_bus *fresh_bus(const char *name) {
  shmbus_bus *bus = NULL;
  shmbus_bus_config cfg = shmbus_bus_config_default();
  cfg.size = 4u << 20;
  shmbus_bus_remove(name);
  OK(shmbus_bus_create(name, &cfg, &bus));
  return bus;
}

/* ---------------------------------------------------------------------------------------- */

static void test_defaults(void) {
  /* The library this program runs with is the one its header describes. */
  CHECK(shmbus_abi_version() == SHMBUS_ABI_VERSION);
  shmbus_bus_config b = shmbus_bus_config_default();
  CHECK(b.size == 16u << 20);
  CHECK(b.max_topics == 64);
  CHECK(b.mode == 0600);
  CHECK(b.open_timeout_ns == 2000000000ull);
  CHECK(b.prefault);
  shmbus_topic_config t = shmbus_topic_config_default();
  CHECK(t.slots == 1024 && t.payload_size == 256);
  CHECK(t.max_publishers == 16 && t.max_subscribers == 64);
  CHECK(t.delivery == SHMBUS_DELIVERY_LOSSY && SHMBUS_DELIVERY_LOSSY == 0);
  CHECK(SHMBUS_DELIVERY_LOSSLESS == 1);
  CHECK(b.default_topic.slots == t.slots && b.default_topic.payload_size == t.payload_size);
  CHECK(b.default_topic.delivery == SHMBUS_DELIVERY_LOSSY);
  shmbus_subscriber_config s = shmbus_subscriber_config_default();
  CHECK(s.wait == SHMBUS_WAIT_STRATEGY_SPIN_THEN_PARK);
  CHECK(s.start == SHMBUS_START_NEXT);
  CHECK(s.spin_ns == 50000);
  CHECK(s.liveness_window_ns == 100000000ull);
  shmbus_publisher_config p = shmbus_publisher_config_default();
  CHECK(p.timeout_ns == 1000000000ull);
  CHECK(p.liveness_window_ns == 100000000ull);
  CHECK(!p.timestamps);
  uint64_t t0 = shmbus_monotonic_ns();
  uint64_t t1 = shmbus_monotonic_ns();
  CHECK(t0 > 0 && t1 >= t0);
}

static void test_result_str(void) {
  CHECK(SHMBUS_RESULT_OK == 0);
  CHECK(strcmp(shmbus_result_str(SHMBUS_RESULT_OK), "SHMBUS_RESULT_OK") == 0);
  CHECK(strcmp(shmbus_result_str(SHMBUS_RESULT_NOT_FOUND), "SHMBUS_RESULT_NOT_FOUND") == 0);
  CHECK(strcmp(shmbus_result_str(SHMBUS_RESULT_LOST), "SHMBUS_RESULT_LOST") == 0);
  CHECK(strcmp(shmbus_result_str(-1), "SHMBUS_RESULT_UNKNOWN") == 0);
  CHECK(strcmp(shmbus_result_str(8), "SHMBUS_RESULT_UNKNOWN") == 0);
  CHECK(strcmp(shmbus_result_str(44), "SHMBUS_RESULT_UNKNOWN") == 0);
  CHECK(strcmp(shmbus_result_str(SHMBUS_RESULT_WOULD_BLOCK), "SHMBUS_RESULT_WOULD_BLOCK") == 0);
  CHECK(strcmp(shmbus_result_str(1000), "SHMBUS_RESULT_UNKNOWN") == 0);
  /* The values are part of the ABI. */
  CHECK(SHMBUS_RESULT_NULL_PARAMETER == 1 && SHMBUS_RESULT_PANIC == 2);
  CHECK(SHMBUS_RESULT_NOT_FOUND == 12 && SHMBUS_RESULT_GEOMETRY_MISMATCH == 30);
  CHECK(SHMBUS_RESULT_TOO_LARGE == 40 && SHMBUS_RESULT_EMPTY == 50);
  CHECK(SHMBUS_RESULT_BUFFER_TOO_SMALL == 53);
  CHECK(SHMBUS_RESULT_LOAN_OUTSTANDING == 4 && SHMBUS_RESULT_LOAN_INACTIVE == 5);
  CHECK(SHMBUS_RESULT_SAMPLE_OUTSTANDING == 6 && SHMBUS_RESULT_NO_SAMPLE == 7);
  CHECK(SHMBUS_RESULT_OTHER == 9 && SHMBUS_RESULT_LOCK_TIMEOUT == 35);
  CHECK(SHMBUS_RESULT_DELIVERY_MISMATCH == 36);
  CHECK(SHMBUS_RESULT_BAD_TYPE == 41 && SHMBUS_RESULT_WOULD_BLOCK == 42);
  CHECK(SHMBUS_RESULT_PUBLISH_TIMEOUT == 43);
  CHECK(SHMBUS_RESULT_NOT_LOSSLESS == 54);
}

static void test_null_parameters(void) {
  char name[64];
  bus_name(name, sizeof name, "null");
  shmbus_bus *bus = fresh_bus(name);
  shmbus_publisher *pub = NULL;
  shmbus_subscriber *sub = NULL;
  OK(shmbus_publisher_new(bus, "t", NULL, &pub));
  OK(shmbus_subscriber_new(bus, "t", NULL, NULL, &sub));

  /* Sentinels: out-params must stay untouched on failure. */
  shmbus_bus *bus_out = (shmbus_bus *)&failures;
  shmbus_publisher *pub_out = (shmbus_publisher *)&failures;
  shmbus_subscriber *sub_out = (shmbus_subscriber *)&failures;
  shmbus_loan *loan_out = (shmbus_loan *)&failures;
  const shmbus_result N = SHMBUS_RESULT_NULL_PARAMETER;

  CHECK_RC(shmbus_bus_create(NULL, NULL, &bus_out), N);
  CHECK_RC(shmbus_bus_create(name, NULL, NULL), N);
  CHECK_RC(shmbus_bus_open(NULL, NULL, &bus_out), N);
  CHECK_RC(shmbus_bus_open(name, NULL, NULL), N);
  CHECK_RC(shmbus_bus_open_or_create(NULL, NULL, &bus_out), N);
  CHECK_RC(shmbus_bus_open_or_create(name, NULL, NULL), N);
  CHECK_RC(shmbus_bus_remove(NULL), N);
  CHECK(bus_out == (shmbus_bus *)&failures);

  CHECK_RC(shmbus_publisher_new(NULL, "t", NULL, &pub_out), N);
  CHECK_RC(shmbus_publisher_new(bus, NULL, NULL, &pub_out), N);
  CHECK_RC(shmbus_publisher_new(bus, "t", NULL, NULL), N);
  CHECK_RC(shmbus_publisher_new_with(NULL, "t", NULL, NULL, &pub_out), N);
  CHECK_RC(shmbus_publisher_new_with(bus, NULL, NULL, NULL, &pub_out), N);
  CHECK_RC(shmbus_publisher_new_with(bus, "t", NULL, NULL, NULL), N);
  CHECK(pub_out == (shmbus_publisher *)&failures);

  uint64_t seq = 77;
  size_t size = 77;
  uint32_t id = 77;
  uint8_t byte = 1;
  CHECK_RC(shmbus_publisher_publish(NULL, &byte, 1, &seq), N);
  CHECK_RC(shmbus_publisher_publish(pub, NULL, 1, &seq), N);
  CHECK_RC(shmbus_publisher_try_publish(NULL, &byte, 1, &seq), N);
  CHECK_RC(shmbus_publisher_try_publish(pub, NULL, 1, &seq), N);
  CHECK_RC(shmbus_publisher_loan(NULL, 1, &loan_out), N);
  CHECK_RC(shmbus_publisher_loan(pub, 1, NULL), N);
  CHECK_RC(shmbus_publisher_try_loan(NULL, 1, &loan_out), N);
  CHECK_RC(shmbus_publisher_try_loan(pub, 1, NULL), N);
  CHECK(loan_out == (shmbus_loan *)&failures);
  CHECK_RC(shmbus_publisher_capacity(NULL, &size), N);
  CHECK_RC(shmbus_publisher_capacity(pub, NULL), N);
  CHECK_RC(shmbus_publisher_id(NULL, &id), N);
  CHECK_RC(shmbus_publisher_id(pub, NULL), N);
  CHECK(seq == 77 && size == 77 && id == 77);

  uint8_t *data = NULL;
  CHECK_RC(shmbus_loan_data(NULL, &data, &size), N);
  CHECK_RC(shmbus_loan_commit(NULL, &seq), N);
  CHECK_RC(shmbus_loan_abort(NULL), N);
  shmbus_loan *loan = NULL;
  OK(shmbus_publisher_loan(pub, 1, &loan));
  CHECK_RC(shmbus_loan_data(loan, NULL, &size), N);
  CHECK_RC(shmbus_loan_data(loan, &data, NULL), N);
  OK(shmbus_loan_abort(loan));

  CHECK_RC(shmbus_subscriber_new(NULL, "t", NULL, NULL, &sub_out), N);
  CHECK_RC(shmbus_subscriber_new(bus, NULL, NULL, NULL, &sub_out), N);
  CHECK_RC(shmbus_subscriber_new(bus, "t", NULL, NULL, NULL), N);
  CHECK(sub_out == (shmbus_subscriber *)&failures);
  CHECK_RC(shmbus_subscriber_capacity(NULL, &size), N);
  CHECK_RC(shmbus_subscriber_capacity(sub, NULL), N);

  uint8_t buf[16];
  shmbus_message_info info;
  CHECK_RC(shmbus_subscriber_try_recv(NULL, buf, sizeof buf, &info, NULL), N);
  CHECK_RC(shmbus_subscriber_try_recv(sub, NULL, sizeof buf, &info, NULL), N);
  CHECK_RC(shmbus_subscriber_try_recv(sub, buf, sizeof buf, NULL, NULL), N);
  CHECK_RC(shmbus_subscriber_recv(NULL, buf, sizeof buf, &info, NULL), N);
  CHECK_RC(shmbus_subscriber_recv(sub, NULL, sizeof buf, &info, NULL), N);
  CHECK_RC(shmbus_subscriber_recv(sub, buf, sizeof buf, NULL, NULL), N);
  CHECK_RC(shmbus_subscriber_recv_timeout(NULL, buf, sizeof buf, 1000, &info, NULL), N);
  CHECK_RC(shmbus_subscriber_recv_timeout(sub, NULL, sizeof buf, 1000, &info, NULL), N);
  CHECK_RC(shmbus_subscriber_recv_timeout(sub, buf, sizeof buf, 1000, NULL, NULL), N);
  const uint8_t *bdata = NULL;
  size_t blen = 77;
  CHECK_RC(shmbus_subscriber_try_recv_borrow(NULL, &bdata, &blen, &info, NULL), N);
  CHECK_RC(shmbus_subscriber_try_recv_borrow(sub, NULL, &blen, &info, NULL), N);
  CHECK_RC(shmbus_subscriber_try_recv_borrow(sub, &bdata, NULL, &info, NULL), N);
  CHECK_RC(shmbus_subscriber_recv_borrow_timeout(NULL, 1000, &bdata, &blen, &info, NULL), N);
  CHECK_RC(shmbus_subscriber_recv_borrow_timeout(sub, 1000, NULL, &blen, &info, NULL), N);
  CHECK_RC(shmbus_subscriber_recv_borrow_timeout(sub, 1000, &bdata, NULL, &info, NULL), N);
  CHECK_RC(shmbus_subscriber_release(NULL), N);
  CHECK(bdata == NULL && blen == 77);

  /* The message names the parameter. */
  char msg[128];
  CHECK_RC(shmbus_publisher_new(bus, "t", NULL, NULL), N);
  shmbus_last_error_message(msg, sizeof msg);
  CHECK(strstr(msg, "out") != NULL);

  /* Optional pointers: NULL is fine. Empty messages may pass NULL data. */
  OK(shmbus_publisher_publish(pub, NULL, 0, NULL));
  OK(shmbus_subscriber_recv_timeout(sub, buf, sizeof buf, RECV_NS, &info, NULL));
  CHECK(info.len == 0);
  /* An empty buffer may be NULL too (an empty C++ vector's data() is): it takes an empty
   * message, and a longer one stays unread with BUFFER_TOO_SMALL. */
  OK(shmbus_publisher_publish(pub, NULL, 0, NULL));
  OK(shmbus_subscriber_recv_timeout(sub, NULL, 0, RECV_NS, &info, NULL));
  CHECK(info.len == 0);
  OK(shmbus_publisher_publish(pub, &byte, 1, NULL));
  CHECK_RC(shmbus_subscriber_recv_timeout(sub, NULL, 0, RECV_NS, &info, NULL),
           SHMBUS_RESULT_BUFFER_TOO_SMALL);
  CHECK_RC(shmbus_subscriber_try_recv(sub, NULL, 0, &info, NULL), SHMBUS_RESULT_BUFFER_TOO_SMALL);
  OK(shmbus_subscriber_try_recv(sub, buf, sizeof buf, &info, NULL));
  CHECK(info.len == 1 && buf[0] == 1);

  /* free(NULL) is a no-op; last-error with NULL/0 asks for the length. */
  shmbus_bus_free(NULL);
  shmbus_publisher_free(NULL);
  shmbus_subscriber_free(NULL);
  CHECK(shmbus_last_error_message(NULL, 0) > 0);
  CHECK(shmbus_last_error_message(NULL, 10) > 0);

  shmbus_subscriber_free(sub);
  shmbus_publisher_free(pub);
  shmbus_bus_free(bus);
  OK(shmbus_bus_remove(name));
}

static void test_bus_errors(void) {
  char name[64], name2[64];
  bus_name(name, sizeof name, "buserr");
  bus_name(name2, sizeof name2, "buserr2");
  shmbus_bus *bus = NULL, *other = NULL;
  shmbus_bus_remove(name);

  CHECK_RC(shmbus_bus_open(name, NULL, &bus), SHMBUS_RESULT_NOT_FOUND);
  CHECK_RC(shmbus_bus_remove(name), SHMBUS_RESULT_NOT_FOUND);
  char msg[256];
  size_t n = shmbus_last_error_message(msg, sizeof msg);
  CHECK(n == strlen(msg) && strstr(msg, name) != NULL);

  bus = fresh_bus(name);
  CHECK_RC(shmbus_bus_create(name, NULL, &other), SHMBUS_RESULT_ALREADY_EXISTS);
  CHECK(other == NULL);
  OK(shmbus_bus_open(name, NULL, &other));
  shmbus_bus_free(other);
  other = NULL;
  OK(shmbus_bus_open_or_create(name, NULL, &other));
  shmbus_bus_free(other);
  other = NULL;

  const char *bad_names[] = {"", "has space", "a/b", ".hidden", "caf\xc3\xa9", "\xff"};
  for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
    CHECK_RC(shmbus_bus_create(bad_names[i], NULL, &other), SHMBUS_RESULT_INVALID_NAME);
    CHECK_RC(shmbus_bus_open(bad_names[i], NULL, &other), SHMBUS_RESULT_INVALID_NAME);
  }
  char longname[256];
  memset(longname, 'x', 201);
  longname[201] = 0;
  CHECK_RC(shmbus_bus_create(longname, NULL, &other), SHMBUS_RESULT_INVALID_NAME);

  shmbus_bus_config cfg = shmbus_bus_config_default();
  cfg.size = 4096;
  CHECK_RC(shmbus_bus_create(name2, &cfg, &other), SHMBUS_RESULT_INVALID_CONFIG);
  cfg = shmbus_bus_config_default();
  cfg.max_topics = 0;
  CHECK_RC(shmbus_bus_create(name2, &cfg, &other), SHMBUS_RESULT_INVALID_CONFIG);
  cfg = shmbus_bus_config_default();
  cfg.default_topic.slots = 3;
  CHECK_RC(shmbus_bus_create(name2, &cfg, &other), SHMBUS_RESULT_INVALID_CONFIG);
  CHECK(other == NULL);

  /* TABLE_FULL and ARENA_FULL on a tiny bus with one topic entry. */
  cfg = shmbus_bus_config_default();
  cfg.size = 256u << 10;
  cfg.max_topics = 1;
  OK(shmbus_bus_create(name2, &cfg, &other));
  shmbus_topic_config big = shmbus_topic_config_default();
  big.slots = 1024;
  big.payload_size = 4096;
  shmbus_publisher *pub = NULL;
  CHECK_RC(shmbus_publisher_new(other, "big", &big, &pub), SHMBUS_RESULT_ARENA_FULL);
  shmbus_topic_config small = shmbus_topic_config_default();
  small.slots = 4;
  small.payload_size = 8;
  OK(shmbus_publisher_new(other, "first", &small, &pub));
  shmbus_publisher_free(pub);
  pub = NULL;
  CHECK_RC(shmbus_publisher_new(other, "second", &small, &pub), SHMBUS_RESULT_TABLE_FULL);
  CHECK(pub == NULL);
  shmbus_bus_free(other);
  OK(shmbus_bus_remove(name2));

  /* A shared-memory object that never becomes ready: NOT_INITIALIZED after the timeout. */
  char path[128];
  snprintf(path, sizeof path, "/dev/shm/shmbus.%s", name2);
  int fd = open(path, O_CREAT | O_EXCL | O_RDWR, 0600);
  CHECK(fd >= 0);
  if (fd >= 0) {
    CHECK(ftruncate(fd, 64 << 10) == 0);
    close(fd);
    cfg = shmbus_bus_config_default();
    cfg.open_timeout_ns = 50u * 1000 * 1000;
    other = NULL;
    CHECK_RC(shmbus_bus_open(name2, &cfg, &other), SHMBUS_RESULT_NOT_INITIALIZED);
    CHECK(other == NULL);
    OK(shmbus_bus_remove(name2));
  }

  shmbus_bus_free(bus);
  OK(shmbus_bus_remove(name));
}

static void test_topic_errors(void) {
  char name[64];
  bus_name(name, sizeof name, "topicerr");
  shmbus_bus *bus = fresh_bus(name);
  shmbus_publisher *pub = NULL;
  shmbus_subscriber *sub = NULL;

  CHECK_RC(shmbus_publisher_new(bus, "bad topic!", NULL, &pub), SHMBUS_RESULT_INVALID_NAME);
  CHECK_RC(shmbus_publisher_new(bus, "", NULL, &pub), SHMBUS_RESULT_INVALID_NAME);
  CHECK_RC(shmbus_subscriber_new(bus, "x*y", NULL, NULL, &sub), SHMBUS_RESULT_INVALID_NAME);

  shmbus_topic_config cfg = shmbus_topic_config_default();
  cfg.slots = 3;
  CHECK_RC(shmbus_publisher_new(bus, "t", &cfg, &pub), SHMBUS_RESULT_INVALID_CONFIG);
  cfg = shmbus_topic_config_default();
  cfg.payload_size = 0;
  CHECK_RC(shmbus_subscriber_new(bus, "t", &cfg, NULL, &sub), SHMBUS_RESULT_INVALID_CONFIG);

  cfg = shmbus_topic_config_default();
  cfg.slots = 8;
  cfg.payload_size = 64;
  cfg.max_publishers = 1;
  cfg.max_subscribers = 1;
  OK(shmbus_publisher_new(bus, "t", &cfg, &pub));
  shmbus_topic_config other = cfg;
  other.slots = 16;
  shmbus_publisher *pub2 = NULL;
  shmbus_subscriber *sub2 = NULL;
  CHECK_RC(shmbus_publisher_new(bus, "t", &other, &pub2), SHMBUS_RESULT_GEOMETRY_MISMATCH);
  CHECK_RC(shmbus_subscriber_new(bus, "t", &other, NULL, &sub2), SHMBUS_RESULT_GEOMETRY_MISMATCH);
  CHECK_RC(shmbus_publisher_new(bus, "t", NULL, &pub2), SHMBUS_RESULT_PUBLISHER_TABLE_FULL);
  OK(shmbus_subscriber_new(bus, "t", NULL, NULL, &sub));
  CHECK_RC(shmbus_subscriber_new(bus, "t", &cfg, NULL, &sub2),
           SHMBUS_RESULT_SUBSCRIBER_TABLE_FULL);
  CHECK(pub2 == NULL && sub2 == NULL);
  /* A freed entry can be taken again. */
  shmbus_subscriber_free(sub);
  OK(shmbus_subscriber_new(bus, "t", &cfg, NULL, &sub));

  shmbus_subscriber_config scfg = shmbus_subscriber_config_default();
  scfg.wait = 99;
  CHECK_RC(shmbus_subscriber_new(bus, "u", NULL, &scfg, &sub2), SHMBUS_RESULT_INVALID_ARGUMENT);
  scfg = shmbus_subscriber_config_default();
  scfg.start = 7;
  CHECK_RC(shmbus_subscriber_new(bus, "u", NULL, &scfg, &sub2), SHMBUS_RESULT_INVALID_ARGUMENT);
  CHECK(sub2 == NULL);

  size_t cap = 0;
  OK(shmbus_publisher_capacity(pub, &cap));
  CHECK(cap == 64);
  OK(shmbus_subscriber_capacity(sub, &cap));
  CHECK(cap == 64);

  shmbus_subscriber_free(sub);
  shmbus_publisher_free(pub);
  shmbus_bus_free(bus);
  OK(shmbus_bus_remove(name));
}

static void test_publish_receive(void) {
  char name[64];
  bus_name(name, sizeof name, "pubrecv");
  shmbus_bus *bus = fresh_bus(name);
  shmbus_topic_config cfg = shmbus_topic_config_default();
  cfg.slots = 64;
  cfg.payload_size = 32;
  shmbus_publisher *pub = NULL;
  shmbus_subscriber *sub = NULL;
  shmbus_subscriber_config scfg = shmbus_subscriber_config_default();
  scfg.wait = SHMBUS_WAIT_STRATEGY_PARK;
  OK(shmbus_subscriber_new(bus, "greetings", &cfg, &scfg, &sub));
  shmbus_publisher_config pcfg = shmbus_publisher_config_default();
  pcfg.timestamps = 0xff; /* any nonzero byte is true */
  OK(shmbus_publisher_new_with(bus, "greetings", &cfg, &pcfg, &pub));

  uint8_t buf[64];
  shmbus_message_info info = {0, 0, 0, 0};
  shmbus_loss loss = {99, 99};
  CHECK_RC(shmbus_subscriber_try_recv(sub, buf, sizeof buf, &info, &loss), SHMBUS_RESULT_EMPTY);
  uint64_t t0 = shmbus_monotonic_ns();
  CHECK_RC(shmbus_subscriber_recv_timeout(sub, buf, sizeof buf, 2000000, &info, &loss),
           SHMBUS_RESULT_TIMEOUT);
  CHECK(shmbus_monotonic_ns() - t0 >= 2000000); /* a lower bound only */
  CHECK(info.len == 0 && loss.count == 99);     /* untouched */

  uint64_t seq = 99;
  uint64_t before = shmbus_monotonic_ns();
  OK(shmbus_publisher_publish(pub, (const uint8_t *)"hello", 5, &seq));
  CHECK(seq == 0);
  uint8_t big[33] = {0};
  CHECK_RC(shmbus_publisher_publish(pub, big, sizeof big, &seq), SHMBUS_RESULT_TOO_LARGE);
  CHECK(seq == 0);
  shmbus_loan *loan = NULL;
  CHECK_RC(shmbus_publisher_loan(pub, 33, &loan), SHMBUS_RESULT_TOO_LARGE);
  CHECK(loan == NULL);

  /* Too small a buffer leaves the message unread. */
  CHECK_RC(shmbus_subscriber_try_recv(sub, buf, 2, &info, &loss), SHMBUS_RESULT_BUFFER_TOO_SMALL);
  char msg[128];
  shmbus_last_error_message(msg, sizeof msg);
  CHECK(strstr(msg, "5 bytes") != NULL);
  OK(shmbus_subscriber_recv(sub, buf, sizeof buf, &info, &loss));
  CHECK(info.seq == 0 && info.len == 5 && memcmp(buf, "hello", 5) == 0);
  uint32_t id = 0;
  OK(shmbus_publisher_id(pub, &id));
  CHECK(info.publisher_id == id);
  CHECK(info.timestamp_ns >= before && info.timestamp_ns <= shmbus_monotonic_ns());

  OK(shmbus_publisher_publish(pub, (const uint8_t *)"world", 5, &seq));
  CHECK(seq == 1);
  OK(shmbus_subscriber_recv_timeout(sub, buf, sizeof buf, RECV_NS, &info, NULL));
  CHECK(info.seq == 1 && memcmp(buf, "world", 5) == 0);
  CHECK(info.timestamp_ns >= before);

  /* A default publisher does not stamp its messages: timestamp_ns is 0. */
  shmbus_publisher *plain = NULL;
  OK(shmbus_publisher_new(bus, "greetings", &cfg, &plain));
  OK(shmbus_publisher_publish(plain, (const uint8_t *)"plain", 5, &seq));
  CHECK(seq == 2);
  OK(shmbus_subscriber_recv_timeout(sub, buf, sizeof buf, RECV_NS, &info, NULL));
  OK(shmbus_publisher_id(plain, &id));
  CHECK(info.seq == 2 && info.publisher_id == id && memcmp(buf, "plain", 5) == 0);
  CHECK(info.timestamp_ns == 0);
  shmbus_publisher_free(plain);

  shmbus_subscriber_free(sub);
  shmbus_publisher_free(pub);
  shmbus_bus_free(bus);
  OK(shmbus_bus_remove(name));
}

static void test_lost(void) {
  char name[64];
  bus_name(name, sizeof name, "lost");
  shmbus_bus *bus = fresh_bus(name);
  shmbus_topic_config cfg = shmbus_topic_config_default();
  cfg.slots = 4;
  cfg.payload_size = 8;
  shmbus_publisher *pub = NULL;
  shmbus_subscriber *sub = NULL;
  OK(shmbus_subscriber_new(bus, "lossy", &cfg, NULL, &sub));
  OK(shmbus_publisher_new(bus, "lossy", &cfg, &pub));
  for (uint64_t i = 0; i < 10; i++) {
    OK(shmbus_publisher_publish(pub, (const uint8_t *)&i, sizeof i, NULL));
  }
  uint64_t buf[1];
  shmbus_message_info info = {77, 77, 77, 77};
  shmbus_loss loss = {0, 0};
  CHECK_RC(shmbus_subscriber_try_recv(sub, (uint8_t *)buf, sizeof buf, &info, &loss),
           SHMBUS_RESULT_LOST);
  CHECK(loss.first_seq == 0 && loss.count == 6);
  CHECK(info.seq == 77); /* untouched */
  for (uint64_t i = 6; i < 10; i++) {
    OK(shmbus_subscriber_recv_timeout(sub, (uint8_t *)buf, sizeof buf, RECV_NS, &info, &loss));
    CHECK(info.seq == i && buf[0] == i);
  }
  /* A NULL out_loss still reports LOST, and the blocking receive reports it too. */
  for (uint64_t i = 0; i < 5; i++) {
    OK(shmbus_publisher_publish(pub, (const uint8_t *)&i, sizeof i, NULL));
  }
  CHECK_RC(shmbus_subscriber_recv(sub, (uint8_t *)buf, sizeof buf, &info, NULL),
           SHMBUS_RESULT_LOST);
  OK(shmbus_subscriber_recv_timeout(sub, (uint8_t *)buf, sizeof buf, RECV_NS, &info, &loss));
  CHECK(info.seq == 11 && buf[0] == 1);

  shmbus_subscriber_free(sub);
  shmbus_publisher_free(pub);
  shmbus_bus_free(bus);
  OK(shmbus_bus_remove(name));
}

static void test_loans(void) {
  char name[64];
  bus_name(name, sizeof name, "loan");
  shmbus_bus *bus = fresh_bus(name);
  shmbus_publisher *pub = NULL, *pub2 = NULL;
  shmbus_subscriber *sub = NULL;
  OK(shmbus_subscriber_new(bus, "loans", NULL, NULL, &sub));
  OK(shmbus_publisher_new(bus, "loans", NULL, &pub));
  OK(shmbus_publisher_new(bus, "loans", NULL, &pub2));

  shmbus_loan *loan = NULL;
  uint8_t *data = NULL;
  size_t len = 0;
  uint64_t seq = 99;
  OK(shmbus_publisher_loan(pub, 5, &loan));
  CHECK(loan != NULL);
  OK(shmbus_loan_data(loan, &data, &len));
  CHECK(data != NULL && len == 5);
  memcpy(data, "zero!", 5);
  /* One loan at a time; the publisher is busy until it ends. */
  shmbus_loan *loan2 = NULL;
  CHECK_RC(shmbus_publisher_loan(pub, 5, &loan2), SHMBUS_RESULT_LOAN_OUTSTANDING);
  CHECK_RC(shmbus_publisher_publish(pub, data, 5, &seq), SHMBUS_RESULT_LOAN_OUTSTANDING);
  CHECK(loan2 == NULL && seq == 99);
  size_t cap = 0;
  OK(shmbus_publisher_capacity(pub, &cap)); /* still fine: no side effects */
  CHECK(cap == 256);
  OK(shmbus_loan_commit(loan, &seq));
  CHECK(seq == 0);
  CHECK_RC(shmbus_loan_commit(loan, &seq), SHMBUS_RESULT_LOAN_INACTIVE);
  CHECK_RC(shmbus_loan_abort(loan), SHMBUS_RESULT_LOAN_INACTIVE);
  CHECK_RC(shmbus_loan_data(loan, &data, &len), SHMBUS_RESULT_LOAN_INACTIVE);

  /* An aborted loan is skipped: nothing is lost. */
  OK(shmbus_publisher_loan(pub, 3, &loan));
  OK(shmbus_loan_abort(loan));
  OK(shmbus_publisher_publish(pub, (const uint8_t *)"two", 3, &seq));
  CHECK(seq == 2);

  /* Freeing a publisher with an outstanding loan aborts the loan. */
  OK(shmbus_publisher_loan(pub2, 4, &loan));
  shmbus_publisher_free(pub2);
  OK(shmbus_publisher_publish(pub, (const uint8_t *)"four", 4, &seq));
  CHECK(seq == 4);

  uint8_t buf[256];
  shmbus_message_info info;
  shmbus_loss loss;
  OK(shmbus_subscriber_recv_timeout(sub, buf, sizeof buf, RECV_NS, &info, &loss));
  CHECK(info.seq == 0 && info.len == 5 && memcmp(buf, "zero!", 5) == 0);
  OK(shmbus_subscriber_recv_timeout(sub, buf, sizeof buf, RECV_NS, &info, &loss));
  CHECK(info.seq == 2 && info.len == 3 && memcmp(buf, "two", 3) == 0);
  OK(shmbus_subscriber_recv_timeout(sub, buf, sizeof buf, RECV_NS, &info, &loss));
  CHECK(info.seq == 4 && info.len == 4 && memcmp(buf, "four", 4) == 0);
  CHECK_RC(shmbus_subscriber_try_recv(sub, buf, sizeof buf, &info, &loss), SHMBUS_RESULT_EMPTY);

  shmbus_subscriber_free(sub);
  shmbus_publisher_free(pub);
  shmbus_bus_free(bus);
  OK(shmbus_bus_remove(name));
}

static void test_ownership(void) {
  char name[64];
  bus_name(name, sizeof name, "own");
  shmbus_bus *bus = fresh_bus(name);
  shmbus_publisher *pub = NULL;
  shmbus_subscriber *sub = NULL;
  OK(shmbus_subscriber_new(bus, "t", NULL, NULL, &sub));
  OK(shmbus_publisher_new(bus, "t", NULL, &pub));
  /* The bus handle may go first: publishers and subscribers keep the mapping alive. */
  shmbus_bus_free(bus);
  /* So may the bus's name: open fails, existing handles keep working. */
  OK(shmbus_bus_remove(name));
  shmbus_bus *again = NULL;
  CHECK_RC(shmbus_bus_open(name, NULL, &again), SHMBUS_RESULT_NOT_FOUND);
  OK(shmbus_publisher_publish(pub, (const uint8_t *)"still", 5, NULL));
  uint8_t buf[16];
  shmbus_message_info info;
  OK(shmbus_subscriber_recv_timeout(sub, buf, sizeof buf, RECV_NS, &info, NULL));
  CHECK(info.len == 5 && memcmp(buf, "still", 5) == 0);
  shmbus_publisher_free(pub);
  shmbus_subscriber_free(sub);

  /* Many handles on one bus, freed in creation order. */
  bus = fresh_bus(name);
  shmbus_bus *b2 = NULL;
  OK(shmbus_bus_open(name, NULL, &b2));
  shmbus_publisher *pubs[4];
  for (int i = 0; i < 4; i++) {
    OK(shmbus_publisher_new(i % 2 ? bus : b2, "many", NULL, &pubs[i]));
  }
  for (int i = 0; i < 4; i++) {
    shmbus_publisher_free(pubs[i]);
  }
  shmbus_bus_free(b2);
  shmbus_bus_free(bus);
  OK(shmbus_bus_remove(name));
}

static void *thread_last_error(void *arg) {
  char msg[64] = "x";
  size_t *n = arg;
  *n = shmbus_last_error_message(msg, sizeof msg);
  return NULL;
}

static void test_last_error(void) {
  char name[64];
  bus_name(name, sizeof name, "lasterr");
  shmbus_bus *bus = NULL;
  CHECK_RC(shmbus_bus_open(name, NULL, &bus), SHMBUS_RESULT_NOT_FOUND);
  size_t full = shmbus_last_error_message(NULL, 0);
  char msg[256];
  CHECK(shmbus_last_error_message(msg, sizeof msg) == full);
  CHECK(strlen(msg) == full && strstr(msg, "does not exist") != NULL);
  char small[8];
  memset(small, 'z', sizeof small);
  CHECK(shmbus_last_error_message(small, sizeof small) == full);
  CHECK(strlen(small) == 7 && strncmp(small, msg, 7) == 0);
  char one[1] = {'z'};
  shmbus_last_error_message(one, 1);
  CHECK(one[0] == 0);
  /* A success does not clear it. */
  bus = fresh_bus(name);
  shmbus_bus_free(bus);
  OK(shmbus_bus_remove(name));
  CHECK(shmbus_last_error_message(NULL, 0) == full);
  /* It is per thread: a new thread has none. */
  pthread_t t;
  size_t other = 12345;
  CHECK(pthread_create(&t, NULL, thread_last_error, &other) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  CHECK(other == 0);
}

/* ---------------------------------------------------------------------------------------- */
/* Lossless delivery. */

#define MS_NS (1000ull * 1000)

static shmbus_topic_config lossless_cfg(uint32_t slots, uint32_t payload) {
  shmbus_topic_config cfg = shmbus_topic_config_default();
  cfg.slots = slots;
  cfg.payload_size = payload;
  cfg.delivery = SHMBUS_DELIVERY_LOSSLESS;
  return cfg;
}

static void test_lossless_backpressure(void) {
  char name[64], name2[64];
  bus_name(name, sizeof name, "llfull");
  bus_name(name2, sizeof name2, "llfull2");
  shmbus_bus *bus = fresh_bus(name);
  shmbus_topic_config cfg = lossless_cfg(4, 8);
  shmbus_publisher_config pcfg = shmbus_publisher_config_default();
  pcfg.timeout_ns = 20 * MS_NS;
  shmbus_publisher *pub = NULL;
  shmbus_subscriber *sub = NULL;
  OK(shmbus_subscriber_new(bus, "ll", &cfg, NULL, &sub));
  OK(shmbus_publisher_new_with(bus, "ll", &cfg, &pcfg, &pub));

  uint64_t seq = 99;
  for (uint64_t i = 0; i < 4; i++) {
    OK(shmbus_publisher_try_publish(pub, (const uint8_t *)&i, sizeof i, &seq));
    CHECK(seq == i);
  }
  /* The ring is full: the subscriber has read nothing. */
  uint64_t v = 4;
  seq = 99;
  CHECK_RC(shmbus_publisher_try_publish(pub, (const uint8_t *)&v, sizeof v, &seq),
           SHMBUS_RESULT_WOULD_BLOCK);
  shmbus_loan *loan = NULL;
  CHECK_RC(shmbus_publisher_try_loan(pub, 8, &loan), SHMBUS_RESULT_WOULD_BLOCK);
  uint64_t t0 = shmbus_monotonic_ns();
  CHECK_RC(shmbus_publisher_publish(pub, (const uint8_t *)&v, sizeof v, &seq),
           SHMBUS_RESULT_PUBLISH_TIMEOUT);
  CHECK(shmbus_monotonic_ns() - t0 >= 20 * MS_NS);
  char msg[256];
  shmbus_last_error_message(msg, sizeof msg);
  CHECK(strstr(msg, "timed out") != NULL);
  CHECK_RC(shmbus_publisher_loan(pub, 8, &loan), SHMBUS_RESULT_PUBLISH_TIMEOUT);
  CHECK(loan == NULL && seq == 99);

  /* Reading one message frees one slot. */
  uint64_t buf[1];
  shmbus_message_info info;
  OK(shmbus_subscriber_try_recv(sub, (uint8_t *)buf, sizeof buf, &info, NULL));
  CHECK(info.seq == 0 && buf[0] == 0);
  OK(shmbus_publisher_try_publish(pub, (const uint8_t *)&v, sizeof v, &seq));
  CHECK(seq == 4);
  v = 5;
  CHECK_RC(shmbus_publisher_try_publish(pub, (const uint8_t *)&v, sizeof v, &seq),
           SHMBUS_RESULT_WOULD_BLOCK);
  OK(shmbus_subscriber_try_recv(sub, (uint8_t *)buf, sizeof buf, &info, NULL));
  CHECK(info.seq == 1 && buf[0] == 1);
  OK(shmbus_publisher_try_loan(pub, 8, &loan));
  uint8_t *data = NULL;
  size_t len = 0;
  OK(shmbus_loan_data(loan, &data, &len));
  CHECK(len == 8);
  memcpy(data, &v, sizeof v);
  OK(shmbus_loan_commit(loan, &seq));
  CHECK(seq == 5);
  /* Nothing was lost or duplicated. */
  for (uint64_t i = 2; i <= 5; i++) {
    shmbus_loss loss = {0, 0};
    OK(shmbus_subscriber_recv_timeout(sub, (uint8_t *)buf, sizeof buf, RECV_NS, &info, &loss));
    CHECK(info.seq == i && buf[0] == i);
  }
  CHECK_RC(shmbus_subscriber_try_recv(sub, (uint8_t *)buf, sizeof buf, &info, NULL),
           SHMBUS_RESULT_EMPTY);

  /* Freeing the subscriber unregisters it at once: the publisher runs free again. */
  for (uint64_t i = 0; i < 4; i++) {
    OK(shmbus_publisher_try_publish(pub, (const uint8_t *)&i, sizeof i, NULL));
  }
  CHECK_RC(shmbus_publisher_try_publish(pub, (const uint8_t *)&v, sizeof v, NULL),
           SHMBUS_RESULT_WOULD_BLOCK);
  shmbus_subscriber_free(sub);
  for (uint64_t i = 0; i < 10; i++) {
    OK(shmbus_publisher_try_publish(pub, (const uint8_t *)&i, sizeof i, NULL));
  }
  shmbus_publisher_free(pub);

  /* A lossy topic never blocks: try_publish is publish. */
  shmbus_topic_config lossy = cfg;
  lossy.delivery = SHMBUS_DELIVERY_LOSSY;
  OK(shmbus_subscriber_new(bus, "lossy", &lossy, NULL, &sub));
  OK(shmbus_publisher_new_with(bus, "lossy", &lossy, NULL, &pub));
  for (uint64_t i = 0; i < 10; i++) {
    OK(shmbus_publisher_try_publish(pub, (const uint8_t *)&i, sizeof i, NULL));
  }
  OK(shmbus_publisher_try_loan(pub, 8, &loan));
  OK(shmbus_loan_abort(loan));
  shmbus_subscriber_free(sub);
  shmbus_publisher_free(pub);

  /* Unknown delivery values are refused, in topic and bus configurations. */
  shmbus_topic_config bad = cfg;
  bad.delivery = 2;
  pub = NULL;
  sub = NULL;
  CHECK_RC(shmbus_publisher_new(bus, "bad", &bad, &pub), SHMBUS_RESULT_INVALID_ARGUMENT);
  CHECK_RC(shmbus_subscriber_new(bus, "bad", &bad, NULL, &sub), SHMBUS_RESULT_INVALID_ARGUMENT);
  shmbus_last_error_message(msg, sizeof msg);
  CHECK(strstr(msg, "shmbus_delivery") != NULL);
  CHECK(pub == NULL && sub == NULL);
  shmbus_bus_config bcfg = shmbus_bus_config_default();
  bcfg.default_topic.delivery = 0xffffffffu;
  shmbus_bus *other = NULL;
  shmbus_bus_remove(name2);
  CHECK_RC(shmbus_bus_create(name2, &bcfg, &other), SHMBUS_RESULT_INVALID_ARGUMENT);
  CHECK(other == NULL);
  CHECK_RC(shmbus_bus_remove(name2), SHMBUS_RESULT_NOT_FOUND);

  shmbus_bus_free(bus);
  OK(shmbus_bus_remove(name));
}

static void test_borrow(void) {
  char name[64];
  bus_name(name, sizeof name, "borrow");
  shmbus_bus *bus = fresh_bus(name);
  shmbus_topic_config cfg = lossless_cfg(2, 64);
  shmbus_publisher *pub = NULL;
  shmbus_subscriber *sub = NULL;
  OK(shmbus_subscriber_new(bus, "b", &cfg, NULL, &sub));
  OK(shmbus_publisher_new(bus, "b", &cfg, &pub));
  uint32_t id = 0;
  OK(shmbus_publisher_id(pub, &id));

  const uint8_t *data = NULL;
  size_t len = 77;
  shmbus_message_info info = {77, 77, 77, 77};
  shmbus_loss loss = {77, 77};
  CHECK_RC(shmbus_subscriber_try_recv_borrow(sub, &data, &len, &info, &loss),
           SHMBUS_RESULT_EMPTY);
  CHECK_RC(shmbus_subscriber_recv_borrow_timeout(sub, 2 * MS_NS, &data, &len, &info, &loss),
           SHMBUS_RESULT_TIMEOUT);
  CHECK(data == NULL && len == 77 && info.seq == 77 && loss.count == 77); /* untouched */
  CHECK_RC(shmbus_subscriber_release(sub), SHMBUS_RESULT_NO_SAMPLE);

  uint64_t seq = 0;
  OK(shmbus_publisher_publish(pub, (const uint8_t *)"hello", 5, &seq));
  OK(shmbus_publisher_publish(pub, (const uint8_t *)"world!", 6, &seq));
  CHECK(seq == 1);
  OK(shmbus_subscriber_recv_borrow_timeout(sub, RECV_NS, &data, &len, &info, &loss));
  CHECK(data != NULL && len == 5 && memcmp(data, "hello", 5) == 0);
  CHECK(info.seq == 0 && info.len == 5 && info.publisher_id == id);

  /* One borrow at a time, and no other receive while it is held. */
  const uint8_t *data2 = NULL;
  size_t len2 = 77;
  uint8_t buf[64];
  CHECK_RC(shmbus_subscriber_try_recv_borrow(sub, &data2, &len2, NULL, NULL),
           SHMBUS_RESULT_SAMPLE_OUTSTANDING);
  CHECK_RC(shmbus_subscriber_recv_borrow_timeout(sub, RECV_NS, &data2, &len2, NULL, NULL),
           SHMBUS_RESULT_SAMPLE_OUTSTANDING);
  CHECK(data2 == NULL && len2 == 77);
  CHECK_RC(shmbus_subscriber_try_recv(sub, buf, sizeof buf, &info, NULL),
           SHMBUS_RESULT_SAMPLE_OUTSTANDING);
  CHECK_RC(shmbus_subscriber_recv(sub, buf, sizeof buf, &info, NULL),
           SHMBUS_RESULT_SAMPLE_OUTSTANDING);
  CHECK_RC(shmbus_subscriber_recv_timeout(sub, buf, sizeof buf, RECV_NS, &info, NULL),
           SHMBUS_RESULT_SAMPLE_OUTSTANDING);
  size_t cap = 0;
  OK(shmbus_subscriber_capacity(sub, &cap)); /* fine: no side effects */
  CHECK(cap == 64);

  /* While the sample is held its slot stays taken: the 2-slot ring is full. */
  CHECK_RC(shmbus_publisher_try_publish(pub, (const uint8_t *)"!", 1, &seq),
           SHMBUS_RESULT_WOULD_BLOCK);
  CHECK(memcmp(data, "hello", 5) == 0); /* still valid, unchanged */
  OK(shmbus_subscriber_release(sub));
  CHECK_RC(shmbus_subscriber_release(sub), SHMBUS_RESULT_NO_SAMPLE);
  /* The release freed the slot. */
  OK(shmbus_publisher_try_publish(pub, (const uint8_t *)"!", 1, &seq));
  CHECK(seq == 2);

  /* out_info and out_loss may be NULL. */
  OK(shmbus_subscriber_try_recv_borrow(sub, &data, &len, NULL, NULL));
  CHECK(len == 6 && memcmp(data, "world!", 6) == 0);
  OK(shmbus_subscriber_release(sub));
  /* Borrowing and copying interleave in order. */
  OK(shmbus_subscriber_recv_timeout(sub, buf, sizeof buf, RECV_NS, &info, NULL));
  CHECK(info.seq == 2 && info.len == 1 && buf[0] == '!');
  CHECK_RC(shmbus_subscriber_try_recv_borrow(sub, &data, &len, &info, NULL),
           SHMBUS_RESULT_EMPTY);

  /* An empty message borrows as length 0. */
  OK(shmbus_publisher_publish(pub, NULL, 0, &seq));
  OK(shmbus_subscriber_recv_borrow_timeout(sub, RECV_NS, &data, &len, &info, NULL));
  CHECK(len == 0 && info.len == 0 && info.seq == 3);
  OK(shmbus_subscriber_release(sub));

  /* Freeing a subscriber that holds a sample releases it (and unregisters the subscriber):
   * the publisher then runs free. */
  OK(shmbus_publisher_publish(pub, (const uint8_t *)"held", 4, &seq));
  OK(shmbus_subscriber_try_recv_borrow(sub, &data, &len, &info, NULL));
  CHECK(len == 4 && memcmp(data, "held", 4) == 0);
  shmbus_subscriber_free(sub);
  for (int i = 0; i < 5; i++) {
    OK(shmbus_publisher_try_publish(pub, (const uint8_t *)"x", 1, NULL));
  }
  shmbus_publisher_free(pub);

  /* Lossy topics cannot lend slots: a publisher could overwrite them. The message stays. */
  OK(shmbus_subscriber_new(bus, "lossy", NULL, NULL, &sub));
  OK(shmbus_publisher_new(bus, "lossy", NULL, &pub));
  OK(shmbus_publisher_publish(pub, (const uint8_t *)"copy", 4, NULL));
  data = NULL;
  CHECK_RC(shmbus_subscriber_try_recv_borrow(sub, &data, &len, &info, NULL),
           SHMBUS_RESULT_NOT_LOSSLESS);
  CHECK_RC(shmbus_subscriber_recv_borrow_timeout(sub, RECV_NS, &data, &len, &info, NULL),
           SHMBUS_RESULT_NOT_LOSSLESS);
  char msg[128];
  shmbus_last_error_message(msg, sizeof msg);
  CHECK(strstr(msg, "lossless") != NULL);
  CHECK(data == NULL);
  CHECK_RC(shmbus_subscriber_release(sub), SHMBUS_RESULT_NO_SAMPLE);
  OK(shmbus_subscriber_try_recv(sub, buf, sizeof buf, &info, NULL));
  CHECK(info.len == 4 && memcmp(buf, "copy", 4) == 0);

  shmbus_subscriber_free(sub);
  shmbus_publisher_free(pub);
  shmbus_bus_free(bus);
  OK(shmbus_bus_remove(name));
}

static void test_delivery_mismatch(void) {
  char name[64];
  bus_name(name, sizeof name, "mode");
  shmbus_bus *bus = fresh_bus(name);
  shmbus_topic_config ll = lossless_cfg(8, 16);
  shmbus_topic_config lossy = ll;
  lossy.delivery = SHMBUS_DELIVERY_LOSSY;
  shmbus_publisher *pub = NULL, *pub2 = NULL;
  shmbus_subscriber *sub = NULL, *sub2 = NULL;

  OK(shmbus_publisher_new(bus, "ll", &ll, &pub));
  CHECK_RC(shmbus_publisher_new(bus, "ll", &lossy, &pub2), SHMBUS_RESULT_DELIVERY_MISMATCH);
  char msg[256];
  shmbus_last_error_message(msg, sizeof msg);
  CHECK(strstr(msg, "Lossless") != NULL);
  CHECK_RC(shmbus_publisher_new_with(bus, "ll", &lossy, NULL, &pub2),
           SHMBUS_RESULT_DELIVERY_MISMATCH);
  CHECK_RC(shmbus_subscriber_new(bus, "ll", &lossy, NULL, &sub2),
           SHMBUS_RESULT_DELIVERY_MISMATCH);
  /* Geometry is compared first. */
  shmbus_topic_config bigger = lossy;
  bigger.slots = 16;
  CHECK_RC(shmbus_subscriber_new(bus, "ll", &bigger, NULL, &sub2),
           SHMBUS_RESULT_GEOMETRY_MISMATCH);
  CHECK(pub2 == NULL && sub2 == NULL);
  /* A NULL config accepts the topic as it is: lossless here, so borrowing works. */
  OK(shmbus_subscriber_new(bus, "ll", NULL, NULL, &sub));
  const uint8_t *data = NULL;
  size_t len = 0;
  CHECK_RC(shmbus_subscriber_try_recv_borrow(sub, &data, &len, NULL, NULL), SHMBUS_RESULT_EMPTY);
  shmbus_subscriber_free(sub);
  shmbus_publisher_free(pub);

  /* And the other way round. */
  OK(shmbus_subscriber_new(bus, "lossy", &lossy, NULL, &sub));
  CHECK_RC(shmbus_publisher_new(bus, "lossy", &ll, &pub2), SHMBUS_RESULT_DELIVERY_MISMATCH);
  shmbus_subscriber_free(sub);
  shmbus_bus_free(bus);
  OK(shmbus_bus_remove(name));

  /* The bus's default topic configuration may be lossless: topics made with a NULL config
   * then are. */
  shmbus_bus_config bcfg = shmbus_bus_config_default();
  bcfg.size = 4u << 20;
  bcfg.default_topic = lossless_cfg(4, 8);
  OK(shmbus_bus_create(name, &bcfg, &bus));
  OK(shmbus_subscriber_new(bus, "auto", NULL, NULL, &sub));
  OK(shmbus_publisher_new(bus, "auto", NULL, &pub));
  for (uint64_t i = 0; i < 4; i++) {
    OK(shmbus_publisher_try_publish(pub, (const uint8_t *)&i, sizeof i, NULL));
  }
  CHECK_RC(shmbus_publisher_try_publish(pub, (const uint8_t *)"x", 1, NULL),
           SHMBUS_RESULT_WOULD_BLOCK);
  OK(shmbus_subscriber_try_recv_borrow(sub, &data, &len, NULL, NULL));
  CHECK(len == 8 && data[0] == 0);
  OK(shmbus_subscriber_release(sub));
  CHECK_RC(shmbus_publisher_new(bus, "auto", &lossy, &pub2), SHMBUS_RESULT_GEOMETRY_MISMATCH);
  shmbus_topic_config auto_lossy = lossless_cfg(4, 8);
  auto_lossy.delivery = SHMBUS_DELIVERY_LOSSY;
  CHECK_RC(shmbus_publisher_new(bus, "auto", &auto_lossy, &pub2),
           SHMBUS_RESULT_DELIVERY_MISMATCH);
  shmbus_subscriber_free(sub);
  shmbus_publisher_free(pub);
  shmbus_bus_free(bus);
  OK(shmbus_bus_remove(name));
}

/* ---------------------------------------------------------------------------------------- */

/* Parent publishes N messages; a forked child (own bus handle) receives them in order, then
 * replies with how many it got. Every receive has a timeout; alarm() bounds both processes. */
#define FORK_BURST 500
#define FORK_SLOW 20

/* Forks a child that runs child_main(name) and exits with what it returns. */
static pid_t fork_child(int (*child_main)(const char *), const char *name) {
  fflush(NULL);
  pid_t child = fork();
  CHECK(child >= 0);
  if (child == 0) {
    _exit(child_main(name));
  }
  return child;
}

/* Receives the child's "ready" message on `replies`. */
static void expect_ready(shmbus_subscriber *replies) {
  uint8_t buf[64];
  shmbus_message_info info;
  OK(shmbus_subscriber_recv_timeout(replies, buf, sizeof buf, RECV_NS, &info, NULL));
  CHECK(info.len == 5 && memcmp(buf, "ready", 5) == 0);
}

/* Waits for the child, puts back the run's watchdog, and checks that the child exited 0. */
static void reap_child(pid_t child, unsigned watchdog) {
  int status = 0;
  CHECK(waitpid(child, &status, 0) == child);
  alarm(watchdog);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "child status %d\n", status);
  }
}

static int child_subscriber(const char *name) {
  alarm(30);
  shmbus_bus *bus = NULL;
  if (shmbus_bus_open(name, NULL, &bus) != SHMBUS_RESULT_OK) return 10;
  shmbus_subscriber_config scfg = shmbus_subscriber_config_default();
  scfg.start = SHMBUS_START_OLDEST; /* sees messages published before it subscribed */
  scfg.wait = SHMBUS_WAIT_STRATEGY_PARK;
  shmbus_subscriber *sub = NULL;
  shmbus_publisher *reply = NULL;
  if (shmbus_subscriber_new(bus, "fork/data", NULL, &scfg, &sub) != SHMBUS_RESULT_OK) return 11;
  if (shmbus_publisher_new(bus, "fork/reply", NULL, &reply) != SHMBUS_RESULT_OK) return 12;
  /* Tell the parent we are subscribed, so it may start the slow phase. */
  if (shmbus_publisher_publish(reply, (const uint8_t *)"ready", 5, NULL) != SHMBUS_RESULT_OK)
    return 13;
  uint32_t got = 0;
  for (uint32_t i = 0; i < FORK_BURST + FORK_SLOW; i++) {
    char buf[64], want[64];
    shmbus_message_info info;
    shmbus_result rc = shmbus_subscriber_recv_timeout(sub, (uint8_t *)buf, sizeof buf - 1,
                                                      RECV_NS, &info, NULL);
    if (rc != SHMBUS_RESULT_OK) {
      fprintf(stderr, "child: message %u: %s\n", i, shmbus_result_str((int)rc));
      return 14;
    }
    buf[info.len] = 0;
    snprintf(want, sizeof want, "message %u", i);
    if (info.seq != i || strcmp(buf, want) != 0) {
      fprintf(stderr, "child: got seq %llu %s, want %u %s\n", (unsigned long long)info.seq, buf,
              i, want);
      return 15;
    }
    got++;
  }
  if (shmbus_publisher_publish(reply, (const uint8_t *)&got, sizeof got, NULL) != SHMBUS_RESULT_OK)
    return 16;
  shmbus_publisher_free(reply);
  shmbus_subscriber_free(sub);
  shmbus_bus_free(bus);
  return 0;
}

static void test_fork_exchange(void) {
  char name[64];
  bus_name(name, sizeof name, "fork");
  shmbus_bus *bus = fresh_bus(name);
  shmbus_publisher *pub = NULL;
  shmbus_subscriber *replies = NULL;
  OK(shmbus_publisher_new(bus, "fork/data", NULL, &pub));
  OK(shmbus_subscriber_new(bus, "fork/reply", NULL, NULL, &replies));
  pid_t child = fork_child(child_subscriber, name);
  unsigned watchdog = alarm(60);
  char buf[64];
  for (uint32_t i = 0; i < FORK_BURST; i++) {
    int n = snprintf(buf, sizeof buf, "message %u", i);
    OK(shmbus_publisher_publish(pub, (const uint8_t *)buf, (size_t)n, NULL));
  }
  expect_ready(replies);
  /* Slow phase: the child is parked on the futex between messages. */
  for (uint32_t i = FORK_BURST; i < FORK_BURST + FORK_SLOW; i++) {
    sleep_ms(2);
    int n = snprintf(buf, sizeof buf, "message %u", i);
    OK(shmbus_publisher_publish(pub, (const uint8_t *)buf, (size_t)n, NULL));
  }
  uint32_t got = 0;
  shmbus_message_info info;
  OK(shmbus_subscriber_recv_timeout(replies, (uint8_t *)&got, sizeof got, 3 * RECV_NS, &info,
                                    NULL));
  CHECK(got == FORK_BURST + FORK_SLOW);
  reap_child(child, watchdog);
  shmbus_subscriber_free(replies);
  shmbus_publisher_free(pub);
  shmbus_bus_free(bus);
  OK(shmbus_bus_remove(name));
}

/* Lossless exchange between processes: the parent publishes LL_COUNT messages as fast as it
 * can into a small lossless ring (try_publish, falling back to a blocking publish with a 5 s
 * timeout when the ring is full); a forked child receives them, alternately borrowing in place
 * and copying (and now and then holding a borrowed sample for a few ms, so the ring fills), and
 * checks that every message arrives once, in order, with nothing lost. */
#define LL_COUNT 10000

static shmbus_topic_config ll_fork_cfg(void) { return lossless_cfg(64, 32); }

static int child_lossless(const char *name) {
  alarm(60);
  shmbus_bus *bus = NULL;
  if (shmbus_bus_open(name, NULL, &bus) != SHMBUS_RESULT_OK) return 20;
  shmbus_topic_config cfg = ll_fork_cfg();
  shmbus_subscriber *sub = NULL;
  shmbus_publisher *reply = NULL;
  if (shmbus_subscriber_new(bus, "ll/data", &cfg, NULL, &sub) != SHMBUS_RESULT_OK) return 21;
  if (shmbus_publisher_new(bus, "ll/reply", NULL, &reply) != SHMBUS_RESULT_OK) return 22;
  /* Registered: from now on the parent cannot overwrite anything we have not read. */
  if (shmbus_publisher_publish(reply, (const uint8_t *)"ready", 5, NULL) != SHMBUS_RESULT_OK)
    return 23;
  uint64_t got = 0;
  for (uint64_t i = 0; i < LL_COUNT; i++) {
    shmbus_message_info info;
    shmbus_loss loss = {0, 0};
    uint64_t value = 0;
    shmbus_result rc;
    if (i % 2 == 0) {
      const uint8_t *data = NULL;
      size_t len = 0;
      rc = shmbus_subscriber_recv_borrow_timeout(sub, RECV_NS, &data, &len, &info, &loss);
      if (rc == SHMBUS_RESULT_OK) {
        if (len != sizeof value) return 24;
        memcpy(&value, data, sizeof value);
        /* Now and then hold the sample a while: the parent fills the ring and must wait. */
        if (i % 1000 == 500) sleep_ms(3);
        if (shmbus_subscriber_release(sub) != SHMBUS_RESULT_OK) return 25;
      }
    } else {
      uint8_t buf[32];
      rc = shmbus_subscriber_recv_timeout(sub, buf, sizeof buf, RECV_NS, &info, &loss);
      if (rc == SHMBUS_RESULT_OK) {
        if (info.len != sizeof value) return 26;
        memcpy(&value, buf, sizeof value);
      }
    }
    if (rc != SHMBUS_RESULT_OK) {
      fprintf(stderr, "child: message %llu: %s (loss %llu+%llu)\n", (unsigned long long)i,
              shmbus_result_str((int)rc), (unsigned long long)loss.first_seq,
              (unsigned long long)loss.count);
      return 27;
    }
    if (info.seq != i || value != i * 3 + 1) {
      fprintf(stderr, "child: got seq %llu value %llu, want %llu\n",
              (unsigned long long)info.seq, (unsigned long long)value, (unsigned long long)i);
      return 28;
    }
    got++;
  }
  if (shmbus_publisher_publish(reply, (const uint8_t *)&got, sizeof got, NULL) != SHMBUS_RESULT_OK)
    return 29;
  shmbus_publisher_free(reply);
  shmbus_subscriber_free(sub);
  shmbus_bus_free(bus);
  return 0;
}

static void test_fork_lossless(void) {
  char name[64];
  bus_name(name, sizeof name, "llfork");
  shmbus_bus *bus = fresh_bus(name);
  shmbus_topic_config cfg = ll_fork_cfg();
  shmbus_publisher_config pcfg = shmbus_publisher_config_default();
  pcfg.timeout_ns = RECV_NS;
  shmbus_publisher *pub = NULL;
  shmbus_subscriber *replies = NULL;
  OK(shmbus_publisher_new_with(bus, "ll/data", &cfg, &pcfg, &pub));
  OK(shmbus_subscriber_new(bus, "ll/reply", NULL, NULL, &replies));
  pid_t child = fork_child(child_lossless, name);
  unsigned watchdog = alarm(90);
  expect_ready(replies);
  uint64_t full = 0;
  for (uint64_t i = 0; i < LL_COUNT; i++) {
    uint64_t value = i * 3 + 1, seq = 0;
    shmbus_result rc = shmbus_publisher_try_publish(pub, (const uint8_t *)&value, sizeof value,
                                                    &seq);
    if (rc == SHMBUS_RESULT_WOULD_BLOCK) {
      full++;
      rc = shmbus_publisher_publish(pub, (const uint8_t *)&value, sizeof value, &seq);
    }
    CHECK_RC(rc, SHMBUS_RESULT_OK);
    if (rc != SHMBUS_RESULT_OK || seq != i) {
      CHECK(seq == i);
      break;
    }
  }
  uint64_t got = 0;
  shmbus_message_info info;
  OK(shmbus_subscriber_recv_timeout(replies, (uint8_t *)&got, sizeof got, 3 * RECV_NS, &info,
                                    NULL));
  CHECK(got == LL_COUNT);
  reap_child(child, watchdog);
  printf("  (lossless: %llu of %d publishes found the ring full)\n", (unsigned long long)full,
         LL_COUNT);
  shmbus_subscriber_free(replies);
  shmbus_publisher_free(pub);
  shmbus_bus_free(bus);
  OK(shmbus_bus_remove(name));
}

/* ---------------------------------------------------------------------------------------- */

struct test {
  const char *name;
  void (*run)(void);
};

int main(int argc, char **argv) {
  const struct test tests[] = {
      {"defaults", test_defaults},
      {"result_str", test_result_str},
      {"null_parameters", test_null_parameters},
      {"bus_errors", test_bus_errors},
      {"topic_errors", test_topic_errors},
      {"publish_receive", test_publish_receive},
      {"lost", test_lost},
      {"loans", test_loans},
      {"ownership", test_ownership},
      {"last_error", test_last_error},
      {"fork_exchange", test_fork_exchange},
      {"lossless_backpressure", test_lossless_backpressure},
      {"borrow", test_borrow},
      {"delivery_mismatch", test_delivery_mismatch},
      {"fork_lossless", test_fork_lossless},
  };
  alarm(240); /* watchdog for the whole run */
  int passed = 0, failed = 0;
  for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
    if (argc > 1 && strstr(tests[i].name, argv[1]) == NULL) continue;
    int before = failures;
    tests[i].run();
    int ok = failures == before;
    printf("test c::%s ... %s\n", tests[i].name, ok ? "ok" : "FAILED");
    fflush(stdout);
    if (ok) {
      passed++;
    } else {
      failed++;
    }
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
