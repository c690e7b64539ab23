#pragma once
// Flat byte encodings of what atman-explain-mpi sends between processes: the
// explain request (rank 0 to every rank) and the deltas of one shard (every
// rank to rank 0). Native byte order and sizes: sender and receiver run the
// same build. Decoding checks every length against the bytes left and throws
// atman::invalid_argument on truncated, oversized or trailing bytes.

#include <atman/request.hpp>
#include <atman/scoring.hpp>

#include <cstddef>
#include <vector>

namespace atman::engine {

std::vector<char> encode_request(const atman::explain_request& request);
atman::explain_request decode_request(const char* data, std::size_t size);

std::vector<char> encode_deltas(const atman::raw_deltas& deltas);
atman::raw_deltas decode_deltas(const char* data, std::size_t size);

}  // namespace atman::engine
