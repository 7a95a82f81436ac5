// Call plans replayed in C++ behind PyTorch's dispatcher (see native_dispatch.py).
//
// One boxed kernel per routed aten overload, registered at the backend key in front of our
// Python kernel. A call whose arguments match one of the plans this overload has been given
// (every tensor's dtype, device, shape, strides and alignment, which arguments are the same
// tensor, each number's kind, every other argument's value) is replayed here: the value-
// dependent checks, the allocation below the dispatcher and the launches through
// cuLaunchKernel. Anything else goes to the Python kernel that was registered at the key
// before (the "miss" kernel), which may then offer the plan that served the call.
#include <torch/extension.h>
#include <torch/library.h>
#include <torch/csrc/Dtype.h>
#include <ATen/EmptyTensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/DefaultDtype.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <c10/util/Exception.h>
#ifdef FLAGGEMS_CUDA_STREAMS
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include <dlfcn.h>

#include <array>
#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace py = pybind11;

namespace {

// ---- the driver's launch, as cuda.h declares it (resolved from libcuda at first use) ----
using CUresult = int;
using CUdevice = int;
using CUcontext = void*;
using CUfunction = void*;
using CUstream = void*;

CUresult (*cu_launch)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                      unsigned, CUstream, void**, void**) = nullptr;
CUresult (*cu_ctx_get_current)(CUcontext*) = nullptr;
CUresult (*cu_ctx_set_current)(CUcontext) = nullptr;
CUresult (*cu_device_get)(CUdevice*, int) = nullptr;
CUresult (*cu_primary_ctx_retain)(CUcontext*, CUdevice) = nullptr;
CUresult (*cu_error_string)(CUresult, const char**) = nullptr;

bool load_driver() {
  if (cu_launch != nullptr) return true;
  void* library = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
  if (library == nullptr) return false;
  *(void**)&cu_ctx_get_current = dlsym(library, "cuCtxGetCurrent");
  *(void**)&cu_ctx_set_current = dlsym(library, "cuCtxSetCurrent");
  *(void**)&cu_device_get = dlsym(library, "cuDeviceGet");
  *(void**)&cu_primary_ctx_retain = dlsym(library, "cuDevicePrimaryCtxRetain");
  *(void**)&cu_error_string = dlsym(library, "cuGetErrorString");
  void* launch = dlsym(library, "cuLaunchKernel");
  if (!cu_ctx_get_current || !cu_ctx_set_current || !cu_device_get || !cu_primary_ctx_retain ||
      !cu_error_string || !launch)
    return false;
  *(void**)&cu_launch = launch;
  return true;
}

void driver_check(CUresult status) {
  if (status == 0) return;
  const char* text = nullptr;
  if (cu_error_string == nullptr || cu_error_string(status, &text) != 0 || text == nullptr)
    text = "unknown error";
  TORCH_CHECK(false, "Triton Error [CUDA]: ", text);
}

// the device's primary context made current where the thread has none yet, as our Python
// launcher does
void ensure_context(int device) {
  CUcontext context = nullptr;
  driver_check(cu_ctx_get_current(&context));
  if (context != nullptr) return;
  CUdevice handle;
  driver_check(cu_device_get(&handle, device));
  driver_check(cu_primary_ctx_retain(&context, handle));
  driver_check(cu_ctx_set_current(context));
}

int current_cuda_device() {
#ifdef FLAGGEMS_CUDA_STREAMS
  return c10::cuda::current_device();
#else
  return c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA)->getDevice().index();
#endif
}

CUstream current_cuda_stream(int device) {
#ifdef FLAGGEMS_CUDA_STREAMS
  return c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(device)).stream();
#else
  return c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA)
      ->getStream(c10::Device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(device)))
      .native_handle();
#endif
}

// ---- launch counts, read by Python's LAUNCHES ----
constexpr int kCounters = 4096;
std::array<std::atomic<int64_t>, kCounters> launch_counts{};

// ---- what a call's arguments are, for its key ----
inline uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  return h;
}

inline uint64_t bits_of(double d) {
  uint64_t b;
  std::memcpy(&b, &d, sizeof b);
  return b;
}

// a number: its kind ('d' float, 'i' int, 'b' bool, 'c' complex) and its value's bits
struct Number {
  char tag = 0;
  uint64_t bits[2] = {0, 0};
};

bool is_plain_tensor(const c10::IValue& v) {
  return v.isTensor() && v.toTensor().defined() &&
         !v.toTensor().unsafeGetTensorImpl()->is_wrapped_number();
}

