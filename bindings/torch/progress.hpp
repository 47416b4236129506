// One thread per process group that drives terse's requests to completion: it sleeps while
// nothing is posted and, while Works are pending, tests them in turn (terse_test advances the
// communicator), yielding the core when none moved, since ranks often share cores. It never
// takes the GIL except through the callbacks of the futures it completes.
#pragma once

#include "work.hpp"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace terse_c10d {

class Progress {
 public:
  // @c_mu serialises calls into the C library with the process group's posts, so that a
  // failed request's terse_comm_last_error is the one this thread reads.
  explicit Progress(std::mutex& c_mu);
  ~Progress(); // completes nothing: pending Works are failed with "process group destroyed"
  void enqueue(c10::intrusive_ptr<WorkTerse> w);

 private:
  void run();
  std::mutex& c_mu_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<c10::intrusive_ptr<WorkTerse>> pending_;
  bool stop_ = false;
  std::thread thread_;
};

} // namespace terse_c10d
