#include "session.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cxxabi.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>

#include "ctpshim_layout.h"
#include "json.h"

#ifndef CTPSHIM_VERSION
#define CTPSHIM_VERSION "0"
#endif

namespace ctpshim {

// By this string `ctpshim native install` and `status` recognise ctpshim's builds.
__attribute__((used)) extern const char kNativeBuildMarker[] =
    "CTPSHIM_NATIVE_BUILD " CTPSHIM_VERSION " " CTPSHIM_LAYOUT_ID;

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr int kReasonReadFailed = 0x1001;
constexpr int kReasonWriteFailed = 0x1002;
constexpr int kReasonHeartbeat = 0x2001;
constexpr int kReasonBadMessage = 0x2003;
constexpr auto kConnectTimeout = milliseconds(3000);
constexpr auto kHelloTimeout = milliseconds(20000);  // a td HELLO_ACK waits for the server's trader API (15 s)
constexpr auto kResultTimeout = milliseconds(10000);
constexpr auto kReleaseWait = milliseconds(5000);
constexpr int kPollStepMs = 100;
constexpr int kMaxLogged = 64;

const char kFrontForms[] = "tcp://HOST:PORT[/SOURCE][?token=TOKEN] or ctpshim://HOST:PORT[/SOURCE][?token=TOKEN]";

std::string percent_decode(const std::string &s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      const std::string hex = s.substr(i + 1, 2);
      char *end = nullptr;
      const long v = std::strtol(hex.c_str(), &end, 16);
      if (hex.size() == 2 && end == hex.c_str() + 2) {
        out.push_back(static_cast<char>(v));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

bool starts_with_nocase(const std::string &s, const char *prefix) {
  const std::size_t n = std::strlen(prefix);
  if (s.size() < n) return false;
  for (std::size_t i = 0; i < n; ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != prefix[i]) return false;
  }
  return true;
}

void set_nonblocking(int fd, bool on) {
  const int flags = fcntl(fd, F_GETFL, 0);
  fcntl(fd, F_SETFL, on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK));
}

}  // namespace

Front parse_front(const std::string &address) {
  Front f;
  f.text = address;
  std::string rest;
  if (starts_with_nocase(address, "tcp://")) {
    rest = address.substr(6);
  } else if (starts_with_nocase(address, "ctpshim://")) {
    rest = address.substr(10);
  } else if (starts_with_nocase(address, "ctpshims://")) {
    f.error = "front address \"" + address + "\": ctpshims:// (TLS) is not supported by the native library; reach a TLS "
              "server through a local tunnel (stunnel, ssh -L) and give the tunnel's ctpshim:// address";
    return f;
  } else {
    f.error = "front address \"" + address + "\": expected " + kFrontForms;
    return f;
  }
  const std::size_t q = rest.find('?');
  if (q != std::string::npos) {
    std::string query = rest.substr(q + 1);
    rest = rest.substr(0, q);
    std::size_t start = 0;
    while (start <= query.size()) {
      std::size_t amp = query.find('&', start);
      if (amp == std::string::npos) amp = query.size();
      const std::string item = query.substr(start, amp - start);
      if (item.compare(0, 6, "token=") == 0) f.token = percent_decode(item.substr(6));
      start = amp + 1;
    }
  }
  const std::size_t slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  if (slash != std::string::npos) {
    std::string source = rest.substr(slash + 1);
    while (!source.empty() && source.back() == '/') source.pop_back();
    f.source = percent_decode(source);
  }
  std::size_t colon;
  if (!hostport.empty() && hostport[0] == '[') {
    const std::size_t close = hostport.find(']');
    if (close == std::string::npos || close + 1 >= hostport.size() || hostport[close + 1] != ':') {
      f.error = "front address \"" + address + "\": bad [IPv6]:PORT; expected " + kFrontForms;
      return f;
    }
    f.host = hostport.substr(1, close - 1);
    colon = close + 1;
  } else {
    colon = hostport.rfind(':');
    if (colon == std::string::npos) {
      f.error = "front address \"" + address + "\" has no port; expected " + kFrontForms;
      return f;
    }
    f.host = hostport.substr(0, colon);
  }
  f.port = hostport.substr(colon + 1);
  char *end = nullptr;
  const long port = std::strtol(f.port.c_str(), &end, 10);
  if (f.port.empty() || *end != '\0' || port < 1 || port > 65535) {
    f.error = "front address \"" + address + "\": port \"" + f.port + "\" is not a number from 1 to 65535";
    return f;
  }
  if (f.host.empty()) {
    f.error = "front address \"" + address + "\" has no host; expected " + kFrontForms;
    return f;
  }
  f.valid = true;
  return f;
}

