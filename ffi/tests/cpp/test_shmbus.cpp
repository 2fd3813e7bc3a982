// Tests of the C++ wrapper (shmbus.hpp): RAII and moves, exceptions with codes, receive
// statuses, loans, lossless delivery (try_publish statuses, timeouts, borrowed Samples). Built and run by `cargo test -p shmbus-ffi --test c_tests` with
// -std=c++17 -Wall -Wextra -Werror -pedantic -fsanitize=address,undefined. Every receive that
// expects a message has a timeout; alarm() bounds the run.
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "shmbus.hpp"

static int failures = 0;

#define CHECK(cond)                                                                   \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
      failures++;                                                                     \
    }                                                                                 \
  } while (0)

// Checks that `stmt` throws shmbus::Error with `want`.
#define CHECK_THROWS(stmt, want)                                                      \
  do {                                                                                \
    shmbus_result got_ = SHMBUS_RESULT_OK;                                            \
    try {                                                                             \
      stmt;                                                                           \
    } catch (const shmbus::Error& e_) {                                               \
      got_ = e_.code();                                                               \
    }                                                                                 \
    if (got_ != (want)) {                                                             \
      std::fprintf(stderr, "%s:%d: %s threw %s, want %s\n", __FILE__, __LINE__, #stmt, \
                   shmbus_result_str(got_), shmbus_result_str(want));                 \
      failures++;                                                                     \
    }                                                                                 \
  } while (0)

using namespace std::chrono_literals;

static std::string bus_name(const char* tag) {
  return "cpptest-" + std::to_string(getpid()) + "-" + tag;
}

static void test_errors_and_moves() {
  std::string name = bus_name("errors");
  CHECK_THROWS(shmbus::Bus::open(name), SHMBUS_RESULT_NOT_FOUND);
  try {
    shmbus::Bus::open(name);
  } catch (const shmbus::Error& e) {
    CHECK(std::string(e.what()).find("does not exist") != std::string::npos);
    CHECK(std::string(e.code_name()) == "SHMBUS_RESULT_NOT_FOUND");
  }
  shmbus::BusConfig cfg;
  cfg.size = 4u << 20;
  shmbus::Bus bus = shmbus::Bus::create(name, cfg);
  CHECK_THROWS(shmbus::Bus::create(name, cfg), SHMBUS_RESULT_ALREADY_EXISTS);
  CHECK_THROWS(bus.publisher("bad topic"), SHMBUS_RESULT_INVALID_NAME);

  shmbus::TopicConfig tc;
  tc.slots = 8;
  tc.payload_size = 16;
  shmbus::Publisher pub = bus.publisher("t", tc);
  tc.slots = 16;
  CHECK_THROWS(bus.subscriber("t", tc), SHMBUS_RESULT_GEOMETRY_MISMATCH);
  CHECK_THROWS(pub.publish(std::string(17, 'x')), SHMBUS_RESULT_TOO_LARGE);

  // Moves leave the source empty; using it throws; destroying it is fine.
  shmbus::Publisher moved = std::move(pub);
  CHECK(!pub && moved);
  CHECK_THROWS(pub.publish("x"), SHMBUS_RESULT_NULL_PARAMETER);
  CHECK(moved.capacity() == 16);
  shmbus::Bus other = std::move(bus);
  CHECK(!bus && other);
  other = shmbus::Bus();  // frees the handle; `moved` keeps the mapping alive
  CHECK(moved.publish("after") == 0);
  shmbus::Bus::remove(name);
  CHECK_THROWS(shmbus::Bus::remove(name), SHMBUS_RESULT_NOT_FOUND);
}