bool is_wrapped_number(const c10::IValue& v) {
  return v.isTensor() && v.toTensor().defined() &&
         v.toTensor().unsafeGetTensorImpl()->is_wrapped_number();
}

bool is_none(const c10::IValue& v) {
  return v.isNone() || (v.isTensor() && !v.toTensor().defined());
}

// a Scalar-like argument or a wrapped number (the tensor PyTorch makes of a Python number
// given for a tensor), as Python sees it; false for anything else
bool number_of(const c10::IValue& v, Number* n) {
  if (v.isDouble()) {
    n->tag = 'd';
    n->bits[0] = bits_of(v.toDouble());
  } else if (v.isInt()) {
    n->tag = 'i';
    n->bits[0] = static_cast<uint64_t>(v.toInt());
  } else if (v.isBool()) {
    n->tag = 'b';
    n->bits[0] = v.toBool();
  } else if (v.isComplexDouble()) {
    auto c = v.toComplexDouble();
    n->tag = 'c';
    n->bits[0] = bits_of(c.real());
    n->bits[1] = bits_of(c.imag());
  } else if (is_wrapped_number(v)) {
    const at::Tensor& t = v.toTensor();
    switch (t.scalar_type()) {
      case at::kDouble:
        n->tag = 'd';
        n->bits[0] = bits_of(*t.const_data_ptr<double>());
        break;
      case at::kLong:
        n->tag = 'i';
        n->bits[0] = static_cast<uint64_t>(*t.const_data_ptr<int64_t>());
        break;
      case at::kBool:
        n->tag = 'b';
        n->bits[0] = *t.const_data_ptr<bool>();
        break;
      case at::kComplexDouble: {
        auto c = *t.const_data_ptr<c10::complex<double>>();
        n->tag = 'c';
        n->bits[0] = bits_of(c.real());
        n->bits[1] = bits_of(c.imag());
        break;
      }
      default:
        return false;
    }
  } else {
    return false;
  }
  return true;
}

// the position of the first argument before ``i`` that is the same tensor, or -1
int same_as(const c10::IValue* args, int i) {
  const c10::TensorImpl* impl = args[i].toTensor().unsafeGetTensorImpl();
  for (int j = 0; j < i; j++)
    if (is_plain_tensor(args[j]) && args[j].toTensor().unsafeGetTensorImpl() == impl) return j;
  return -1;
}

inline bool aligned(const at::Tensor& t) {
  return (reinterpret_cast<uintptr_t>(t.const_data_ptr()) & 15) == 0;
}

// Everything a plan's key holds that does not depend on the plan (numbers by kind only):
// false for an argument of a kind no plan is made for here.
bool fingerprint(const c10::IValue* args, int n, uint64_t* out) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (int i = 0; i < n; i++) {
    const c10::IValue& v = args[i];
    Number number;
    if (is_plain_tensor(v)) {
      const at::Tensor& t = v.toTensor();
      // sparse, nested and other tensors without strides (they reach autograd keys): no plan
      if (t.layout() != c10::kStrided || t.is_nested()) return false;
      h = mix(h, 3);
      h = mix(h, static_cast<uint64_t>(t.scalar_type()));
      h = mix(h, static_cast<uint64_t>(t.device().type()) << 8 |
                     static_cast<uint8_t>(t.device().index()));
      h = mix(h, t.dim());
      for (auto s : t.sizes()) h = mix(h, static_cast<uint64_t>(s));
      for (auto s : t.strides()) h = mix(h, static_cast<uint64_t>(s));
      h = mix(h, aligned(t));
      h = mix(h, static_cast<uint64_t>(same_as(args, i) + 1));
    } else if (number_of(v, &number)) {
      h = mix(h, is_wrapped_number(v) ? 5 : 4);
      h = mix(h, static_cast<uint64_t>(number.tag));
    } else if (is_none(v)) {
      h = mix(h, 1);
    } else if (v.isIntList()) {
      h = mix(h, 6);
      for (auto s : v.toIntList()) h = mix(h, static_cast<uint64_t>(static_cast<int64_t>(s)));
    } else if (v.isDoubleList()) {
      h = mix(h, 7);
      for (double d : v.toDoubleList()) h = mix(h, bits_of(d));
    } else if (v.isBoolList()) {
      h = mix(h, 8);
      for (bool b : v.toBoolList()) h = mix(h, b);
    } else if (v.isString()) {
      h = mix(h, 9);
      h = mix(h, std::hash<std::string>()(v.toStringRef()));
    } else if (v.isDevice()) {
      h = mix(h, 10);
      h = mix(h, static_cast<uint64_t>(v.toDevice().type()) << 8 |
                     static_cast<uint8_t>(v.toDevice().index()));
    } else {
      return false;
    }
  }
  *out = h;
  return true;
}

