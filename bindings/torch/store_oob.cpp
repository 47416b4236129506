#include "store_oob.hpp"

#include <cstring>
#include <exception>

namespace terse_c10d {

StoreOob::StoreOob(c10::intrusive_ptr<c10d::Store> store, int rank, int size)
    : store_(std::move(store)), rank_(rank), size_(size) {}

terse_oob_t StoreOob::oob() {
  terse_oob_t o{};
  o.allgather = &StoreOob::allgather;
  o.coll_info = this;
  o.rank = rank_;
  o.size = size_;
  return o;
}

// Round r: every rank sets "terse/oob/<r>/<rank>" and gets everybody's key; Store::get waits
// for a key up to the store's timeout, which is what makes this blocking and collective.
// The keys stay in the store (a few hundred bytes per rank per round, a handful of rounds
// per communicator): deleting them safely would need one more round to know all have read.
terse_status_t StoreOob::allgather(const void* sbuf, void* rbuf, size_t msglen, void* info) {
  auto* self = static_cast<StoreOob*>(info);
  const std::string base = "terse/oob/" + std::to_string(self->round_++) + "/";
  try {
    const auto* p = static_cast<const uint8_t*>(sbuf);
    self->store_->set(base + std::to_string(self->rank_), std::vector<uint8_t>(p, p + msglen));
    for (int i = 0; i < self->size_; i++) {
      std::vector<uint8_t> v = self->store_->get(base + std::to_string(i));
      if (v.size() != msglen) {
        self->error_ = "store allgather: rank " + std::to_string(i) + " sent " +
            std::to_string(v.size()) + " bytes, expected " + std::to_string(msglen);
        return TERSE_ERR_BOOTSTRAP;
      }
      std::memcpy(static_cast<uint8_t*>(rbuf) + (size_t)i * msglen, v.data(), msglen);
    }
  } catch (const std::exception& e) {
    self->error_ = std::string("store allgather: ") + e.what();
    return TERSE_ERR_BOOTSTRAP;
  }
  return TERSE_OK;
}

} // namespace terse_c10d