static void test_receive_statuses() {
  CHECK(shmbus::abi_matches());
  // A spin phase of any duration: the longest ones clamp, never overflow into 0 or a negative.
  CHECK(shmbus::SubscriberConfig()
            .with_wait(SHMBUS_WAIT_STRATEGY_SPIN_THEN_PARK, std::chrono::hours::max())
            .spin_ns == UINT64_MAX);
  CHECK(shmbus::SubscriberConfig().with_wait(SHMBUS_WAIT_STRATEGY_SPIN_THEN_PARK, 2us).spin_ns ==
        2000);
  CHECK(shmbus::SubscriberConfig().with_wait(SHMBUS_WAIT_STRATEGY_SPIN).spin_ns == 50000);
  std::string name = bus_name("recv");
  shmbus::Bus bus = shmbus::Bus::create(name);
  shmbus::TopicConfig tc;
  tc.slots = 4;
  tc.payload_size = 16;
  shmbus::Subscriber sub =
      bus.subscriber("r", tc, shmbus::SubscriberConfig().with_wait(SHMBUS_WAIT_STRATEGY_PARK));
  shmbus::Publisher pub = bus.publisher("r");
  std::vector<std::uint8_t> buf = sub.make_buffer();
  CHECK(buf.size() == 16);

  CHECK(sub.try_recv(buf).status == shmbus::Received::Status::empty);
  CHECK(sub.recv_timeout(buf, 1ms).status == shmbus::Received::Status::timeout);

  std::uint32_t id = pub.id();
  CHECK(pub.publish("hello") == 0);
  std::array<std::uint8_t, 2> tiny{};
  CHECK_THROWS(sub.try_recv(tiny), SHMBUS_RESULT_BUFFER_TOO_SMALL);
  std::vector<std::uint8_t> none;  // data() is NULL: still a buffer too small, not a NULL
  CHECK_THROWS(sub.try_recv(none), SHMBUS_RESULT_BUFFER_TOO_SMALL);
  shmbus::Received r = sub.recv_timeout(buf, 5s);
  CHECK(r && r.info.seq == 0 && r.info.publisher_id == id);
  CHECK(r.info.timestamp_ns == 0);  // publish timestamps are opt-in
  CHECK(shmbus::as_string(r.bytes) == "hello");
  CHECK(r.bytes.data() == buf.data());

  for (int i = 0; i < 10; i++) pub.publish("m" + std::to_string(i));
  r = sub.try_recv(buf);
  CHECK(r.status == shmbus::Received::Status::lost);
  CHECK(r.loss.first_seq == 1 && r.loss.count == 6);
  r = sub.recv_timeout(buf, 5s);
  CHECK(r && r.info.seq == 7 && shmbus::as_string(r.bytes) == "m6");

  // A publisher that stamps: CLOCK_MONOTONIC read while publishing.
  while (sub.try_recv(buf).status != shmbus::Received::Status::empty) {
  }  // m7 .. m9
  CHECK(!shmbus::PublisherConfig().timestamps);
  shmbus::Publisher stamped = bus.publisher("r", shmbus::PublisherConfig().with_timestamps(true));
  std::uint64_t before = shmbus::monotonic_ns();
  stamped.publish("t");
  r = sub.recv_timeout(buf, 5s);
  CHECK(r && r.info.timestamp_ns >= before && r.info.timestamp_ns <= shmbus::monotonic_ns());
  stamped = shmbus::Publisher();

  sub = shmbus::Subscriber();
  pub = shmbus::Publisher();
  shmbus::Bus::remove(name);
}

static void test_loans() {
  std::string name = bus_name("loan");
  shmbus::Bus bus = shmbus::Bus::create(name);
  shmbus::Subscriber sub = bus.subscriber("l");
  shmbus::Publisher pub = bus.publisher("l");
  {
    shmbus::Loan loan = pub.loan(3);
    CHECK(loan.data().size() == 3);
    std::memcpy(loan.data().data(), "one", 3);
    CHECK_THROWS(pub.publish("no"), SHMBUS_RESULT_LOAN_OUTSTANDING);
    CHECK(loan.commit() == 0);
    CHECK(!loan);
    CHECK_THROWS(loan.commit(), SHMBUS_RESULT_NULL_PARAMETER);
  }
  {
    shmbus::Loan dropped = pub.loan(3);  // destroyed uncommitted: aborted
  }
  {
    shmbus::Loan loan = pub.loan(5);
    shmbus::Loan moved = std::move(loan);
    CHECK(!loan && moved);
    moved.abort();
  }
  CHECK(pub.publish("three") == 3);
  std::vector<std::uint8_t> buf = sub.make_buffer();
  shmbus::Received r = sub.recv_timeout(buf, 5s);
  CHECK(r && r.info.seq == 0 && shmbus::as_string(r.bytes) == "one");
  r = sub.recv_timeout(buf, 5s);
  CHECK(r && r.info.seq == 3 && shmbus::as_string(r.bytes) == "three");
  CHECK(sub.try_recv(buf).status == shmbus::Received::Status::empty);
  shmbus::Bus::remove(name);
}

