#include "work.hpp"

#include <stdexcept>

namespace terse_c10d {

std::string terse_reason(const char* what, terse_status_t st, terse_comm_h comm) {
  std::string s = std::string("terse ") + what + ": " + terse_status_name(st);
  const char* why = comm ? terse_comm_last_error(comm) : "";
  if (why && *why)
    s += std::string(": ") + why;
  return s;
}

WorkTerse::WorkTerse(int rank, c10d::OpType type, const char* what,
                     std::vector<at::Tensor> outputs)
    : Work(rank, type),
      what_(what),
      outputs_(std::move(outputs)),
      future_(c10::make_intrusive<c10::ivalue::Future>(
          c10::ListType::create(c10::TensorType::get()))) {}

WorkTerse::~WorkTerse() {
  // Only completed Works are dropped by the progress thread; a Work dropped by its user
  // before posting finished has no request. Freeing a request in flight cancels it.
  for (auto& r : reqs_)
    terse_request_free(r.req);
}

void WorkTerse::add(terse_comm_h comm, terse_request_h req) {
  reqs_.push_back(Req{comm, req, false});
}

bool WorkTerse::poll_prepare() {
  for (auto& r : reqs_) {
    if (r.done)
      continue;
    terse_status_t st = terse_test(r.req);
    if (st == TERSE_INPROGRESS)
      return false;
    r.done = true;
    if (st != TERSE_OK) {
      failed_ = std::make_exception_ptr(std::runtime_error(terse_reason(what_.c_str(), st, r.comm)));
      return true;
    }
  }
  return true;
}

void WorkTerse::poll_finish() {
  std::exception_ptr e = failed_;
  if (!e && epilogue_) {
    try {
      epilogue_();
    } catch (...) {
      e = std::current_exception();
    }
  }
  complete(e);
}

void WorkTerse::complete(std::exception_ptr e) {
  keep_.clear();
  finish(e); // the Work: wakes wait()
  if (e)
    future_->setError(e);
  else
    future_->markCompleted(c10::IValue(outputs_)); // callbacks run here (DDP's, Python's)
}

} // namespace terse_c10d
