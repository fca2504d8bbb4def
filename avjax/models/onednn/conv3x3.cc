// The towers' 3x3 convolution (NHWC activations, HWIO kernel, f32, SAME padding, stride 1 or
// 2) as three XLA FFI handlers that run oneDNN's primitives: forward, input gradient and
// kernel gradient. Built by avjax/models/onednn/build.py; registered and called from
// avjax/models/onednn/__init__.py.
//
// Threads: each call opens an OpenMP team on every core (OMP_NUM_THREADS), even when XLA runs
// another operation at the same time (the two towers): sharing the cores between concurrent
// calls measured slower (avol:paper 4.3-4.8 against 5.2-5.4 clips/s). A small convolution
// runs on one thread: a team's start and its barriers cost more than it saves there (a
// 0.6 MFLOP kernel gradient took 3.9 ms on two threads, 0.1 ms on one). A primitive divides
// its work by the thread count it was created with, so the cache keys on that count too.
//
// Activations stay in XLA's NHWC layout (oneDNN's "nhwc" tag, which PyTorch's channels-last
// path also uses); the kernel is reordered between XLA's HWIO and the layout the primitive
// prefers. Primitives and reorders are cached by shape, since creating one costs far more than
// a small convolution.

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

enum class Kind { kForward, kInputGrad, kKernelGrad };

// One convolution's geometry: input [n, h, w, c], kernel [3, 3, c, o], output [n, oh, ow, o].
struct Shape {
  int64_t n, h, w, c, o, stride;
  int64_t oh() const { return (h + stride - 1) / stride; }
  int64_t ow() const { return (w + stride - 1) / stride; }
  // SAME padding as XLA computes it: the total split with the smaller half first.
  double flops() const { return 2.0 * n * oh() * ow() * c * o * 9; }
  int64_t pad_lo(int64_t in, int64_t out) const {
    int64_t total = std::max<int64_t>((out - 1) * stride + 3 - in, 0);
    return total / 2;
  }
  int64_t pad_hi(int64_t in, int64_t out) const {
    int64_t total = std::max<int64_t>((out - 1) * stride + 3 - in, 0);
    return total - total / 2;
  }
  auto key(Kind kind, int threads) const {
    return std::make_tuple(int(kind), n, h, w, c, o, stride, threads);
  }
};

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// A cached primitive with the kernel layout it wants and the reorder to or from XLA's HWIO
// (absent when the two layouts agree), each with the scratch memory it needs.
struct Cached {
  dnnl::primitive conv;
  dnnl::memory::desc conv_scratch;
  dnnl::memory::desc kernel_desc;       // the primitive's kernel (or kernel gradient) layout
  dnnl::memory::desc user_kernel_desc;  // HWIO
  std::unique_ptr<dnnl::reorder> kernel_reorder;
  dnnl::memory::desc reorder_scratch;
  dnnl::memory::desc src_desc, dst_desc;
};

struct Descs {
  dnnl::memory::desc src, kernel_any, dst, user_kernel;
  dnnl::memory::dims strides, pad_l, pad_r;
};

Descs MakeDescs(const Shape& s) {
  Descs d;
  d.src = dnnl::memory::desc({s.n, s.c, s.h, s.w}, dt::f32, tag::nhwc);
  d.dst = dnnl::memory::desc({s.n, s.o, s.oh(), s.ow()}, dt::f32, tag::nhwc);
  d.kernel_any = dnnl::memory::desc({s.o, s.c, 3, 3}, dt::f32, tag::any);
  d.user_kernel = dnnl::memory::desc({s.o, s.c, 3, 3}, dt::f32, tag::hwio);
  d.strides = {s.stride, s.stride};
  d.pad_l = {s.pad_lo(s.h, s.oh()), s.pad_lo(s.w, s.ow())};
  d.pad_r = {s.pad_hi(s.h, s.oh()), s.pad_hi(s.w, s.ow())};
  return d;
}

// Scratch memory comes with each call: by default oneDNN shares one scratchpad between all
// primitives, and XLA runs several devices' (or towers') convolutions at once.
dnnl::primitive_attr CallerScratch() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

void AddReorder(Cached* cached, const dnnl::memory::desc& from, const dnnl::memory::desc& to) {
  if (from == to) return;
  dnnl::reorder::primitive_desc pd(Engine(), from, Engine(), to, CallerScratch());
  cached->kernel_reorder = std::make_unique<dnnl::reorder>(pd);
  cached->reorder_scratch = pd.scratchpad_desc();
}

template <typename PrimitiveDesc>
void SetConv(Cached* cached, const PrimitiveDesc& pd, const dnnl::memory::desc& kernel,
             const dnnl::memory::desc& src, const dnnl::memory::desc& dst) {
  cached->conv_scratch = pd.scratchpad_desc();
  cached->kernel_desc = kernel;
  cached->src_desc = src;
  cached->dst_desc = dst;
}