// Removes a bus when the test ends, also when it ends with an exception.
struct RemoveBus {
  std::string name;
  ~RemoveBus() { shmbus_bus_remove(name.c_str()); }
};

static void test_lossless() {
  std::string name = bus_name("lossless");
  shmbus::BusConfig cfg;
  cfg.size = 4u << 20;
  shmbus::Bus bus = shmbus::Bus::create(name, cfg);
  RemoveBus remove_bus{name};
  shmbus::TopicConfig tc =
      shmbus::TopicConfig().with_geometry(2, 16).with_delivery(SHMBUS_DELIVERY_LOSSLESS);
  CHECK(shmbus::TopicConfig().delivery == SHMBUS_DELIVERY_LOSSY);
  shmbus::Subscriber sub = bus.subscriber("ll", tc);
  shmbus::Publisher pub =
      bus.publisher("ll", tc, shmbus::PublisherConfig().with_timeout(10ms));

  CHECK(sub.try_recv_borrow().status() == shmbus::Sample::Status::empty);
  CHECK(sub.recv_borrow_timeout(1ms).status() == shmbus::Sample::Status::timeout);
  shmbus::Published p = pub.try_publish("one");
  CHECK(p && p.seq == 0);
  CHECK(pub.try_publish("two").seq == 1);
  p = pub.try_publish("three");
  CHECK(!p && p.status == shmbus::Published::Status::would_block);
  CHECK(!pub.try_loan(5));
  CHECK_THROWS(pub.publish("three"), SHMBUS_RESULT_PUBLISH_TIMEOUT);
  CHECK_THROWS(pub.loan(5), SHMBUS_RESULT_PUBLISH_TIMEOUT);

  {
    shmbus::Sample s = sub.recv_borrow_timeout(5s);
    CHECK(s && s.status() == shmbus::Sample::Status::message);
    CHECK(s.info().seq == 0 && shmbus::as_string(s.bytes()) == "one");
    CHECK_THROWS(sub.try_recv_borrow(), SHMBUS_RESULT_SAMPLE_OUTSTANDING);
    std::vector<std::uint8_t> buf = sub.make_buffer();
    CHECK_THROWS(sub.try_recv(buf), SHMBUS_RESULT_SAMPLE_OUTSTANDING);
    CHECK(!pub.try_publish("three"));  // the held sample keeps its slot
    shmbus::Sample moved = std::move(s);
    CHECK(!s && moved && shmbus::as_string(moved.bytes()) == "one");
  }  // released here
  CHECK(pub.try_publish("three").seq == 2);
  shmbus::Sample s = sub.try_recv_borrow();
  CHECK(s && shmbus::as_string(s.bytes()) == "two");
  s.release();
  CHECK(!s && s.bytes().empty());
  CHECK_THROWS(s.release(), SHMBUS_RESULT_NULL_PARAMETER);
  shmbus::Loan loan = pub.try_loan(4);
  CHECK(loan);
  std::memcpy(loan.data().data(), "four", 4);
  CHECK(loan.commit() == 3);
  s = sub.try_recv_borrow();
  CHECK(s && s.info().seq == 2 && shmbus::as_string(s.bytes()) == "three");
  // `s = sub.try_recv_borrow()` would receive before `s` lets go of "three": release first.
  CHECK_THROWS(s = sub.try_recv_borrow(), SHMBUS_RESULT_SAMPLE_OUTSTANDING);
  CHECK(s && s.info().seq == 2);  // a failed assignment leaves `s` as it was
  s.release();
  s = sub.try_recv_borrow();
  CHECK(s && s.info().seq == 3 && shmbus::as_string(s.bytes()) == "four");
  s = shmbus::Sample();  // releases

  // Delivery mode is part of a topic's identity; lossy topics do not lend slots.
  CHECK_THROWS(bus.publisher("ll", shmbus::TopicConfig().with_geometry(2, 16)),
               SHMBUS_RESULT_DELIVERY_MISMATCH);
  shmbus::Subscriber lossy =
      bus.subscriber("lossy", shmbus::SubscriberConfig().with_liveness_window(50ms));
  CHECK_THROWS(lossy.try_recv_borrow(), SHMBUS_RESULT_NOT_LOSSLESS);
  shmbus::Publisher lossy_pub = bus.publisher("lossy", shmbus::PublisherConfig());
  for (int i = 0; i < 2000; i++) CHECK(lossy_pub.try_publish("x"));  // never blocks
}

