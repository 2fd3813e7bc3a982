// subscriber.cpp: receives COUNT messages from a shmbus topic with the C++ wrapper
// (shmbus.hpp) and prints them. Pair it with publisher.cpp (or the C / Rust publishers) in
// another terminal.
//
// Build (from the repository root):
//   cargo build --release -p shmbus-ffi && make -C examples
// Run, in two terminals (either may start first: the subscriber starts at the oldest message
// still in the ring):
//   target/release/examples-c/cpp-subscriber demo demo/hello 20
//   target/release/examples-c/cpp-publisher  demo demo/hello 20 200
// Arguments: [BUS [TOPIC [COUNT [IDLE_TIMEOUT_MS]]]], defaults demo demo/hello 10 10000;
// COUNT 0 means forever. Exits with 1 if no message arrives for IDLE_TIMEOUT_MS.
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>

#include "shmbus.hpp"

int main(int argc, char** argv) {
  std::string bus_name = argc > 1 ? argv[1] : "demo";
  std::string topic = argc > 2 ? argv[2] : "demo/hello";
  long count = argc > 3 ? std::atol(argv[3]) : 10;
  long idle_ms = argc > 4 ? std::atol(argv[4]) : 10000;
  try {
    shmbus::Subscriber sub = shmbus::Bus::open_or_create(bus_name).subscriber(
        topic, shmbus::SubscriberConfig().with_start(SHMBUS_START_OLDEST));
    std::vector<std::uint8_t> buf = sub.make_buffer();
    for (long received = 0; count == 0 || received < count;) {
      shmbus::Received r = sub.recv_timeout(buf, std::chrono::milliseconds(idle_ms));
      switch (r.status) {
        case shmbus::Received::Status::message:
          std::cout << "seq=" << r.info.seq << " payload=" << shmbus::as_string(r.bytes)
                    << std::endl;
          received++;
          break;
        case shmbus::Received::Status::lost:
          std::cout << "lost seq=" << r.loss.first_seq << " count=" << r.loss.count << std::endl;
          break;
        default:
          std::cerr << "subscriber: no message for " << idle_ms << " ms\n";
          return 1;
      }
    }
  } catch (const shmbus::Error& e) {
    std::cerr << "subscriber: " << e.what() << " (code " << e.code() << ")\n";
    return 1;
  }
  return 0;
}
