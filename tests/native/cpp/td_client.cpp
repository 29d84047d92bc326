// A plain CTP trader program, compiled against the generated headers and linked to ctpshim's
// libthosttraderapi_se.so: authenticate, log in, confirm the settlement, query an instrument and
// its quote, place a limit buy at the lower limit (it rests), cancel it; one line per callback.
// Exits 0 once the order is cancelled, 2 after TIMEOUT seconds.
//
//   td_client FRONT INSTRUMENT TIMEOUT
#include <chrono>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

#include "ThostFtdcTraderApi.h"

namespace {

std::mutex mutex;
std::condition_variable changed;
bool finished = false;
std::thread::id main_thread;

void say(const char *format, ...) __attribute__((format(printf, 1, 2)));
void say(const char *format, ...) {
  va_list args;
  va_start(args, format);
  std::vprintf(format, args);
  va_end(args);
  std::printf("%s\n", std::this_thread::get_id() == main_thread ? " [main thread]" : "");
  std::fflush(stdout);
}

// A query again after CTP's flow control (-2 in flight, -3 per second), as programs must.
template <class F>
int with_retry(F call) {
  int rc = call();
  for (int i = 0; i < 5 && (rc == -2 || rc == -3); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    rc = call();
  }
  return rc;
}

template <std::size_t N>
void set(char (&field)[N], const char *value) {
  std::snprintf(field, N, "%s", value);
}

class Spi final : public CThostFtdcTraderSpi {
 public:
  Spi(CThostFtdcTraderApi *api, std::string instrument) : api_(api), instrument_(std::move(instrument)) {}

