// CPU emulation of the CUDA runtime API subset reprise uses: devices, memory, streams, events, graphs, errors.
//
// The functions carry the real names and signatures (declared by the toolkit's cuda_runtime_api.h), so host code
// is the same in both builds. Device memory is host memory, tracked per allocation so that copies past an
// allocation's end fail and a device has an out-of-memory limit.
//
// Streams run asynchronously, as on a GPU: each created stream has a worker thread that runs its work in order, so
// the host goes on at once after a launch or an async copy, and a host read of a pinned buffer before the copy that
// fills it has finished sees stale data. cudaStreamSynchronize, events (cudaEventRecord / cudaEventSynchronize /
// cudaStreamWaitEvent) and the legacy default stream (stream 0, and the synchronous cudaMemcpy: it waits for every
// stream, then runs on the calling thread) order work as CUDA does; cudaFree waits for the device too. While a stream
// captures a graph its work is recorded instead, and a graph launch replays the recorded operations with the
// arguments they were captured with. Calls that CUDA refuses during a capture (allocation and freeing, synchronizing
// the capturing stream or the device, work on the legacy stream) return its errors and invalidate the capture, whose
// cudaStreamEndCapture then fails with cudaErrorStreamCaptureInvalidated - from the capturing thread in
// cudaStreamCaptureModeThreadLocal, from any thread in cudaStreamCaptureModeGlobal, never in Relaxed.
#include <chrono>
#include <condition_variable>
#include <cstdarg>
#include <deque>
#include <set>
#include <thread>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <vector>

#include <cuda_profiler_api.h>

#include "kernels/emu/emu_control.h"
#include "kernels/emu/emu_internal.h"

#undef warpSize   // a device-side name; here it is the cudaDeviceProp field

struct CUstream_st {
    int device;
    bool capturing = false, capture_invalid = false;
    cudaStreamCaptureMode capture_mode = cudaStreamCaptureModeGlobal;
    std::thread::id capture_thread;
    std::vector<emu::op> captured;
    bool last_kernel = false;   // the last work submitted (not captured) is a kernel launch
    // the worker: runs queued work in order
    std::mutex m;
    std::condition_variable cv;
    std::deque<std::function<void()>> queue;
    unsigned long long submitted = 0, completed = 0;
    bool stop = false;
    std::thread worker;
    int waiters = 0;   // threads in wait_all_streams holding this stream (under streams_mu): destroy waits for them
};
struct CUevent_st {
    double ms = 0;
    std::mutex m;
    std::condition_variable cv;
    unsigned long long recorded = 0, reached = 0;   // records asked for, records their stream has reached
};
struct CUgraph_st {
    std::vector<emu::op> ops;
};
struct CUgraphExec_st {
    std::vector<emu::op> ops;
    bool fresh = true;   // instantiated or updated since its last launch (the launch counters say so)
};