bool same_value(const c10::IValue& a, const c10::IValue& b) {
  if (is_none(a) || is_none(b)) return is_none(a) && is_none(b);
  if (a.isIntList() && b.isIntList()) return a.toIntVector() == b.toIntVector();
  if (a.isDoubleList() && b.isDoubleList()) {
    auto x = a.toDoubleVector(), y = b.toDoubleVector();
    if (x.size() != y.size()) return false;
    for (size_t i = 0; i < x.size(); i++)
      if (bits_of(x[i]) != bits_of(y[i])) return false;
    return true;
  }
  if (a.isBoolList() && b.isBoolList()) return a.toBoolList().vec() == b.toBoolList().vec();
  if (a.isString() && b.isString()) return a.toStringRef() == b.toStringRef();
  if (a.isDevice() && b.isDevice()) return a.toDevice() == b.toDevice();
  return false;
}

// ---- a plan ----
enum class Kind : uint8_t { None, Tensor, Number, Value };

struct Expect {
  Kind kind = Kind::None;
  // a tensor
  c10::ScalarType dtype = at::kFloat;
  c10::Device device{c10::DeviceType::CPU};
  std::vector<int64_t> sizes, strides;
  bool aligned = false;
  int same_as = -1;
  // a number: its kind, and where the key holds it, its value
  bool wrapped = false;
  Number number;
  bool by_value = true;
  // anything else, compared by value
  c10::IValue value;
};

struct PointerUse {
  int slot;
  int base;  // a call tensor (below the call's tensor count), else a new tensor
  int64_t offset;
};

struct NumberUse {
  int slot;
  int position;  // in the call's arguments
  int encoding;  // 0: float64 bits, 1: bool, 2: integer wrapped into 64 bits
  // PyTorch's range check of the value (Python's ``checked_scalar``): 0 none, 1 into a
  // floating type of range [low, high] (inf and NaN pass), 2 into an integer type: an int
  // within [int_low, int_high], a finite float within [low, int_high]
  int check = 0;
  double low = 0, high = 0;
  int64_t int_low = 0, int_high = 0;
  // a value checked into float16 (1) or bfloat16 (2) is also rounded to it, through float32
  // as c10 converts (the kernel compares with that value); 0: not rounded
  int rounding = 0;
};

// whether a number passes ``use``'s range check (else the full path raises PyTorch's error)
bool in_range(const c10::IValue& v, const NumberUse& use) {
  if (use.check == 0) return true;
  Number n;
  if (!number_of(v, &n)) return false;
  if (n.tag == 'b') return true;
  if (n.tag == 'c') return false;  // the full path takes a complex number's real part
  double d;
  std::memcpy(&d, &n.bits[0], sizeof d);
  const int64_t i = static_cast<int64_t>(n.bits[0]);
  if (use.check == 1) {
    if (n.tag == 'i') d = static_cast<double>(i);
    return std::isinf(d) || std::isnan(d) || (use.low <= d && d <= use.high);
  }
  if (n.tag == 'i') return use.int_low <= i && i <= use.int_high;
  if (!std::isfinite(d) || d < use.low) return false;
  // exactly ``d <= int_high``: int64's maximum is no double, and no double lies between it
  // and 2**63
  return use.int_high == INT64_MAX ? d < 9.223372036854775808e18
                                   : d <= static_cast<double>(use.int_high);
}

struct LaunchPlan {
  CUfunction function = nullptr;  // null: ``python_launch`` runs it (Triton's interpreter)
  unsigned grid[3] = {1, 1, 1};
  unsigned block = 0, shared = 0;
  std::vector<uint64_t> slots;
  std::vector<PointerUse> pointers;
  std::vector<NumberUse> numbers;
  int counter = 0;
  py::object python_launch;  // (bases, encoded numbers) -> None
};

struct Allocation {
  bool bytes = false;
  std::vector<int64_t> sizes, strides;
  c10::ScalarType dtype = at::kByte;
};

struct Plan {
  uint64_t hash = 0;
  std::vector<Expect> expects;
  std::vector<int> tensors;  // the positions of the call's tensors, in the plan's order
  std::vector<Allocation> allocations;
  std::vector<LaunchPlan> launches;
  bool result_new = true;
  int result_index = 0;
  int written = -1;
  std::vector<int64_t> spans;
  int device = -1;  // -1: the CPU (Triton's interpreter)
  // PyTorch's default dtype when the plan was made: a factory without ``dtype``, an integer
  // tensor's floating result (``sigmoid``, ``x * 2.5``) take it
  c10::ScalarType default_dtype = at::kFloat;
  // an out= without storage (the plan's tensor ``resized``, -1: none) the replay resizes first,
  // as the call did
  int resized = -1;
  std::vector<int64_t> resized_sizes, resized_strides;
  std::atomic<int64_t> replays{0};
};

