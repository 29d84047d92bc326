// libthosttraderapi_se.so: CThostFtdcTraderApi over ctpshim serve's binary protocol (trading on
// the server's simulated counter).
#include <atomic>
#include <cstring>
#include <string>

#include "ThostFtdcTraderApi.h"
#include "callback.h"
#include "ctpshim_dispatch.h"
#include "ctpshim_layout.h"
#include "session.h"
#include "wire.h"

namespace ctpshim {
namespace {

class TraderApi final : public CThostFtdcTraderApi, public SessionOwner {
 public:
  TraderApi() : session_("td", this) { std::memcpy(trading_day_, "19800100", 9); }

  void Release() override {
    spi_.store(nullptr, std::memory_order_release);
    session_.release([this] { delete this; });
  }
  void Init() override { session_.start(); }
  int Join() override { return session_.join(); }
  const char *GetTradingDay() override { return trading_day_; }
  void GetFrontInfo(CThostFtdcFrontInfoField *pFrontInfo) override {
    if (pFrontInfo == nullptr) return;
    std::memset(pFrontInfo, 0, sizeof *pFrontInfo);
    std::strncpy(pFrontInfo->FrontAddr, first_front_.c_str(), sizeof pFrontInfo->FrontAddr - 1);
  }
  void RegisterFront(char *pszFrontAddress) override {
    if (pszFrontAddress != nullptr && first_front_.empty()) first_front_ = pszFrontAddress;
    session_.register_front(pszFrontAddress);
  }
  void RegisterNameServer(char *pszNsAddress) override { RegisterFront(pszNsAddress); }
  void RegisterFensUserInfo(CThostFtdcFensUserInfoField * /*pFensUserInfo*/) override {}
  void RegisterSpi(CThostFtdcTraderSpi *pSpi) override { spi_.store(pSpi, std::memory_order_release); }
  void SubscribePrivateTopic(THOST_TE_RESUME_TYPE nResumeType) override {
    session_.set_resume(true, static_cast<int>(nResumeType));
  }
  void SubscribePublicTopic(THOST_TE_RESUME_TYPE nResumeType) override {
    session_.set_resume(false, static_cast<int>(nResumeType));
  }

#include "ctpshim_trader_methods.inc"

  int forward(CallWriter &call, int request_id) { return session_.call(call, request_id); }

  void deliver(Event &event) override;

 private:
  ~TraderApi() = default;

  Session session_;
  std::atomic<CThostFtdcTraderSpi *> spi_{nullptr};
  char trading_day_[9];
  std::string first_front_;
};

void TraderApi::deliver(Event &event) {
  CThostFtdcTraderSpi *spi = spi_.load(std::memory_order_acquire);
  switch (event.kind) {
    case Event::kConnected:
      if (spi != nullptr) spi->OnFrontConnected();
      break;
    case Event::kDisconnected:
      if (spi != nullptr) spi->OnFrontDisconnected(event.value);
      break;
    case Event::kHeartBeatWarning:
      if (spi != nullptr) spi->OnHeartBeatWarning(event.value);
      break;
    case Event::kCallback:
      deliver_callback(session_, event, spi, dispatch_trader_callback, "trader", trading_day_);
      break;
    case Event::kTicks:  // not sent to a td connection
      break;
  }
}

}  // namespace
}  // namespace ctpshim

CThostFtdcTraderApi *CThostFtdcTraderApi::CreateFtdcTraderApi(const char * /*pszFlowPath*/,
                                                              bool /*bIsProductionMode*/) {
  return new ctpshim::TraderApi();
}

const char *CThostFtdcTraderApi::GetApiVersion() { return CTPSHIM_API_VERSION; }
