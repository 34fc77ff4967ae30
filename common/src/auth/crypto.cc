#include "common/auth/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>

#include <array>
#include <new>
#include <stdexcept>

namespace pushgw::auth {

namespace {

// OpenSSL 3's one-shot HMAC() and SHA256() look the algorithm up in the
// provider store on every call (~35k instructions per request signature
// checked, most of push-api's signature cost). The algorithms are fetched
// once; each thread keeps its own contexts and only re-keys / re-inits them.
const EVP_MD* sha256_md() {
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  if (md == nullptr) throw std::runtime_error("OpenSSL: SHA256 is not available");
  return md;
}

struct DigestCtx {
  DigestCtx() : ctx(EVP_MD_CTX_new()) {
    if (ctx == nullptr) throw std::bad_alloc();
  }
  ~DigestCtx() { EVP_MD_CTX_free(ctx); }
  DigestCtx(const DigestCtx&) = delete;
  DigestCtx& operator=(const DigestCtx&) = delete;
  EVP_MD_CTX* ctx;
};

struct HmacCtx {
  HmacCtx() {
    static EVP_MAC* const mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    if (mac == nullptr) throw std::runtime_error("OpenSSL: HMAC is not available");
    ctx = EVP_MAC_CTX_new(mac);
    if (ctx == nullptr) throw std::bad_alloc();
    char digest[] = "SHA256";
    const OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0), OSSL_PARAM_END};
    if (EVP_MAC_CTX_set_params(ctx, params) != 1) {
      EVP_MAC_CTX_free(ctx);
      throw std::runtime_error("OpenSSL: cannot set up HMAC-SHA256");
    }
  }
  ~HmacCtx() { EVP_MAC_CTX_free(ctx); }
  HmacCtx(const HmacCtx&) = delete;
  HmacCtx& operator=(const HmacCtx&) = delete;
  EVP_MAC_CTX* ctx = nullptr;
};

const unsigned char* bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

}  // namespace

std::string hmac_sha256(std::string_view key, std::string_view data) {
  thread_local HmacCtx h;
  std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
  std::size_t len = 0;
  // A zero-length key is valid HMAC; OpenSSL wants a non-null pointer for it.
  static constexpr unsigned char kEmpty = 0;
  const unsigned char* k = key.empty() ? &kEmpty : bytes(key);
  if (EVP_MAC_init(h.ctx, k, key.size(), nullptr) != 1 ||
      EVP_MAC_update(h.ctx, bytes(data), data.size()) != 1 ||
      EVP_MAC_final(h.ctx, out.data(), &len, out.size()) != 1) {
    throw std::runtime_error("OpenSSL: HMAC-SHA256 failed");
  }
  return {reinterpret_cast<const char*>(out.data()), len};
}

std::string sha256(std::string_view data) {
  thread_local DigestCtx d;
  std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
  unsigned int len = 0;
  if (EVP_DigestInit_ex(d.ctx, sha256_md(), nullptr) != 1 ||
      EVP_DigestUpdate(d.ctx, data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(d.ctx, out.data(), &len) != 1) {
    throw std::runtime_error("OpenSSL: SHA-256 failed");
  }
  return {reinterpret_cast<const char*>(out.data()), len};
}

std::string to_hex(std::string_view raw) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(raw.size() * 2, '\0');
  char* o = out.data();
  for (unsigned char c : raw) {
    *o++ = kDigits[c >> 4];
    *o++ = kDigits[c & 0xf];
  }
  return out;
}

namespace {

constexpr char kStd[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kUrl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string encode(std::string_view raw, const char* alphabet, bool pad) {
  std::string out;
  out.reserve((raw.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= raw.size(); i += 3) {
    uint32_t v = (uint32_t(uint8_t(raw[i])) << 16) | (uint32_t(uint8_t(raw[i + 1])) << 8) |
                 uint8_t(raw[i + 2]);
    out.push_back(alphabet[(v >> 18) & 63]);
    out.push_back(alphabet[(v >> 12) & 63]);
    out.push_back(alphabet[(v >> 6) & 63]);
    out.push_back(alphabet[v & 63]);
  }
  size_t rest = raw.size() - i;
  if (rest > 0) {
    uint32_t v = uint32_t(uint8_t(raw[i])) << 16;
    if (rest == 2) v |= uint32_t(uint8_t(raw[i + 1])) << 8;
    out.push_back(alphabet[(v >> 18) & 63]);
    out.push_back(alphabet[(v >> 12) & 63]);
    if (rest == 2) out.push_back(alphabet[(v >> 6) & 63]);
    if (pad) out.append(rest == 1 ? "==" : "=");
  }
  return out;
}

int value_of(char c, bool url) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == (url ? '-' : '+')) return 62;
  if (c == (url ? '_' : '/')) return 63;
  return -1;
}

std::optional<std::string> decode(std::string_view text, bool url, bool padding_required) {
  size_t pad = 0;
  while (!text.empty() && text.back() == '=' && pad < 2) {
    text.remove_suffix(1);
    ++pad;
  }
  if (padding_required && (text.size() + pad) % 4 != 0) return std::nullopt;
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v = value_of(c, url);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  // Leftover bits must be zero (canonical encoding).
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

}  // namespace

std::string base64url_encode(std::string_view raw) { return encode(raw, kUrl, false); }
std::optional<std::string> base64url_decode(std::string_view text) {
  return decode(text, true, false);
}
std::string base64_encode(std::string_view raw) { return encode(raw, kStd, true); }
std::optional<std::string> base64_decode(std::string_view text) {
  return decode(text, false, true);
}

bool constant_time_equal(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace pushgw::auth
