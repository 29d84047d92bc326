// Unit checks of the native libraries' codec (native/src/wire, json, session's front parsing and
// HELLO) against the protocol's golden vectors (tests/wire/vectors).  Prints one line per failed
// check and "checks N failed F"; exits 1 when any failed.
//
//   wire_test VECTORS_DIR
#include <cctype>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "ThostFtdcMdApi.h"
#include "ctpshim_dispatch.h"
#include "json.h"
#include "session.h"
#include "wire.h"

using namespace ctpshim;

namespace {

int checks = 0;
int failed = 0;
std::string dir;

#define CHECK(cond)                                                       \
  do {                                                                    \
    ++checks;                                                             \
    if (!(cond)) {                                                        \
      ++failed;                                                           \
      std::printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);         \
    }                                                                     \
  } while (0)

std::string vector_bytes(const char *name) {
  std::ifstream in(dir + "/" + name + ".hex");
  std::stringstream text;
  text << in.rdbuf();
  std::string out;
  std::string digits;
  for (char c : text.str()) {
    if (std::isxdigit(static_cast<unsigned char>(c))) digits.push_back(c);
    if (digits.size() == 2) {
      out.push_back(static_cast<char>(std::stoi(digits, nullptr, 16)));
      digits.clear();
    }
  }
  if (out.empty()) std::printf("FAIL: vector %s is missing or empty\n", name), ++failed;
  return out;
}

struct Parsed {
  FrameHeader header;
  std::string payload;
};

// Every frame of `bytes`, fed `step` bytes at a time.
std::vector<Parsed> parse_all(const std::string &bytes, std::size_t step, std::string *error = nullptr) {
  FrameReader reader;
  std::vector<Parsed> out;
  for (std::size_t i = 0; i < bytes.size(); i += step) {
    reader.feed(bytes.data() + i, std::min(step, bytes.size() - i));
    FrameView view;
    FrameReader::Status status;
    while ((status = reader.next(view)) == FrameReader::kFrame) {
      out.push_back({view.header, std::string(reinterpret_cast<const char *>(view.payload), view.size)});
    }
    if (status == FrameReader::kFailed) {
      if (error) *error = reader.error();
      return out;
    }
  }
  return out;
}

std::string header_bytes(std::uint32_t length, std::uint16_t type, std::uint8_t codec, std::uint8_t flags) {
  unsigned char h[16];
  FrameHeader header;
  header.length = length;
  header.type = type;
  header.codec = codec;
  header.flags = flags;
  header.seq = 1;
  encode_header(h, header);
  return std::string(reinterpret_cast<char *>(h), 16);
}

class RecordingSpi : public CThostFtdcMdSpi {
 public:
  std::string last;
  int request_id = 0;
  bool is_last = false;
  CThostFtdcRspInfoField info{};
  CThostFtdcRspUserLoginField login{};
  bool info_null = false;
  void OnRspUserLogin(CThostFtdcRspUserLoginField *l, CThostFtdcRspInfoField *i, int id, bool last_) override {
    last = "OnRspUserLogin";
    if (l) login = *l;
    if (i) info = *i;
    request_id = id;
    is_last = last_;
  }
  void OnRspSubMarketData(CThostFtdcSpecificInstrumentField *s, CThostFtdcRspInfoField *i, int id,
                          bool last_) override {
    last = std::string("OnRspSubMarketData ") + (s ? s->InstrumentID : "-");
    if (i) info = *i;
    request_id = id;
    is_last = last_;
  }
  void OnFrontDisconnected(int reason) override { last = "OnFrontDisconnected " + std::to_string(reason); }
};

bool dispatch(const std::string &payload, RecordingSpi &spi, int request_id, bool is_last) {
  std::string_view name;
  const unsigned char *rest;
  std::size_t rest_size;
  if (!split_callback(reinterpret_cast<const unsigned char *>(payload.data()), payload.size(), name, rest,
                      rest_size)) {
    return false;
  }
  CallbackReader in(rest, rest_size);
  return dispatch_md_callback(&spi, name, in, request_id, is_last);
}

