// The ctpshim:// binary protocol's frames and payload encodings (docs/PROTOCOL.md sections 2, 3, 5).
#ifndef CTPSHIM_NATIVE_WIRE_H
#define CTPSHIM_NATIVE_WIRE_H

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace ctpshim {

// Frame types and codecs (PROTOCOL.md 3).
enum FrameType : std::uint16_t {
  kHello = 1,
  kHelloAck = 2,
  kHeartbeat = 3,
  kBye = 4,
  kCall = 10,
  kResult = 11,
  kCallback = 12,
  kTick = 30,
  kTickBatch = 31,
  kError = 90,
};
constexpr std::uint8_t kCodecBinary = 0;
constexpr std::uint8_t kCodecJson = 2;
constexpr std::uint8_t kFlagCompressed = 0x01;
constexpr std::uint8_t kFlagLast = 0x02;
constexpr std::size_t kHeaderSize = 16;
constexpr std::uint32_t kLengthBase = 12;             // what `length` counts besides the payload
constexpr std::uint32_t kMaxFrame = 16u << 20;        // the largest `length` any receiver accepts
constexpr std::size_t kTickSize = 584;                // sizeof(CThostFtdcDepthMarketDataField)
constexpr std::size_t kMaxInstrumentId = 80;

// The codec a frame type uses; -1 for a type protocol version 1 does not have.
int codec_of(std::uint16_t type);
const char *type_name(std::uint16_t type);

inline void put_u16(unsigned char *p, std::uint16_t v) {
  p[0] = static_cast<unsigned char>(v);
  p[1] = static_cast<unsigned char>(v >> 8);
}
inline void put_u32(unsigned char *p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
inline std::uint16_t get_u16(const unsigned char *p) {
  return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
}
inline std::uint32_t get_u32(const unsigned char *p) {
  return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
         (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}

// The 16-byte header of one frame.
struct FrameHeader {
  std::uint32_t length = kLengthBase;
  std::uint16_t type = 0;
  std::uint8_t codec = 0;
  std::uint8_t flags = 0;
  std::uint32_t seq = 0;
  std::int32_t request_id = 0;
};

void encode_header(unsigned char *out, const FrameHeader &h);
// A whole frame: header (length from the payload, codec from the type) + payload.
std::string encode_frame(std::uint16_t type, std::string_view payload, std::uint32_t seq,
                         std::int32_t request_id = 0, std::uint8_t flags = 0);

// One frame as FrameReader hands it out: the payload points into the reader's buffer and is
// valid until the next call of next() or feed().
struct FrameView {
  FrameHeader header;
  const unsigned char *payload = nullptr;
  std::size_t size = 0;
};

// Splits a byte stream into frames, checking each header as PROTOCOL.md 2 says: `length` is
// checked as soon as its 4 bytes arrive (never buffering an oversized frame), then the type,
// its codec and the compression flag.  After an error the reader stays failed.
class FrameReader {
 public:
  explicit FrameReader(std::uint32_t max_frame = kMaxFrame) : max_frame_(max_frame) {}
  void feed(const void *data, std::size_t size);
  enum Status { kFrame, kNeedMore, kFailed };
  // The next complete frame, kNeedMore when none is complete, kFailed (see error()).
  Status next(FrameView &out);
  const std::string &error() const { return error_; }
  std::size_t pending() const { return buffer_.size() - start_; }
  void reset();

 private:
  Status fail(std::string message);
  std::uint32_t max_frame_;
  std::string buffer_;
  std::size_t start_ = 0;           // first unconsumed byte of buffer_
  std::uint64_t stream_offset_ = 0;  // stream offset of buffer_[0], for error messages
  std::string error_;
};

// Builds one CALL payload (PROTOCOL.md 5.1, 5.2) behind room for the frame header, so the frame
// goes out as one buffer.
class CallWriter {
 public:
  explicit CallWriter(const char *method);
  void field(const void *p, std::size_t size);  // u8 presence + bytes (nullptr -> 0)
  void text(const char *s);                     // u16 length + bytes
  void ids(char *ids[], int count);             // i32 count + per ID u8 length + bytes
  void i32(int v);
  void boolean(bool v);

  const std::string &method() const { return method_; }
  // The frame's bytes, with the header filled in for `seq` and `request_id`.
  std::string &frame(std::uint32_t seq, std::int32_t request_id);

 private:
  std::string method_;
  std::string buffer_;
};

// Reads one CALLBACK payload after its name (PROTOCOL.md 5.1).
class CallbackReader {
 public:
  CallbackReader(const unsigned char *data, std::size_t size) : p_(data), end_(data + size) {}
  template <class T>
  T *field(T &storage) {
    return static_cast<T *>(field_bytes(&storage, sizeof(T)));
  }
  // nullptr for presence 0 (or a failure), else `storage` filled with `size` bytes.
  void *field_bytes(void *storage, std::size_t size);
  int i32();
  bool boolean();
  std::string_view text();
  void finish();  // failed() if bytes remain
  bool failed() const { return failed_; }

 private:
  bool take(std::size_t n) {
    if (failed_ || static_cast<std::size_t>(end_ - p_) < n) {
      failed_ = true;
      return false;
    }
    return true;
  }
  const unsigned char *p_;
  const unsigned char *end_;
  bool failed_ = false;
};

// A CALLBACK payload's name and the bytes after it; false when the name is truncated.
bool split_callback(const unsigned char *payload, std::size_t size, std::string_view &name,
                    const unsigned char *&rest, std::size_t &rest_size);

}  // namespace ctpshim

#endif  // CTPSHIM_NATIVE_WIRE_H