static void test_span() {
  std::uint8_t raw[4] = {1, 2, 3, 4};
  shmbus::MutBytes m(raw);
  CHECK(m.size() == 4 && m[2] == 3 && m.first(2).size() == 2);
  shmbus::Bytes b = shmbus::as_bytes("abc");
  CHECK(b.size() == 3 && shmbus::as_string(b) == "abc");
  std::vector<std::uint8_t> v(7);
  shmbus::MutBytes mv(v);
  CHECK(mv.data() == v.data() && mv.size() == 7);
  const std::vector<std::uint8_t>& cv = v;
  shmbus::Bytes cb(cv);
  CHECK(cb.size() == 7);
  std::size_t sum = 0;
  for (std::uint8_t x : m) sum += x;
  CHECK(sum == 10);
}

static void test_durations() {
  using namespace std::chrono;
  CHECK(shmbus::detail::to_ns(1ms) == 1000000);
  CHECK(shmbus::detail::to_ns(nanoseconds(1)) == 1);
  CHECK(shmbus::detail::to_ns(-1s) == 0);
  CHECK(shmbus::detail::to_ns(duration<double>(0.5)) == 500000000);
  // "For ever" values overflow nanoseconds: they saturate instead.
  CHECK(shmbus::detail::to_ns(milliseconds::max()) == UINT64_MAX);
  CHECK(shmbus::detail::to_ns(hours::max()) == UINT64_MAX);
  CHECK(shmbus::detail::to_ns(nanoseconds::max()) == 9223372036854775807ULL);
  CHECK(shmbus::detail::to_ns(milliseconds::min()) == 0);
  // And they mean no limit, not none: a receive with one still waits (here, for a message
  // already there) instead of timing out at once.
  std::string name = bus_name("dur");
  shmbus::Bus bus = shmbus::Bus::create(name);
  shmbus::Subscriber sub = bus.subscriber("d");
  shmbus::Publisher pub =
      bus.publisher("d", shmbus::PublisherConfig().with_timeout(hours::max()));
  pub.publish("x");
  std::vector<std::uint8_t> buf = sub.make_buffer();
  shmbus::Received r = sub.recv_timeout(buf, milliseconds::max());
  CHECK(r && shmbus::as_string(r.bytes) == "x");
  shmbus::Bus::remove(name);
}

int main() {
  alarm(60);
  struct {
    const char* name;
    void (*run)();
  } tests[] = {{"errors_and_moves", test_errors_and_moves},
               {"receive_statuses", test_receive_statuses},
               {"loans", test_loans},
               {"lossless", test_lossless},
               {"span", test_span},
               {"durations", test_durations}};
  int passed = 0, failed = 0;
  for (auto& t : tests) {
    int before = failures;
    try {
      t.run();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s: unexpected exception: %s\n", t.name, e.what());
      failures++;
    }
    bool ok = failures == before;
    std::printf("test cpp::%s ... %s\n", t.name, ok ? "ok" : "FAILED");
    ok ? passed++ : failed++;
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
