// The autocast dtype of libtorch, which tch 0.24 does not reach: its
// `tch::autocast` only switches CUDA autocast on and off, and CUDA autocast
// then casts to its default, fp16, whatever the experiment's precision.
// Compiled by build.rs and called from src/precision.rs.
//
// Device types and scalar types cross as the integer values of
// c10::DeviceType and c10::ScalarType (checked below against the ones
// src/precision.rs uses). No C++ exception crosses into Rust: every entry
// point catches and answers -1.
//
// The state these functions read and write is thread-local in libtorch
// (the enabled flags live in the thread's dispatch key set, the dtypes in a
// thread_local array in ATen/autocast_mode.cpp), so they act on the calling
// thread only.

#include <ATen/autocast_mode.h>
#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>

static_assert(static_cast<int>(c10::DeviceType::CPU) == 0, "kCPU moved");
static_assert(static_cast<int>(c10::DeviceType::CUDA) == 1, "kCUDA moved");
static_assert(static_cast<int>(c10::ScalarType::Half) == 5, "kHalf moved");
static_assert(static_cast<int>(c10::ScalarType::Float) == 6, "kFloat moved");
static_assert(static_cast<int>(c10::ScalarType::Double) == 7, "kDouble moved");
static_assert(static_cast<int>(c10::ScalarType::BFloat16) == 15,
              "kBFloat16 moved");

namespace {

// Only the device types autocast keeps state for and Rust asks about: an
// out-of-range device type would index past libtorch's per-device array.
bool device_ok(int device_type) {
  return device_type == static_cast<int>(c10::DeviceType::CPU) ||
         device_type == static_cast<int>(c10::DeviceType::CUDA);
}

bool dtype_ok(int scalar_type) {
  return scalar_type == static_cast<int>(c10::ScalarType::Half) ||
         scalar_type == static_cast<int>(c10::ScalarType::Float) ||
         scalar_type == static_cast<int>(c10::ScalarType::Double) ||
         scalar_type == static_cast<int>(c10::ScalarType::BFloat16);
}

}  // namespace

extern "C" {

// Sets the dtype autocast casts to on `device_type`. 0, or -1 on an error.
int enigma_autocast_set_dtype(int device_type, int scalar_type) {
  if (!device_ok(device_type) || !dtype_ok(scalar_type)) return -1;
  try {
    at::autocast::set_autocast_dtype(static_cast<c10::DeviceType>(device_type),
                                     static_cast<c10::ScalarType>(scalar_type));
    return 0;
  } catch (...) {
    return -1;
  }
}

// The dtype autocast casts to on `device_type`, as a c10::ScalarType, or -1.
int enigma_autocast_get_dtype(int device_type) {
  if (!device_ok(device_type)) return -1;
  try {
    return static_cast<int>(at::autocast::get_autocast_dtype(
        static_cast<c10::DeviceType>(device_type)));
  } catch (...) {
    return -1;
  }
}

// Switches autocast on `device_type` on (1) or off (0). 0, or -1.
int enigma_autocast_set_enabled(int device_type, int enabled) {
  if (!device_ok(device_type)) return -1;
  try {
    at::autocast::set_autocast_enabled(static_cast<c10::DeviceType>(device_type),
                                       enabled != 0);
    return 0;
  } catch (...) {
    return -1;
  }
}

// Whether autocast on `device_type` is on: 1, 0, or -1.
int enigma_autocast_is_enabled(int device_type) {
  if (!device_ok(device_type)) return -1;
  try {
    return at::autocast::is_autocast_enabled(
               static_cast<c10::DeviceType>(device_type))
               ? 1
               : 0;
  } catch (...) {
    return -1;
  }
}

// Enters an autocast region: the nesting depth after, or -1.
int enigma_autocast_increment_nesting() {
  try {
    return at::autocast::increment_nesting();
  } catch (...) {
    return -1;
  }
}

// Leaves an autocast region, dropping the cache of cast weights when the
// outermost region ends (as torch.autocast's __exit__ does). The depth
// after, or -1.
int enigma_autocast_decrement_nesting() {
  try {
    int depth = at::autocast::decrement_nesting();
    if (depth == 0) at::autocast::clear_cache();
    return depth;
  } catch (...) {
    return -1;
  }
}

}  // extern "C"
