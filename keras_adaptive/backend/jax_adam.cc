// Adam's whole step in one pass over memory, for JAX on CPU (see jax_native.py).
//
// XLA:CPU gives each output of a fusion its own loop: the weight, m and v of a weight are
// three loops, which move 40 bytes per float32 parameter where the update needs 28 (read
// w, g, m, v; write w, m, v). This kernel reads and writes each once, in place (the
// operands are aliased to the results), split into chunks over XLA's intra-op threads.
//
// Operands, in this order (jax_native.update passes them by these names):
//   learning_rate        f32[]  alpha, for the decoupled weight decay (0)
//   step_scale           f32[]  alpha / (1 - beta_1^t), or alpha without bias correction: (4), (5)
//   second_moment_scale  f32[]  1 / (1 - beta_2^t), or 1 without bias correction: (4)
//   decay                f32[k] the decoupled weight decay of each of the k weights (0 for none)
//   then per weight w, g, m, v (and v_max with AMSGrad).
// Attributes: beta_1, one_minus_beta_1, beta_2, one_minus_beta_2, epsilon (f32), amsgrad,
// inside (bool). Results: per weight w, m, v (, v_max), aliased to those operands.
// The scalars come from Adam.step_scalars (keras_adaptive.math.debias_factor), and the
// arithmetic is Adam.update_step's, operation for operation, in float32.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int64_t kChunk = 1 << 15;  // elements: 128 KiB per array, so a chunk's 5 streams stay in L2

struct Tensor {
  float *w, *m, *v, *v_max;
  const float* g;
  float decay;
};

struct Scalars {
  float learning_rate, step_scale, second_moment_scale;
  float beta_1, one_minus_beta_1, beta_2, one_minus_beta_2, epsilon;
};

template <bool kAmsgrad, bool kInside, bool kDecay>
void Update(const Tensor& t, const Scalars& s, int64_t lo, int64_t hi) {
  float* __restrict w = t.w;
  float* __restrict m = t.m;
  float* __restrict v = t.v;
  float* __restrict v_max = t.v_max;
  const float* __restrict g = t.g;
  const float decay = t.decay;
#pragma omp simd
  for (int64_t i = lo; i < hi; ++i) {
    float wi = w[i];
    if constexpr (kDecay) wi = wi - wi * decay * s.learning_rate;  // (0) Keras' decoupled weight decay
    const float gi = g[i];
    const float mi = s.beta_1 * m[i] + s.one_minus_beta_1 * gi;         // (1)
    float vi = s.beta_2 * v[i] + s.one_minus_beta_2 * (gi * gi);        // (2)
    m[i] = mi;
    v[i] = vi;
    if constexpr (kAmsgrad) {
      const float old = v_max[i];
      vi = vi < old ? old : vi;  // (3) a select, which GCC vectorizes (std::max it does not)
      v_max[i] = vi;
    }
    const float v_hat = vi * s.second_moment_scale;  // (4)
    const float denominator = kInside ? std::sqrt(v_hat + s.epsilon) : std::sqrt(v_hat) + s.epsilon;
    w[i] = wi - s.step_scale * (mi / denominator);  // (5): eta * m, eta = step_scale / denominator
  }
}

struct Job {
  std::vector<Tensor> tensors;
  std::vector<std::pair<int32_t, int64_t>> chunks;  // (tensor, first element)
  std::vector<int64_t> sizes;
  Scalars s;
  bool amsgrad, inside;
  std::atomic<int64_t> next{0}, done{0};

  void Run() {
    const int64_t n = static_cast<int64_t>(chunks.size());
    for (int64_t c; (c = next.fetch_add(1, std::memory_order_relaxed)) < n;) {
      const auto [k, lo] = chunks[c];
      const int64_t hi = std::min(lo + kChunk, sizes[k]);
      const Tensor& t = tensors[k];
      // One instantiation per configuration keeps the loop free of branches (and a weight
      // without decay untouched by it, as on the portable path, even if it is inf).
      const bool d = t.decay != 0.0f;
      if (amsgrad) {
        if (d) inside ? Update<true, true, true>(t, s, lo, hi) : Update<true, false, true>(t, s, lo, hi);
        else inside ? Update<true, true, false>(t, s, lo, hi) : Update<true, false, false>(t, s, lo, hi);
      } else {
        if (d) inside ? Update<false, true, true>(t, s, lo, hi) : Update<false, false, true>(t, s, lo, hi);
        else inside ? Update<false, true, false>(t, s, lo, hi) : Update<false, false, false>(t, s, lo, hi);
      }
      done.fetch_add(1, std::memory_order_release);
    }
  }
};