// whether ``args`` match ``plan``'s key (``skip``: an argument position left out)
bool matches(const Plan& plan, const c10::IValue* args, int skip = -1) {
  if (c10::get_default_dtype_as_scalartype() != plan.default_dtype) return false;
  const int n = static_cast<int>(plan.expects.size());
  for (int i = 0; i < n; i++) {
    if (i == skip) continue;
    const Expect& e = plan.expects[i];
    const c10::IValue& v = args[i];
    switch (e.kind) {
      case Kind::None:
        if (!is_none(v)) return false;
        break;
      case Kind::Tensor: {
        if (!is_plain_tensor(v)) return false;
        const at::Tensor& t = v.toTensor();
        if (t.scalar_type() != e.dtype || t.device() != e.device || t.sizes() != e.sizes ||
            t.strides() != e.strides || aligned(t) != e.aligned || same_as(args, i) != e.same_as)
          return false;
        break;
      }
      case Kind::Number: {
        Number number;
        if (is_wrapped_number(v) != e.wrapped || !number_of(v, &number) ||
            number.tag != e.number.tag)
          return false;
        if (e.by_value &&
            (number.bits[0] != e.number.bits[0] || number.bits[1] != e.number.bits[1]))
          return false;
        break;
      }
      case Kind::Value:
        if (!same_value(v, e.value)) return false;
        break;
    }
  }
  return true;
}

// a number as the int64 a kernel's scalar slot carries (Python's ``encode_scalar``); false
// where Python's encoding raises (the full path then raises as it would)
bool encode(const c10::IValue& v, int encoding, uint64_t* out, int rounding = 0) {
  Number n;
  if (!number_of(v, &n)) return false;
  double d;
  int64_t i;
  std::memcpy(&d, &n.bits[0], sizeof d);
  std::memcpy(&i, &n.bits[0], sizeof i);
  switch (encoding) {
    case 0: {  // floating: the float64 value's bits
      double value;
      if (n.tag == 'd') value = d;
      else if (n.tag == 'i') value = static_cast<double>(i);
      else if (n.tag == 'b') value = n.bits[0] ? 1.0 : 0.0;
      else return false;  // float(complex) raises
      if (rounding == 1 && n.tag != 'b')
        value = static_cast<float>(c10::Half(static_cast<float>(value)));
      else if (rounding == 2 && n.tag != 'b')
        value = static_cast<float>(c10::BFloat16(static_cast<float>(value)));
      *out = bits_of(value);
      return true;
    }
    case 1: {  // bool
      if (n.tag == 'd') *out = d != 0.0 || std::isnan(d);
      else if (n.tag == 'c') {
        double im;
        std::memcpy(&im, &n.bits[1], sizeof im);
        *out = d != 0.0 || std::isnan(d) || im != 0.0 || std::isnan(im);
      } else *out = n.bits[0] != 0;
      return true;
    }
    default: {  // integer: truncated toward zero, wrapped into 64 bits
      if (n.tag == 'd') {
        if (!std::isfinite(d)) *out = 0;
        else if (std::fabs(d) < 9.2e18) *out = static_cast<uint64_t>(static_cast<int64_t>(d));
        else return false;
      } else if (n.tag == 'c') {
        return false;
      } else {
        *out = n.bits[0];
      }
      return true;
    }
  }
}

// ---- the thread's pending offer: the plan the Python kernel offers for the call it served ----
struct Pending {
  py::object spec;
  ~Pending() {
    if (spec) {  // a call that raised after its kernel offered: released with the GIL
      py::gil_scoped_acquire gil;
      spec = py::object();
    }
  }
};
thread_local Pending* pending = nullptr;
thread_local bool interpreting = false;

// While it lives, the thread's pending offer is ``offer``'s (null: none, so that a call made
// inside, which has nothing to offer this route, cannot offer to an outer route's either).
struct OfferScope {
  explicit OfferScope(Pending* offer) : outer(pending) { pending = offer; }
  ~OfferScope() { pending = outer; }
  Pending* outer;
};

constexpr int kPlans = 256;

// whether autograd must record a call of these arguments: grad mode is on and a tensor
// requires grad, or a tensor carries a tangent (forward AD has one level)
bool needs_grad(const c10::IValue* args, int n) {
  const bool grad_mode = c10::GradMode::is_enabled();
  for (int i = 0; i < n; i++) {
    if (!is_plain_tensor(args[i])) continue;
    const at::Tensor& t = args[i].toTensor();
    if ((grad_mode && t.requires_grad()) || t._fw_grad(0).defined()) return true;
  }
  return false;
}

