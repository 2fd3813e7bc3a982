// publisher.cpp: publishes COUNT messages on a shmbus topic with the C++ wrapper (shmbus.hpp),
// alternating copy-in publishing and a zero-copy loan. Pair it with subscriber.cpp (or the C /
// Rust subscribers) in another terminal.
//
// Build (from the repository root):
//   cargo build --release -p shmbus-ffi && make -C examples
// Run, in two terminals (either may start first):
//   target/release/examples-c/cpp-subscriber demo demo/hello 20
//   target/release/examples-c/cpp-publisher  demo demo/hello 20 200
// Arguments: [BUS [TOPIC [COUNT [INTERVAL_MS]]]], defaults demo demo/hello 10 500.
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>

#include "shmbus.hpp"

int main(int argc, char** argv) {
  std::string bus_name = argc > 1 ? argv[1] : "demo";
  std::string topic = argc > 2 ? argv[2] : "demo/hello";
  long count = argc > 3 ? std::atol(argv[3]) : 10;
  long interval_ms = argc > 4 ? std::atol(argv[4]) : 500;
  try {
    shmbus::Publisher pub = shmbus::Bus::open_or_create(bus_name).publisher(topic);
    for (long i = 0; i < count; i++) {
      std::string text = "hello " + std::to_string(i) + " from C++";
      std::uint64_t seq;
      if (i % 2 == 0) {
        seq = pub.publish(text);  // copy in
      } else {
        shmbus::Loan loan = pub.loan(text.size());  // zero copy: write in place, then commit
        std::memcpy(loan.data().data(), text.data(), text.size());
        seq = loan.commit();
      }
      std::cout << "published seq=" << seq << " payload=" << text << std::endl;
      if (interval_ms > 0 && i + 1 < count) {
        std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
      }
    }
  } catch (const shmbus::Error& e) {
    std::cerr << "publisher: " << e.what() << " (code " << e.code() << ")\n";
    return 1;
  }
  return 0;
}
