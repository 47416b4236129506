// The c10d ProcessGroup "terse": torch.distributed collectives on terse's C API (CPU tensors).
//
// Two terse communicators per group, both bootstrapped over the group's c10d Store: one for
// the collectives, and a duplicate for send/recv (terse/p2p.h: messages between two ranks
// cannot share the sequence numbers that every rank counts for collectives). A subgroup
// (torch.distributed.new_group) is a process group of its own, made by the same creator over
// the PrefixStore torch gives it; torch calls the creator on the subgroup's members only, so
// the subgroup cannot be terse_comm_split from the world (that is collective over all ranks).
#pragma once

#include "progress.hpp"
#include "store_oob.hpp"
#include "work.hpp"

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

#include <atomic>
#include <memory>

namespace terse_c10d {

class ProcessGroupTerse : public c10d::ProcessGroup {
 public:
  ProcessGroupTerse(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                    double timeout_s);
  ~ProcessGroupTerse() override;

  const std::string getBackendName() const override { return "terse"; }

  c10::intrusive_ptr<c10d::Work> broadcast(std::vector<at::Tensor>& tensors,
                                           const c10d::BroadcastOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> allreduce(std::vector<at::Tensor>& tensors,
                                           const c10d::AllreduceOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> allreduce_coalesced(
      std::vector<at::Tensor>& tensors, const c10d::AllreduceCoalescedOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> reduce(std::vector<at::Tensor>& tensors,
                                        const c10d::ReduceOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> allgather(std::vector<std::vector<at::Tensor>>& outputs,
                                           std::vector<at::Tensor>& inputs,
                                           const c10d::AllgatherOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> _allgather_base(at::Tensor& output, at::Tensor& input,
                                                 const c10d::AllgatherOptions& opts) override;
  // Deprecated in torch, still public (dist.all_gather_coalesced): outputs[r][i] gets rank
  // r's inputs[i]; one allgather of the inputs packed back to back.
  c10::intrusive_ptr<c10d::Work> allgather_coalesced(
      std::vector<std::vector<at::Tensor>>& outputs, std::vector<at::Tensor>& inputs,
      const c10d::AllgatherOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> gather(std::vector<std::vector<at::Tensor>>& outputs,
                                        std::vector<at::Tensor>& inputs,
                                        const c10d::GatherOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> scatter(std::vector<at::Tensor>& outputs,
                                         std::vector<std::vector<at::Tensor>>& inputs,
                                         const c10d::ScatterOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> reduce_scatter(std::vector<at::Tensor>& outputs,
                                                std::vector<std::vector<at::Tensor>>& inputs,
                                                const c10d::ReduceScatterOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> _reduce_scatter_base(
      at::Tensor& output, at::Tensor& input, const c10d::ReduceScatterOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> alltoall_base(at::Tensor& output, at::Tensor& input,
                                               std::vector<int64_t>& outputSplitSizes,
                                               std::vector<int64_t>& inputSplitSizes,
                                               const c10d::AllToAllOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> alltoall(std::vector<at::Tensor>& outputs,
                                          std::vector<at::Tensor>& inputs,
                                          const c10d::AllToAllOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> barrier(const c10d::BarrierOptions& opts) override;
  // A barrier that returns only once every rank reached it, or throws naming the rank that
  // failed or timed out (terse's peer-failure reason); waitAllRanks changes nothing, as a
  // terse barrier fails on every rank alike.
  void monitoredBarrier(const c10d::BarrierOptions& opts, bool waitAllRanks) override;
  // terse numbers collectives on every rank alike from the group's creation, so there is
  // nothing to agree on; the number is the count of collectives posted through this group.
  void setSequenceNumberForGroup() override {}
  uint64_t getSequenceNumberForGroup() override { return seq_; }
  c10::intrusive_ptr<c10d::Work> send(std::vector<at::Tensor>& tensors, int dstRank,
                                      int tag) override;
  c10::intrusive_ptr<c10d::Work> recv(std::vector<at::Tensor>& tensors, int srcRank,
                                      int tag) override;
  c10::intrusive_ptr<c10d::Work> recvAnysource(std::vector<at::Tensor>& tensors,
                                               int tag) override;

  // For the compressed DDP hook (grad_ef_hook.hpp): the collective communicator, the lock
  // that serialises posts with the progress thread, and the hand-off of a posted Work.
  terse_comm_h comm() const { return comm_; }
  std::mutex& c_mutex() { return c_mu_; }
  void launch(const c10::intrusive_ptr<WorkTerse>& w) { progress_->enqueue(w); }

 private:
  // Post one request under the C lock; throws RuntimeError with terse's reason on failure.
  void post(WorkTerse& w, terse_comm_h comm, const char* what,
            const std::function<terse_status_t(terse_request_h*)>& fn);
  c10::intrusive_ptr<WorkTerse> make_work(c10d::OpType type, const char* what,
                                          std::vector<at::Tensor> outputs);
  c10::intrusive_ptr<c10d::Work> reduce_list(std::vector<at::Tensor>& tensors,
                                             const c10d::ReduceOp& op, const char* what);
  c10::intrusive_ptr<c10d::Work> alltoallv(const at::Tensor& in, const std::vector<size_t>& sc,
                                           at::Tensor& out, const std::vector<size_t>& rc,
                                           c10d::OpType type, const char* what,
                                           std::vector<at::Tensor> outputs,
                                           std::function<void()> epilogue);
  c10::intrusive_ptr<c10d::Work> p2p(std::vector<at::Tensor>& tensors, int peer, int tag,
                                     bool is_recv);

  std::unique_ptr<StoreOob> oob_;
  terse_comm_h comm_ = nullptr;     // collectives
  terse_comm_h p2p_comm_ = nullptr; // send/recv (terse_comm_dup of comm_)
  std::mutex c_mu_;
  std::unique_ptr<Progress> progress_;
  std::atomic<uint64_t> seq_{0}; // collectives posted by make_work (getSequenceNumberForGroup)
};

} // namespace terse_c10d
