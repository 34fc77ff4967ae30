#pragma once
/// A fresh directory under $TMPDIR (or /tmp), removed with its contents on
/// destruction.
#include <filesystem>
#include <string_view>

namespace pushgw::testsupport {

class TempDir {
 public:
  /// Throws std::runtime_error if the directory cannot be created.
  explicit TempDir(std::string_view prefix = "pushgw-test");
  ~TempDir();
  TempDir(TempDir&& other) noexcept;
  TempDir& operator=(TempDir&&) = delete;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  /// path() / name.
  std::filesystem::path file(std::string_view name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

}  // namespace pushgw::testsupport