namespace emu {

namespace {

const int MAX_DEVICES = 8;
size_t default_limit() {
    const char *s = getenv("REPRISE_EMU_DEVICE_MEMORY");
    unsigned long long v = s ? strtoull(s, nullptr, 10) : 0;
    return v ? (size_t)v : 16ull << 30;
}

struct device {
    size_t limit = default_limit(), used = 0, peak = 0;
    std::map<const void *, int> max_smem;   // cudaFuncAttributeMaxDynamicSharedMemorySize per kernel
};

std::mutex mu;   // allocations and devices: NCCL's per-device threads use them too
device devices[MAX_DEVICES];
int n_devices = [] {
    const char *s = getenv("REPRISE_EMU_DEVICES");
    int n = s ? atoi(s) : 2;
    return n < 1 ? 1 : n > MAX_DEVICES ? MAX_DEVICES : n;
}();
struct allocation {
    size_t size;
    int device;
};
std::map<uintptr_t, allocation> allocations;
thread_local int current = 0;
thread_local cudaError_t last_error = cudaSuccess;

cudaError_t record(cudaError_t e) {
    if (e != cudaSuccess) last_error = e;
    return e;
}

double now_ms() {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

const std::map<uintptr_t, allocation>::const_iterator find_allocation(const void *p) {
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    auto it = allocations.upper_bound(a);
    if (it == allocations.begin()) return allocations.end();
    --it;
    return a < it->first + (it->second.size ? it->second.size : 1) ? it : allocations.end();
}

}   // namespace

bool is_device_range(const void *p, size_t n) {
    std::lock_guard<std::mutex> g(mu);
    auto it = find_allocation(p);
    return it != allocations.end() && reinterpret_cast<uintptr_t>(p) + n <= it->first + it->second.size;
}

bool device_allocation(const void *p, uintptr_t *lo, uintptr_t *hi) {
    std::lock_guard<std::mutex> g(mu);
    auto it = find_allocation(p);
    if (it == allocations.end()) return false;
    *lo = it->first, *hi = it->first + it->second.size;
    return true;
}

void fatal(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "reprise CUDA emulation: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    fflush(stderr);
    abort();
}

std::mutex streams_mu;
std::condition_variable streams_cv;   // a stream's waiters dropped to zero
std::set<cudaStream_t> streams;       // live created streams (the legacy stream waits for them)

void enqueue(cudaStream_t s, std::function<void()> work) {
    std::lock_guard<std::mutex> g(s->m);
    s->queue.push_back(std::move(work));
    s->submitted++;
    s->cv.notify_all();
}

void stream_wait(cudaStream_t s) {
    std::unique_lock<std::mutex> lk(s->m);
    s->cv.wait(lk, [s] { return s->completed == s->submitted; });
}

void worker_loop(cudaStream_t s) {
    std::unique_lock<std::mutex> lk(s->m);
    for (;;) {
        s->cv.wait(lk, [s] { return s->stop || !s->queue.empty(); });
        if (s->queue.empty()) return;   // stopping, and nothing left
        std::function<void()> work = std::move(s->queue.front());
        s->queue.pop_front();
        lk.unlock();
        work();
        lk.lock();
        s->completed++;
        s->cv.notify_all();
    }
}

// Another thread may destroy one of the streams meanwhile (tensor-parallel ranks tear down together): each is held
// (waiters) until waited for, and cudaStreamDestroy waits for its holders.
void wait_all_streams() {
    std::vector<cudaStream_t> all;
    {
        std::lock_guard<std::mutex> g(streams_mu);
        all.assign(streams.begin(), streams.end());
        for (cudaStream_t s : all) s->waiters++;
    }
    for (cudaStream_t s : all) {
        stream_wait(s);
        std::lock_guard<std::mutex> g(streams_mu);
        if (--s->waiters == 0) streams_cv.notify_all();
    }
}

// A call CUDA refuses while a capture is under way: it invalidates every capture it concerns (the calling thread's
// in thread-local mode, any in global mode) and returns the error; cudaSuccess when no capture is concerned.
cudaError_t capture_violation(cudaError_t e) {
    bool hit = false;
    std::lock_guard<std::mutex> g(streams_mu);
    for (cudaStream_t s : streams)
        if (s->capturing && (s->capture_mode == cudaStreamCaptureModeGlobal ||
                             (s->capture_mode == cudaStreamCaptureModeThreadLocal && s->capture_thread == std::this_thread::get_id())))
            s->capture_invalid = true, hit = true;
    return hit ? e : cudaSuccess;
}

cudaError_t submit(cudaStream_t stream, op o) {
    if (stream && stream->capturing) {
        stream->captured.push_back(std::move(o));
        return cudaSuccess;
    }
    if (o.name != "event" && o.name != "graph") profile_launch(o, current);
    if (stream) stream->last_kernel = o.kind == op::KERNEL;
    if (stream) {
        enqueue(stream, std::move(o.run));
        return cudaSuccess;
    }
    // the legacy default stream: waits for every stream, runs here; it cannot join a capture
    if (cudaError_t e = capture_violation(cudaErrorStreamCaptureImplicit)) return record(e);
    wait_all_streams();
    o.run();
    return cudaSuccess;
}

cudaError_t launch(const char *name, const void *fn, dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                   kernel_body body, bool pdl) {
    unsigned long long threads = (unsigned long long)block.x * block.y * block.z;
    if (threads == 0 || threads > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64 || grid.x == 0 ||
        grid.y == 0 || grid.z == 0 || grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535)
        return record(cudaErrorInvalidConfiguration);
    size_t allowed = 48 * 1024;
    {
        std::lock_guard<std::mutex> g(mu);
        auto it = devices[current].max_smem.find(fn);
        if (it != devices[current].max_smem.end()) allowed = (size_t)it->second;
    }
    if (smem > allowed) return record(cudaErrorInvalidValue);
    // it may overlap only a kernel before it on its stream (after a copy or an event wait: an ordinary launch)
    if (pdl)
        pdl = stream && (stream->capturing ? !stream->captured.empty() && stream->captured.back().kind == op::KERNEL
                                           : stream->last_kernel);
    op o{op::KERNEL, name, fn, [name, grid, block, smem, body, pdl]() { run_kernel(name, grid, block, smem, body, pdl); }};
    o.grid = grid, o.block = block, o.smem = smem, o.pdl = pdl;
    return submit(stream, std::move(o));
}

}   // namespace emu

using emu::record;

extern "C" {

void emu_set_device_memory(int device, size_t bytes) { emu::devices[device].limit = bytes; }
size_t emu_device_peak(int device) {
    std::lock_guard<std::mutex> g(emu::mu);
    return emu::devices[device].peak;
}
size_t emu_device_used(int device) {
    std::lock_guard<std::mutex> g(emu::mu);
    return emu::devices[device].used;
}
void emu_reset_peak(int device) {
    std::lock_guard<std::mutex> g(emu::mu);
    emu::devices[device].peak = emu::devices[device].used;
}
void emu_set_device_count(int n) { emu::n_devices = n < 1 ? 1 : n > emu::MAX_DEVICES ? emu::MAX_DEVICES : n; }

cudaError_t cudaGetDeviceCount(int *count) {
    *count = emu::n_devices;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
    if (device < 0 || device >= emu::n_devices) return record(cudaErrorInvalidDevice);
    emu::current = device;
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int *device) {
    *device = emu::current;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *p, int device) {
    if (device < 0 || device >= emu::n_devices) return record(cudaErrorInvalidDevice);
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "reprise emulated CUDA device %d (CPU)", device);
    p->totalGlobalMem = emu::devices[device].limit;
    p->sharedMemPerBlock = 48 * 1024;
    p->sharedMemPerBlockOptin = 227 * 1024;
    p->regsPerBlock = 65536;
    p->warpSize = 32;
    p->maxThreadsPerBlock = 1024;
    p->maxThreadsDim[0] = 1024, p->maxThreadsDim[1] = 1024, p->maxThreadsDim[2] = 64;
    p->maxGridSize[0] = 2147483647, p->maxGridSize[1] = 65535, p->maxGridSize[2] = 65535;
    p->multiProcessorCount = 132;
    p->major = 9;
    p->minor = 0;
    p->l2CacheSize = 50 << 20;
    p->memoryBusWidth = 5120;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *value, enum cudaDeviceAttr attr, int device) {
    if (device < 0 || device >= emu::n_devices) return record(cudaErrorInvalidDevice);
    switch (attr) {
    case cudaDevAttrMultiProcessorCount: *value = 132; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = 227 * 1024; break;
    case cudaDevAttrComputeCapabilityMajor: *value = 9; break;
    case cudaDevAttrComputeCapabilityMinor: *value = 0; break;
    case cudaDevAttrWarpSize: *value = 32; break;
    case cudaDevAttrMaxThreadsPerBlock: *value = 1024; break;
    default: return record(cudaErrorInvalidValue);
    }
    return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void *func, enum cudaFuncAttribute attr, int value) {
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaSuccess;
    if (value < 0 || value > 227 * 1024) return record(cudaErrorInvalidValue);
    std::lock_guard<std::mutex> g(emu::mu);
    emu::devices[emu::current].max_smem[func] = value;
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **ptr, size_t size) {
    *ptr = nullptr;
    if (cudaError_t e = emu::capture_violation(cudaErrorStreamCaptureUnsupported)) return record(e);
    if (size == 0) return cudaSuccess;
    std::lock_guard<std::mutex> g(emu::mu);
    emu::device &d = emu::devices[emu::current];
    if (d.used + size > d.limit) return record(cudaErrorMemoryAllocation);
    void *p = nullptr;   // exactly `size` bytes, so ASan sees a read one past the end
    if (posix_memalign(&p, 256, size)) return record(cudaErrorMemoryAllocation);
    d.used += size;
    if (d.used > d.peak) d.peak = d.used;
    emu::allocations[reinterpret_cast<uintptr_t>(p)] = emu::allocation{size, emu::current};
    *ptr = p;
    return cudaSuccess;
}

cudaError_t cudaFree(void *ptr) {
    if (cudaError_t e = emu::capture_violation(cudaErrorStreamCaptureUnsupported)) return record(e);
    if (!ptr) return cudaSuccess;
    emu::wait_all_streams();   // as CUDA's cudaFree, which synchronizes: no queued kernel still reads it
    std::lock_guard<std::mutex> g(emu::mu);
    auto it = emu::allocations.find(reinterpret_cast<uintptr_t>(ptr));
    if (it == emu::allocations.end()) return record(cudaErrorInvalidValue);
    emu::devices[it->second.device].used -= it->second.size;
    emu::allocations.erase(it);
    free(ptr);
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total) {
    std::lock_guard<std::mutex> g(emu::mu);
    emu::device &d = emu::devices[emu::current];
    *free_bytes = d.limit - d.used;
    *total = d.limit;
    return cudaSuccess;
}

cudaError_t cudaMallocHost(void **ptr, size_t size) {
    *ptr = nullptr;
    if (cudaError_t e = emu::capture_violation(cudaErrorStreamCaptureUnsupported)) return record(e);
    *ptr = malloc(size ? size : 1);
    return *ptr ? cudaSuccess : record(cudaErrorMemoryAllocation);
}

cudaError_t cudaFreeHost(void *ptr) {
    if (cudaError_t e = emu::capture_violation(cudaErrorStreamCaptureUnsupported)) return record(e);
    emu::wait_all_streams();
    free(ptr);
    return cudaSuccess;
}

static cudaError_t check_copy(void *dst, const void *src, size_t n, enum cudaMemcpyKind kind) {
    bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (kind != cudaMemcpyDefault && kind != cudaMemcpyHostToHost && kind != cudaMemcpyHostToDevice &&
        kind != cudaMemcpyDeviceToHost && kind != cudaMemcpyDeviceToDevice)
        return cudaErrorInvalidMemcpyDirection;
    if (n && ((dst_dev && !emu::is_device_range(dst, n)) || (src_dev && !emu::is_device_range(src, n))))
        return cudaErrorInvalidValue;
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, enum cudaMemcpyKind kind, cudaStream_t stream) {
    cudaError_t e = check_copy(dst, src, n, kind);
    if (e) return record(e);
    emu::op o{emu::op::MEMCPY, "memcpy", nullptr, [=]() { if (n) memmove(dst, src, n); }};
    o.bytes = n, o.copy_kind = kind;
    return emu::submit(stream, std::move(o));
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, enum cudaMemcpyKind kind) { return cudaMemcpyAsync(dst, src, n, kind, nullptr); }

// height rows of width bytes, src's every spitch bytes, dst's every dpitch (each pitch at least width, as CUDA asks).
cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                              enum cudaMemcpyKind kind, cudaStream_t stream) {
    if (dpitch < width || spitch < width) return record(cudaErrorInvalidPitchValue);
    if (!width || !height) return cudaSuccess;
    size_t dspan = dpitch * (height - 1) + width, sspan = spitch * (height - 1) + width;
    if (cudaError_t e = check_copy(dst, src, 0, kind)) return record(e);
    bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if ((dst_dev && !emu::is_device_range(dst, dspan)) || (src_dev && !emu::is_device_range(src, sspan)))
        return record(cudaErrorInvalidValue);
    char *d = static_cast<char *>(dst);
    const char *s = static_cast<const char *>(src);
    emu::op o{emu::op::MEMCPY, "memcpy", nullptr, [=]() {
                  for (size_t i = 0; i < height; i++) memmove(d + i * dpitch, s + i * spitch, width);
              }};
    o.bytes = width * height, o.copy_kind = kind;
    return emu::submit(stream, std::move(o));
}

