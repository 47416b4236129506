#include "process_group.hpp"

#include "tensors.hpp"

#include <stdexcept>

namespace terse_c10d {

namespace {

using CopyBack = std::vector<std::pair<at::Tensor, at::Tensor>>; // (user tensor, staging)

// The tensor the C library reads and writes: @t itself when contiguous, else a contiguous
// copy that the epilogue writes back (recorded in @back).
at::Tensor inout(const at::Tensor& t, CopyBack& back) {
  if (t.is_contiguous())
    return t;
  at::Tensor c = t.contiguous();
  back.emplace_back(t, c);
  return c;
}

void copy_back(const CopyBack& back) {
  for (auto& b : back)
    b.first.copy_(b.second);
}

void check_list(const std::vector<at::Tensor>& ts, const char* what, size_t n) {
  TORCH_CHECK(ts.size() == n, "ProcessGroup terse ", what, ": expected ", n,
              " tensor(s), got ", ts.size());
  for (auto& t : ts)
    check_cpu(t, what);
}

} // namespace

ProcessGroupTerse::ProcessGroupTerse(const c10::intrusive_ptr<c10d::Store>& store, int rank,
                                     int size, double timeout_s)
    : ProcessGroup(rank, size), oob_(new StoreOob(store, rank, size)) {
  terse_comm_params_t p{};
  p.field_mask = TERSE_COMM_PARAM_FIELD_OOB | TERSE_COMM_PARAM_FIELD_PROGRESS_THREAD |
      TERSE_COMM_PARAM_FIELD_TIMEOUT;
  p.oob = oob_->oob();
  p.progress_thread = 0; // our own thread (progress.hpp) drives the requests
  p.timeout = timeout_s;
  terse_status_t st = terse_comm_create(&p, &comm_);
  TORCH_CHECK(st == TERSE_OK, "ProcessGroup terse: terse_comm_create failed on rank ", rank, ": ",
              terse_status_name(st), oob_->error().empty() ? "" : ": ", oob_->error());
  st = terse_comm_dup(comm_, &p2p_comm_);
  if (st != TERSE_OK) {
    std::string why = terse_reason("comm_dup", st, comm_);
    terse_comm_destroy(comm_);
    TORCH_CHECK(false, "ProcessGroup terse: ", why);
  }
  progress_.reset(new Progress(c_mu_));
}

ProcessGroupTerse::~ProcessGroupTerse() {
  progress_.reset(); // fails what is pending before the communicators go
  terse_comm_destroy(p2p_comm_);
  terse_comm_destroy(comm_);
}

c10::intrusive_ptr<WorkTerse> ProcessGroupTerse::make_work(c10d::OpType type, const char* what,
                                                           std::vector<at::Tensor> outputs) {
  if (type != c10d::OpType::SEND && type != c10d::OpType::RECV)
    seq_++;
  return c10::make_intrusive<WorkTerse>(getRank(), type, what, std::move(outputs));
}

void ProcessGroupTerse::post(WorkTerse& w, terse_comm_h comm, const char* what,
                             const std::function<terse_status_t(terse_request_h*)>& fn) {
  std::lock_guard<std::mutex> g(c_mu_);
  terse_request_h req = nullptr;
  terse_status_t st = fn(&req);
  if (st != TERSE_OK)
    throw std::runtime_error(terse_reason(what, st, comm));
  w.add(comm, req);
}

c10::intrusive_ptr<c10d::Work> ProcessGroupTerse::reduce_list(std::vector<at::Tensor>& tensors,
                                                              const c10d::ReduceOp& op,
                                                              const char* what) {
  terse_op_t top = op_of(op, what);
  for (auto& t : tensors)
    check_cpu(t, what);
  auto w = make_work(c10d::OpType::ALLREDUCE, what, tensors);
  CopyBack back;
  for (auto& t : tensors) {
    at::Tensor c = inout(t, back);
    terse_dtype_t dt = dtype_of(c, what);
    w->keep(c);
    post(*w, comm_, what, [&](terse_request_h* r) {
      return terse_iallreduce(comm_, TERSE_IN_PLACE, c.data_ptr(), (size_t)c.numel(), dt, top, r);
    });
  }
  w->then([back] { copy_back(back); });
  launch(w);
  return w;
}

c10::intrusive_ptr<c10d::Work> ProcessGroupTerse::allreduce(std::vector<at::Tensor>& tensors,
                                                            const c10d::AllreduceOptions& opts) {
  check_list(tensors, "allreduce", 1);
  return reduce_list(tensors, opts.reduceOp, "allreduce");
}

c10::intrusive_ptr<c10d::Work> ProcessGroupTerse::allreduce_coalesced(
    std::vector<at::Tensor>& tensors, const c10d::AllreduceCoalescedOptions& opts) {
  return reduce_list(tensors, opts.reduceOp, "allreduce_coalesced");
}

c10::intrusive_ptr<c10d::Work> ProcessGroupTerse::broadcast(std::vector<at::Tensor>& tensors,
                                                            const c10d::BroadcastOptions& opts) {
  const char* what = "broadcast";
  check_list(tensors, what, 1);
  TORCH_CHECK(opts.rootTensor == 0, "ProcessGroup terse broadcast: rootTensor must be 0");
  auto w = make_work(c10d::OpType::BROADCAST, what, tensors);
  CopyBack back;
  at::Tensor c = inout(tensors[0], back);
  terse_dtype_t dt = dtype_of(c, what);
  w->keep(c);
  post(*w, comm_, what, [&](terse_request_h* r) {
    return terse_ibcast(comm_, c.data_ptr(), (size_t)c.numel(), dt, (int)opts.rootRank, r);
  });
  w->then([back] { copy_back(back); });
  launch(w);
  return w;
}

c10::intrusive_ptr<c10d::Work> ProcessGroupTerse::reduce(std::vector<at::Tensor>& tensors,
                                                         const c10d::ReduceOptions& opts) {
  const char* what = "reduce";
  check_list(tensors, what, 1);
  terse_op_t top = op_of(opts.reduceOp, what);
  auto w = make_work(c10d::OpType::REDUCE, what, tensors);
  CopyBack back;
  at::Tensor c = inout(tensors[0], back);
  terse_dtype_t dt = dtype_of(c, what);
  // terse_ireduce in place overwrites a non-root's buffer with partial sums; torch leaves
  // non-root tensors undefined too (gloo's are), but keep the caller's input: reduce from a copy
  at::Tensor in = getRank() == opts.rootRank ? c : c.clone();
  w->keep(c);
  w->keep(in);
  post(*w, comm_, what, [&](terse_request_h* r) {
    return terse_ireduce(comm_, TERSE_IN_PLACE, in.data_ptr(), (size_t)c.numel(), dt, top,
                         (int)opts.rootRank, r);
  });
  bool root = getRank() == opts.rootRank;
  w->then([back, root] {
    if (root)
      copy_back(back);
  });
  launch(w);
  return w;
}

c10::intrusive_ptr<c10d::Work> ProcessGroupTerse::_allgather_base(
    at::Tensor& output, at::Tensor& input, const c10d::AllgatherOptions& opts) {
  const char* what = "_allgather_base";
  check_cpu(output, what);
  check_cpu(input, what);
  TORCH_CHECK(output.numel() == input.numel() * getSize(), "ProcessGroup terse ", what,
              ": output has ", output.numel(), " elements, expected size * ", input.numel());
  TORCH_CHECK(output.scalar_type() == input.scalar_type(), "ProcessGroup terse ", what,
              ": output and input dtypes differ");
  auto w = make_work(c10d::OpType::_ALLGATHER_BASE, what, {output});
  CopyBack back;
  at::Tensor o = inout(output, back);
  at::Tensor i = input.contiguous();
  terse_dtype_t dt = dtype_of(i, what);
  w->keep(o);
  w->keep(i);
  post(*w, comm_, what, [&](terse_request_h* r) {
    return terse_iallgather(comm_, i.data_ptr(), o.data_ptr(), (size_t)i.numel(), dt, r);
  });
  w->then([back] { copy_back(back); });
  launch(w);
  return w;
}

c10::intrusive_ptr<c10d::Work> ProcessGroupTerse::allgather(
    std::vector<std::vector<at::Tensor>>& outputs, std::vector<at::Tensor>& inputs,
    const c10d::AllgatherOptions& opts) {
  const char* what = "allgather";
  check_list(inputs, what, 1);
  TORCH_CHECK(outputs.size() == 1, "ProcessGroup terse allgather: one output list expected");
  check_list(outputs[0], what, (size_t)getSize());
  at::Tensor in = inputs[0].contiguous();
  for (auto& o : outputs[0])
    TORCH_CHECK(o.numel() == in.numel() && o.scalar_type() == in.scalar_type(),
                "ProcessGroup terse allgather: every output must match the input's numel and dtype");
  terse_dtype_t dt = dtype_of(in, what);
  at::Tensor flat = at::empty({(int64_t)getSize() * in.numel()}, in.options());
  auto w = make_work(c10d::OpType::ALLGATHER, what, outputs[0]);
  w->keep(in);
  w->keep(flat);
  post(*w, comm_, what, [&](terse_request_h* r) {
    return terse_iallgather(comm_, in.data_ptr(), flat.data_ptr(), (size_t)in.numel(), dt, r);
  });
  std::vector<at::Tensor> outs = outputs[0];
  int64_t n = in.numel();
  w->then([outs, flat, n] {
    for (size_t k = 0; k < outs.size(); k++)
      outs[k].copy_(flat.narrow(0, (int64_t)k * n, n).view(outs[k].sizes()));
  });
  launch(w);
  return w;
}

c10::intrusive_ptr<c10d::Work> ProcessGroupTerse::allgather_coalesced(
    std::vector<std::vector<at::Tensor>>& outputs, std::vector<at::Tensor>& inputs,
    const c10d::AllgatherOptions& opts) {
  const char* what = "allgather_coalesced";
  size_t P = (size_t)getSize(), n = inputs.size();
  TORCH_CHECK(n > 0, "ProcessGroup terse allgather_coalesced: no input tensors");
  check_list(inputs, what, n);
  TORCH_CHECK(outputs.size() == P, "ProcessGroup terse allgather_coalesced: expected ", P,
              " output lists (one per rank), got ", outputs.size());
  std::vector<at::Tensor> flat_in;
  for (auto& t : inputs) {
    TORCH_CHECK(t.scalar_type() == inputs[0].scalar_type(),
                "ProcessGroup terse allgather_coalesced: inputs of one dtype expected");
    flat_in.push_back(t.reshape({-1}));
  }
  std::vector<at::Tensor> all_outs;
  for (auto& list : outputs) {
    check_list(list, what, n);
    for (size_t i = 0; i < n; i++) {
      TORCH_CHECK(list[i].numel() == inputs[i].numel() &&
                      list[i].scalar_type() == inputs[i].scalar_type(),
                  "ProcessGroup terse allgather_coalesced: output ", i,
                  " must match input ", i, "'s numel and dtype");
      all_outs.push_back(list[i]);
    }
  }
  at::Tensor in = at::cat(flat_in);
  int64_t per = in.numel();
  terse_dtype_t dt = dtype_of(in, what);
  at::Tensor flat = at::empty({(int64_t)P * per}, in.options());
  auto w = make_work(c10d::OpType::ALLGATHER_COALESCED, what, all_outs);
  w->keep(in);
  w->keep(flat);
  post(*w, comm_, what, [&](terse_request_h* r) {
    return terse_iallgather(comm_, in.data_ptr(), flat.data_ptr(), (size_t)per, dt, r);
  });
  w->then([all_outs, flat, per, n] {
    int64_t off = 0;
    for (size_t k = 0; k < all_outs.size(); k++) {
      if (k % n == 0)
        off = (int64_t)(k / n) * per; // rank k / n's block
      const at::Tensor& o = all_outs[k];
      o.copy_(flat.narrow(0, off, o.numel()).view(o.sizes()));
      off += o.numel();
    }
  });
  launch(w);
  return w;
}

// gather and scatter are alltoallv with one non-zero row or column: the library checks
// that every pair agrees on its counts, and no rank moves data it does not need.
c10::intrusive_ptr<c10d::Work> ProcessGroupTerse::alltoallv(
    const at::Tensor& in, const std::vector<size_t>& sc, at::Tensor& out,
    const std::vector<size_t>& rc, c10d::OpType type, const char* what,
    std::vector<at::Tensor> outputs, std::function<void()> epilogue) {
  terse_dtype_t dt = dtype_of(in, what);
  auto w = make_work(type, what, std::move(outputs));
  w->keep(in);
  w->keep(out);
  // a rank that sends or receives nothing still passes a valid pointer
  static uint8_t none[8];
  void* sp = in.numel() ? in.data_ptr() : none;
  void* rp = out.numel() ? out.data_ptr() : none;
  post(*w, comm_, what, [&](terse_request_h* r) {
    return terse_ialltoallv(comm_, sp, sc.data(), nullptr, rp, rc.data(), nullptr, dt, r);
  });
  w->then(std::move(epilogue));
  launch(w);
  return w;
}

c10::intrusive_ptr<c10d::Work> ProcessGroupTerse::gather(
    std::vector<std::vector<at::Tensor>>& outputs, std::vector<at::Tensor>& inputs,
    const c10d::GatherOptions& opts) {
  const char* what = "gather";
  check_list(inputs, what, 1);
  int root = (int)opts.rootRank, P = getSize();
  bool is_root = getRank() == root;
  at::Tensor in = inputs[0].contiguous();
  size_t n = (size_t)in.numel();
  std::vector<at::Tensor> outs;
  if (is_root) {
    TORCH_CHECK(outputs.size() == 1, "ProcessGroup terse gather: one output list expected");
    check_list(outputs[0], what, (size_t)P);
    outs = outputs[0];
    for (auto& o : outs)
      TORCH_CHECK((size_t)o.numel() == n && o.scalar_type() == in.scalar_type(),
                  "ProcessGroup terse gather: every output must match the input");
  } else {
    TORCH_CHECK(outputs.empty() || outputs[0].empty(),
                "ProcessGroup terse gather: only the root passes outputs");
  }
  std::vector<size_t> sc(P, 0), rc(P, 0);
  sc[root] = n;
  if (is_root)
    std::fill(rc.begin(), rc.end(), n);
  at::Tensor flat = at::empty({is_root ? (int64_t)(n * P) : 0}, in.options());
  return alltoallv(in, sc, flat, rc, c10d::OpType::GATHER, what, outs, [outs, flat, n] {
    for (size_t k = 0; k < outs.size(); k++)
      outs[k].copy_(flat.narrow(0, (int64_t)(k * n), (int64_t)n).view(outs[k].sizes()));
  });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupTerse::scatter(
    std::vector<at::Tensor>& outputs, std::vector<std::vector<at::Tensor>>& inputs,
    const c10d::ScatterOptions& opts) {
  const char* what = "scatter";
  check_list(outputs, what, 1);
  int root = (int)opts.rootRank, P = getSize();
  bool is_root = getRank() == root;
  size_t n = (size_t)outputs[0].numel();
  at::Tensor flat;
  if (is_root) {
    TORCH_CHECK(inputs.size() == 1, "ProcessGroup terse scatter: one input list expected");
    check_list(inputs[0], what, (size_t)P);
    for (auto& t : inputs[0])
      TORCH_CHECK((size_t)t.numel() == n && t.scalar_type() == outputs[0].scalar_type(),
                  "ProcessGroup terse scatter: every input must match the output");
    std::vector<at::Tensor> flat_in;
    for (auto& t : inputs[0])
      flat_in.push_back(t.reshape({-1}));
    flat = at::cat(flat_in);
  } else {
    TORCH_CHECK(inputs.empty() || inputs[0].empty(),
                "ProcessGroup terse scatter: only the root passes inputs");
    flat = at::empty({0}, outputs[0].options());
  }
  std::vector<size_t> sc(P, 0), rc(P, 0);
  if (is_root)
    std::fill(sc.begin(), sc.end(), n);
  rc[root] = n;
  CopyBack back;
  at::Tensor o = inout(outputs[0], back);
  return alltoallv(flat, sc, o, rc, c10d::OpType::SCATTER, what, outputs,
                   [back] { copy_back(back); });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupTerse::_reduce_scatter_base(
    at::Tensor& output, at::Tensor& input, const c10d::ReduceScatterOptions& opts) {
  const char* what = "_reduce_scatter_base";
  check_cpu(output, what);
  check_cpu(input, what);
  terse_op_t top = op_of(opts.reduceOp, what);
  TORCH_CHECK(input.numel() == output.numel() * getSize(), "ProcessGroup terse ", what,
              ": input has ", input.numel(), " elements, expected size * ", output.numel());
  TORCH_CHECK(output.scalar_type() == input.scalar_type(), "ProcessGroup terse ", what,
              ": output and input dtypes differ");
  auto w = make_work(c10d::OpType::_REDUCE_SCATTER_BASE, what, {output});
  CopyBack back;
  at::Tensor o = inout(output, back);
  at::Tensor i = input.contiguous();
  terse_dtype_t dt = dtype_of(i, what);
  w->keep(o);
  w->keep(i);
  post(*w, comm_, what, [&](terse_request_h* r) {
    return terse_ireduce_scatter(comm_, i.data_ptr(), o.data_ptr(), (size_t)o.numel(), dt, top, r);
  });
  w->then([back] { copy_back(back); });
  launch(w);
  return w;
}

c10::intrusive_ptr<c10d::Work> ProcessGroupTerse::reduce_scatter(
    std::vector<at::Tensor>& outputs, std::vector<std::vector<at::Tensor>>& inputs,
    const c10d::ReduceScatterOptions& opts) {
  const char* what = "reduce_scatter";
  check_list(outputs, what, 1);
  TORCH_CHECK(inputs.size() == 1, "ProcessGroup terse reduce_scatter: one input list expected");
  check_list(inputs[0], what, (size_t)getSize());
  std::vector<at::Tensor> flat_in;
  for (auto& t : inputs[0]) {
    TORCH_CHECK(t.numel() == outputs[0].numel() && t.scalar_type() == outputs[0].scalar_type(),
                "ProcessGroup terse reduce_scatter: every input must match the output");
    flat_in.push_back(t.reshape({-1}));
  }
  at::Tensor flat = at::cat(flat_in);
  return _reduce_scatter_base(outputs[0], flat, opts);
}

c10::intrusive_ptr<c10d::Work> ProcessGroupTerse::alltoall_base(
    at::Tensor& output, at::Tensor& input, std::vector<int64_t>& outputSplitSizes,
    std::vector<int64_t>& inputSplitSizes, const c10d::AllToAllOptions& opts) {
  const char* what = "alltoall_base";
  check_cpu(output, what);
  check_cpu(input, what);
  TORCH_CHECK(output.scalar_type() == input.scalar_type(), "ProcessGroup terse ", what,
              ": output and input dtypes differ");
  size_t P = (size_t)getSize();
  // element counts per rank from row splits (empty: equal rows), rows of dim 0
  auto counts = [&](const at::Tensor& t, const std::vector<int64_t>& splits, const char* side) {
    std::vector<size_t> c(P);
    int64_t rows = t.dim() ? t.size(0) : 1;
    size_t row = rows ? (size_t)(t.numel() / rows) : 0;
    if (splits.empty()) {
      TORCH_CHECK(rows % (int64_t)P == 0, "ProcessGroup terse ", what, ": ", side, " has ", rows,
                  " rows, not divisible by ", P, " ranks");
      std::fill(c.begin(), c.end(), (size_t)(rows / (int64_t)P) * row);
    } else {
      TORCH_CHECK(splits.size() == P, "ProcessGroup terse ", what, ": ", side, " splits have ",
                  splits.size(), " entries, expected ", P);
      int64_t sum = 0;
      for (size_t k = 0; k < P; k++) {
        TORCH_CHECK(splits[k] >= 0, "ProcessGroup terse ", what, ": negative split");
        c[k] = (size_t)splits[k] * row;
        sum += splits[k];
      }
      TORCH_CHECK(sum == rows, "ProcessGroup terse ", what, ": ", side, " splits sum to ", sum,
                  ", the tensor has ", rows, " rows");
    }
    return c;
  };
  std::vector<size_t> sc = counts(input, inputSplitSizes, "input");
  std::vector<size_t> rc = counts(output, outputSplitSizes, "output");
  CopyBack back;
  at::Tensor o = inout(output, back);
  return alltoallv(input.contiguous(), sc, o, rc, c10d::OpType::ALLTOALL_BASE, what, {output},
                   [back] { copy_back(back); });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupTerse::alltoall(std::vector<at::Tensor>& outputs,
                                                           std::vector<at::Tensor>& inputs,
                                                           const c10d::AllToAllOptions& opts) {
  const char* what = "alltoall";
  size_t P = (size_t)getSize();
  check_list(outputs, what, P);
  check_list(inputs, what, P);
  std::vector<size_t> sc(P), rc(P);
  std::vector<at::Tensor> fi;
  for (size_t k = 0; k < P; k++) {
    sc[k] = (size_t)inputs[k].numel();
    rc[k] = (size_t)outputs[k].numel();
    TORCH_CHECK(inputs[k].scalar_type() == inputs[0].scalar_type() &&
                    outputs[k].scalar_type() == inputs[0].scalar_type(),
                "ProcessGroup terse alltoall: tensors of one dtype expected");
    fi.push_back(inputs[k].reshape({-1}));
  }
  at::Tensor flat_in = at::cat(fi);
  int64_t total = 0;
  for (auto c : rc)
    total += (int64_t)c;
  at::Tensor flat_out = at::empty({total}, flat_in.options());
  std::vector<at::Tensor> outs = outputs;
  return alltoallv(flat_in, sc, flat_out, rc, c10d::OpType::ALLTOALL, what, outputs,
                   [outs, flat_out] {
                     int64_t off = 0;
                     for (auto& o : outs) {
                       o.copy_(flat_out.narrow(0, off, o.numel()).view(o.sizes()));
                       off += o.numel();
                     }
                   });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupTerse::barrier(const c10d::BarrierOptions& opts) {
  auto w = make_work(c10d::OpType::BARRIER, "barrier", {});
  post(*w, comm_, "barrier", [&](terse_request_h* r) { return terse_ibarrier(comm_, r); });
  launch(w);
  return w;
}

void ProcessGroupTerse::monitoredBarrier(const c10d::BarrierOptions& opts, bool waitAllRanks) {
  (void)waitAllRanks;
  barrier(opts)->wait(); // rethrows terse's reason (which rank died or timed out)
}

c10::intrusive_ptr<c10d::Work> ProcessGroupTerse::p2p(std::vector<at::Tensor>& tensors, int peer,
                                                      int tag, bool is_recv) {
  const char* what = is_recv ? "recv" : "send";
  check_list(tensors, what, 1);
  auto w = make_work(is_recv ? c10d::OpType::RECV : c10d::OpType::SEND, what, tensors);
  CopyBack back;
  at::Tensor c = is_recv ? inout(tensors[0], back) : tensors[0].contiguous();
  terse_dtype_t dt = dtype_of(c, what);
  w->keep(c);
  post(*w, p2p_comm_, what, [&](terse_request_h* r) {
    return is_recv ? terse_irecv(p2p_comm_, c.data_ptr(), (size_t)c.numel(), dt, peer, tag, r)
                   : terse_isend(p2p_comm_, c.data_ptr(), (size_t)c.numel(), dt, peer, tag, r);
  });
  w->then([back] { copy_back(back); });
  launch(w);
  return w;
}

c10::intrusive_ptr<c10d::Work> ProcessGroupTerse::send(std::vector<at::Tensor>& tensors,
                                                       int dstRank, int tag) {
  return p2p(tensors, dstRank, tag, false);
}

c10::intrusive_ptr<c10d::Work> ProcessGroupTerse::recv(std::vector<at::Tensor>& tensors,
                                                       int srcRank, int tag) {
  return p2p(tensors, srcRank, tag, true);
}

c10::intrusive_ptr<c10d::Work> ProcessGroupTerse::recvAnysource(std::vector<at::Tensor>& tensors,
                                                                int tag) {
  TORCH_CHECK(false, "ProcessGroup terse: recv from any source is not supported (terse matches "
                     "messages by source and tag); pass src");
}

} // namespace terse_c10d