void client_frames() {
  // HELLO, byte for byte (01).
  Front front = parse_front("tcp://127.0.0.1:7780?token=s3cret-alice");
  CHECK(front.valid && front.token == "s3cret-alice" && front.source.empty());
  CHECK(encode_frame(kHello, hello_payload("md", front, "example 1.0", -1, -1), 1) == vector_bytes("01_hello_md"));
  // CALL ReqUserLogin (03).
  CThostFtdcReqUserLoginField req;
  std::memset(&req, 0, sizeof req);
  std::strcpy(req.BrokerID, "9999");
  std::strcpy(req.UserID, "000001");
  CallWriter login("ReqUserLogin");
  login.field(&req, sizeof req);
  CHECK(login.frame(2, 1) == vector_bytes("03_call_req_user_login"));
  // CALL SubscribeMarketData / UnSubscribeMarketData (06, 12).
  char rb[] = "rb2701";
  char *ids[] = {rb};
  CallWriter sub("SubscribeMarketData");
  sub.ids(ids, 1);
  CHECK(sub.frame(3, 0) == vector_bytes("06_call_subscribe"));
  CallWriter unsub("UnSubscribeMarketData");
  unsub.ids(ids, 1);
  CHECK(unsub.frame(5, 0) == vector_bytes("12_call_unsubscribe"));
  // NULL, empty and over-long IDs are left out; the count says what was sent.
  std::string long_id(81, 'x');
  char empty[] = "";
  char *mixed[] = {nullptr, rb, empty, &long_id[0]};
  CallWriter filtered("SubscribeMarketData");
  filtered.ids(mixed, 4);
  const std::string &f = filtered.frame(3, 0);
  CHECK(f == vector_bytes("06_call_subscribe"));
  // HEARTBEAT (11), BYE (15).
  CHECK(encode_frame(kHeartbeat, "", 4) == vector_bytes("11_heartbeat"));
  CHECK(encode_frame(kBye, "{\"reason\":\"done\"}", 6) == vector_bytes("15_bye"));
  // A null struct is presence 0; request_id -1 is ff ff ff ff.
  CallWriter none("ReqUserLogout");
  none.field(nullptr, 27);
  const std::string &n = none.frame(9, -1);
  CHECK(n.size() == 16 + 1 + 13 + 1 && n.back() == '\0');
  CHECK(get_u32(reinterpret_cast<const unsigned char *>(n.data()) + 12) == 0xffffffffu);
  CHECK(get_u32(reinterpret_cast<const unsigned char *>(n.data())) == n.size() - 4);
}

void server_frames() {
  const char *names[] = {"02_hello_ack", "04_result_req_user_login", "05_callback_on_rsp_user_login",
                         "07_result_subscribe", "08_callback_on_rsp_sub_market_data", "09_tick", "10_tick_batch",
                         "13_result_unsubscribe", "14_callback_on_rsp_unsub_market_data",
                         "20_result_too_many_per_second", "21_callback_on_rsp_sub_over_limit",
                         "22_callback_on_front_disconnected", "23_error_bad_frame", "24_error_bad_token"};
  const std::uint16_t types[] = {kHelloAck, kResult,   kCallback, kResult, kCallback, kTick,     kTickBatch,
                                 kResult,   kCallback, kResult,   kCallback, kCallback, kError, kError};
  std::string stream;
  for (const char *name : names) stream += vector_bytes(name);
  for (std::size_t step : {std::size_t(1), std::size_t(7), std::size_t(4096), stream.size()}) {
    const auto frames = parse_all(stream, step);
    CHECK(frames.size() == sizeof names / sizeof names[0]);
    for (std::size_t i = 0; i < frames.size() && i < sizeof types / sizeof types[0]; ++i) {
      CHECK(frames[i].header.type == types[i]);
    }
  }
  const auto frames = parse_all(stream, 4096);
  if (frames.size() != sizeof names / sizeof names[0]) return;

  json::Flat ack;
  std::string why;
  CHECK(json::parse_flat(frames[0].payload, ack, why));
  CHECK(ack.number_or("heartbeat", 0) == 5.0);
  CHECK(ack.string_or("layout", "") == "ctp6.7.11-041bb06c3a19c5e6");
  CHECK(ack.string_or("trading_day", "").size() == 8);

  const auto &result = frames[1];  // RESULT 0 for seq 2, request_id 1
  CHECK(result.payload.size() == 8 && get_u32(reinterpret_cast<const unsigned char *>(result.payload.data())) == 0);
  CHECK(get_u32(reinterpret_cast<const unsigned char *>(result.payload.data()) + 4) == 2);
  CHECK(result.header.request_id == 1);
  const auto &minus3 = frames[9];
  CHECK(static_cast<std::int32_t>(get_u32(reinterpret_cast<const unsigned char *>(minus3.payload.data()))) == -3);

  RecordingSpi spi;
  CHECK(dispatch(frames[2].payload, spi, frames[2].header.request_id, frames[2].header.flags & kFlagLast));
  CHECK(spi.last == "OnRspUserLogin" && spi.request_id == 1 && spi.is_last);
  CHECK(spi.info.ErrorID == 0 && std::strcmp(spi.info.ErrorMsg, "CTP:\xd5\xfd\xc8\xb7") == 0);  // GB18030 bytes
  CHECK(std::strcmp(spi.login.BrokerID, "9999") == 0);
  CHECK(dispatch(frames[4].payload, spi, 0, true) && spi.last == "OnRspSubMarketData rb2701");
  CHECK(dispatch(frames[10].payload, spi, 0, true) && spi.info.ErrorID == 6000);
  CHECK(dispatch(frames[11].payload, spi, 0, false) && spi.last == "OnFrontDisconnected 4097");

  CHECK(frames[5].payload == vector_bytes("30_tick_struct"));
  CThostFtdcDepthMarketDataField tick;
  std::memcpy(&tick, frames[5].payload.data(), sizeof tick);
  CHECK(std::strcmp(tick.InstrumentID, "rb2701") == 0 && tick.LastPrice == 3100.0 && tick.Volume == 1234);
  CHECK(tick.UpdateMillisec == 500 && std::strcmp(tick.UpdateTime, "09:35:01") == 0);
  CHECK(frames[6].payload.size() == 2 + 2 * kTickSize && get_u16(reinterpret_cast<const unsigned char *>(
                                                             frames[6].payload.data())) == 2);

  json::Flat err;
  CHECK(json::parse_flat(frames[12].payload, err, why));
  CHECK(err.number_or("ErrorID", 0) == -400 && err.number_or("Reason", 0) == 8195);
  CHECK(err.string_or("ErrorMsg", "").find("unknown frame type 77") == 0);
  CHECK(json::parse_flat(frames[13].payload, err, why) && err.number_or("ErrorID", 0) == -401);
}