cudaError_t cudaMemcpy2D(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                         enum cudaMemcpyKind kind) {
    return cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, height, kind, nullptr);
}

cudaError_t cudaMemsetAsync(void *p, int value, size_t n, cudaStream_t stream) {
    if (n && !emu::is_device_range(p, n)) return record(cudaErrorInvalidValue);
    emu::op o{emu::op::MEMSET, "memset", nullptr, [=]() { memset(p, value, n); }};
    o.bytes = n;
    return emu::submit(stream, std::move(o));
}

cudaError_t cudaMemset(void *p, int value, size_t n) { return cudaMemsetAsync(p, value, n, nullptr); }

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned int flags) {
    (void)flags;
    cudaStream_t st = new CUstream_st();
    st->device = emu::current;
    st->worker = std::thread(emu::worker_loop, st);
    {
        std::lock_guard<std::mutex> g(emu::streams_mu);
        emu::streams.insert(st);
    }
    *s = st;
    return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t *s) { return cudaStreamCreateWithFlags(s, 0); }

cudaError_t cudaStreamDestroy(cudaStream_t s) {
    if (!s) return record(cudaErrorInvalidValue);
    {   // like CUDA, work already queued still completes
        std::unique_lock<std::mutex> g(emu::streams_mu);
        emu::streams.erase(s);
        emu::streams_cv.wait(g, [s] { return s->waiters == 0; });
    }
    {
        std::lock_guard<std::mutex> g(s->m);
        s->stop = true;
        s->cv.notify_all();
    }
    s->worker.join();
    delete s;
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t s) {
    if (s && s->capturing) {   // the capturing stream cannot be waited for: the capture is invalidated
        s->capture_invalid = true;
        return record(cudaErrorStreamCaptureUnsupported);
    }
    if (!s) {
        if (cudaError_t e = emu::capture_violation(cudaErrorStreamCaptureImplicit)) return record(e);
        emu::wait_all_streams();
    } else emu::stream_wait(s);
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) {
    if (cudaError_t e = emu::capture_violation(cudaErrorStreamCaptureUnsupported)) return record(e);
    emu::wait_all_streams();
    return cudaSuccess;
}

