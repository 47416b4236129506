// The compressed DDP comm hook's engine on a "terse" process group: error feedback per
// parameter in C (terse/grad_ef.h), each bucket one pass and one compressed allreduce on the
// group's own communicator, completed by the group's progress thread.
#pragma once

#include "process_group.hpp"

namespace terse_c10d {

class GradEFHook : public torch::CustomClassHolder {
 public:
  // algorithm / hierarchy: TERSE_COMPRESSED_ALGO / TERSE_HIERARCHY words, "" = the group's
  // communicator's choice.
  GradEFHook(c10::intrusive_ptr<ProcessGroupTerse> pg, const std::string& compressor,
             bool error_feedback, bool double_way, const std::string& algorithm = "",
             const std::string& hierarchy = "");
  ~GradEFHook() override;

  // The bucket's flat gradient buffer, its parameters' ids and element counts (in buffer
  // order). Returns a Work whose future gives [bucket] holding the averaged update.
  c10::intrusive_ptr<c10d::Work> reduce(at::Tensor bucket, const std::vector<int64_t>& ids,
                                        const std::vector<int64_t>& counts);
  // Copies of this rank's error of parameter @id (empty tensor if none).
  at::Tensor worker_error(int64_t id);
  at::Tensor server_error(int64_t id);
  int64_t calls();
  // Checkpoint restore (terse_grad_ef_load / _set_calls): parameter @id's errors from float32
  // tensors of @count elements (an empty tensor: zero); then the bucket count.
  void load_error(int64_t id, int64_t count, at::Tensor worker, at::Tensor server);
  void set_calls(int64_t calls);

 private:
  at::Tensor copy_of(const float* p, size_t n);
  c10::intrusive_ptr<ProcessGroupTerse> pg_;
  terse_grad_ef_h ef_ = nullptr;
};

} // namespace terse_c10d