std::unique_ptr<Cached> Build(Kind kind, const Shape& s) {
  Descs d = MakeDescs(s);
  auto cached = std::make_unique<Cached>();
  cached->user_kernel_desc = d.user_kernel;
  dnnl::convolution_forward::primitive_desc forward(
      Engine(), dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, d.src,
      d.kernel_any, d.dst, d.strides, d.pad_l, d.pad_r, CallerScratch());
  if (kind == Kind::kForward) {
    cached->conv = dnnl::convolution_forward(forward);
    SetConv(cached.get(), forward, forward.weights_desc(), forward.src_desc(),
            forward.dst_desc());
    AddReorder(cached.get(), d.user_kernel, cached->kernel_desc);
  } else if (kind == Kind::kInputGrad) {
    dnnl::convolution_backward_data::primitive_desc pd(
        Engine(), dnnl::algorithm::convolution_direct, d.src, d.kernel_any, d.dst, d.strides,
        d.pad_l, d.pad_r, forward, CallerScratch());
    cached->conv = dnnl::convolution_backward_data(pd);
    SetConv(cached.get(), pd, pd.weights_desc(), pd.diff_src_desc(), pd.diff_dst_desc());
    AddReorder(cached.get(), d.user_kernel, cached->kernel_desc);
  } else {
    dnnl::convolution_backward_weights::primitive_desc pd(
        Engine(), dnnl::algorithm::convolution_direct, d.src, d.kernel_any, d.dst, d.strides,
        d.pad_l, d.pad_r, forward, CallerScratch());
    cached->conv = dnnl::convolution_backward_weights(pd);
    SetConv(cached.get(), pd, pd.diff_weights_desc(), pd.src_desc(), pd.diff_dst_desc());
    AddReorder(cached.get(), cached->kernel_desc, d.user_kernel);
  }
  // nhwc was asked for explicitly; a primitive that changed it would read the buffers wrongly.
  if (cached->src_desc != d.src || cached->dst_desc != d.dst) {
    throw dnnl::error(dnnl_unimplemented, "oneDNN chose a non-NHWC activation layout");
  }
  return cached;
}

// Primitives are immutable once built and may run on several threads at once; the map is
// guarded, the entries are never removed. Built with the calling thread's OpenMP thread count
// set to `threads`.
const Cached& Lookup(Kind kind, const Shape& s, int threads) {
  static std::mutex mutex;
  static std::map<decltype(s.key(kind, threads)), std::unique_ptr<Cached>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto& entry = cache[s.key(kind, threads)];
  if (!entry) entry = Build(kind, s);
  return *entry;
}

// The machine's thread count (OMP_NUM_THREADS, else the cores), read once before any call
// changes a thread's own setting.
int MaxThreads() {
  static const int max_threads = omp_get_max_threads();
  return max_threads;
}

// Work below which one more thread does not pay for itself.
constexpr double kFlopsPerThread = 8e6;

// Sets the calling thread's OpenMP team for one convolution; returns its size.
int SetThreads(const Shape& s) {
  int threads = std::max(1, std::min(MaxThreads(), int(s.flops() / kFlopsPerThread)));
  omp_set_num_threads(threads);
  return threads;
}

