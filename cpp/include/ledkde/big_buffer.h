// Allocator for the large arrays of a prepared mixture (copies of the data).
//
// A one-shot call prepares its mixture afresh, so these arrays are new memory
// on every call, and on Linux each fresh 4 KiB page costs a page fault: at
// tens of MB that is several milliseconds. Arrays from 4 MiB up are therefore
// aligned to 2 MiB and marked for transparent huge pages (512 times fewer
// faults where the kernel allows it; a hint only, ignored elsewhere), and a
// few recently freed ones are kept for reuse (BigBufferCache, at most
// 256 MiB in all), so that repeated one-shot calls find their memory already
// mapped. Smaller arrays are aligned to a cache line (64 bytes), so that no
// vector load of a kernel that walks them in whole vectors straddles two
// lines. The allocator also leaves new elements uninitialized (the
// preparation writes every element), which saves a pass of zeros.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <mutex>
#include <new>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace ledkde {

// Up to kSlots freed huge-page buffers kept for reuse, oldest dropped first.
class BigBufferCache {
 public:
  static constexpr std::size_t kSlots = 4;
  static constexpr std::size_t kMaxBytes = std::size_t(256) << 20;

  // A kept buffer of at least `bytes` and at most twice that, or null.
  static void* take(std::size_t bytes) {
    BigBufferCache& c = instance();
    std::lock_guard<std::mutex> lock(c.mutex_);
    for (std::size_t i = 0; i < c.n_; ++i)
      if (c.size_[i] >= bytes && c.size_[i] <= 2 * bytes) {
        void* p = c.ptr_[i];
        c.total_ -= c.size_[i];
        c.erase(i);
        return p;
      }
    return nullptr;
  }
  // Keeps a freed buffer (its rounded size) or frees it.
  static void give(void* p, std::size_t bytes) {
    BigBufferCache& c = instance();
    std::lock_guard<std::mutex> lock(c.mutex_);
    if (bytes > kMaxBytes) {
      std::free(p);
      return;
    }
    while (c.n_ == kSlots || c.total_ + bytes > kMaxBytes) {
      std::free(c.ptr_[0]);
      c.total_ -= c.size_[0];
      c.erase(0);
    }
    c.ptr_[c.n_] = p;
    c.size_[c.n_++] = bytes;
    c.total_ += bytes;
  }

 private:
  static BigBufferCache& instance() {
    // Never destroyed: buffers may be freed during interpreter shutdown.
    static BigBufferCache* c = new BigBufferCache();
    return *c;
  }
  void erase(std::size_t i) {
    for (std::size_t k = i + 1; k < n_; ++k) {
      ptr_[k - 1] = ptr_[k];
      size_[k - 1] = size_[k];
    }
    --n_;
  }
  std::mutex mutex_;
  void* ptr_[kSlots] = {};
  std::size_t size_[kSlots] = {};
  std::size_t n_ = 0, total_ = 0;
};

template <class T>
struct BigBufferAllocator {
  using value_type = T;
  static constexpr std::size_t kHuge = std::size_t(2) << 20;
  static constexpr std::size_t kMinHuge = std::size_t(4) << 20;
  static constexpr std::size_t kLine = 64;

  BigBufferAllocator() = default;
  template <class U>
  BigBufferAllocator(const BigBufferAllocator<U>&) {}

  T* allocate(std::size_t n) {
    const std::size_t bytes = n * sizeof(T);
    if (bytes < kMinHuge) {
      if (void* p = std::aligned_alloc(kLine, (bytes + kLine) / kLine * kLine)) return static_cast<T*>(p);
      throw std::bad_alloc();
    }
    const std::size_t rounded = (bytes + kHuge - 1) / kHuge * kHuge;
    if (void* kept = BigBufferCache::take(rounded)) return static_cast<T*>(kept);
    void* p = std::aligned_alloc(kHuge, rounded);
    if (!p) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    madvise(p, rounded, MADV_HUGEPAGE);
#endif
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t n) noexcept {
    const std::size_t bytes = n * sizeof(T);
    if (bytes < kMinHuge) {
      std::free(p);
      return;
    }
    BigBufferCache::give(p, (bytes + kHuge - 1) / kHuge * kHuge);
  }

  // Default-initialize (no zero fill) when no value is given.
  template <class U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }

  template <class U>
  bool operator==(const BigBufferAllocator<U>&) const noexcept { return true; }
  template <class U>
  bool operator!=(const BigBufferAllocator<U>&) const noexcept { return false; }
};

// A vector whose new elements are uninitialized and whose storage may use huge pages.
template <class T>
using BigVector = std::vector<T, BigBufferAllocator<T>>;

}  // namespace ledkde