std::string hello_payload(const char *api, const Front &front, const char *client, int private_resume,
                          int public_resume) {
  std::string hello = "{\"magic\":\"CTPS\",\"version\":1,\"api\":";
  json::append_string(hello, api);
  hello += ",\"source\":";
  json::append_string(hello, front.source);
  hello += ",\"token\":";
  json::append_string(hello, front.token);
  hello += ",\"layout\":";
  json::append_string(hello, CTPSHIM_LAYOUT_ID);
  hello += ",\"client\":";
  json::append_string(hello, client);
  if (private_resume >= 0) hello += ",\"private_resume\":" + std::to_string(private_resume);
  if (public_resume >= 0) hello += ",\"public_resume\":" + std::to_string(public_resume);
  hello += "}";
  return hello;
}

// -- Session -----------------------------------------------------------------------------------

Session::Session(const char *api, SessionOwner *owner) : api_(api), owner_(owner), trading_day_() {}

Session::~Session() {
  // Reached only through release(): both threads are joined or detached by then.
  if (io_thread_.joinable()) io_thread_.detach();
  if (callback_thread_.joinable()) callback_thread_.detach();
}

void Session::log_once(const std::string &message) {
  std::lock_guard<std::mutex> lock(log_mutex_);
  for (const auto &m : logged_) {
    if (m == message) return;
  }
  if (logged_.size() >= static_cast<std::size_t>(kMaxLogged)) return;
  logged_.push_back(message);
  std::fprintf(stderr, "ctpshim native (%s): %s\n", api_, message.c_str());
}

void Session::register_front(const char *address) {
  if (address == nullptr) return;
  if (started_) {
    log_once(std::string("RegisterFront(\"") + address + "\") after Init() is ignored");
    return;
  }
  registered_.emplace_back(address);
}

void Session::set_resume(bool is_private, int resume_type) {
  if (resume_type < 0 || resume_type > 3) {
    log_once("THOST_TE_RESUME_TYPE " + std::to_string(resume_type) +
             " is not one of 0 RESTART, 1 RESUME, 2 QUICK, 3 NONE: ignored");
    return;
  }
  (is_private ? private_resume_ : public_resume_) = resume_type;
}

std::string Session::hello_trading_day() const {
  std::lock_guard<std::mutex> lock(write_mutex_);
  return trading_day_;
}

bool Session::is_callback_thread() const { return std::this_thread::get_id() == callback_id_; }

void Session::start() {
  if (started_) return;
  started_ = true;
  std::vector<std::string> addresses = registered_;
  const char *override_front = std::getenv("CTPSHIM_NATIVE_FRONT");
  if (override_front != nullptr && *override_front != '\0') {
    addresses.clear();
    std::string all(override_front);
    std::size_t start = 0;
    while (start <= all.size()) {
      std::size_t comma = all.find(',', start);
      if (comma == std::string::npos) comma = all.size();
      if (comma > start) addresses.push_back(all.substr(start, comma - start));
      start = comma + 1;
    }
  }
  const char *token = std::getenv("CTPSHIM_NATIVE_TOKEN");
  for (const auto &a : addresses) {
    Front f = parse_front(a);
    if (!f.valid) {
      log_once(f.error + " (this front is never reached)");
    } else if (f.token.empty() && token != nullptr) {
      f.token = token;
    }
    fronts_.push_back(std::move(f));
  }
  const char *limit = std::getenv("CTPSHIM_NATIVE_QUEUE_BYTES");  // for tests of the bound
  if (limit != nullptr && std::strtoull(limit, nullptr, 10) > 0) queue_limit_ = std::strtoull(limit, nullptr, 10);
  if (fronts_.empty()) log_once("Init() with no front registered (RegisterFront, or set CTPSHIM_NATIVE_FRONT)");
  callback_thread_ = std::thread(&Session::callback_main, this);
  callback_id_ = callback_thread_.get_id();
  io_thread_ = std::thread(&Session::io_main, this);
}

int Session::join() {
  std::shared_ptr<JoinState> state = join_state_;  // outlives this Session when Release frees it
  std::unique_lock<std::mutex> lock(state->mutex);
  state->cv.wait(lock, [&] { return state->ended; });
  return 0;
}

