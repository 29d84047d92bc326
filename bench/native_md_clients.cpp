// N CTP md clients in one process, on ctpshim's native libthostmduserapi_se.so: the native client
// kind of bench/serve_binary.py (--clients-kind native).  Each client is a CThostFtdcMdApi of its own
// (CreateFtdcMdApi, RegisterFront, Init, ReqUserLogin, SubscribeMarketData of every id of IDS_FILE),
// so each has the library's own IO and callback threads, as in any C++ CTP program.  Its
// OnRtnDepthMarketData counts the tick in the measuring window and, with LATENCY=1, keeps its latency:
// CLOCK_REALTIME now less the tick's stamp, ActionDay UpdateTime.UpdateMillisec in China time (UTC+8,
// no daylight saving), in whole microseconds; the same stamp and window rules as bench/serve_common.py
// (StampClock, WindowCounter).  No allocation per tick: the samples go to one preallocated buffer.
//
// The Child protocol of bench/serve_common.py: "ready" on stdout once every client has had a tick,
// then "go START END" (epoch seconds) on stdin, then one JSON line:
//   {"count": N, "seconds": S, "rates": [...], "failed": [...], "latencies_us": [...],
//    "samples_dropped": N, "bad_stamps": N}
//
//   native_md_clients FRONT COUNT IDS_FILE LATENCY [MAX_SAMPLES]
//     FRONT        ctpshim://HOST:PORT/SOURCE (any address the native library takes)
//     IDS_FILE     a JSON list of instrument ids
//     MAX_SAMPLES  room for latency samples, all clients together (default 2,000,000)
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "ThostFtdcMdApi.h"