ffi::Error AdamImpl(ffi::ThreadPool pool, ffi::BufferR0<ffi::F32> learning_rate, ffi::BufferR0<ffi::F32> step_scale,
                    ffi::BufferR0<ffi::F32> second_moment_scale, ffi::Buffer<ffi::F32> decay,
                    ffi::RemainingArgs args, ffi::RemainingRets rets, float beta_1, float one_minus_beta_1,
                    float beta_2, float one_minus_beta_2, float epsilon, bool amsgrad, bool inside) {
  const size_t per = amsgrad ? 5 : 4, out_per = per - 1;
  const size_t k = decay.element_count();
  if (args.size() != k * per || rets.size() != k * out_per) {
    return ffi::Error::InvalidArgument("keras_adaptive_adam: operand count does not match the weights");
  }
  auto job = std::make_shared<Job>();
  job->s.learning_rate = *learning_rate.typed_data();
  job->s.step_scale = *step_scale.typed_data();
  job->s.second_moment_scale = *second_moment_scale.typed_data();
  job->s.beta_1 = beta_1;
  job->s.one_minus_beta_1 = one_minus_beta_1;
  job->s.beta_2 = beta_2;
  job->s.one_minus_beta_2 = one_minus_beta_2;
  job->s.epsilon = epsilon;
  job->amsgrad = amsgrad;
  job->inside = inside;
  for (size_t i = 0; i < k; ++i) {
    auto arg = [&](size_t j) { return args.get<ffi::Buffer<ffi::F32>>(i * per + j).value(); };
    auto ret = [&](size_t j) { return rets.get<ffi::Buffer<ffi::F32>>(i * out_per + j).value(); };
    Tensor t{ret(0)->typed_data(), ret(1)->typed_data(), ret(2)->typed_data(),
             amsgrad ? ret(3)->typed_data() : nullptr, arg(1).typed_data(), decay.typed_data()[i]};
    // In place: XLA hands each result the buffer of its operand (input_output_aliases).
    if (t.w != arg(0).typed_data() || t.m != arg(2).typed_data() || t.v != arg(3).typed_data() ||
        (amsgrad && t.v_max != arg(4).typed_data())) {
      return ffi::Error::InvalidArgument("keras_adaptive_adam: results are not aliased to their operands");
    }
    const int64_t size = static_cast<int64_t>(arg(0).element_count());
    for (int64_t lo = 0; lo < size; lo += kChunk) job->chunks.emplace_back(static_cast<int32_t>(i), lo);
    job->tensors.push_back(t);
    job->sizes.push_back(size);
  }
  // Helpers take chunks from the same counter; the calling thread works too and waits only for
  // chunks already taken, so a helper that starts late (or never) costs nothing.
  const int64_t chunks = static_cast<int64_t>(job->chunks.size());
  const int64_t helpers = std::min<int64_t>(pool.num_threads(), chunks) - 1;
  for (int64_t i = 0; i < helpers; ++i) pool.Schedule([job] { job->Run(); });
  job->Run();
  while (job->done.load(std::memory_order_acquire) < chunks) std::this_thread::yield();
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(KerasAdaptiveAdam, AdamImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::BufferR0<ffi::F32>>()  // learning_rate
                                  .Arg<ffi::BufferR0<ffi::F32>>()  // step_scale
                                  .Arg<ffi::BufferR0<ffi::F32>>()  // second_moment_scale
                                  .Arg<ffi::Buffer<ffi::F32>>()    // decay
                                  .RemainingArgs()
                                  .RemainingRets()
                                  .Attr<float>("beta_1")
                                  .Attr<float>("one_minus_beta_1")
                                  .Attr<float>("beta_2")
                                  .Attr<float>("one_minus_beta_2")
                                  .Attr<float>("epsilon")
                                  .Attr<bool>("amsgrad")
                                  .Attr<bool>("inside"));
