// Shared helpers of the fuzz targets: optional genuine AMD roots for chain/CRL paths, loaded from
// $TAS_FUZZ_ROOTS (a directory with ark.pem and ask.pem, e.g. test/fixtures/amd-roots/milan).
#pragma once
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include "../core/ossl.h"

namespace tas_fuzz {

inline tas::Bytes ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return tas::Bytes(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

inline tas::Bytes RootFile(const char* name) {
  const char* dir = std::getenv("TAS_FUZZ_ROOTS");
  if (dir == nullptr) return {};
  return ReadFile(std::string(dir) + "/" + name);
}

}  // namespace tas_fuzz