// No profiler attaches to the emulation: starting and stopping its collection does nothing.
cudaError_t cudaProfilerStart(void) { return cudaSuccess; }
cudaError_t cudaProfilerStop(void) { return cudaSuccess; }

cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned int flags) {
    (void)flags;
    unsigned long long want;
    {
        std::lock_guard<std::mutex> g(e->m);
        want = e->recorded;   // the event's latest record at the time of the call
    }
    auto wait = [e, want]() {
        std::unique_lock<std::mutex> lk(e->m);
        e->cv.wait(lk, [e, want] { return e->reached >= want; });
    };
    if (s && s->capturing) return cudaSuccess;   // within one capture the order is the stream's own
    if (!s) wait();
    else emu::enqueue(s, wait);
    return cudaSuccess;
}

cudaError_t cudaStreamBeginCapture(cudaStream_t s, enum cudaStreamCaptureMode mode) {
    if (!s) return record(cudaErrorStreamCaptureUnsupported);   // the legacy default stream cannot capture
    if (s->capturing) return record(cudaErrorIllegalState);
    s->capturing = true;
    s->capture_invalid = false;
    s->capture_mode = mode;
    s->capture_thread = std::this_thread::get_id();
    s->captured.clear();
    return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *graph) {
    if (!s || !s->capturing) return record(cudaErrorIllegalState);
    s->capturing = false;
    if (s->capture_invalid) {   // a refused call during the capture: no graph
        *graph = nullptr;
        s->captured.clear();
        return record(cudaErrorStreamCaptureInvalidated);
    }
    *graph = new CUgraph_st{std::move(s->captured)};
    s->captured.clear();
    return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t s, enum cudaStreamCaptureStatus *status) {
    *status = s && s->capturing ? cudaStreamCaptureStatusActive : cudaStreamCaptureStatusNone;
    return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long flags) {
    (void)flags;
    *exec = new CUgraphExec_st{graph->ops};
    return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s) {
    if (s && s->capturing) return record(cudaErrorStreamCaptureUnsupported);
    std::vector<emu::op> ops = exec->ops;   // the launch keeps what was instantiated, even if exec is updated later
    emu::profile_graph(ops, exec->fresh, emu::current);
    exec->fresh = false;
    return emu::submit(s, emu::op{emu::op::LIBRARY, "graph", nullptr, [ops]() {
                                      for (const emu::op &o : ops) o.run();
                                  }});
}

