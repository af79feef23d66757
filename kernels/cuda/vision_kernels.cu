// Comb's hand-written CUDA kernels: bias + clamp (ReLU/ReLU6), row softmax, embedding
// lookup, max over time and depthwise NHWC convolution. Each mirrors a CPU reference and is
// tested against it (tests/kernels/cuda_test.cpp). Stateless; launches go on the stream given.
#include "kernels/cuda/vision_kernels.cuh"

#include <cfloat>

namespace comb::kernels::cuda::detail {

namespace {

__global__ void bias_act_kernel(float* x, const float* bias, int64_t total, int cols, float lo,
                                float hi) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total;
       i += int64_t{gridDim.x} * blockDim.x) {
    float v = x[i] + (bias ? bias[i % cols] : 0.0f);
    // fmaxf/fminf would drop NaN; keep it as the CPU reference does.
    v = v < lo ? lo : v;
    v = v > hi ? hi : v;
    x[i] = v;
  }
}

// One block per row; blockDim.x threads reduce max and sum in shared memory.
__global__ void softmax_kernel(const float* x, int cols, float* out) {
  extern __shared__ float red[];
  const float* row = x + blockIdx.x * int64_t{cols};
  float* orow = out + blockIdx.x * int64_t{cols};
  float m = -FLT_MAX;
  for (int j = threadIdx.x; j < cols; j += blockDim.x)
    m = fmaxf(m, row[j]);
  red[threadIdx.x] = m;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s)
      red[threadIdx.x] = fmaxf(red[threadIdx.x], red[threadIdx.x + s]);
    __syncthreads();
  }
  m = red[0];
  __syncthreads();
  float sum = 0.0f;
  for (int j = threadIdx.x; j < cols; j += blockDim.x)
    sum += expf(row[j] - m);
  red[threadIdx.x] = sum;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s)
      red[threadIdx.x] += red[threadIdx.x + s];
    __syncthreads();
  }
  float inv = 1.0f / red[0];
  for (int j = threadIdx.x; j < cols; j += blockDim.x)
    orow[j] = expf(row[j] - m) * inv;
}

__global__ void embedding_kernel(const int32_t* ids, int64_t n, const float* table, int vocab,
                                 int dim, float* out, int* bad) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n * dim;
       i += int64_t{gridDim.x} * blockDim.x) {
    int64_t r = i / dim;
    int d = static_cast<int>(i % dim);
    int32_t id = ids[r];
    if (id < 0 || id >= vocab) {
      out[i] = 0.0f;
      *bad = 1;
    } else {
      out[i] = table[int64_t{id} * dim + d];
    }
  }
}

// First maximum over t < valid (strict >, as the CPU reference); argmax may be nullptr.
__global__ void max_over_time_kernel(const float* x, int batch, int time, int valid, int channels,
                                     float* out, int32_t* argmax) {
  int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (i >= int64_t{batch} * channels)
    return;
  int b = static_cast<int>(i / channels), c = static_cast<int>(i % channels);
  const float* p = x + int64_t{b} * time * channels + c;
  int best = 0;
  float m = p[0];
  for (int t = 1; t < valid; ++t) {
    float v = p[int64_t{t} * channels];
    if (v > m) {
      m = v;
      best = t;
    }
  }
  out[i] = m;
  if (argmax)
    argmax[i] = best;
}

__global__ void hwio_to_ohwi_kernel(const float* hwio, int khw, int cin, int cout, float* ohwi) {
  int64_t total = int64_t{khw} * cin * cout;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total;
       i += int64_t{gridDim.x} * blockDim.x) {
    int co = static_cast<int>(i % cout);
    int64_t r = i / cout;
    int ci = static_cast<int>(r % cin);
    int s = static_cast<int>(r / cin);
    ohwi[(int64_t{co} * khw + s) * cin + ci] = hwio[i];
  }
}

__global__ void add_kernel(const float* a, const float* b, int64_t n, float* y) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x)
    y[i] = a[i] + b[i];
}

