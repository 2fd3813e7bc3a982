// shmbus.hpp: a header-only C++17 wrapper over the shmbus C API (shmbus.h).
//
// Hand-written (not generated). Link exactly as for C (see docs/c-api.md):
//   c++ -std=c++17 -Iffi/include app.cpp target/release/libshmbus.a -lpthread -ldl -lm
//
// Design:
// * RAII, move-only handles: Bus, Publisher, Subscriber, Loan, Sample. Destructors free (a
//   Loan's aborts, a Sample's releases) and never throw. A moved-from handle is empty
//   (`!handle`); using one throws.
// * Errors are exceptions: every failing C call throws shmbus::Error, which carries the
//   shmbus_result code and the library's message. Failures here are setup problems (bad names,
//   geometry mismatch, full tables) or programming errors (a too small buffer), which callers
//   rarely handle on the spot, so exceptions keep the happy path short.
// * Receiving is not an error: "no message yet" (EMPTY/TIMEOUT) and "messages were lost"
//   (LOST, a normal event on a lossy bus) are returned as a Received (or Sample) status, never
//   thrown, so the hot path has no exceptions. Likewise a full lossless ring in try_publish is
//   a Published status (WOULD_BLOCK), and try_loan returns an empty Loan. A blocking publish
//   that times out on a lossless ring (PUBLISH_TIMEOUT) does throw: with a timeout of seconds,
//   that is a stuck subscriber, not flow control. So does any publish, try_ forms included,
//   that waited the timeout for a slot a stuck writer a ring behind still holds (topics with
//   several publisher entries).
// * Buffers are passed as shmbus::Span (a pointer + size view; C++17 has no std::span).
//
// Lifetimes and threads are those of the C API (docs/c-api.md): a Bus may be used from any
// number of threads; a Publisher or Subscriber from one thread at a time; a Loan must end
// (commit, abort or destruction) before its Publisher is destroyed or used again; a Sample
// must end (release or destruction) before its Subscriber is destroyed or receives again.

#ifndef SHMBUS_HPP
#define SHMBUS_HPP

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "shmbus.h"

namespace shmbus {

/// A failed call: the C API's result code and its message.
class Error : public std::runtime_error {
 public:
  Error(shmbus_result code, const std::string& message)
      : std::runtime_error(message), code_(code) {}

  /// The result code, e.g. SHMBUS_RESULT_NOT_FOUND.
  shmbus_result code() const noexcept { return code_; }

  /// The code's name, e.g. "SHMBUS_RESULT_NOT_FOUND".
  const char* code_name() const noexcept { return shmbus_result_str(code_); }

 private:
  shmbus_result code_;
};

namespace detail {

/// This thread's last error message from the library.
inline std::string last_error_message() {
  std::size_t len = shmbus_last_error_message(nullptr, 0);
  std::string text(len + 1, '\0');
  shmbus_last_error_message(text.data(), text.size());
  text.resize(len);
  return text;
}

/// Throws shmbus::Error unless `rc` is SHMBUS_RESULT_OK.
inline void check(shmbus_result rc) {
  if (rc != SHMBUS_RESULT_OK) {
    throw Error(rc, std::string(shmbus_result_str(rc)) + ": " + last_error_message());
  }
}

/// A duration in ns for the C API: negative → 0, and beyond 2^64 - 1 ns (about 585 years,
/// e.g. `std::chrono::milliseconds::max()` as "for ever") → `UINT64_MAX`. Counted in long double,
/// since `duration_cast` to nanoseconds overflows (undefined behaviour) for such durations.
template <class Rep, class Period>
std::uint64_t to_ns(std::chrono::duration<Rep, Period> d) {
  const long double ns = std::chrono::duration<long double, std::nano>(d).count();
  if (!(ns > 0)) {
    return 0;  // negative, zero, or NaN
  }
  if (ns >= 18446744073709551615.0L) {
    return UINT64_MAX;
  }
  return static_cast<std::uint64_t>(ns);
}

/// Throws if a moved-from handle is used.
inline void check_handle(const void* handle) {
  if (handle == nullptr) {
    throw Error(SHMBUS_RESULT_NULL_PARAMETER, "use of an empty (moved-from) shmbus handle");
  }
}

template <class C>
using data_t = decltype(std::declval<C&>().data());

}  // namespace detail

/// A view of `size()` contiguous `T`s: a pointer and a length (like C++20 std::span).
template <class T>
class Span {
 public:
  constexpr Span() noexcept = default;
  constexpr Span(T* data, std::size_t size) noexcept : data_(data), size_(size) {}
  template <std::size_t N>
  constexpr Span(T (&array)[N]) noexcept : data_(array), size_(N) {}
  /// Any contiguous container with data() and size() of `T`s (std::vector<std::uint8_t>,
  /// std::array<std::uint8_t, N>…). Text: `as_bytes(std::string_view)`.
  template <class C, class = std::enable_if_t<
                         std::is_convertible_v<detail::data_t<C>, T*> &&
                         !std::is_same_v<std::remove_cv_t<C>, Span>>>
  constexpr Span(C& container) noexcept : data_(container.data()), size_(container.size()) {}