struct Route final : public c10::OperatorKernel {
  Route(c10::SafeKernelFunction miss, int nargs, bool autograd)
      : miss(std::move(miss)), nargs(nargs), autograd(autograd) {}

  ~Route() override {
    // plans hold Python objects (interpreted launches): released with the GIL, or left to
    // the process's end where Python has already gone
    if (!Py_IsInitialized() || _Py_IsFinalizing()) {
      for (auto& plan : owned)
        for (auto& launch : plan->launches) launch.python_launch.release();
      return;
    }
    py::gil_scoped_acquire gil;
    for (auto& plan : owned)
      for (auto& launch : plan->launches) launch.python_launch = py::object();
  }

  void operator()(const c10::OperatorHandle& op, c10::DispatchKeySet keys,
                  torch::jit::Stack* stack) {
    c10::IValue* args = stack->data() + stack->size() - nargs;
    if (autograd && needs_grad(args, nargs)) {
      // at a CompositeImplicitAutograd op's autograd key, a call autograd records runs
      // PyTorch's decomposition, as the Python kernel there would have it run
      misses.fetch_add(1, std::memory_order_relaxed);
      OfferScope none(nullptr);
      op.callBoxedForDispatchKey(c10::DispatchKey::CompositeImplicitAutograd, *stack);
      return;
    }
    uint64_t hash = 0;
    bool keyed = !interpreting && fingerprint(args, nargs, &hash);
    if (keyed) {
      Plan* plan = last.load(std::memory_order_relaxed);
      if (plan == nullptr || plan->hash != hash || !matches(*plan, args)) {
        plan = nullptr;
        const int count = planned.load(std::memory_order_acquire);
        for (int i = 0; i < count; i++) {
          Plan* p = plans[i];
          if (p->hash == hash && matches(*p, args)) {
            plan = p;
            break;
          }
        }
      }
      if (plan != nullptr) {
        at::Tensor result;
        if (replay(*plan, args, &result)) {
          last.store(plan, std::memory_order_relaxed);
          torch::jit::drop(*stack, nargs);
          stack->emplace_back(std::move(result));
          return;
        }
      }
    }
    misses.fetch_add(1, std::memory_order_relaxed);
    if (!keyed) {  // nothing to offer to this call, nor to an outer route's
      OfferScope none(nullptr);
      miss.callBoxed(op, keys, stack);
      return;
    }
    // the arguments, kept past the call (which consumes them), to key an offered plan
    std::vector<c10::IValue> saved(args, args + nargs);
    std::vector<Expect> before = describe(saved.data());  // as the call's key saw them
    Pending offer;
    {
      OfferScope scope(&offer);
      miss.callBoxed(op, keys, stack);
    }
    if (offer.spec) {
      py::gil_scoped_acquire gil;
      py::object spec = std::move(offer.spec);
      try {
        adopt(spec, saved.data(), std::move(before), hash);
      } catch (const std::exception&) {
        // a plan this route cannot read is not adopted; the call itself has succeeded
      }
    }
  }

  // the key's expectations of a call's arguments (numbers by value until a plan says which
  // it encodes per call)
  std::vector<Expect> describe(const c10::IValue* args) const {
    std::vector<Expect> expects(nargs);
    for (int i = 0; i < nargs; i++) {
      const c10::IValue& v = args[i];
      Expect& e = expects[i];
      if (is_plain_tensor(v)) {
        const at::Tensor& t = v.toTensor();
        e.kind = Kind::Tensor;
        e.dtype = t.scalar_type();
        e.device = t.device();
        e.sizes = t.sizes().vec();
        e.strides = t.strides().vec();
        e.aligned = aligned(t);
        e.same_as = same_as(args, i);
      } else if (number_of(v, &e.number)) {
        e.kind = Kind::Number;
        e.wrapped = is_wrapped_number(v);
      } else if (is_none(v)) {
        e.kind = Kind::None;
      } else {
        e.kind = Kind::Value;
        e.value = v;
      }
    }
    return expects;
  }

