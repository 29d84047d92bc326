// One API object's link to `ctpshim serve` (docs/PROTOCOL.md section 12): the fronts, the IO
// thread (connect, HELLO, frames, RESULTs, heartbeats, reconnects) and the callback thread (every
// Spi call, in arrival order).  MdApi and TraderApi each own one Session.
#ifndef CTPSHIM_NATIVE_SESSION_H
#define CTPSHIM_NATIVE_SESSION_H

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "pin.h"
#include "wire.h"

namespace ctpshim {

// A parsed front address: tcp://HOST:PORT[/SOURCE][?token=T] or ctpshim://...
struct Front {
  std::string text;
  std::string host;
  std::string port;
  std::string source;
  std::string token;
  bool valid = false;
  std::string error;  // why it is not valid, naming what is
};
Front parse_front(const std::string &address);

// HELLO's JSON (PROTOCOL.md 4.1); a resume type < 0 is left out (the server's default).
std::string hello_payload(const char *api, const Front &front, const char *client, int private_resume,
                          int public_resume);

// What the IO thread hands to the callback thread.
struct Event {
  enum Kind : std::uint8_t { kConnected, kDisconnected, kHeartBeatWarning, kCallback, kTicks };
  Kind kind = kConnected;
  std::uint8_t flags = 0;
  std::int32_t request_id = 0;
  int value = 0;        // kDisconnected: the reason; kHeartBeatWarning: seconds of silence
  std::string payload;  // kCallback: the CALLBACK payload; kTicks: back-to-back 584-byte ticks
};

// The queue's bound: above it the IO thread stops reading (the server then conflates ticks).
// CTPSHIM_NATIVE_QUEUE_BYTES overrides it (for tests).
constexpr std::size_t kQueueBytes = 64u << 20;

// The API class behind a Session: gets each event on the callback thread (the event's payload
// is the owner's to use, a tick's bytes may be handed to the Spi in place).
class SessionOwner {
 public:
  virtual void deliver(Event &event) = 0;

 protected:
  ~SessionOwner() = default;
};

class Session {
 public:
  Session(const char *api, SessionOwner *owner);
  ~Session();
  Session(const Session &) = delete;
  Session &operator=(const Session &) = delete;

  void register_front(const char *address);          // RegisterFront (and RegisterNameServer)
  void set_resume(bool is_private, int resume_type);  // td: SubscribePrivateTopic/PublicTopic before Init
  void start();                                       // Init
  int join();                                         // Join: until Release
  // Release: stop both threads, then `destroy` (deletes the API object, this Session with it),
  // at once or, when called from a callback, once that callback has returned.
  void release(std::function<void()> destroy);

  // CALL and wait (bounded) for its RESULT's code; -1 when not connected or no RESULT came.
  int call(CallWriter &call, int request_id);

  bool connected() const { return connected_.load(std::memory_order_acquire); }
  std::string hello_trading_day() const;
  const char *api() const { return api_; }
  bool is_callback_thread() const;
  bool released() const { return stop_.load(std::memory_order_acquire); }
  // On the callback thread: whether a Spi method may be called now (not after Release, nor once
  // the Python interpreter that owns the Spi is exiting).
  bool spi_allowed() const { return !released() && !(pin_ != nullptr && pin_->interpreter_exiting()); }
  void log_once(const std::string &message);

 private:
  struct Pending {
    bool done = false;
    int code = -1;
  };
  enum class End { kStopped, kQuiet, kReported };

  void io_main();
  void callback_main();
  void connection(const Front &front);
  bool send_frame_locked(const std::string &bytes);
  bool send_simple(std::uint16_t type, const std::string &payload);
  // Queue an event for the callback thread; waits (heartbeating) while the queue is over its bound,
  // except while the callback thread waits for a RESULT.
  void push(Event &&event);
  void end_connection(int reason, bool acked);
  bool stopping() const { return stop_.load(std::memory_order_acquire); }
  void sleep_while_running(std::chrono::milliseconds total);
  void fail_pending_locked();

  const char *api_;
  SessionOwner *owner_;

  std::vector<std::string> registered_;
  std::vector<Front> fronts_;
  int private_resume_ = -1;
  int public_resume_ = -1;

  std::atomic<bool> stop_{false};
  std::atomic<bool> connected_{false};
  std::thread io_thread_;
  std::thread callback_thread_;
  bool started_ = false;

  // Writes, seq numbering and pending calls (guarded by write_mutex_).
  mutable std::mutex write_mutex_;
  std::condition_variable result_cv_;
  int fd_ = -1;
  std::uint32_t seq_ = 0;
  std::map<std::uint32_t, Pending *> pending_;
  std::chrono::steady_clock::time_point last_sent_{};
  bool write_failed_ = false;
  std::string trading_day_;

  // The event queue (guarded by queue_mutex_).
  std::mutex queue_mutex_;
  std::condition_variable queue_cv_;  // the callback thread waits for events
  std::condition_variable space_cv_;  // the IO thread waits for room
  std::deque<Event> queue_;
  std::size_t queued_bytes_ = 0;
  std::size_t queue_limit_ = kQueueBytes;
  bool callback_waiting_ = false;     // the callback thread sleeps on queue_cv_
  bool io_waiting_ = false;           // the IO thread sleeps on space_cv_
  bool callback_in_call_ = false;     // the callback thread waits for a RESULT: never block the IO thread
  bool callback_done_ = false;        // callback_main has left its loop
  bool destroy_on_exit_ = false;      // the callback thread runs destroy_ when it leaves
  std::function<void()> destroy_;
  std::thread::id callback_id_;
  const PythonPin *pin_ = nullptr;  // the callback thread's (on its stack while it delivers)

  struct JoinState {
    std::mutex mutex;
    std::condition_variable cv;
    bool ended = false;
  };
  std::shared_ptr<JoinState> join_state_ = std::make_shared<JoinState>();

  std::mutex log_mutex_;
  std::vector<std::string> logged_;
};

}  // namespace ctpshim

#endif  // CTPSHIM_NATIVE_SESSION_H
