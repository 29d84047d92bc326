#include "wire.h"

#include <cstdio>

namespace ctpshim {

int codec_of(std::uint16_t type) {
  switch (type) {
    case kHello:
    case kHelloAck:
    case kBye:
    case kError:
      return kCodecJson;
    case kHeartbeat:
    case kCall:
    case kResult:
    case kCallback:
    case kTick:
    case kTickBatch:
      return kCodecBinary;
    default:
      return -1;
  }
}

const char *type_name(std::uint16_t type) {
  switch (type) {
    case kHello: return "HELLO";
    case kHelloAck: return "HELLO_ACK";
    case kHeartbeat: return "HEARTBEAT";
    case kBye: return "BYE";
    case kCall: return "CALL";
    case kResult: return "RESULT";
    case kCallback: return "CALLBACK";
    case kTick: return "TICK";
    case kTickBatch: return "TICK_BATCH";
    case kError: return "ERROR";
    default: return "an unknown type";
  }
}

void encode_header(unsigned char *out, const FrameHeader &h) {
  put_u32(out, h.length);
  put_u16(out + 4, h.type);
  out[6] = h.codec;
  out[7] = h.flags;
  put_u32(out + 8, h.seq);
  put_u32(out + 12, static_cast<std::uint32_t>(h.request_id));
}

std::string encode_frame(std::uint16_t type, std::string_view payload, std::uint32_t seq,
                         std::int32_t request_id, std::uint8_t flags) {
  std::string out(kHeaderSize + payload.size(), '\0');
  FrameHeader h;
  h.length = static_cast<std::uint32_t>(kLengthBase + payload.size());
  h.type = type;
  const int codec = codec_of(type);
  h.codec = static_cast<std::uint8_t>(codec < 0 ? kCodecBinary : codec);
  h.flags = flags;
  h.seq = seq;
  h.request_id = request_id;
  encode_header(reinterpret_cast<unsigned char *>(&out[0]), h);
  if (!payload.empty()) std::memcpy(&out[kHeaderSize], payload.data(), payload.size());
  return out;
}

// -- FrameReader -------------------------------------------------------------------------------

void FrameReader::feed(const void *data, std::size_t size) {
  if (!error_.empty()) return;
  if (start_ > 0) {  // at most one partial frame moves
    stream_offset_ += start_;
    buffer_.erase(0, start_);
    start_ = 0;
  }
  buffer_.append(static_cast<const char *>(data), size);
}

void FrameReader::reset() {
  buffer_.clear();
  start_ = 0;
  stream_offset_ = 0;
  error_.clear();
}

FrameReader::Status FrameReader::fail(std::string message) {
  char where[64];
  std::snprintf(where, sizeof where, " (frame at byte %llu)",
                static_cast<unsigned long long>(stream_offset_ + start_));
  error_ = std::move(message) + where;
  return kFailed;
}

FrameReader::Status FrameReader::next(FrameView &out) {
  if (!error_.empty()) return kFailed;
  const std::size_t have = buffer_.size() - start_;
  if (have < 4) return kNeedMore;
  const auto *p = reinterpret_cast<const unsigned char *>(buffer_.data()) + start_;
  const std::uint32_t length = get_u32(p);
  if (length < kLengthBase || length > max_frame_) {
    return fail("frame length " + std::to_string(length) + ": expected " + std::to_string(kLengthBase) +
                " to " + std::to_string(max_frame_));
  }
  if (have < 4 + static_cast<std::size_t>(length)) return kNeedMore;
  FrameHeader &h = out.header;
  h.length = length;
  h.type = get_u16(p + 4);
  h.codec = p[6];
  h.flags = p[7];
  h.seq = get_u32(p + 8);
  h.request_id = static_cast<std::int32_t>(get_u32(p + 12));
  const int expected = codec_of(h.type);
  if (expected < 0) return fail("unknown frame type " + std::to_string(h.type));
  if (h.codec != expected) {
    return fail(std::string(type_name(h.type)) + " frame with codec " + std::to_string(h.codec) + ": expected " +
                std::to_string(expected));
  }
  if (h.flags & kFlagCompressed) {
    return fail(std::string(type_name(h.type)) +
                " frame has the compression flag, which protocol version 1 does not support");
  }
  out.payload = p + kHeaderSize;
  out.size = length - kLengthBase;
  start_ += 4 + static_cast<std::size_t>(length);
  return kFrame;
}

// -- CallWriter --------------------------------------------------------------------------------

CallWriter::CallWriter(const char *method) : method_(method != nullptr ? method : "") {
  buffer_.reserve(kHeaderSize + 1 + method_.size() + 64);
  buffer_.assign(kHeaderSize, '\0');
  const std::size_t n = method_.size() > 255 ? 255 : method_.size();
  buffer_.push_back(static_cast<char>(n));
  buffer_.append(method_.data(), n);
}

void CallWriter::field(const void *p, std::size_t size) {
  if (p == nullptr) {
    buffer_.push_back('\0');
    return;
  }
  buffer_.push_back('\1');
  buffer_.append(static_cast<const char *>(p), size);
}

void CallWriter::text(const char *s) {
  std::size_t n = s != nullptr ? std::strlen(s) : 0;
  if (n > 0xffff) n = 0xffff;
  unsigned char len[2];
  put_u16(len, static_cast<std::uint16_t>(n));
  buffer_.append(reinterpret_cast<const char *>(len), 2);
  if (n) buffer_.append(s, n);
}

void CallWriter::ids(char *ids[], int count) {
  // A NULL entry, an empty ID or one over 80 bytes cannot name an instrument (InstrumentID is
  // char[81]) and the server would refuse the whole frame: such entries are left out.
  const std::size_t count_at = buffer_.size();
  buffer_.append(4, '\0');
  std::uint32_t sent = 0;
  for (int i = 0; ids != nullptr && i < count; ++i) {
    const char *id = ids[i];
    if (id == nullptr) continue;
    const std::size_t n = std::strlen(id);
    if (n == 0) continue;
    if (n > kMaxInstrumentId) {
      std::fprintf(stderr, "ctpshim native: %s: instrument ID \"%.100s...\" is %zu bytes long; "
                   "an ID has at most %zu bytes: left out\n", method_.c_str(), id, n, kMaxInstrumentId);
      continue;
    }
    buffer_.push_back(static_cast<char>(n));
    buffer_.append(id, n);
    ++sent;
  }
  put_u32(reinterpret_cast<unsigned char *>(&buffer_[count_at]), sent);
}

void CallWriter::i32(int v) {
  unsigned char b[4];
  put_u32(b, static_cast<std::uint32_t>(v));
  buffer_.append(reinterpret_cast<const char *>(b), 4);
}

void CallWriter::boolean(bool v) { buffer_.push_back(v ? '\1' : '\0'); }

std::string &CallWriter::frame(std::uint32_t seq, std::int32_t request_id) {
  FrameHeader h;
  h.length = static_cast<std::uint32_t>(buffer_.size() - 4);
  h.type = kCall;
  h.codec = kCodecBinary;
  h.seq = seq;
  h.request_id = request_id;
  encode_header(reinterpret_cast<unsigned char *>(&buffer_[0]), h);
  return buffer_;
}

// -- CallbackReader ----------------------------------------------------------------------------

void *CallbackReader::field_bytes(void *storage, std::size_t size) {
  if (!take(1)) return nullptr;
  const unsigned char presence = *p_++;
  if (presence == 0) return nullptr;
  if (presence != 1) {
    failed_ = true;
    return nullptr;
  }
  if (!take(size)) return nullptr;
  std::memcpy(storage, p_, size);
  p_ += size;
  return storage;
}

int CallbackReader::i32() {
  if (!take(4)) return 0;
  const auto v = static_cast<std::int32_t>(get_u32(p_));
  p_ += 4;
  return v;
}

bool CallbackReader::boolean() {
  if (!take(1)) return false;
  const unsigned char v = *p_++;
  if (v > 1) failed_ = true;
  return v == 1;
}

std::string_view CallbackReader::text() {
  if (!take(2)) return {};
  const std::size_t n = get_u16(p_);
  p_ += 2;
  if (!take(n)) return {};
  std::string_view s(reinterpret_cast<const char *>(p_), n);
  p_ += n;
  return s;
}

void CallbackReader::finish() {
  if (p_ != end_) failed_ = true;
}

bool split_callback(const unsigned char *payload, std::size_t size, std::string_view &name,
                    const unsigned char *&rest, std::size_t &rest_size) {
  if (size < 1) return false;
  const std::size_t n = payload[0];
  if (size < 1 + n) return false;
  name = std::string_view(reinterpret_cast<const char *>(payload + 1), n);
  rest = payload + 1 + n;
  rest_size = size - 1 - n;
  return true;
}

}  // namespace ctpshim