// One thread per output element; consecutive threads take consecutive channels (coalesced).
__global__ void depthwise_nhwc_kernel(dw_geometry g, const float* in, const float* w,
                                      const float* bias, float* out) {
  int64_t total = int64_t{g.n} * g.out_h * g.out_w * g.c;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total;
       i += int64_t{gridDim.x} * blockDim.x) {
    int c = static_cast<int>(i % g.c);
    int64_t q = i / g.c;
    int ox = static_cast<int>(q % g.out_w);
    q /= g.out_w;
    int oy = static_cast<int>(q % g.out_h);
    int b = static_cast<int>(q / g.out_h);
    float acc = bias ? bias[c] : 0.0f;
    for (int ky = 0; ky < g.kh; ++ky) {
      int iy = oy * g.stride_h - g.pad_top + ky;
      if (iy < 0 || iy >= g.h)
        continue;
      for (int kx = 0; kx < g.kw; ++kx) {
        int ix = ox * g.stride_w - g.pad_left + kx;
        if (ix < 0 || ix >= g.w)
          continue;
        acc = fmaf(in[((int64_t{b} * g.h + iy) * g.w + ix) * g.c + c], w[(ky * g.kw + kx) * g.c + c],
                   acc);
      }
    }
    acc = acc < g.lo ? g.lo : acc;
    acc = acc > g.hi ? g.hi : acc;
    out[i] = acc;
  }
}

int grid_for(int64_t total, int block) {
  int64_t g = (total + block - 1) / block;
  return static_cast<int>(g > 65535 ? 65535 : (g < 1 ? 1 : g));
}

} // namespace

cudaError_t launch_bias_act(float* x, const float* bias, int64_t rows, int cols, float lo,
                            float hi, cudaStream_t s) {
  int64_t total = rows * cols;
  bias_act_kernel<<<grid_for(total, 256), 256, 0, s>>>(x, bias, total, cols, lo, hi);
  return cudaGetLastError();
}

cudaError_t launch_softmax(const float* x, int64_t rows, int cols, float* out, cudaStream_t s) {
  constexpr int threads = 256;
  if (rows > 2147483647)
    return cudaErrorInvalidValue;
  softmax_kernel<<<static_cast<unsigned>(rows), threads, threads * sizeof(float), s>>>(x, cols, out);
  return cudaGetLastError();
}

cudaError_t launch_embedding(const int32_t* ids, int64_t n, const float* table, int vocab,
                             int dim, float* out, int* bad, cudaStream_t s) {
  embedding_kernel<<<grid_for(n * dim, 256), 256, 0, s>>>(ids, n, table, vocab, dim, out, bad);
  return cudaGetLastError();
}

cudaError_t launch_max_over_time(const float* x, int batch, int time, int valid, int channels,
                                 float* out, int32_t* argmax, cudaStream_t s) {
  int64_t total = int64_t{batch} * channels;
  if (total == 0 || valid <= 0)
    return cudaSuccess;
  max_over_time_kernel<<<static_cast<unsigned>((total + 255) / 256), 256, 0, s>>>(
    x, batch, time, valid, channels, out, argmax);
  return cudaGetLastError();
}

cudaError_t launch_hwio_to_ohwi(const float* hwio, int khw, int cin, int cout, float* ohwi,
                                cudaStream_t s) {
  hwio_to_ohwi_kernel<<<grid_for(int64_t{khw} * cin * cout, 256), 256, 0, s>>>(hwio, khw, cin,
                                                                              cout, ohwi);
  return cudaGetLastError();
}

cudaError_t launch_add(const float* a, const float* b, int64_t n, float* y, cudaStream_t s) {
  add_kernel<<<grid_for(n, 256), 256, 0, s>>>(a, b, n, y);
  return cudaGetLastError();
}

cudaError_t launch_depthwise_nhwc(const dw_geometry& g, const float* in, const float* w,
                                  const float* bias, float* out, cudaStream_t s) {
  int64_t total = int64_t{g.n} * g.out_h * g.out_w * g.c;
  depthwise_nhwc_kernel<<<grid_for(total, 256), 256, 0, s>>>(g, in, w, bias, out);
  return cudaGetLastError();
}

} // namespace comb::kernels::cuda::detail
