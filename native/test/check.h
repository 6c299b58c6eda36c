// A minimal test runner for the native unit tests (built with ASan + UBSan by native/Makefile).
#pragma once
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace check {
struct Case {
  const char* name;
  void (*fn)();
};
inline std::vector<Case>& cases() {
  static std::vector<Case> all;
  return all;
}
inline int failures = 0;
struct Register {
  Register(const char* name, void (*fn)()) { cases().push_back({name, fn}); }
};
inline std::vector<unsigned char> hex(const std::string& s) {
  std::vector<unsigned char> out;
  int hi = -1;
  for (char c : s) {
    int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (v < 0) continue;
    if (hi < 0) hi = v;
    else {
      out.push_back(static_cast<unsigned char>(hi * 16 + v));
      hi = -1;
    }
  }
  return out;
}
inline std::string tohex(const unsigned char* p, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; i++) {
    s += d[p[i] >> 4];
    s += d[p[i] & 15];
  }
  return s;
}
}  // namespace check

#define TEST(name)                                          \
  static void name();                                       \
  static check::Register reg_##name(#name, name);           \
  static void name()

#define EXPECT(cond)                                                               \
  do {                                                                             \
    if (!(cond)) {                                                                 \
      std::fprintf(stderr, "  FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);       \
      check::failures++;                                                           \
    }                                                                              \
  } while (0)

#define EXPECT_HEX(buf, len, expected)                                                             \
  do {                                                                                             \
    std::string got_ = check::tohex(buf, len);                                                     \
    std::string want_ = check::tohex(check::hex(expected).data(), check::hex(expected).size());    \
    if (got_ != want_) {                                                                           \
      std::fprintf(stderr, "  FAIL %s:%d:\n    got  %s\n    want %s\n", __FILE__, __LINE__,        \
                   got_.c_str(), want_.c_str());                                                   \
      check::failures++;                                                                           \
    }                                                                                              \
  } while (0)

#define TEST_MAIN                                                         \
  int main() {                                                            \
    for (auto& c : check::cases()) {                                      \
      int before = check::failures;                                       \
      c.fn();                                                             \
      std::printf("%s %s\n", check::failures == before ? "ok  " : "FAIL", c.name); \
    }                                                                     \
    std::printf("%zu tests, %d failures\n", check::cases().size(), check::failures); \
    return check::failures == 0 ? 0 : 1;                                  \
  }