  constexpr T* data() const noexcept { return data_; }
  constexpr std::size_t size() const noexcept { return size_; }
  constexpr bool empty() const noexcept { return size_ == 0; }
  constexpr T* begin() const noexcept { return data_; }
  constexpr T* end() const noexcept { return data_ + size_; }
  constexpr T& operator[](std::size_t i) const noexcept { return data_[i]; }
  /// The first `n` elements (`n <= size()`).
  constexpr Span first(std::size_t n) const noexcept { return Span(data_, n); }

 private:
  T* data_ = nullptr;
  std::size_t size_ = 0;
};

/// Read-only bytes.
using Bytes = Span<const std::uint8_t>;
/// Writable bytes.
using MutBytes = Span<std::uint8_t>;

/// The bytes of a string (no terminating NUL).
inline Bytes as_bytes(std::string_view text) noexcept {
  return Bytes(reinterpret_cast<const std::uint8_t*>(text.data()), text.size());
}

/// The bytes of a view as a string_view (for text payloads).
inline std::string_view as_string(Bytes bytes) noexcept {
  return std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

/// Bus configuration; default-constructed = shmbus_bus_config_default().
struct BusConfig : shmbus_bus_config {
  BusConfig() : shmbus_bus_config(shmbus_bus_config_default()) {}
};

/// Topic geometry and delivery; default-constructed = shmbus_topic_config_default() (lossy).
struct TopicConfig : shmbus_topic_config {
  TopicConfig() : shmbus_topic_config(shmbus_topic_config_default()) {}
  /// Sets the ring's slot count (a power of two) and largest message size in bytes.
  TopicConfig& with_geometry(std::uint32_t slot_count, std::uint32_t payload) {
    slots = slot_count;
    payload_size = payload;
    return *this;
  }
  /// Sets the delivery mode (SHMBUS_DELIVERY_LOSSY or SHMBUS_DELIVERY_LOSSLESS).
  TopicConfig& with_delivery(shmbus_delivery mode) {
    delivery = static_cast<std::uint32_t>(mode);
    return *this;
  }
};

/// Publisher options; default-constructed = shmbus_publisher_config_default().
struct PublisherConfig : shmbus_publisher_config {
  PublisherConfig() : shmbus_publisher_config(shmbus_publisher_config_default()) {}
  /// How long publish() and loan() wait for room in a full lossless ring (then they throw
  /// SHMBUS_RESULT_PUBLISH_TIMEOUT).
  template <class Rep, class Period>
  PublisherConfig& with_timeout(std::chrono::duration<Rep, Period> timeout) {
    timeout_ns = detail::to_ns(timeout);
    return *this;
  }
  /// Stamps each message with CLOCK_MONOTONIC (MessageInfo::timestamp_ns; 0 when off, the
  /// default). Costs one clock read per publish.
  PublisherConfig& with_timestamps(bool on) {
    timestamps = on ? 1 : 0;
    return *this;
  }
  /// How often a blocked publisher checks for dead subscribers (zero: the default, 100 ms).
  template <class Rep, class Period>
  PublisherConfig& with_liveness_window(std::chrono::duration<Rep, Period> window) {
    liveness_window_ns = detail::to_ns(window);
    return *this;
  }
};

/// Subscriber options; default-constructed = shmbus_subscriber_config_default().
struct SubscriberConfig : shmbus_subscriber_config {
  SubscriberConfig() : shmbus_subscriber_config(shmbus_subscriber_config_default()) {}
  /// Sets the wait strategy (and, for spin-then-park, the spin time: any duration, clamped
  /// like the others).
  SubscriberConfig& with_wait(shmbus_wait_strategy strategy) {
    return with_wait(strategy, std::chrono::microseconds(50));
  }
  template <class Rep, class Period>
  SubscriberConfig& with_wait(shmbus_wait_strategy strategy,
                              std::chrono::duration<Rep, Period> spin) {
    wait = static_cast<std::uint32_t>(strategy);
    spin_ns = detail::to_ns(spin);
    return *this;
  }
  /// Sets where reading starts.
  SubscriberConfig& with_start(shmbus_start where) {
    start = static_cast<std::uint32_t>(where);
    return *this;
  }
  /// How long a claimed but unwritten message may block this subscriber before it checks
  /// whether its publisher died (zero: the default, 100 ms).
  template <class Rep, class Period>
  SubscriberConfig& with_liveness_window(std::chrono::duration<Rep, Period> window) {
    liveness_window_ns = detail::to_ns(window);
    return *this;
  }
};

using MessageInfo = shmbus_message_info;
using Loss = shmbus_loss;

/// CLOCK_MONOTONIC in ns, the clock of MessageInfo::timestamp_ns.
inline std::uint64_t monotonic_ns() noexcept { return shmbus_monotonic_ns(); }

/// Whether the library this program runs with has the C API its header describes
/// (shmbus_abi_version() == SHMBUS_ABI_VERSION): check it first when loading libshmbus.so.
inline bool abi_matches() noexcept { return shmbus_abi_version() == SHMBUS_ABI_VERSION; }

/// A slot lent by Publisher::loan: write data(), then commit() (or abort(); the destructor of
/// an uncommitted loan aborts it). Must end before its Publisher is used again or destroyed.
class Loan {
 public:
  Loan() noexcept = default;
  Loan(Loan&& other) noexcept : loan_(std::exchange(other.loan_, nullptr)) {}
  Loan& operator=(Loan&& other) noexcept {
    if (this != &other) {
      end();
      loan_ = std::exchange(other.loan_, nullptr);
    }
    return *this;
  }
  Loan(const Loan&) = delete;
  Loan& operator=(const Loan&) = delete;
  ~Loan() { end(); }

  /// The slot's bytes (exactly the length asked for); valid until the loan ends.
  MutBytes data() const {
    detail::check_handle(loan_);
    std::uint8_t* ptr = nullptr;
    std::size_t len = 0;
    detail::check(shmbus_loan_data(loan_, &ptr, &len));
    return MutBytes(ptr, len);
  }

  /// Publishes the message; returns its sequence number. The loan is empty afterwards.
  std::uint64_t commit() {
    detail::check_handle(loan_);
    std::uint64_t seq = 0;
    detail::check(shmbus_loan_commit(std::exchange(loan_, nullptr), &seq));
    return seq;
  }

  /// Drops the message unpublished (subscribers skip it). The loan is empty afterwards.
  void abort() {
    detail::check_handle(loan_);
    detail::check(shmbus_loan_abort(std::exchange(loan_, nullptr)));
  }

  explicit operator bool() const noexcept { return loan_ != nullptr; }

 private:
  friend class Publisher;
  explicit Loan(shmbus_loan* loan) noexcept : loan_(loan) {}
  void end() noexcept {
    if (loan_ != nullptr) {
      shmbus_loan_abort(std::exchange(loan_, nullptr));
    }
  }
  shmbus_loan* loan_ = nullptr;
};

/// The outcome of Publisher::try_publish.
struct Published {
  enum class Status {
    published,    ///< `seq` is the message's sequence number.
    would_block,  ///< A lossless ring is full: nothing was published; try again later.
  };
  Status status = Status::would_block;
  std::uint64_t seq = 0;

  explicit operator bool() const noexcept { return status == Status::published; }
};

/// Publishes on one topic. Use from one thread at a time.
class Publisher {
 public:
  Publisher() noexcept = default;
  Publisher(Publisher&& other) noexcept : pub_(std::exchange(other.pub_, nullptr)) {}
  Publisher& operator=(Publisher&& other) noexcept {
    if (this != &other) {
      shmbus_publisher_free(pub_);
      pub_ = std::exchange(other.pub_, nullptr);
    }
    return *this;
  }
  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;
  ~Publisher() { shmbus_publisher_free(pub_); }

  /// Copies `msg` into the next slot and publishes it; returns its sequence number. On a full
  /// lossless ring, waits up to the PublisherConfig timeout, then throws
  /// SHMBUS_RESULT_PUBLISH_TIMEOUT.
  std::uint64_t publish(Bytes msg) {
    detail::check_handle(pub_);
    std::uint64_t seq = 0;
    detail::check(shmbus_publisher_publish(pub_, msg.data(), msg.size(), &seq));
    return seq;
  }
  std::uint64_t publish(std::string_view text) { return publish(as_bytes(text)); }
  std::uint64_t publish(const void* data, std::size_t len) {
    return publish(Bytes(static_cast<const std::uint8_t*>(data), len));
  }

  /// Like publish, but never waits for room: on a full lossless ring the status is would_block.
  /// (It throws PUBLISH_TIMEOUT as publish does for a slot a stuck writer holds.)
  Published try_publish(Bytes msg) {
    detail::check_handle(pub_);
    Published r;
    shmbus_result rc = shmbus_publisher_try_publish(pub_, msg.data(), msg.size(), &r.seq);
    if (rc == SHMBUS_RESULT_OK) {
      r.status = Published::Status::published;
    } else if (rc != SHMBUS_RESULT_WOULD_BLOCK) {
      detail::check(rc);  // throws
    }
    return r;
  }
  Published try_publish(std::string_view text) { return try_publish(as_bytes(text)); }
  Published try_publish(const void* data, std::size_t len) {
    return try_publish(Bytes(static_cast<const std::uint8_t*>(data), len));
  }

  /// Lends the next slot for a message of `len` bytes, to be written in place. On a full
  /// lossless ring, waits as publish() does.
  Loan loan(std::size_t len) {
    detail::check_handle(pub_);
    shmbus_loan* loan = nullptr;
    detail::check(shmbus_publisher_loan(pub_, len, &loan));
    return Loan(loan);
  }

  /// Like loan, but never waits for room: on a full lossless ring it returns an empty Loan
  /// (`!loan`). (It throws PUBLISH_TIMEOUT as loan does for a slot a stuck writer holds.)
  Loan try_loan(std::size_t len) {
    detail::check_handle(pub_);
    shmbus_loan* loan = nullptr;
    shmbus_result rc = shmbus_publisher_try_loan(pub_, len, &loan);
    if (rc == SHMBUS_RESULT_WOULD_BLOCK) return Loan();
    detail::check(rc);
    return Loan(loan);
  }

  /// The largest message the topic takes, in bytes.
  std::size_t capacity() const {
    detail::check_handle(pub_);
    std::size_t cap = 0;
    detail::check(shmbus_publisher_capacity(pub_, &cap));
    return cap;
  }

  /// The id subscribers see in MessageInfo::publisher_id.
  std::uint32_t id() const {
    detail::check_handle(pub_);
    std::uint32_t id = 0;
    detail::check(shmbus_publisher_id(pub_, &id));
    return id;
  }

  shmbus_publisher* get() const noexcept { return pub_; }
  explicit operator bool() const noexcept { return pub_ != nullptr; }

 private:
  friend class Bus;
  explicit Publisher(shmbus_publisher* pub) noexcept : pub_(pub) {}
  shmbus_publisher* pub_ = nullptr;
};

/// The outcome of a receive.
struct Received {
  enum class Status {
    message,  ///< `info` and `bytes` describe the message.
    empty,    ///< try_recv: nothing available now.
    timeout,  ///< recv_timeout: nothing arrived in time.
    lost,     ///< `loss` says which messages were lost; receive again for the next one.
  };
  Status status = Status::empty;
  MessageInfo info{};
  Loss loss{};
  /// The message's bytes, at the start of the caller's buffer.
  Bytes bytes{};

  explicit operator bool() const noexcept { return status == Status::message; }
};

/// A message borrowed in place from a lossless topic (Subscriber::try_recv_borrow and
/// recv_borrow_timeout), or the reason there is none (status() as for Received). While it holds
/// a message, bytes() points into the shared ring, read-only, and no publisher can overwrite
/// it; release() or the destructor consumes the message and invalidates bytes(). Hold it
/// briefly (publishers may be waiting), and end it before its Subscriber receives again or is
/// destroyed. In a loop, release() before the next borrow: in `s = sub.try_recv_borrow()` the
/// receive runs while `s` still holds its message, so it throws SHMBUS_RESULT_SAMPLE_OUTSTANDING
/// (declaring the Sample inside the loop body avoids this).
class Sample {
 public:
  using Status = Received::Status;

  Sample() noexcept = default;
  Sample(Sample&& other) noexcept
      : sub_(std::exchange(other.sub_, nullptr)),
        status_(other.status_),
        info_(other.info_),
        loss_(other.loss_),
        bytes_(std::exchange(other.bytes_, Bytes())) {}
  Sample& operator=(Sample&& other) noexcept {
    if (this != &other) {
      end();
      sub_ = std::exchange(other.sub_, nullptr);
      status_ = other.status_;
      info_ = other.info_;
      loss_ = other.loss_;
      bytes_ = std::exchange(other.bytes_, Bytes());
    }
    return *this;
  }
  Sample(const Sample&) = delete;
  Sample& operator=(const Sample&) = delete;
  ~Sample() { end(); }

  /// message (a message is held), empty, timeout or lost.
  Status status() const noexcept { return status_; }
  /// The message's metadata (status message).
  const MessageInfo& info() const noexcept { return info_; }
  /// Which messages were lost (status lost).
  const Loss& loss() const noexcept { return loss_; }
  /// The message's bytes in the shared ring; empty once released (or without a message).
  Bytes bytes() const noexcept { return bytes_; }

  /// Consumes the message now: bytes() is invalid afterwards. Throws on an empty Sample.
  void release() {
    detail::check_handle(sub_);
    bytes_ = Bytes();
    detail::check(shmbus_subscriber_release(std::exchange(sub_, nullptr)));
  }

  /// True while a message is held (until release or move).
  explicit operator bool() const noexcept { return sub_ != nullptr; }

 private:
  friend class Subscriber;
  void end() noexcept {
    if (sub_ != nullptr) {
      bytes_ = Bytes();
      shmbus_subscriber_release(std::exchange(sub_, nullptr));
    }
  }
  shmbus_subscriber* sub_ = nullptr;
  Status status_ = Status::empty;
  MessageInfo info_{};
  Loss loss_{};
  Bytes bytes_{};
};

/// Receives every message of one topic, in order. Use from one thread at a time.
class Subscriber {
 public:
  Subscriber() noexcept = default;
  Subscriber(Subscriber&& other) noexcept : sub_(std::exchange(other.sub_, nullptr)) {}
  Subscriber& operator=(Subscriber&& other) noexcept {
    if (this != &other) {
      shmbus_subscriber_free(sub_);
      sub_ = std::exchange(other.sub_, nullptr);
    }
    return *this;
  }
  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;
  ~Subscriber() { shmbus_subscriber_free(sub_); }

  /// The next message if one is available now.
  Received try_recv(MutBytes buf) {
    return receive(buf, [&](shmbus_message_info* info, shmbus_loss* loss) {
      return shmbus_subscriber_try_recv(sub_, buf.data(), buf.size(), info, loss);
    });
  }

  /// The next message, waiting as long as it takes (prefer recv_timeout).
  Received recv(MutBytes buf) {
    return receive(buf, [&](shmbus_message_info* info, shmbus_loss* loss) {
      return shmbus_subscriber_recv(sub_, buf.data(), buf.size(), info, loss);
    });
  }

  /// The next message, waiting up to `timeout` (counted as in `shmbus_subscriber_recv_timeout`).
  template <class Rep, class Period>
  Received recv_timeout(MutBytes buf, std::chrono::duration<Rep, Period> timeout) {
    std::uint64_t timeout_ns = detail::to_ns(timeout);
    return receive(buf, [&](shmbus_message_info* info, shmbus_loss* loss) {
      return shmbus_subscriber_recv_timeout(sub_, buf.data(), buf.size(), timeout_ns, info, loss);
    });
  }

  /// Lossless topics: borrows the next message in place if one is available now (status
  /// empty otherwise). Throws SHMBUS_RESULT_NOT_LOSSLESS on a lossy topic and
  /// SHMBUS_RESULT_SAMPLE_OUTSTANDING while another Sample of this subscriber holds a message.
  Sample try_recv_borrow() {
    return borrow([&](const std::uint8_t** data, std::size_t* len, shmbus_message_info* info,
                      shmbus_loss* loss) {
      return shmbus_subscriber_try_recv_borrow(sub_, data, len, info, loss);
    });
  }

  /// Lossless topics: waits up to `timeout` (counted as in `shmbus_subscriber_recv_timeout`)
  /// for the next message and borrows it in place (status timeout if none came). Throws as try_recv_borrow.
  template <class Rep, class Period>
  Sample recv_borrow_timeout(std::chrono::duration<Rep, Period> timeout) {
    std::uint64_t timeout_ns = detail::to_ns(timeout);
    return borrow([&](const std::uint8_t** data, std::size_t* len, shmbus_message_info* info,
                      shmbus_loss* loss) {
      return shmbus_subscriber_recv_borrow_timeout(sub_, timeout_ns, data, len, info, loss);
    });
  }

  /// The largest message on the topic: a buffer this large always suffices.
  std::size_t capacity() const {
    detail::check_handle(sub_);
    std::size_t cap = 0;
    detail::check(shmbus_subscriber_capacity(sub_, &cap));
    return cap;
  }

  /// A buffer of capacity() bytes.
  std::vector<std::uint8_t> make_buffer() const { return std::vector<std::uint8_t>(capacity()); }

  shmbus_subscriber* get() const noexcept { return sub_; }
  explicit operator bool() const noexcept { return sub_ != nullptr; }

 private:
  friend class Bus;
  explicit Subscriber(shmbus_subscriber* sub) noexcept : sub_(sub) {}

  template <class F>
  Received receive(MutBytes buf, F call) {
    detail::check_handle(sub_);
    Received r;
    shmbus_result rc = call(&r.info, &r.loss);
    switch (rc) {
      case SHMBUS_RESULT_OK:
        r.status = Received::Status::message;
        r.bytes = Bytes(buf.data(), r.info.len);
        break;
      case SHMBUS_RESULT_EMPTY:
        r.status = Received::Status::empty;
        break;
      case SHMBUS_RESULT_TIMEOUT:
        r.status = Received::Status::timeout;
        break;
      case SHMBUS_RESULT_LOST:
        r.status = Received::Status::lost;
        break;
      default:
        detail::check(rc);  // throws
    }
    return r;
  }

  template <class F>
  Sample borrow(F call) {
    detail::check_handle(sub_);
    Sample s;
    const std::uint8_t* data = nullptr;
    std::size_t len = 0;
    shmbus_result rc = call(&data, &len, &s.info_, &s.loss_);
    switch (rc) {
      case SHMBUS_RESULT_OK:
        s.sub_ = sub_;
        s.status_ = Sample::Status::message;
        s.bytes_ = Bytes(data, len);
        break;
      case SHMBUS_RESULT_EMPTY:
        s.status_ = Sample::Status::empty;
        break;
      case SHMBUS_RESULT_TIMEOUT:
        s.status_ = Sample::Status::timeout;
        break;
      case SHMBUS_RESULT_LOST:
        s.status_ = Sample::Status::lost;
        break;
      default:
        detail::check(rc);  // throws
    }
    return s;
  }

  shmbus_subscriber* sub_ = nullptr;
};

/// A bus: a named shared-memory segment. Thread-safe. Publishers and subscribers made from it
/// stay valid after it is destroyed.
class Bus {
 public:
  Bus() noexcept = default;
  Bus(Bus&& other) noexcept : bus_(std::exchange(other.bus_, nullptr)) {}
  Bus& operator=(Bus&& other) noexcept {
    if (this != &other) {
      shmbus_bus_free(bus_);
      bus_ = std::exchange(other.bus_, nullptr);
    }
    return *this;
  }
  Bus(const Bus&) = delete;
  Bus& operator=(const Bus&) = delete;
  ~Bus() { shmbus_bus_free(bus_); }

  /// Creates a new bus (throws SHMBUS_RESULT_ALREADY_EXISTS if it exists).
  static Bus create(const std::string& name, const BusConfig& cfg = BusConfig()) {
    return make(shmbus_bus_create, name, cfg);
  }
  /// Opens an existing bus.
  static Bus open(const std::string& name, const BusConfig& cfg = BusConfig()) {
    return make(shmbus_bus_open, name, cfg);
  }
  /// Opens the bus, creating it if it does not exist.
  static Bus open_or_create(const std::string& name, const BusConfig& cfg = BusConfig()) {
    return make(shmbus_bus_open_or_create, name, cfg);
  }
  /// Removes the bus's name (open handles keep working).
  static void remove(const std::string& name) { detail::check(shmbus_bus_remove(name.c_str())); }

  /// A publisher on `topic`, created with the bus's default geometry if new.
  Publisher publisher(const std::string& topic) const {
    return make_publisher(topic, nullptr, nullptr);
  }
  /// A publisher on `topic`, which must have (or is created with) geometry and delivery `cfg`.
  Publisher publisher(const std::string& topic, const TopicConfig& cfg) const {
    return make_publisher(topic, &cfg, nullptr);
  }
  /// A publisher with options `pub_cfg` on `topic` (the bus's default geometry if new).
  Publisher publisher(const std::string& topic, const PublisherConfig& pub_cfg) const {
    return make_publisher(topic, nullptr, &pub_cfg);
  }
  /// A publisher with options `pub_cfg` on `topic`, which must have (or is created with)
  /// geometry and delivery `cfg`.
  Publisher publisher(const std::string& topic, const TopicConfig& cfg,
                      const PublisherConfig& pub_cfg) const {
    return make_publisher(topic, &cfg, &pub_cfg);
  }

  /// A subscriber on `topic`, created with the bus's default geometry if new.
  Subscriber subscriber(const std::string& topic,
                        const SubscriberConfig& cfg = SubscriberConfig()) const {
    return make_subscriber(topic, nullptr, cfg);
  }
  /// A subscriber on `topic`, which must have (or is created with) geometry `topic_cfg`.
  Subscriber subscriber(const std::string& topic, const TopicConfig& topic_cfg,
                        const SubscriberConfig& cfg = SubscriberConfig()) const {
    return make_subscriber(topic, &topic_cfg, cfg);
  }

  shmbus_bus* get() const noexcept { return bus_; }
  explicit operator bool() const noexcept { return bus_ != nullptr; }

 private:
  explicit Bus(shmbus_bus* bus) noexcept : bus_(bus) {}

  using MakeFn = shmbus_result (*)(const char*, const shmbus_bus_config*, shmbus_bus**);
  static Bus make(MakeFn fn, const std::string& name, const BusConfig& cfg) {
    shmbus_bus* bus = nullptr;
    detail::check(fn(name.c_str(), &cfg, &bus));
    return Bus(bus);
  }

  Publisher make_publisher(const std::string& topic, const shmbus_topic_config* cfg,
                           const shmbus_publisher_config* pub_cfg) const {
    detail::check_handle(bus_);
    shmbus_publisher* pub = nullptr;
    detail::check(shmbus_publisher_new_with(bus_, topic.c_str(), cfg, pub_cfg, &pub));
    return Publisher(pub);
  }

  Subscriber make_subscriber(const std::string& topic, const shmbus_topic_config* topic_cfg,
                             const SubscriberConfig& cfg) const {
    detail::check_handle(bus_);
    shmbus_subscriber* sub = nullptr;
    detail::check(shmbus_subscriber_new(bus_, topic.c_str(), topic_cfg, &cfg, &sub));
    return Subscriber(sub);
  }

  shmbus_bus* bus_ = nullptr;
};

}  // namespace shmbus

#endif  // SHMBUS_HPP