  // a plan offered by the Python kernel for the call of ``args`` it served (``before``: the
  // arguments described before the call), kept where they still match that description (an
  // out= resized by the call does not)
  void adopt(const py::object& spec, const c10::IValue* args, std::vector<Expect> before,
             uint64_t hash) {
    auto plan = std::make_unique<Plan>();
    plan->hash = hash;
    plan->expects = std::move(before);
    plan->default_dtype = c10::get_default_dtype_as_scalartype();
    auto tensors = spec.attr("tensors").cast<std::vector<int>>();
    int resized_position = -1;
    py::object resized = spec.attr("resized");
    if (!resized.is_none()) {
      auto r = resized.cast<py::tuple>();
      plan->resized = r[0].cast<int>();
      if (plan->resized < 0 || plan->resized >= (int)tensors.size()) return;
      resized_position = tensors[plan->resized];
      plan->resized_sizes = r[1].cast<std::vector<int64_t>>();
      plan->resized_strides = r[2].cast<std::vector<int64_t>>();
    }
    // the arguments as the call left them: as described before it, but for a resized out=
    if (!matches(*plan, args, resized_position)) return;
    auto encoded = spec.attr("encoded").cast<std::vector<int>>();
    bool by_value = spec.attr("numbers_by_value").cast<bool>();
    // the plan's tensors are exactly the call's tensor arguments
    int plain = 0;
    for (int i = 0; i < nargs; i++) plain += plan->expects[i].kind == Kind::Tensor;
    if (static_cast<int>(tensors.size()) != plain) return;
    for (int p : tensors)
      if (p < 0 || p >= nargs || plan->expects[p].kind != Kind::Tensor) return;
    for (auto& e : plan->expects) e.by_value = true;
    if (!by_value)
      for (int p : encoded) {
        if (p < 0 || p >= nargs || plan->expects[p].kind != Kind::Number) return;
        plan->expects[p].by_value = false;
      }
    plan->tensors = tensors;
    plan->device = spec.attr("device").cast<int>();
    for (auto item : spec.attr("allocations")) {
      auto a = item.cast<py::tuple>();
      Allocation allocation;
      allocation.bytes = a[0].cast<bool>();
      allocation.sizes = a[1].cast<std::vector<int64_t>>();
      allocation.strides = a[2].cast<std::vector<int64_t>>();
      allocation.dtype = reinterpret_cast<THPDtype*>(a[3].ptr())->scalar_type;
      plan->allocations.push_back(std::move(allocation));
    }
    const int bases = static_cast<int>(tensors.size() + plan->allocations.size());
    for (auto item : spec.attr("launches")) {
      auto l = item.cast<py::tuple>();
      LaunchPlan launch;
      if (!l[0].is_none()) {
        auto native = l[0].cast<py::tuple>();
        launch.function = reinterpret_cast<CUfunction>(native[0].cast<uint64_t>());
        for (int k = 0; k < 3; k++) launch.grid[k] = native[1 + k].cast<unsigned>();
        launch.block = native[4].cast<unsigned>();
        launch.shared = native[5].cast<unsigned>();
        std::string slots = native[6].cast<std::string>();
        launch.slots.resize(slots.size() / 8);
        std::memcpy(launch.slots.data(), slots.data(), launch.slots.size() * 8);
        if (!load_driver()) return;
      } else {
        launch.python_launch = l[3];
      }
      for (auto p : l[1]) {
        auto t = p.cast<py::tuple>();
        PointerUse use{t[0].cast<int>(), t[1].cast<int>(), t[2].cast<int64_t>()};
        if (use.base < 0 || use.base >= bases) return;
        if (launch.function && (use.slot < 0 || use.slot >= (int)launch.slots.size())) return;
        launch.pointers.push_back(use);
      }
      for (auto p : l[2]) {
        auto t = p.cast<py::tuple>();
        NumberUse use{t[0].cast<int>(), t[1].cast<int>(), t[2].cast<int>()};
        auto check = t[3].cast<py::tuple>();
        use.check = check[0].cast<int>();
        use.low = check[1].cast<double>();
        use.high = check[2].cast<double>();
        use.int_low = check[3].cast<int64_t>();
        use.int_high = check[4].cast<int64_t>();
        use.rounding = check[5].cast<int>();
        if (use.rounding && (use.check != 1 || use.encoding != 0)) return;
        if (use.position < 0 || use.position >= nargs ||
            plan->expects[use.position].kind != Kind::Number)
          return;
        if (launch.function && (use.slot < 0 || use.slot >= (int)launch.slots.size())) return;
        launch.numbers.push_back(use);
      }
      launch.counter = l[4].cast<int>();
      if (launch.counter < 0 || launch.counter >= kCounters) return;
      plan->launches.push_back(std::move(launch));
    }
    auto result = spec.attr("result").cast<py::tuple>();
    plan->result_new = result[0].cast<bool>();
    plan->result_index = result[1].cast<int>();
    if (plan->result_index < 0 ||
        plan->result_index >= (int)(plan->result_new ? plan->allocations.size() : tensors.size()))
      return;
    plan->written = spec.attr("written").cast<int>();
    plan->spans = spec.attr("spans").cast<std::vector<int64_t>>();
    if (plan->spans.size() != tensors.size() || plan->written >= (int)tensors.size()) return;
    std::lock_guard<std::mutex> guard(lock);
    const int count = planned.load(std::memory_order_relaxed);
    if (count >= kPlans) return;
    for (int i = 0; i < count; i++)
      if (plans[i]->hash == hash && matches(*plans[i], args)) return;  // one there already
    plans[count] = plan.get();
    owned.push_back(std::move(plan));
    planned.store(count + 1, std::memory_order_release);
  }