namespace {

constexpr std::int64_t kChinaOffset = 8 * 3600;
constexpr double kReadyTimeout = 90.0;  // s for every client's first tick
constexpr double kCloseGrace = 3.0;     // s after the window for every client's closing tick

// The window: +inf until the driver says go.  Read by every callback thread.
std::atomic<std::int64_t> window_start_us{INT64_MAX};
std::atomic<std::int64_t> window_end_us{INT64_MAX};
bool want_latency = false;

std::vector<std::int32_t> samples;  // reserved once; slots taken with next_sample
std::atomic<std::size_t> next_sample{0};
std::atomic<long> samples_dropped{0};
std::atomic<long> bad_stamps{0};

std::mutex failures_mutex;
std::vector<std::string> failures;

void fail(const std::string &what) {
  std::lock_guard<std::mutex> lock(failures_mutex);
  if (failures.size() < 100) failures.push_back(what);
}

std::int64_t now_us() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

bool digits(const char *s, int n, int &out) {
  out = 0;
  for (int i = 0; i < n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

// Epoch seconds of ActionDay "YYYYMMDD" and UpdateTime "HH:MM:SS" in China time; false if malformed.
bool stamp_seconds(const char *day, const char *time, std::int64_t &out) {
  int y, mo, d, h, mi, s;
  if (!digits(day, 4, y) || !digits(day + 4, 2, mo) || !digits(day + 6, 2, d) || !digits(time, 2, h) ||
      time[2] != ':' || !digits(time + 3, 2, mi) || time[5] != ':' || !digits(time + 6, 2, s) || mo < 1 || mo > 12 ||
      d < 1 || d > 31)
    return false;
  out = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * 86400 + h * 3600 + mi * 60 + s -
        kChinaOffset;
  return true;
}

class Client final : public CThostFtdcMdSpi {
 public:
  Client(int number, const std::string &front, std::vector<std::string> *ids)
      : number_(number), front_(front), ids_(ids) {
    std::memset(last_day_, 0, sizeof last_day_);
    std::memset(last_time_, 0, sizeof last_time_);
  }

  void start() {
    api_ = CThostFtdcMdApi::CreateFtdcMdApi("");
    api_->RegisterSpi(this);
    api_->RegisterFront(&front_[0]);
    api_->Init();
  }

  void OnFrontConnected() override {
    CThostFtdcReqUserLoginField req;
    std::memset(&req, 0, sizeof req);
    const int rc = api_->ReqUserLogin(&req, 1);
    if (rc != 0) fail("client " + std::to_string(number_) + ": ReqUserLogin returned " + std::to_string(rc));
  }

  void OnFrontDisconnected(int nReason) override {
    fail("client " + std::to_string(number_) + ": OnFrontDisconnected " + std::to_string(nReason));
  }

  void OnRspUserLogin(CThostFtdcRspUserLoginField *, CThostFtdcRspInfoField *info, int, bool) override {
    if (info != nullptr && info->ErrorID != 0) {
      fail("client " + std::to_string(number_) + ": login refused, ErrorID " + std::to_string(info->ErrorID));
      return;
    }
    std::vector<char *> ids;
    ids.reserve(ids_->size());
    for (auto &id : *ids_) ids.push_back(&id[0]);
    const int rc = api_->SubscribeMarketData(ids.data(), static_cast<int>(ids.size()));
    if (rc != 0) fail("client " + std::to_string(number_) + ": SubscribeMarketData returned " + std::to_string(rc));
  }

  void OnRspError(CThostFtdcRspInfoField *info, int, bool) override {
    fail("client " + std::to_string(number_) + ": OnRspError " + std::to_string(info ? info->ErrorID : -1));
  }

  void OnRtnDepthMarketData(CThostFtdcDepthMarketDataField *tick) override {
    const std::int64_t now = now_us();
    seen_.store(true, std::memory_order_relaxed);
    // serve_common.WindowCounter.add
    if (now < window_start_us.load(std::memory_order_relaxed)) return;
    if (now >= window_end_us.load(std::memory_order_relaxed)) {
      if (last_us_.load(std::memory_order_relaxed) < 0) last_us_.store(now, std::memory_order_release);
      return;
    }
    if (first_us_ < 0) first_us_ = now;
    count_.store(count_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    if (want_latency) record(tick, now);
  }

  bool seen() const { return seen_.load(std::memory_order_relaxed); }
  bool closed() const { return last_us_.load(std::memory_order_acquire) >= 0; }
  long count() const { return count_.load(std::memory_order_relaxed); }

  // serve_common.WindowCounter.rate (read after the window has closed)
  double rate() const {
    if (first_us_ < 0) return 0.0;
    const std::int64_t last = closed() ? last_us_.load(std::memory_order_acquire) : window_end_us.load();
    return last > first_us_ ? static_cast<double>(count()) / ((last - first_us_) / 1e6) : 0.0;
  }

 private:
  // serve_common.StampClock.epoch: the second's base cached per (ActionDay, UpdateTime)
  void record(const CThostFtdcDepthMarketDataField *tick, std::int64_t now) {
    if (std::memcmp(last_day_, tick->ActionDay, 8) != 0 || std::memcmp(last_time_, tick->UpdateTime, 8) != 0) {
      std::int64_t seconds;
      if (!stamp_seconds(tick->ActionDay, tick->UpdateTime, seconds)) {
        bad_stamps.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      std::memcpy(last_day_, tick->ActionDay, 8);
      std::memcpy(last_time_, tick->UpdateTime, 8);
      base_us_ = seconds * 1000000;
    }
    const std::int64_t sent = base_us_ + static_cast<std::int64_t>(tick->UpdateMillisec) * 1000;
    const std::size_t slot = next_sample.fetch_add(1, std::memory_order_relaxed);
    if (slot < samples.size()) {
      samples[slot] = static_cast<std::int32_t>(now - sent);
    } else {
      samples_dropped.fetch_add(1, std::memory_order_relaxed);
    }
  }

  int number_;
  std::string front_;
  std::vector<std::string> *ids_;
  CThostFtdcMdApi *api_ = nullptr;
  std::atomic<bool> seen_{false};
  std::int64_t first_us_ = -1;  // written and read by the callback thread; read by main after the window
  std::atomic<std::int64_t> last_us_{-1};
  std::atomic<long> count_{0};
  char last_day_[8];
  char last_time_[8];
  std::int64_t base_us_ = 0;
};

std::vector<std::string> read_ids(const char *path) {
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "native_md_clients: cannot read the ids file %s: %s\n", path, std::strerror(errno));
    std::exit(2);
  }
  std::stringstream text;
  text << in.rdbuf();
  const std::string all = text.str();
  std::vector<std::string> ids;
  for (std::size_t at = all.find('"'); at != std::string::npos; at = all.find('"', at)) {
    const std::size_t end = all.find('"', at + 1);
    if (end == std::string::npos) break;
    ids.push_back(all.substr(at + 1, end - at - 1));
    at = end + 1;
  }
  if (ids.empty()) {
    std::fprintf(stderr, "native_md_clients: %s holds no instrument ids (expected a JSON list of strings)\n", path);
    std::exit(2);
  }
  return ids;
}

std::string json_string(const std::string &s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out + "\"";
}

double seconds_now() { return now_us() / 1e6; }

void sleep_until_us(std::int64_t t) {
  const std::int64_t wait = t - now_us();
  if (wait > 0) std::this_thread::sleep_for(std::chrono::microseconds(wait));
}

}  // namespace

int main(int argc, char **argv) {
  if (argc < 5 || argc > 6) {
    std::fprintf(stderr, "usage: %s FRONT COUNT IDS_FILE LATENCY(0|1) [MAX_SAMPLES]\n", argv[0]);
    return 64;
  }
  const std::string front = argv[1];
  const int count = std::atoi(argv[2]);
  if (count < 1 || count > 10000) {
    std::fprintf(stderr, "native_md_clients: COUNT %s: expected 1 to 10000 clients\n", argv[2]);
    return 64;
  }
  std::vector<std::string> ids = read_ids(argv[3]);
  if (std::strcmp(argv[4], "0") != 0 && std::strcmp(argv[4], "1") != 0) {
    std::fprintf(stderr, "native_md_clients: LATENCY %s: expected 0 or 1\n", argv[4]);
    return 64;
  }
  want_latency = argv[4][0] == '1';
  const long max_samples = argc == 6 ? std::atol(argv[5]) : 2000000;
  if (max_samples < 0 || max_samples > 200000000) {
    std::fprintf(stderr, "native_md_clients: MAX_SAMPLES %s: expected 0 to 200000000\n", argv[5]);
    return 64;
  }
  if (want_latency) samples.assign(static_cast<std::size_t>(max_samples), 0);  // touched now, not per tick

  std::vector<std::unique_ptr<Client>> clients;
  for (int k = 0; k < count; ++k) clients.push_back(std::make_unique<Client>(k, front, &ids));
  for (auto &client : clients) client->start();

  const double ready_deadline = seconds_now() + kReadyTimeout;
  for (;;) {
    int waiting = 0;
    for (auto &client : clients) waiting += client->seen() ? 0 : 1;
    if (waiting == 0) break;
    if (seconds_now() > ready_deadline) {
      std::lock_guard<std::mutex> lock(failures_mutex);
      std::fprintf(stderr, "native_md_clients: %d clients saw no tick within %g s on %s%s%s\n", waiting, kReadyTimeout,
                   front.c_str(), failures.empty() ? "" : "; first failure: ",
                   failures.empty() ? "" : failures[0].c_str());
      std::fflush(stderr);
      std::_Exit(3);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::printf("ready\n");
  std::fflush(stdout);

  char line[256];
  double start = 0, end = 0;
  char word[8] = {0};
  if (std::fgets(line, sizeof line, stdin) == nullptr || std::sscanf(line, "%7s %lf %lf", word, &start, &end) != 3 ||
      std::strcmp(word, "go") != 0) {
    std::fprintf(stderr, "native_md_clients: expected 'go START END', got %s\n", line);
    std::_Exit(2);
  }
  const auto start_us = static_cast<std::int64_t>(start * 1e6);
  const auto end_us = static_cast<std::int64_t>(end * 1e6);
  window_end_us.store(end_us);
  window_start_us.store(start_us);
  sleep_until_us(end_us);
  const std::int64_t grace_end = now_us() + static_cast<std::int64_t>(kCloseGrace * 1e6);
  for (;;) {
    bool all_closed = true;
    for (auto &client : clients) all_closed = all_closed && client->closed();
    if (all_closed || now_us() >= grace_end) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }

  // One line; the process then ends without Release (the API threads need no orderly end here).
  std::string out = "{\"count\": ";
  long total = 0;
  for (auto &client : clients) total += client->count();
  out += std::to_string(total) + ", \"seconds\": " + std::to_string(end - start) + ", \"rates\": [";
  for (std::size_t k = 0; k < clients.size(); ++k) {
    char number[64];
    std::snprintf(number, sizeof number, "%s%.3f", k ? ", " : "", clients[k]->rate());
    out += number;
  }
  out += "], \"failed\": [";
  {
    std::lock_guard<std::mutex> lock(failures_mutex);
    for (std::size_t k = 0; k < failures.size(); ++k) out += (k ? ", " : "") + json_string(failures[k]);
  }
  out += "], \"latencies_us\": [";
  const std::size_t taken = std::min(next_sample.load(), samples.size());
  out.reserve(out.size() + taken * 8 + 128);
  for (std::size_t k = 0; k < taken; ++k) {
    if (k) out += ',';
    out += std::to_string(samples[k]);
  }
  out += "], \"samples_dropped\": " + std::to_string(samples_dropped.load()) +
         ", \"bad_stamps\": " + std::to_string(bad_stamps.load()) + ", \"kind\": \"native\"}\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
  std::_Exit(0);
}
