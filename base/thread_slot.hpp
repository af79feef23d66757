// comb::thread_slot<T, Release>: an object of type T kept per thread and reused from one use
// to the next, so that a hot path's buffers keep their capacity and allocate nothing. One
// thread_slot at a time takes the thread's object; one made while it is taken (a nested call)
// gets a fresh T of its own instead. When the slot that took the object goes, Release{}(object)
// readies it for the next use (clears it, drops capacity too large to keep). Each Release type
// has its own object per thread, so two uses of the same T with different Release types never
// share one. Not movable; use it within one function on one thread.
#pragma once

#include <optional>

namespace comb {

template <class T, class Release>
class thread_slot {
public:
  thread_slot() : reused_(!busy_) {
    if (reused_)
      busy_ = true;
    else
      own_.emplace();
  }
  ~thread_slot() {
    if (!reused_)
      return;
    Release{}(object_);
    busy_ = false;
  }
  thread_slot(const thread_slot&) = delete;
  thread_slot& operator=(const thread_slot&) = delete;

  T& get() { return reused_ ? object_ : *own_; }
  /// Whether this slot holds the thread's kept object (false: a fresh one of its own).
  bool reused() const { return reused_; }

private:
  static inline thread_local T object_{};
  static inline thread_local bool busy_ = false;
  bool reused_;
  std::optional<T> own_;
};

} // namespace comb