  // the plan's replay: false (nothing done) where the written tensor overlaps another or a
  // number cannot be encoded; the full path then decides
  bool replay(Plan& plan, const c10::IValue* args, at::Tensor* result) {
    if (plan.device >= 0 && current_cuda_device() != plan.device) return false;
    const int count = static_cast<int>(plan.tensors.size());
    const int total = count + static_cast<int>(plan.allocations.size());
    std::array<uintptr_t, 16> stack_pointers;
    std::vector<uintptr_t> heap_pointers;
    uintptr_t* pointers = stack_pointers.data();
    if (total > 16) {
      heap_pointers.resize(total);
      pointers = heap_pointers.data();
    }
    for (int i = 0; i < count; i++)
      pointers[i] =
          reinterpret_cast<uintptr_t>(args[plan.tensors[i]].toTensor().const_data_ptr());
    const int w = plan.written;
    if (w >= 0 && plan.spans[w]) {
      const uintptr_t lo = pointers[w], hi = lo + plan.spans[w];
      const c10::TensorImpl* written = args[plan.tensors[w]].toTensor().unsafeGetTensorImpl();
      for (int i = 0; i < count; i++) {
        if (i == w || !plan.spans[i]) continue;
        if (pointers[i] < hi && lo < pointers[i] + plan.spans[i] &&
            args[plan.tensors[i]].toTensor().unsafeGetTensorImpl() != written)
          return false;
      }
    }
    // every number encoded before anything is allocated or launched
    std::vector<uint64_t> encoded;
    for (auto& launch : plan.launches)
      for (auto& use : launch.numbers) {
        uint64_t value;
        if (!in_range(args[use.position], use) ||
            !encode(args[use.position], use.encoding, &value, use.rounding))
          return false;
        encoded.push_back(value);
      }
    if (plan.resized >= 0) {  // the first write
      at::Tensor out = args[plan.tensors[plan.resized]].toTensor();
      if (out.storage().nbytes() != 0) return false;  // the full path decides
      out.resize_(plan.resized_sizes);
      if (out.strides() != c10::IntArrayRef(plan.resized_strides))
        out.as_strided_(plan.resized_sizes, plan.resized_strides);
      // new memory, which no other tensor shares: nothing to check for overlap
      pointers[plan.resized] = reinterpret_cast<uintptr_t>(out.const_data_ptr());
    }
    std::vector<at::Tensor> news;
    news.reserve(plan.allocations.size());
    for (auto& a : plan.allocations) news.push_back(allocate(a, plan.device));
    for (size_t j = 0; j < news.size(); j++)
      pointers[count + j] = reinterpret_cast<uintptr_t>(news[j].const_data_ptr());
    CUstream stream = nullptr;
    if (plan.device >= 0) stream = current_cuda_stream(plan.device);
    size_t next = 0;
    for (auto& launch : plan.launches) {
      if (launch.function != nullptr) {
        constexpr size_t kSlots = 128;
        uint64_t values[kSlots];
        void* params[kSlots];
        const size_t slots = launch.slots.size();
        TORCH_CHECK(slots <= kSlots, "too many kernel parameters");
        std::memcpy(values, launch.slots.data(), slots * sizeof(uint64_t));
        for (auto& use : launch.pointers) values[use.slot] = pointers[use.base] + use.offset;
        for (auto& use : launch.numbers) values[use.slot] = encoded[next++];
        for (size_t i = 0; i < slots; i++) params[i] = &values[i];
        ensure_context(plan.device);
        driver_check(cu_launch(launch.function, launch.grid[0], launch.grid[1], launch.grid[2],
                               launch.block, 1, 1, launch.shared, stream, params, nullptr));
        launch_counts[launch.counter].fetch_add(1, std::memory_order_relaxed);
      } else {  // counted by the Python launch
        py::gil_scoped_acquire gil;
        py::list bases;
        for (int i = 0; i < count; i++) bases.append(args[plan.tensors[i]].toTensor());
        for (auto& t : news) bases.append(t);
        py::list values;
        for (size_t k = 0; k < launch.numbers.size(); k++)
          values.append(static_cast<int64_t>(encoded[next++]));
        launch.python_launch(bases, values);
      }
    }
    plan.replays.fetch_add(1, std::memory_order_relaxed);
    *result = plan.result_new ? news[plan.result_index]
                              : args[plan.tensors[plan.result_index]].toTensor();
    return true;
  }

