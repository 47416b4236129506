// A c10d Work completed from terse's nonblocking requests: the progress thread (progress.hpp)
// tests them; once all succeeded it runs the Work's epilogue (copies out of staging buffers)
// and completes both the Work and its Future, or fails them with terse's reason.
#pragma once

#include <terse/terse.h>

#include <ATen/core/ivalue.h>
#include <torch/csrc/distributed/c10d/Work.hpp>

#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace terse_c10d {

class WorkTerse : public c10d::Work {
 public:
  WorkTerse(int rank, c10d::OpType type, const char* what, std::vector<at::Tensor> outputs);
  ~WorkTerse() override;

  // Posting (user thread, before the Work is handed to the progress thread).
  void add(terse_comm_h comm, terse_request_h req);
  // Keeps tensors (inputs, staging) alive until the requests completed.
  void keep(at::Tensor t) { keep_.push_back(std::move(t)); }
  // Runs on success, before completion: copies out of staging buffers.
  void then(std::function<void()> fn) { epilogue_ = std::move(fn); }

  // Progress thread, under the C library lock: tests the requests; true once all succeeded
  // or one failed (its reason read at once, before another call can overwrite it).
  bool poll_prepare();
  // Then, outside that lock: the epilogue, and completion of the Work and its Future.
  void poll_finish();
  // Progress thread: a request still running (to wait on while nothing moves), or nullptr.
  terse_request_h running() const {
    for (auto& r : reqs_)
      if (!r.done)
        return r.req;
    return nullptr;
  }
  // Completes at once (nothing to wait for, or a failure before any request).
  void complete(std::exception_ptr e = nullptr);

  std::vector<at::Tensor> result() override { return outputs_; }
  c10::intrusive_ptr<c10::ivalue::Future> getFuture() override { return future_; }

 private:
  struct Req {
    terse_comm_h comm;
    terse_request_h req;
    bool done;
  };
  std::string what_;
  std::vector<Req> reqs_;
  std::vector<at::Tensor> outputs_, keep_;
  std::function<void()> epilogue_;
  std::exception_ptr failed_;
  c10::intrusive_ptr<c10::ivalue::Future> future_;
};

// "terse <what>: <status name>: <terse_comm_last_error>"
std::string terse_reason(const char* what, terse_status_t st, terse_comm_h comm);

} // namespace terse_c10d
