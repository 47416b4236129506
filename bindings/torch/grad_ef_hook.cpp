#include "grad_ef_hook.hpp"

#include "tensors.hpp"

#include <cstring>
#include <stdexcept>

namespace terse_c10d {

GradEFHook::GradEFHook(c10::intrusive_ptr<ProcessGroupTerse> pg, const std::string& compressor,
                       bool error_feedback, bool double_way, const std::string& algorithm,
                       const std::string& hierarchy)
    : pg_(std::move(pg)) {
  terse_grad_ef_params_t p{};
  terse_compressor_t c;
  TORCH_CHECK(terse_compressor_parse(compressor.c_str(), &c) == TERSE_OK,
              "terse DDP hook: invalid compressor '", compressor, "'");
  p.compressor = &c;
  p.field_mask = TERSE_GRAD_EF_FIELD_DOUBLE_WAY;
  if (!algorithm.empty()) {
    TORCH_CHECK(terse_compressed_algo_parse(algorithm.c_str(), &p.algo) == TERSE_OK,
                "terse DDP hook: invalid algorithm '", algorithm, "'");
    p.field_mask |= TERSE_GRAD_EF_FIELD_ALGO;
  }
  if (!hierarchy.empty()) {
    TORCH_CHECK(terse_hierarchy_parse(hierarchy.c_str(), &p.hierarchy) == TERSE_OK,
                "terse DDP hook: invalid hierarchy '", hierarchy, "'");
    p.field_mask |= TERSE_GRAD_EF_FIELD_HIERARCHY;
  }
  p.error_feedback = error_feedback;
  p.double_way = double_way;
  terse_status_t st = terse_grad_ef_create(pg_->comm(), &p, &ef_);
  TORCH_CHECK(st == TERSE_OK, "terse DDP hook: ", terse_status_name(st));
}

GradEFHook::~GradEFHook() {
  // A bucket still in flight borrows our errors: its Work keeps this object alive (below).
  terse_grad_ef_destroy(ef_);
}

c10::intrusive_ptr<c10d::Work> GradEFHook::reduce(at::Tensor bucket,
                                                  const std::vector<int64_t>& ids,
                                                  const std::vector<int64_t>& counts) {
  const char* what = "compressed DDP bucket";
  check_cpu(bucket, what);
  TORCH_CHECK(ids.size() == counts.size(), "terse DDP hook: ids and counts differ in length");
  std::vector<uint32_t> id32(ids.begin(), ids.end());
  std::vector<size_t> cnt(counts.begin(), counts.end());
  size_t total = 0;
  for (size_t c : cnt)
    total += c;
  TORCH_CHECK(total == (size_t)bucket.numel(), "terse DDP hook: the parameters hold ", total,
              " elements, the bucket ", bucket.numel());
  // the C state works on float32: other dtypes (and strided buffers) go through a copy
  bool direct = bucket.scalar_type() == at::kFloat && bucket.is_contiguous();
  at::Tensor f = direct ? bucket : bucket.to(at::kFloat).contiguous();
  auto w = c10::make_intrusive<WorkTerse>(pg_->getRank(), c10d::OpType::ALLREDUCE, what,
                                          std::vector<at::Tensor>{bucket});
  w->keep(f);
  {
    std::lock_guard<std::mutex> g(pg_->c_mutex());
    terse_request_h req = nullptr;
    terse_status_t st = terse_grad_ef_ireduce(ef_, id32.size(), id32.data(), cnt.data(),
                                              f.data_ptr<float>(), &req);
    if (st != TERSE_OK)
      throw std::runtime_error(terse_reason(what, st, pg_->comm()));
    w->add(pg_->comm(), req);
  }
  c10::intrusive_ptr<GradEFHook> self = c10::intrusive_ptr<GradEFHook>::reclaim_copy(this);
  w->then([self, bucket, f, direct]() mutable {
    if (!direct)
      bucket.copy_(f);
  });
  pg_->launch(w);
  return w;
}

at::Tensor GradEFHook::copy_of(const float* p, size_t n) {
  if (!p)
    return at::empty({0}, at::kFloat);
  at::Tensor t = at::empty({(int64_t)n}, at::kFloat);
  std::memcpy(t.data_ptr<float>(), p, n * sizeof(float));
  return t;
}

at::Tensor GradEFHook::worker_error(int64_t id) {
  std::lock_guard<std::mutex> g(pg_->c_mutex());
  size_t n = 0;
  const float* p = terse_grad_ef_worker_error(ef_, (uint32_t)id, &n);
  return copy_of(p, n);
}

at::Tensor GradEFHook::server_error(int64_t id) {
  std::lock_guard<std::mutex> g(pg_->c_mutex());
  size_t n = 0;
  const float* p = terse_grad_ef_server_error(ef_, (uint32_t)id, &n);
  return copy_of(p, n);
}

int64_t GradEFHook::calls() {
  std::lock_guard<std::mutex> g(pg_->c_mutex());
  return (int64_t)terse_grad_ef_calls(ef_);
}

namespace {
// The floats of a restored error, or nullptr for an empty tensor (zero error).
const float* error_floats(at::Tensor& t, int64_t count, const char* which) {
  if (t.numel() == 0)
    return nullptr;
  TORCH_CHECK(t.numel() == count, "terse DDP hook: ", which, " error has ", t.numel(),
              " elements, the parameter ", count);
  t = t.to(at::kFloat).contiguous();
  return t.data_ptr<float>();
}
} // namespace

void GradEFHook::load_error(int64_t id, int64_t count, at::Tensor worker, at::Tensor server) {
  TORCH_CHECK(count >= 0, "terse DDP hook: negative count");
  check_cpu(worker, "load_error");
  check_cpu(server, "load_error");
  const float* e = error_floats(worker, count, "worker");
  const float* es = error_floats(server, count, "server");
  std::lock_guard<std::mutex> g(pg_->c_mutex());
  terse_status_t st = terse_grad_ef_load(ef_, (uint32_t)id, (size_t)count, e, es);
  if (st != TERSE_OK)
    throw std::runtime_error(terse_reason("load_error", st, pg_->comm()));
}

void GradEFHook::set_calls(int64_t calls) {
  TORCH_CHECK(calls >= 0, "terse DDP hook: negative call count");
  std::lock_guard<std::mutex> g(pg_->c_mutex());
  terse_grad_ef_set_calls(ef_, (uint64_t)calls);
}

} // namespace terse_c10d