void Session::release(std::function<void()> destroy) {
  std::shared_ptr<JoinState> join_state = join_state_;
  if (!started_) {
    {
      std::lock_guard<std::mutex> lock(join_state->mutex);
      join_state->ended = true;
    }
    join_state->cv.notify_all();
    destroy();
    return;
  }
  stop_.store(true, std::memory_order_release);
  {
    std::lock_guard<std::mutex> lock(write_mutex_);
    if (fd_ >= 0 && connected_.load()) {
      send_frame_locked(encode_frame(kBye, "{\"reason\":\"Release\"}", ++seq_));
    }
    if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
    fail_pending_locked();
  }
  result_cv_.notify_all();
  {
    std::lock_guard<std::mutex> lock(queue_mutex_);
    queue_cv_.notify_all();
    space_cv_.notify_all();
  }
  if (io_thread_.joinable()) io_thread_.join();
  {
    std::lock_guard<std::mutex> lock(join_state->mutex);
    join_state->ended = true;
  }
  join_state->cv.notify_all();

  std::unique_lock<std::mutex> lock(queue_mutex_);
  if (is_callback_thread()) {  // Release() from a callback: finished once that callback returns
    destroy_on_exit_ = true;
    destroy_ = std::move(destroy);
    return;
  }
  if (!queue_cv_.wait_for(lock, kReleaseWait, [&] { return callback_done_; })) {
    // A callback still runs (a Spi method that does not return, or one waiting for a lock the
    // caller holds): the callback thread frees the API object when it ends.
    log_once("Release(): a callback is still running after 5 s; the API is freed when it returns");
    destroy_on_exit_ = true;  // from here on the callback thread may free this at any moment
    destroy_ = std::move(destroy);
    return;
  }
  callback_thread_.detach();  // it touches nothing of ours any more
  lock.unlock();
  destroy();
}

void Session::fail_pending_locked() {
  for (auto &item : pending_) {
    item.second->done = true;
    item.second->code = -1;
  }
  pending_.clear();
}

bool Session::send_frame_locked(const std::string &bytes) {
  if (fd_ < 0 || write_failed_) return false;
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    write_failed_ = true;  // the IO thread reports 4098 when it notices
    ::shutdown(fd_, SHUT_RDWR);
    return false;
  }
  last_sent_ = Clock::now();
  return true;
}

bool Session::send_simple(std::uint16_t type, const std::string &payload) {
  std::lock_guard<std::mutex> lock(write_mutex_);
  return send_frame_locked(encode_frame(type, payload, ++seq_));
}

int Session::call(CallWriter &call, int request_id) {
  const bool from_callback = is_callback_thread();
  std::unique_lock<std::mutex> lock(write_mutex_);
  if (!connected_.load(std::memory_order_acquire) || fd_ < 0 || stopping()) return -1;
  const std::uint32_t seq = ++seq_;
  Pending pending;
  pending_[seq] = &pending;
  if (!send_frame_locked(call.frame(seq, request_id))) {
    pending_.erase(seq);
    return -1;
  }
  if (from_callback) {  // the IO thread must keep reading while the callback thread waits here
    std::lock_guard<std::mutex> queue_lock(queue_mutex_);
    callback_in_call_ = true;
    space_cv_.notify_all();
  }
  const bool answered = result_cv_.wait_for(lock, kResultTimeout, [&] { return pending.done; });
  if (!answered) pending_.erase(seq);
  lock.unlock();
  if (from_callback) {
    std::lock_guard<std::mutex> queue_lock(queue_mutex_);
    callback_in_call_ = false;
  }
  if (!answered) {
    log_once("no RESULT for " + call.method() + " within 10 s: returning -1");
    return -1;
  }
  return pending.code;
}

void Session::sleep_while_running(milliseconds total) {
  const auto until = Clock::now() + total;
  std::unique_lock<std::mutex> lock(queue_mutex_);
  while (!stopping() && Clock::now() < until) space_cv_.wait_until(lock, until);
}

void Session::push(Event &&event) {
  std::unique_lock<std::mutex> lock(queue_mutex_);
  while (queued_bytes_ > queue_limit_ && !callback_in_call_ && !stopping()) {
    io_waiting_ = true;
    space_cv_.wait_for(lock, milliseconds(kPollStepMs));
    io_waiting_ = false;
    if (queued_bytes_ > queue_limit_ && !callback_in_call_ && !stopping()) {
      lock.unlock();
      {  // keep the server from counting us silent while we do not read
        std::lock_guard<std::mutex> write_lock(write_mutex_);
        if (Clock::now() - last_sent_ >= milliseconds(1000)) send_frame_locked(encode_frame(kHeartbeat, "", ++seq_));
      }
      lock.lock();
    }
  }
  queued_bytes_ += event.payload.size() + 64;
  queue_.push_back(std::move(event));
  if (callback_waiting_) queue_cv_.notify_one();
}