void malformed() {
  std::string error;
  parse_all(header_bytes(11, kHeartbeat, 0, 0), 16, &error);
  CHECK(error.find("frame length 11") == 0);
  error.clear();
  parse_all(header_bytes(kMaxFrame + 1, kHeartbeat, 0, 0).substr(0, 4), 4, &error);  // refused on 4 bytes
  CHECK(error.find("frame length 16777217") == 0);
  error.clear();
  parse_all(header_bytes(12, 77, 0, 0), 16, &error);
  CHECK(error.find("unknown frame type 77") == 0);
  error.clear();
  parse_all(header_bytes(12, kTick, 2, 0), 16, &error);
  CHECK(error.find("TICK frame with codec 2: expected 0") == 0);
  error.clear();
  parse_all(vector_bytes("11_heartbeat") + header_bytes(12, kHeartbeat, 0, kFlagCompressed), 16, &error);
  CHECK(error.find("compression flag") != std::string::npos && error.find("(frame at byte 16)") != std::string::npos);

  const unsigned char bad_presence[] = {2};
  CallbackReader a(bad_presence, 1);
  CThostFtdcRspInfoField info;
  CHECK(a.field(info) == nullptr && a.failed());
  const unsigned char truncated[] = {1, 0, 0};
  CallbackReader b(truncated, sizeof truncated);
  CHECK(b.field(info) == nullptr && b.failed());
  const unsigned char extra[] = {0, 9};
  CallbackReader c(extra, sizeof extra);
  CHECK(c.field(info) == nullptr && !c.failed());
  c.finish();
  CHECK(c.failed());
  const unsigned char short_int[] = {1, 2};
  CallbackReader d(short_int, sizeof short_int);
  d.i32();
  CHECK(d.failed());
  RecordingSpi spi;
  CHECK(!dispatch(std::string("\x0bOnNoSuchOne", 12), spi, 0, true));
  CHECK(!dispatch(std::string("\x12OnRspSubMarketData\x01", 20), spi, 0, true));  // truncated struct
}

void fronts() {
  Front f = parse_front("ctpshim://localhost:7780/replay-1/?token=a%20b&x=1");
  CHECK(f.valid && f.host == "localhost" && f.port == "7780" && f.source == "replay-1" && f.token == "a b");
  f = parse_front("TCP://[::1]:9");
  CHECK(f.valid && f.host == "::1" && f.port == "9");
  f = parse_front("tcp://180.168.146.187:10131");
  CHECK(f.valid && f.source.empty() && f.token.empty());
  f = parse_front("udp://1.2.3.4:5");
  CHECK(!f.valid && f.error.find("udp://1.2.3.4:5") != std::string::npos &&
        f.error.find("tcp://HOST:PORT") != std::string::npos);
  f = parse_front("tcp://host");
  CHECK(!f.valid && f.error.find("no port") != std::string::npos);
  f = parse_front("tcp://host:99999");
  CHECK(!f.valid && f.error.find("99999") != std::string::npos);
  f = parse_front("tcp://:80");
  CHECK(!f.valid && f.error.find("no host") != std::string::npos);

  Front td = parse_front("tcp://h:1/sim");
  const std::string hello = hello_payload("td", td, "x \"q\"", 0, 3);
  json::Flat parsed;
  std::string why;
  CHECK(json::parse_flat(hello, parsed, why));
  CHECK(parsed.string_or("api", "") == "td" && parsed.string_or("source", "") == "sim");
  CHECK(parsed.string_or("client", "") == "x \"q\"");
  CHECK(parsed.number_or("private_resume", -1) == 0 && parsed.number_or("public_resume", -1) == 3);
  CHECK(!json::parse_flat("[1]", parsed, why) && !why.empty());
  CHECK(!json::parse_flat("{\"a\":\"x", parsed, why));
  CHECK(json::parse_flat("{\"m\":\"\\u87ba\\ud83d\\ude00\",\"n\":{\"a\":[1,{\"b\":\"}\"}]},\"k\":true}", parsed, why));
  CHECK(parsed.string_or("m", "") == "\xe8\x9e\xba\xf0\x9f\x98\x80" && parsed.numbers["k"] == "true");
}

}  // namespace

int main(int argc, char **argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s VECTORS_DIR\n", argv[0]);
    return 64;
  }
  dir = argv[1];
  client_frames();
  server_frames();
  malformed();
  fronts();
  std::printf("checks %d failed %d\n", checks, failed);
  return failed == 0 ? 0 : 1;
}
