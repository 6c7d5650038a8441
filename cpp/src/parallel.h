// Threads over independent tasks. The split of the work into tasks never
// depends on the number of threads, so results are the same bit for bit
// whatever `threads` is.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace ledkde {

// Runs fn(task, worker) for task in [0, ntasks) on up to `threads` workers.
// Exceptions from workers are rethrown on the calling thread.
template <class Fn>
void parallel_for(int64_t ntasks, int threads, Fn&& fn) {
  const int nw = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, ntasks)));
  std::atomic<int64_t> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto work = [&](int worker) {
    try {
      for (int64_t task; (task = next.fetch_add(1)) < ntasks;) fn(task, worker);
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
}

}  // namespace ledkde
