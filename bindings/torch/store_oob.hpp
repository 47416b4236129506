// The out-of-band allgather terse_comm_create needs, over the c10d Store the process group is
// given (TCPStore, FileStore, PrefixStore...), so that bootstrap needs no MPI.
#pragma once

#include <terse/terse.h>

#include <torch/csrc/distributed/c10d/Store.hpp>

#include <string>

namespace terse_c10d {

class StoreOob {
 public:
  StoreOob(c10::intrusive_ptr<c10d::Store> store, int rank, int size);
  // Filled for terse_comm_params_t::oob; valid while this object lives.
  terse_oob_t oob();
  // Why the last allgather failed ("" if none).
  const std::string& error() const { return error_; }

 private:
  static terse_status_t allgather(const void* sbuf, void* rbuf, size_t msglen, void* info);
  c10::intrusive_ptr<c10d::Store> store_;
  int rank_, size_;
  int round_ = 0; // every rank calls allgather the same number of times: keys never repeat
  std::string error_;
};

} // namespace terse_c10d
