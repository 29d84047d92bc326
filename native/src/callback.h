// The CALLBACK events of both APIs, on the callback thread: the login reply's trading day is kept
// for GetTradingDay, then the generated dispatch calls the Spi; a callback that cannot be
// dispatched is logged once and dropped (the connection stays).
#ifndef CTPSHIM_NATIVE_CALLBACK_H
#define CTPSHIM_NATIVE_CALLBACK_H

#include <cstring>
#include <string>
#include <string_view>

#include "ThostFtdcUserApiStruct.h"
#include "session.h"
#include "wire.h"

namespace ctpshim {

template <class Spi>
using Dispatch = bool (*)(Spi *spi, std::string_view name, CallbackReader &in, int request_id, bool is_last);

template <class Spi>
void deliver_callback(Session &session, const Event &event, Spi *spi, Dispatch<Spi> dispatch, const char *api,
                      char (&trading_day)[9]) {
  const auto *data = reinterpret_cast<const unsigned char *>(event.payload.data());
  std::string_view name;
  const unsigned char *rest = nullptr;
  std::size_t rest_size = 0;
  if (!split_callback(data, event.payload.size(), name, rest, rest_size)) return;
  if (name == "OnRspUserLogin" && rest_size >= 1 + sizeof(CThostFtdcRspUserLoginField) && rest[0] == 1) {
    CThostFtdcRspUserLoginField login;
    std::memcpy(&login, rest + 1, sizeof login);
    if (login.TradingDay[0] != '\0') {
      std::memcpy(trading_day, login.TradingDay, sizeof trading_day);
      trading_day[8] = '\0';
    }
  }
  CallbackReader in(rest, rest_size);
  if (!dispatch(spi, name, in, event.request_id, (event.flags & kFlagLast) != 0)) {
    session.log_once("CALLBACK " + std::string(name) +
                     (in.failed() ? ": its payload does not decode; dropped"
                                  : std::string(": no such ") + api + " callback; dropped"));
  }
}

}  // namespace ctpshim

#endif