void Session::end_connection(int reason, bool acked) {
  int fd;
  {
    std::lock_guard<std::mutex> lock(write_mutex_);
    connected_.store(false, std::memory_order_release);
    fd = fd_;
    fd_ = -1;
    fail_pending_locked();
  }
  result_cv_.notify_all();
  if (fd >= 0) ::close(fd);
  if (acked && !stopping()) {
    Event e;
    e.kind = Event::kDisconnected;
    e.value = reason;
    push(std::move(e));
  }
}

void Session::io_main() {
  pthread_setname_np(pthread_self(), api_[0] == 'm' ? "ctpshim-md-io" : "ctpshim-td-io");
  std::size_t index = 0;
  while (!stopping()) {
    if (!fronts_.empty()) {
      const Front &front = fronts_[index++ % fronts_.size()];
      if (front.valid) connection(front);
    }
    if (!stopping()) sleep_while_running(milliseconds(1000));
  }
}

namespace {

// A connected socket, or -1 (with `error` set); gives up when `stop` turns true.
int connect_to(const Front &front, const std::atomic<bool> &stop, std::string &error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo *found = nullptr;
  const int rc = ::getaddrinfo(front.host.c_str(), front.port.c_str(), &hints, &found);
  if (rc != 0) {
    error = "cannot resolve " + front.host + ": " + gai_strerror(rc);
    return -1;
  }
  int result = -1;
  for (addrinfo *ai = found; ai != nullptr && result < 0 && !stop.load(); ai = ai->ai_next) {
    const int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    set_nonblocking(fd, true);
    int err = 0;
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      err = errno;
      if (err == EINPROGRESS) {
        const auto until = Clock::now() + kConnectTimeout;
        err = ETIMEDOUT;
        while (!stop.load() && Clock::now() < until) {
          pollfd p{fd, POLLOUT, 0};
          const int n = ::poll(&p, 1, kPollStepMs);
          if (n > 0) {
            socklen_t len = sizeof err;
            ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
            break;
          }
          if (n < 0 && errno != EINTR) {
            err = errno;
            break;
          }
        }
      }
    }
    if (err != 0) {
      error = "cannot connect to " + front.host + ":" + front.port + ": " + std::strerror(err);
      ::close(fd);
      continue;
    }
    set_nonblocking(fd, false);
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    timeval send_timeout{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof send_timeout);
    result = fd;
  }
  ::freeaddrinfo(found);
  return result;
}

}  // namespace

