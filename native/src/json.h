// The little JSON the protocol needs: writing HELLO, reading the flat keys of HELLO_ACK and ERROR.
//
// Hand-written on purpose: this code is linked into libraries that are loaded into foreign
// processes (Python interpreters, vendors' trading programs), so it must not pull in any
// dependency, and the JSON it meets is small and of a known shape.
#ifndef CTPSHIM_NATIVE_JSON_H
#define CTPSHIM_NATIVE_JSON_H

#include <map>
#include <string>
#include <string_view>

namespace ctpshim {
namespace json {

// Appends `s` as a JSON string (quoted, escaped; bytes >= 0x80 are passed through as UTF-8).
void append_string(std::string &out, std::string_view s);

// The top-level keys of one JSON object whose values are strings, numbers, booleans or null:
// strings unescaped (to UTF-8), numbers as written, true/false/null as those words.  Nested
// objects and arrays are skipped (checked for balance, not kept).
struct Flat {
  std::map<std::string, std::string> strings;
  std::map<std::string, std::string> numbers;  // also true/false/null
  bool has_string(const std::string &key) const { return strings.count(key) != 0; }
  std::string string_or(const std::string &key, const std::string &fallback) const;
  double number_or(const std::string &key, double fallback) const;
};

// false (and `error` set) when `text` is not one JSON object.
bool parse_flat(std::string_view text, Flat &out, std::string &error);

}  // namespace json
}  // namespace ctpshim

#endif  // CTPSHIM_NATIVE_JSON_H