  static at::Tensor allocate(const Allocation& a, int device) {
    if (device < 0)
      return at::detail::empty_strided_cpu(a.sizes, a.strides, a.dtype);
    // the CUDA caching allocator, below the dispatcher (as PyTorch's own kernels allocate)
    static c10::Allocator* allocator = c10::GetAllocator(c10::DeviceType::CUDA);
    return at::detail::empty_strided_generic(a.sizes, a.strides, allocator,
                                             c10::DispatchKeySet(c10::DispatchKey::CUDA),
                                             a.dtype);
  }

  c10::SafeKernelFunction miss;
  const int nargs;
  const bool autograd;
  std::mutex lock;
  std::array<Plan*, kPlans> plans{};
  std::atomic<int> planned{0};
  std::atomic<Plan*> last{nullptr};
  std::vector<std::unique_ptr<Plan>> owned;
  std::atomic<int64_t> misses{0};
};

struct QuietWarnings final : public c10::WarningHandler {
  void process(const c10::Warning&) override {}
};

// never destroyed at the process's end (after Python's, which ``unroute`` at exit precedes):
// Python's atexit removes the routes (native_dispatch.py)
auto& libraries = *new std::vector<std::pair<c10::DispatchKey, std::unique_ptr<torch::Library>>>;
auto& routes = *new std::vector<Route*>;

// route("sigmoid.out", "CUDA"): the overload's calls at that key (CUDA, CPU, AutogradCUDA or
// AutogradCPU) come here; a miss runs the kernel registered there now. Returns the route's
// index (for ``stats``).
int route(const std::string& qualname, const std::string& key) {
  auto dot = qualname.find('.');
  std::string name = "aten::" + qualname.substr(0, dot);
  std::string overload = dot == std::string::npos ? "" : qualname.substr(dot + 1);
  auto op = c10::Dispatcher::singleton().findSchemaOrThrow(name.c_str(), overload.c_str());
  c10::DispatchKey dispatch_key = c10::parseDispatchKey(key);
  torch::Library* library = nullptr;
  for (auto& entry : libraries)
    if (entry.first == dispatch_key) library = entry.second.get();
  if (library == nullptr) {
    libraries.emplace_back(dispatch_key, std::make_unique<torch::Library>(
                                             torch::Library::IMPL, "aten", dispatch_key,
                                             __FILE__, __LINE__));
    library = libraries.back().second.get();
  }
  auto miss = op.getComputedKernelForDispatchKey(dispatch_key);
  int nargs = static_cast<int>(op.schema().arguments().size());
  bool autograd = c10::isIncludedInAlias(dispatch_key, c10::DispatchKey::Autograd);
  auto kernel = std::make_unique<Route>(std::move(miss), nargs, autograd);
  routes.push_back(kernel.get());
  QuietWarnings quiet;  // "Overriding a previously registered kernel": the point here
  c10::WarningUtils::WarningHandlerGuard guard(&quiet);
  library->impl(qualname.c_str(), torch::CppFunction::makeFromBoxedFunctor(std::move(kernel)));
  return static_cast<int>(routes.size()) - 1;
}

void unroute() {
  routes.clear();
  libraries.clear();  // deregisters every route; the kernels registered before are back
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("route", &route);
  m.def("unroute", &unroute);
  m.def("awaiting", []() { return pending != nullptr && !pending->spec; });
  m.def("offer", [](py::object spec) {
    if (pending != nullptr && !pending->spec) pending->spec = std::move(spec);
  });
  m.def("set_interpreting", [](bool on) { interpreting = on; });
  m.def("launch_count", [](int counter) {
    return counter >= 0 && counter < kCounters ? launch_counts[counter].load() : 0;
  });
  m.def("stats", [](int index) {
    TORCH_CHECK(index >= 0 && index < (int)routes.size(), "no such route");
    Route* r = routes[index];
    int64_t replays = 0;
    const int count = r->planned.load();
    for (int i = 0; i < count; i++) replays += r->plans[i]->replays.load();
    return py::make_tuple(count, replays, r->misses.load());
  });
  m.def("driver", []() { return load_driver(); });
}