void Session::connection(const Front &front) {
  std::string error;
  const int fd = connect_to(front, stop_, error);
  if (fd < 0) {
    if (!stopping()) log_once(error + " (front " + front.text + "; retrying every second)");
    return;
  }
  const std::string hello =
      hello_payload(api_, front, "ctpshim native " CTPSHIM_VERSION " (C++, CTP " CTPSHIM_CTP_VERSION " ABI)",
                    private_resume_, public_resume_);
  {
    std::lock_guard<std::mutex> lock(write_mutex_);
    fd_ = fd;
    seq_ = 0;
    write_failed_ = false;
    if (stopping()) {
      fd_ = -1;
      ::close(fd);
      return;
    }
    send_frame_locked(encode_frame(kHello, hello, ++seq_));
  }

  FrameReader reader;
  bool acked = false;
  auto heartbeat = milliseconds(5000);
  auto now = Clock::now();
  auto last_received = now;
  bool warned = false;  // OnHeartBeatWarning reported for the current silence
  const auto hello_deadline = now + kHelloTimeout;
  int server_reason = 0;
  int reason = kReasonReadFailed;
  std::vector<char> buffer(1 << 18);

  enum { kGoOn, kEndReported, kEndQuiet } outcome = kGoOn;
  while (outcome == kGoOn) {
    if (stopping()) {
      outcome = kEndQuiet;
      break;
    }
    pollfd p{fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, kPollStepMs);
    now = Clock::now();
    if (ready > 0) {
      const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
      if (n <= 0 && !(n < 0 && (errno == EINTR || errno == EAGAIN))) {
        bool write_failed;
        {
          std::lock_guard<std::mutex> lock(write_mutex_);
          write_failed = write_failed_;
        }
        reason = write_failed ? kReasonWriteFailed : (server_reason != 0 ? server_reason : kReasonReadFailed);
        if (!acked && !stopping()) log_once("the server at " + front.text + " closed the connection during the handshake");
        outcome = kEndReported;
        break;
      }
      if (n > 0) {
        last_received = now;
        warned = false;
        reader.feed(buffer.data(), static_cast<std::size_t>(n));
      }
      FrameView frame;
      FrameReader::Status status;
      while (outcome == kGoOn && (status = reader.next(frame)) == FrameReader::kFrame) {
        const FrameHeader &h = frame.header;
        if (!acked) {
          if (h.type == kHelloAck) {
            json::Flat ack;
            std::string why;
            if (!json::parse_flat(std::string_view(reinterpret_cast<const char *>(frame.payload), frame.size), ack,
                                  why)) {
              log_once("HELLO_ACK from " + front.text + " is not a JSON object: " + why);
              outcome = kEndQuiet;
              break;
            }
            const double seconds = ack.number_or("heartbeat", 5.0);
            if (seconds > 0.05 && seconds < 3600) heartbeat = milliseconds(static_cast<long>(seconds * 1000));
            {
              std::lock_guard<std::mutex> lock(write_mutex_);
              trading_day_ = ack.string_or("trading_day", "");
            }
            acked = true;
            connected_.store(true, std::memory_order_release);
            Event e;
            e.kind = Event::kConnected;
            push(std::move(e));
          } else if (h.type == kError) {
            json::Flat err;
            std::string why;
            json::parse_flat(std::string_view(reinterpret_cast<const char *>(frame.payload), frame.size), err, why);
            const int id = static_cast<int>(err.number_or("ErrorID", -1));
            if (id != -503) {  // -503: the source is not connected yet: retry quietly
              log_once("the server at " + front.text + " refused the connection: " +
                       err.string_or("ErrorMsg", "(no message)") + " (ErrorID " + std::to_string(id) +
                       "); retrying every second");
            }
            outcome = kEndQuiet;
          } else {
            log_once(std::string("expected HELLO_ACK from ") + front.text + ", got " + type_name(h.type));
            outcome = kEndQuiet;
          }
          continue;
        }
        switch (h.type) {
          case kHeartbeat:
            break;
          case kResult: {
            if (frame.size != 8) {
              log_once("malformed RESULT (" + std::to_string(frame.size) + " bytes, expected 8)");
              reason = kReasonBadMessage;
              outcome = kEndReported;
              break;
            }
            const int code = static_cast<std::int32_t>(get_u32(frame.payload));
            const std::uint32_t call_seq = get_u32(frame.payload + 4);
            {
              std::lock_guard<std::mutex> lock(write_mutex_);
              const auto it = pending_.find(call_seq);
              if (it != pending_.end()) {
                it->second->done = true;
                it->second->code = code;
                pending_.erase(it);
              }
            }
            result_cv_.notify_all();
            break;
          }
          case kCallback: {
            std::string_view name;
            const unsigned char *rest = nullptr;
            std::size_t rest_size = 0;
            if (!split_callback(frame.payload, frame.size, name, rest, rest_size)) {
              log_once("malformed CALLBACK (its name is truncated)");
              reason = kReasonBadMessage;
              outcome = kEndReported;
              break;
            }
            if (name == "OnFrontDisconnected") {  // reported when the connection ends, not twice
              CallbackReader in(rest, rest_size);
              const int r = in.i32();
              if (!in.failed() && r != 0) server_reason = r;
              break;
            }
            if (name == "OnFrontConnected") break;  // ours comes from HELLO_ACK
            Event e;
            e.kind = Event::kCallback;
            e.flags = h.flags;
            e.request_id = h.request_id;
            e.payload.assign(reinterpret_cast<const char *>(frame.payload), frame.size);
            push(std::move(e));
            break;
          }
          case kTick:
          case kTickBatch: {
            const unsigned char *ticks = frame.payload;
            std::size_t size = frame.size;
            if (h.type == kTickBatch) {
              const std::size_t count = size >= 2 ? get_u16(frame.payload) : 0;
              if (size < 2 || count == 0 || size != 2 + count * kTickSize) {
                log_once("malformed TICK_BATCH (" + std::to_string(size) + " bytes for " + std::to_string(count) +
                         " ticks of 584)");
                reason = kReasonBadMessage;
                outcome = kEndReported;
                break;
              }
              ticks += 2;
              size -= 2;
            } else if (size != kTickSize) {
              log_once("malformed TICK (" + std::to_string(size) + " bytes, expected 584)");
              reason = kReasonBadMessage;
              outcome = kEndReported;
              break;
            }
            Event e;
            e.kind = Event::kTicks;
            e.payload.assign(reinterpret_cast<const char *>(ticks), size);
            push(std::move(e));
            break;
          }
          case kError: {
            json::Flat err;
            std::string why;
            json::parse_flat(std::string_view(reinterpret_cast<const char *>(frame.payload), frame.size), err, why);
            reason = static_cast<int>(err.number_or("Reason", kReasonReadFailed));
            std::fprintf(stderr, "ctpshim native (%s): the server at %s ended the connection: %s (ErrorID %d)\n", api_,
                         front.text.c_str(), err.string_or("ErrorMsg", "(no message)").c_str(),
                         static_cast<int>(err.number_or("ErrorID", -1)));
            outcome = kEndReported;
            break;
          }
          case kBye:
            reason = server_reason != 0 ? server_reason : kReasonReadFailed;
            outcome = kEndReported;
            break;
          default:  // HELLO, HELLO_ACK again, CALL: not for a client
            log_once(std::string("the server sent a ") + type_name(h.type) + " frame, which a client never gets");
            reason = kReasonBadMessage;
            outcome = kEndReported;
            break;
        }
        // A long wait for room in the queue is not silence.
        last_received = std::max(last_received, Clock::now() - heartbeat);
      }
      if (outcome == kGoOn && status == FrameReader::kFailed) {
        log_once("malformed frame from the server: " + reader.error());
        reason = kReasonBadMessage;
        outcome = kEndReported;
      }
      if (outcome != kGoOn) break;
    }
    now = Clock::now();
    bool write_failed;
    {
      std::lock_guard<std::mutex> lock(write_mutex_);
      write_failed = write_failed_;
      if (acked && !write_failed && now - last_sent_ >= heartbeat / 2) {
        send_frame_locked(encode_frame(kHeartbeat, "", ++seq_));
      }
    }
    if (write_failed) {
      reason = kReasonWriteFailed;
      outcome = kEndReported;
    } else if (!acked && now > hello_deadline) {
      log_once("no answer to HELLO from " + front.text + " within 20 s (is it the binary port of ctpshim serve?)");
      outcome = kEndQuiet;
    } else if (acked && now - last_received > 3 * heartbeat) {
      reason = kReasonHeartbeat;
      outcome = kEndReported;
    } else if (acked && !warned && now - last_received > 2 * heartbeat) {
      // An idle server sends a HEARTBEAT every 1 to 1.5 intervals, so 2 silent ones are a warning.
      warned = true;
      Event e;
      e.kind = Event::kHeartBeatWarning;
      e.value = static_cast<int>(std::lround(std::chrono::duration<double>(now - last_received).count()));
      push(std::move(e));
    }
  }
  end_connection(reason, acked && outcome == kEndReported);
}