// Memory one thread reuses from call to call (grown when too small), so that a call neither
// shares it with another thread nor pays for a fresh allocation and its page faults.
class ThreadBuffer {
 public:
  ~ThreadBuffer() { std::free(data_); }
  void* Get(size_t bytes) {
    if (bytes > size_) {
      std::free(data_);
      size_ = (bytes + 63) / 64 * 64;
      data_ = std::aligned_alloc(64, size_);
      if (!data_) {
        size_ = 0;
        throw std::bad_alloc();
      }
    }
    return data_;
  }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

thread_local ThreadBuffer scratch_buffer, kernel_buffer;

ffi::Error Run(Kind kind, const Shape& s, float* src, float* kernel, float* dst) {
  try {
    const Cached& p = Lookup(kind, s, SetThreads(s));
    dnnl::stream stream(Engine());
    dnnl::memory src_mem(p.src_desc, Engine(), src);
    dnnl::memory dst_mem(p.dst_desc, Engine(), dst);
    dnnl::memory user_kernel(p.user_kernel_desc, Engine(), kernel);
    dnnl::memory kernel_mem =
        p.kernel_reorder
            ? dnnl::memory(p.kernel_desc, Engine(), kernel_buffer.Get(p.kernel_desc.get_size()))
            : user_kernel;
    // The reorder and the convolution run one after the other: one scratch buffer serves both.
    void* scratch = scratch_buffer.Get(
        std::max<size_t>({p.conv_scratch.get_size(), p.reorder_scratch.get_size(), 1}));
    dnnl::memory conv_scratch(p.conv_scratch, Engine(), scratch);
    auto reorder = [&](dnnl::memory& from, dnnl::memory& to) {
      p.kernel_reorder->execute(stream, {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to},
                                         {DNNL_ARG_SCRATCHPAD, dnnl::memory(
                                             p.reorder_scratch, Engine(), scratch)}});
    };
    if (kind == Kind::kForward) {
      if (p.kernel_reorder) reorder(user_kernel, kernel_mem);
      p.conv.execute(stream, {{DNNL_ARG_SRC, src_mem}, {DNNL_ARG_WEIGHTS, kernel_mem},
                              {DNNL_ARG_DST, dst_mem}, {DNNL_ARG_SCRATCHPAD, conv_scratch}});
    } else if (kind == Kind::kInputGrad) {
      if (p.kernel_reorder) reorder(user_kernel, kernel_mem);
      p.conv.execute(stream, {{DNNL_ARG_DIFF_SRC, src_mem}, {DNNL_ARG_WEIGHTS, kernel_mem},
                              {DNNL_ARG_DIFF_DST, dst_mem}, {DNNL_ARG_SCRATCHPAD, conv_scratch}});
    } else {
      p.conv.execute(stream, {{DNNL_ARG_SRC, src_mem}, {DNNL_ARG_DIFF_WEIGHTS, kernel_mem},
                              {DNNL_ARG_DIFF_DST, dst_mem}, {DNNL_ARG_SCRATCHPAD, conv_scratch}});
      if (p.kernel_reorder) reorder(kernel_mem, user_kernel);
    }
    stream.wait();
  } catch (const std::exception& e) {  // dnnl::error, or memory exhausted
    return ffi::Error(ffi::ErrorCode::kInternal, std::string("oneDNN: ") + e.what());
  }
  return ffi::Error::Success();
}

template <typename A, typename B>
bool Rank4(const A& a, const B& b) {
  return a.dimensions().size() == 4 && b.dimensions().size() == 4;
}

const char kRank[] = "avjax_conv3x3: rank-4 operands expected";

ffi::Error Forward(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> k,
                   ffi::ResultBuffer<ffi::F32> y, int64_t stride) {
  if (!Rank4(x, k)) return ffi::Error::InvalidArgument(kRank);
  auto xd = x.dimensions(), kd = k.dimensions();
  Shape s{xd[0], xd[1], xd[2], xd[3], kd[3], stride};
  return Run(Kind::kForward, s, x.typed_data(), k.typed_data(), y->typed_data());
}

// dy [n, oh, ow, o], k [3, 3, c, o] -> dx [n, h, w, c]; h and w are dx's.
ffi::Error InputGrad(ffi::Buffer<ffi::F32> dy, ffi::Buffer<ffi::F32> k,
                     ffi::ResultBuffer<ffi::F32> dx, int64_t stride) {
  if (!Rank4(dy, k)) return ffi::Error::InvalidArgument(kRank);
  auto xd = dx->dimensions(), kd = k.dimensions();
  Shape s{xd[0], xd[1], xd[2], xd[3], kd[3], stride};
  return Run(Kind::kInputGrad, s, dx->typed_data(), k.typed_data(), dy.typed_data());
}

// x [n, h, w, c], dy [n, oh, ow, o] -> dk [3, 3, c, o].
ffi::Error KernelGrad(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> dy,
                      ffi::ResultBuffer<ffi::F32> dk, int64_t stride) {
  if (!Rank4(x, dy)) return ffi::Error::InvalidArgument(kRank);
  auto xd = x.dimensions(), kd = dk->dimensions();
  Shape s{xd[0], xd[1], xd[2], xd[3], kd[3], stride};
  return Run(Kind::kKernelGrad, s, x.typed_data(), dk->typed_data(), dy.typed_data());
}

}  // namespace

// All three take two f32 operands and the stride, and return one f32 result.
auto Binding() {
  return ffi::Ffi::Bind()
      .Arg<ffi::Buffer<ffi::F32>>()
      .Arg<ffi::Buffer<ffi::F32>>()
      .Ret<ffi::Buffer<ffi::F32>>()
      .Attr<int64_t>("stride");
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(AvjaxConv3x3Forward, Forward, Binding());
XLA_FFI_DEFINE_HANDLER_SYMBOL(AvjaxConv3x3InputGrad, InputGrad, Binding());
XLA_FFI_DEFINE_HANDLER_SYMBOL(AvjaxConv3x3KernelGrad, KernelGrad, Binding());

// The oneDNN version this library runs on, for the benchmark's header line.
extern "C" const char* AvjaxOnednnVersion() {
  static std::string text = [] {
    const dnnl_version_t* v = dnnl_version();
    return std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
           std::to_string(v->patch);
  }();
  return text.c_str();
}
