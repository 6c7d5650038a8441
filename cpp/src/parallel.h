// Threads over independent tasks. The split of the work into tasks never
// depends on the number of threads, so results are the same bit for bit
// whatever `threads` is.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "ledkde/engine.h"  // PassOptions, Cancelled

namespace ledkde {

// Workers for ntasks tasks: never more than there are tasks, since each
// worker holds a workspace (threads = 10^7 on a 4-row problem starts one).
inline int worker_count(int threads, int64_t ntasks) {
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, ntasks)));
}

// A stop request from the caller (Ctrl-C), seen by every worker. Any worker
// may call poll(), which is cheap: at most every 20 ms the thread that made
// the flag (the calling thread, worker 0 of parallel_for: Python sees signals
// only there) asks `interrupted` (the bindings take the GIL there and look
// for a signal), and once that said yes every poll() returns true at once.
// With any_thread, whichever worker polls may ask (for a thread-safe
// `interrupted`). The passes poll between tiles of components, so a call
// stops within one tile's time.
class StopFlag {
 public:
  explicit StopFlag(std::function<bool()> interrupted, bool any_thread = false)
      : interrupted_(std::move(interrupted)), owner_(std::this_thread::get_id()), any_thread_(any_thread),
        last_(ticks()) {}

  bool poll() {
    if (stop_.load(std::memory_order_relaxed)) return true;
    if (!interrupted_ || (!any_thread_ && std::this_thread::get_id() != owner_)) return false;
    const int64_t now = ticks();
    int64_t last = last_.load(std::memory_order_relaxed);
    // One caller per period; the others carry on.
    if (now - last < kPeriodNs || !last_.compare_exchange_strong(last, now)) return false;
    std::lock_guard<std::mutex> lock(mutex_);  // `interrupted` need not be reentrant
    if (interrupted_()) stop_.store(true);
    return stop_.load();
  }
  bool stopped() const { return stop_.load(std::memory_order_relaxed); }

 private:
  static constexpr int64_t kPeriodNs = 20'000'000;
  static int64_t ticks() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  std::function<bool()> interrupted_;
  std::thread::id owner_;
  bool any_thread_;
  std::atomic<int64_t> last_;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
};

// Runs fn(task, worker) for task in [0, ntasks) on worker_count(threads, ntasks)
// workers, the calling thread being worker 0. Exceptions from workers are
// rethrown on the calling thread. With a stop flag, no task starts after a
// stop request and parallel_for throws Cancelled.
template <class Fn>
void parallel_for(int64_t ntasks, int threads, Fn&& fn, StopFlag* stop = nullptr) {
  const int nw = worker_count(threads, ntasks);
  std::atomic<int64_t> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto work = [&](int worker) {
    try {
      for (int64_t task; !(stop && stop->poll()) && (task = next.fetch_add(1)) < ntasks;) fn(task, worker);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
      next.store(ntasks);
    }
  };
  std::vector<std::thread> pool;
  for (int w = 1; w < nw; ++w) pool.emplace_back(work, w);
  work(0);
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);
  if (stop && stop->stopped()) throw Cancelled();
}

}  // namespace ledkde
