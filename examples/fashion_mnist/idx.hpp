#pragma once
/**
@file
@brief Reads the IDX files of MNIST-like data sets (Fashion-MNIST), gzip-compressed or not,
through zlib.

IDX format (LeCun et al.): a big-endian magic number `0x0000 TT DD` (TT = 0x08 for unsigned
bytes, DD = the number of dimensions), DD big-endian 32-bit sizes, then the data.
*/

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace stretto::examples {

/** @brief An IDX array of unsigned bytes: its dimensions and its values, row-major. */
struct idx_array {
  std::vector<std::uint32_t> dims;
  std::vector<std::uint8_t> values;
};

/**
@brief Reads an IDX file of unsigned bytes (`.gz` or plain: zlib reads both).
@throws std::runtime_error naming the file and what is wrong (missing, truncated, not IDX).
*/
inline idx_array read_idx(const std::string& path) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (!file) throw std::runtime_error("cannot open " + path);
  auto read = [&](void* into, unsigned bytes) {
    if (gzread(file, into, bytes) != static_cast<int>(bytes)) {
      gzclose(file);
      throw std::runtime_error(path + " is truncated or not an IDX file");
    }
  };
  auto big_endian = [](const unsigned char* b) {
    return (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) | b[3];
  };
  unsigned char header[4];
  read(header, 4);
  if (header[0] != 0 || header[1] != 0 || header[2] != 0x08 || header[3] == 0 || header[3] > 4) {
    gzclose(file);
    throw std::runtime_error(path + " is not an IDX file of unsigned bytes");
  }
  idx_array out;
  std::uint64_t count = 1;
  for (int d = 0; d < header[3]; ++d) {
    unsigned char size[4];
    read(size, 4);
    out.dims.push_back(big_endian(size));
    count *= out.dims.back();
  }
  out.values.resize(count);
  for (std::uint64_t done = 0; done < count;) {
    const auto chunk = static_cast<unsigned>(std::min<std::uint64_t>(count - done, 1u << 30));
    read(out.values.data() + done, chunk);
    done += chunk;
  }
  gzclose(file);
  return out;
}

}  // namespace stretto::examples
