// Allocator for the large arrays of a prepared mixture (copies of the data).
//
// A one-shot call prepares its mixture afresh, so these arrays are new memory
// on every call, and on Linux each fresh 4 KiB page costs a page fault: at
// tens of MB that is several milliseconds. Arrays from 4 MiB up are therefore
// aligned to 2 MiB and marked for transparent huge pages (512 times fewer
// faults where the kernel allows it; a hint only, ignored elsewhere). The
// allocator also leaves new elements uninitialized (the preparation writes
// every element), which saves a pass of zeros.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace ledkde {

template <class T>
struct BigBufferAllocator {
  using value_type = T;
  static constexpr std::size_t kHuge = std::size_t(2) << 20;
  static constexpr std::size_t kMinHuge = std::size_t(4) << 20;

  BigBufferAllocator() = default;
  template <class U>
  BigBufferAllocator(const BigBufferAllocator<U>&) {}

  T* allocate(std::size_t n) {
    const std::size_t bytes = n * sizeof(T);
    if (bytes < kMinHuge) {
      if (void* p = std::malloc(bytes ? bytes : 1)) return static_cast<T*>(p);
      throw std::bad_alloc();
    }
    const std::size_t rounded = (bytes + kHuge - 1) / kHuge * kHuge;
    void* p = std::aligned_alloc(kHuge, rounded);
    if (!p) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    madvise(p, rounded, MADV_HUGEPAGE);
#endif
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t) noexcept { std::free(p); }

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
