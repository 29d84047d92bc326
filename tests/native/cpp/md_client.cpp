// A plain CTP md program, compiled against the generated headers and linked to ctpshim's
// libthostmduserapi_se.so: logs in on OnFrontConnected, subscribes on OnRspUserLogin, prints one
// line per callback, and ends after TICKS ticks (with --reconnect: TICKS ticks after a second
// OnFrontConnected), or exits 2 after TIMEOUT seconds.  With MD_CLIENT_NO_RELEASE=1 set, main
// returns without Release() (the API's threads still running, ticks still coming).  With
// MD_CLIENT_BLOCK_MS=N the first tick's callback sleeps N ms, then calls ReqUserLogout from inside
// the callback; with MD_CLIENT_QUIET=1 ticks are counted, not printed; with MD_CLIENT_THROW set,
// OnRspSubMarketData throws.
//
//   md_client FRONT TICKS TIMEOUT [--reconnect] INSTRUMENT...
#include <atomic>
#include <chrono>
#include <cstdarg>
#include <cstdint>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "ThostFtdcMdApi.h"

namespace {

std::mutex mutex;
std::condition_variable changed;
int connects = 0;
int ticks_since_connect = 0;
std::thread::id main_thread;
std::atomic<long> total_ticks{0};
bool quiet = false;

void say(const char *format, ...) __attribute__((format(printf, 1, 2)));
void say(const char *format, ...) {
  va_list args;
  va_start(args, format);
  std::vprintf(format, args);
  va_end(args);
  std::printf("%s\n", std::this_thread::get_id() == main_thread ? " [main thread]" : "");
  std::fflush(stdout);
}

class Spi final : public CThostFtdcMdSpi {
 public:
  Spi(CThostFtdcMdApi *api, std::vector<std::string> ids) : api_(api), ids_(std::move(ids)) {}

  void OnFrontConnected() override {
    {
      std::lock_guard<std::mutex> lock(mutex);
      ++connects;
      ticks_since_connect = 0;
    }
    say("connected %d", connects);
    changed.notify_all();
    CThostFtdcReqUserLoginField req;
    std::memset(&req, 0, sizeof req);
    std::strcpy(req.BrokerID, "9999");
    std::strcpy(req.UserID, "000001");
    say("login-rc %d", api_->ReqUserLogin(&req, connects));
  }
  void OnHeartBeatWarning(int nTimeLapse) override { say("heartbeat-warning %d", nTimeLapse); }
  void OnFrontDisconnected(int nReason) override {
    say("disconnected %d", nReason);
    changed.notify_all();
  }
  void OnRspUserLogin(CThostFtdcRspUserLoginField *login, CThostFtdcRspInfoField *info, int nRequestID,
                      bool bIsLast) override {
    say("login %d %s %s %d %d %d", info ? info->ErrorID : -999, login ? login->TradingDay : "-",
        api_->GetTradingDay(), login ? login->FrontID : -1, nRequestID, bIsLast ? 1 : 0);
    std::vector<char *> ids;
    for (auto &id : ids_) ids.push_back(&id[0]);
    say("subscribe-rc %d", api_->SubscribeMarketData(ids.data(), static_cast<int>(ids.size())));
  }
  void OnRspSubMarketData(CThostFtdcSpecificInstrumentField *instrument, CThostFtdcRspInfoField *info, int,
                          bool bIsLast) override {
    say("sub %s %d %d", instrument ? instrument->InstrumentID : "-", info ? info->ErrorID : -999, bIsLast ? 1 : 0);
    if (std::getenv("MD_CLIENT_THROW") != nullptr) throw std::runtime_error("thrown by OnRspSubMarketData");
  }
  void OnRtnDepthMarketData(CThostFtdcDepthMarketDataField *t) override {
    if (total_ticks.fetch_add(1) == 0 && std::getenv("MD_CLIENT_BLOCK_MS") != nullptr) {
      std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(std::getenv("MD_CLIENT_BLOCK_MS"))));
      CThostFtdcUserLogoutField logout;
      std::memset(&logout, 0, sizeof logout);
      std::strcpy(logout.BrokerID, "9999");
      say("logout-rc %d", api_->ReqUserLogout(&logout, 99));
    }
    if (quiet) {
      std::lock_guard<std::mutex> lock(mutex);
      ++ticks_since_connect;
      if (ticks_since_connect % 1000 == 0) changed.notify_all();
      return;
    }
    say("tick %s %s %.4f %d %s %d %d", t->InstrumentID, t->TradingDay, t->LastPrice, t->Volume, t->UpdateTime,
        t->UpdateMillisec, reinterpret_cast<std::uintptr_t>(t) % alignof(CThostFtdcDepthMarketDataField) == 0);
    {
      std::lock_guard<std::mutex> lock(mutex);
      ++ticks_since_connect;
    }
    changed.notify_all();
  }

 private:
  CThostFtdcMdApi *api_;
  std::vector<std::string> ids_;
};

}  // namespace

int main(int argc, char **argv) {
  main_thread = std::this_thread::get_id();
  quiet = std::getenv("MD_CLIENT_QUIET") != nullptr && std::strcmp(std::getenv("MD_CLIENT_QUIET"), "1") == 0;
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s FRONT TICKS TIMEOUT [--reconnect] INSTRUMENT...\n", argv[0]);
    return 64;
  }
  const int wanted = std::atoi(argv[2]);
  const int timeout = std::atoi(argv[3]);
  int first_id = 4;
  bool reconnect = false;
  if (std::strcmp(argv[4], "--reconnect") == 0) {
    reconnect = true;
    first_id = 5;
  }
  std::vector<std::string> ids(argv + first_id, argv + argc);
  say("version %s", CThostFtdcMdApi::GetApiVersion());
  CThostFtdcMdApi *api = CThostFtdcMdApi::CreateFtdcMdApi("flow/");
  say("trading-day-before-login %s", api->GetTradingDay());
  Spi spi(api, ids);
  api->RegisterSpi(&spi);
  std::string front = argv[1];
  api->RegisterFront(&front[0]);
  api->Init();
  bool done;
  {
    std::unique_lock<std::mutex> lock(mutex);
    done = changed.wait_for(lock, std::chrono::seconds(timeout), [&] {
      return connects >= (reconnect ? 2 : 1) && ticks_since_connect >= wanted;
    });
  }
  say(done ? "done" : "timeout");
  say("ticks %ld", total_ticks.load());
  const char *no_release = std::getenv("MD_CLIENT_NO_RELEASE");
  if (no_release != nullptr && std::strcmp(no_release, "1") == 0) {
    say("exit-without-release");
    return done ? 0 : 2;
  }
  api->Release();
  say("released");
  return done ? 0 : 2;
}