cudaError_t cudaGraphExecUpdate(cudaGraphExec_t exec, cudaGraph_t graph, cudaGraphExecUpdateResultInfo *info) {
    cudaGraphExecUpdateResult r = cudaGraphExecUpdateSuccess;
    if (exec->ops.size() != graph->ops.size()) r = cudaGraphExecUpdateErrorTopologyChanged;
    for (size_t i = 0; r == cudaGraphExecUpdateSuccess && i < graph->ops.size(); i++) {
        if (exec->ops[i].kind != graph->ops[i].kind) r = cudaGraphExecUpdateErrorNodeTypeChanged;
        else if (exec->ops[i].fn != graph->ops[i].fn) r = cudaGraphExecUpdateErrorFunctionChanged;
    }
    if (info) {
        memset(info, 0, sizeof *info);
        info->result = r;
    }
    if (r != cudaGraphExecUpdateSuccess) return record(cudaErrorGraphExecUpdateFailure);
    exec->ops = graph->ops;
    exec->fresh = true;
    return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t g) {
    delete g;
    return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e) {
    delete e;
    return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t *e) {
    *e = new CUevent_st();
    return cudaSuccess;
}

// Flags (no timing, blocking sync) change nothing the emulation observes.
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned int) { return cudaEventCreate(e); }