  void OnFrontConnected() override {
    say("connected");
    CThostFtdcReqAuthenticateField req{};
    set(req.BrokerID, "9999");
    set(req.UserID, "000001");
    set(req.AppID, "ctpshim_test_1.0");
    set(req.AuthCode, "0000000000000000");
    say("authenticate-rc %d", api_->ReqAuthenticate(&req, ++id_));
  }
  void OnFrontDisconnected(int nReason) override { say("disconnected %d", nReason); }
  void OnRspAuthenticate(CThostFtdcRspAuthenticateField *, CThostFtdcRspInfoField *info, int, bool) override {
    say("authenticated %d", info ? info->ErrorID : 0);
    CThostFtdcReqUserLoginField req{};
    set(req.BrokerID, "9999");
    set(req.UserID, "000001");
    set(req.Password, "secret");
    say("login-rc %d", api_->ReqUserLogin(&req, ++id_));
  }
  void OnRspUserLogin(CThostFtdcRspUserLoginField *login, CThostFtdcRspInfoField *info, int, bool) override {
    say("login %d %s %s %d %d", info ? info->ErrorID : 0, login ? login->TradingDay : "-", api_->GetTradingDay(),
        login ? login->FrontID : 0, login ? login->SessionID : 0);
    CThostFtdcSettlementInfoConfirmField req{};
    set(req.BrokerID, "9999");
    set(req.InvestorID, "000001");
    say("confirm-rc %d", api_->ReqSettlementInfoConfirm(&req, ++id_));
  }
  void OnRspSettlementInfoConfirm(CThostFtdcSettlementInfoConfirmField *, CThostFtdcRspInfoField *info, int,
                                  bool) override {
    say("confirmed %d", info ? info->ErrorID : 0);
    CThostFtdcQryInstrumentField req{};
    set(req.InstrumentID, instrument_.c_str());
    say("qry-instrument-rc %d", with_retry([&] { return api_->ReqQryInstrument(&req, ++id_); }));
  }
  void OnRspQryInstrument(CThostFtdcInstrumentField *instrument, CThostFtdcRspInfoField *, int,
                          bool bIsLast) override {
    if (instrument != nullptr) {
      exchange_ = instrument->ExchangeID;
      say("instrument %s %s %g", instrument->InstrumentID, instrument->ExchangeID, instrument->PriceTick);
    }
    if (!bIsLast) return;
    CThostFtdcQryDepthMarketDataField req{};
    set(req.InstrumentID, instrument_.c_str());
    say("qry-quote-rc %d", with_retry([&] { return api_->ReqQryDepthMarketData(&req, ++id_); }));
  }
  void OnRspQryDepthMarketData(CThostFtdcDepthMarketDataField *quote, CThostFtdcRspInfoField *, int,
                               bool bIsLast) override {
    if (quote != nullptr) {
      lower_ = quote->LowerLimitPrice;
      say("quote %s %g %g", quote->InstrumentID, quote->LowerLimitPrice, quote->UpperLimitPrice);
    }
    if (!bIsLast) return;
    CThostFtdcInputOrderField req{};
    set(req.BrokerID, "9999");
    set(req.InvestorID, "000001");
    set(req.UserID, "000001");
    set(req.InstrumentID, instrument_.c_str());
    set(req.ExchangeID, exchange_.c_str());
    set(req.OrderRef, "1");
    req.Direction = THOST_FTDC_D_Buy;
    req.CombOffsetFlag[0] = THOST_FTDC_OF_Open;
    req.CombHedgeFlag[0] = THOST_FTDC_HF_Speculation;
    req.OrderPriceType = THOST_FTDC_OPT_LimitPrice;
    req.LimitPrice = lower_;
    req.VolumeTotalOriginal = 1;
    req.TimeCondition = THOST_FTDC_TC_GFD;
    req.VolumeCondition = THOST_FTDC_VC_AV;
    req.MinVolume = 1;
    req.ContingentCondition = THOST_FTDC_CC_Immediately;
    req.ForceCloseReason = THOST_FTDC_FCC_NotForceClose;
    say("order-rc %d", api_->ReqOrderInsert(&req, ++id_));
  }
  void OnRspOrderInsert(CThostFtdcInputOrderField *, CThostFtdcRspInfoField *info, int, bool) override {
    say("order-refused %d", info ? info->ErrorID : 0);
    done();
  }
  void OnRtnOrder(CThostFtdcOrderField *order) override {
    say("order %s %c %s", order->OrderRef, order->OrderStatus, order->OrderSysID);
    if (order->OrderStatus == THOST_FTDC_OST_Canceled) {
      done();
    } else if (order->OrderStatus == THOST_FTDC_OST_NoTradeQueueing && !cancelled_ && order->OrderSysID[0] != '\0') {
      cancelled_ = true;
      CThostFtdcInputOrderActionField action{};
      set(action.BrokerID, "9999");
      set(action.InvestorID, "000001");
      set(action.UserID, "000001");
      set(action.InstrumentID, order->InstrumentID);
      set(action.ExchangeID, order->ExchangeID);
      set(action.OrderSysID, order->OrderSysID);
      action.ActionFlag = THOST_FTDC_AF_Delete;
      say("cancel-rc %d", api_->ReqOrderAction(&action, ++id_));
    }
  }

 private:
  void done() {
    std::lock_guard<std::mutex> lock(mutex);
    finished = true;
    changed.notify_all();
  }
  CThostFtdcTraderApi *api_;
  std::string instrument_;
  std::string exchange_;
  double lower_ = 0;
  bool cancelled_ = false;
  int id_ = 0;
};

}  // namespace

int main(int argc, char **argv) {
  main_thread = std::this_thread::get_id();
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s FRONT INSTRUMENT TIMEOUT\n", argv[0]);
    return 64;
  }
  say("version %s", CThostFtdcTraderApi::GetApiVersion());
  CThostFtdcTraderApi *api = CThostFtdcTraderApi::CreateFtdcTraderApi("flow/");
  Spi spi(api, argv[2]);
  api->RegisterSpi(&spi);
  std::string front = argv[1];
  api->RegisterFront(&front[0]);
  api->SubscribePrivateTopic(THOST_TERT_QUICK);
  api->SubscribePublicTopic(THOST_TERT_QUICK);
  api->Init();
  CThostFtdcFrontInfoField info{};
  api->GetFrontInfo(&info);
  say("front-info %s", info.FrontAddr);
  bool done;
  {
    std::unique_lock<std::mutex> lock(mutex);
    done = changed.wait_for(lock, std::chrono::seconds(std::atoi(argv[3])), [] { return finished; });
  }
  say(done ? "done" : "timeout");
  api->Release();
  say("released");
  return done ? 0 : 2;
}
