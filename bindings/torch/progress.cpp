#include "progress.hpp"

#include <stdexcept>
#include <vector>

namespace terse_c10d {

Progress::Progress(std::mutex& c_mu) : c_mu_(c_mu), thread_([this] { run(); }) {}

Progress::~Progress() {
  {
    std::lock_guard<std::mutex> g(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  for (auto& w : pending_)
    w->complete(std::make_exception_ptr(
        std::runtime_error("terse: the process group was destroyed with this call in flight")));
}

void Progress::enqueue(c10::intrusive_ptr<WorkTerse> w) {
  {
    std::lock_guard<std::mutex> g(mu_);
    pending_.push_back(std::move(w));
  }
  cv_.notify_one();
}

void Progress::run() {
  std::vector<c10::intrusive_ptr<WorkTerse>> batch, done;
  for (;;) {
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stop_ || !pending_.empty(); });
      if (stop_)
        return;
      batch.assign(pending_.begin(), pending_.end());
    }
    bool moved = false;
    done.clear();
    for (auto& w : batch) {
      bool finished;
      {
        std::lock_guard<std::mutex> g(c_mu_);
        finished = w->poll_prepare();
      }
      if (finished) {
        w->poll_finish(); // epilogue and completion outside the C lock: callbacks may post
        done.push_back(w);
        moved = true;
      }
    }
    if (!done.empty()) {
      std::lock_guard<std::mutex> g(mu_);
      for (auto& w : done) {
        for (auto it = pending_.begin(); it != pending_.end(); ++it) {
          if (*it == w) {
            pending_.erase(it);
            break;
          }
        }
      }
    }
    // Nothing moved: wait on one running request, which spins for TERSE_SPIN_US and then
    // sleeps until the network has an event, instead of spinning on the cores the ranks share.
    // Outside the C lock, so posts go on; the next poll reads any failure under it.
    terse_request_h wait_on = nullptr;
    for (size_t i = 0; !moved && !wait_on && i < batch.size(); i++)
      wait_on = batch[i]->running();
    if (wait_on)
      (void)terse_wait_for(wait_on, 0.002);
    batch.clear();
    done.clear(); // the last reference may go here: requests are freed outside both locks
  }
}

} // namespace terse_c10d