// The event is reached when its stream has run everything queued before the record.
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
    unsigned long long n;
    {
        std::lock_guard<std::mutex> g(e->m);
        n = ++e->recorded;
    }
    return emu::submit(s, emu::op{emu::op::LIBRARY, "event", nullptr, [e, n]() {
                                      std::lock_guard<std::mutex> g(e->m);
                                      e->ms = emu::now_ms();
                                      if (n > e->reached) e->reached = n;
                                      e->cv.notify_all();
                                  }});
}

cudaError_t cudaEventSynchronize(cudaEvent_t e) {
    std::unique_lock<std::mutex> lk(e->m);
    e->cv.wait(lk, [e] { return e->reached >= e->recorded; });
    return cudaSuccess;
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end) {
    *ms = (float)(end->ms - start->ms);
    return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t e) {
    delete e;
    return cudaSuccess;
}

cudaError_t cudaGetLastError(void) {
    cudaError_t e = emu::last_error;
    emu::last_error = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError(void) { return emu::last_error; }

const char *cudaGetErrorName(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorIllegalState: return "cudaErrorIllegalState";
    case cudaErrorGraphExecUpdateFailure: return "cudaErrorGraphExecUpdateFailure";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureImplicit: return "cudaErrorStreamCaptureImplicit";
    default: return "cudaErrorUnknown";
    }
}

const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureImplicit: return "operation would make the legacy stream depend on a capturing blocking stream";
    case cudaErrorIllegalState: return "the operation cannot be performed in the present state";
    case cudaErrorGraphExecUpdateFailure: return "the graph update was not performed because it included changes which violated constraints specific to instantiated graph update";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    default: return "unknown error";
    }
}

}   // extern "C"