void Session::callback_main() {
  pthread_setname_np(pthread_self(), api_[0] == 'm' ? "ctpshim-md-spi" : "ctpshim-td-spi");
  PythonPin pin;
  pin.enter();
  pin_ = &pin;
  std::deque<Event> batch;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(queue_mutex_);
      while (queue_.empty() && !stopping()) {
        callback_waiting_ = true;
        queue_cv_.wait(lock);
        callback_waiting_ = false;
      }
      if (stopping()) break;
      batch.swap(queue_);
      queued_bytes_ = 0;
      if (io_waiting_) space_cv_.notify_all();
    }
    for (Event &event : batch) {
      if (!spi_allowed()) break;  // released, or the interpreter exits: the rest is dropped
      try {
        owner_->deliver(event);
      } catch (abi::__forced_unwind &) {
        throw;  // pthread_exit (CPython ending this thread): let it unwind
      } catch (const std::exception &e) {
        log_once(std::string("a Spi method threw (") + e.what() + "); the callback thread goes on");
      } catch (...) {
        log_once("a Spi method threw; the callback thread goes on");
      }
    }
    batch.clear();
  }
  std::function<void()> destroy;
  {
    std::lock_guard<std::mutex> lock(queue_mutex_);
    pin_ = nullptr;
    callback_done_ = true;
    if (destroy_on_exit_) {
      destroy = std::move(destroy_);
      callback_thread_.detach();
    }
    queue_cv_.notify_all();  // Release() waits for callback_done_; after this unlock nothing here is touched
  }
  if (destroy) destroy();
  pin.leave();
}

}  // namespace ctpshim
