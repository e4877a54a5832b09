// CPU emulation of the NCCL subset reprise uses: ncclCommInitAll, ncclGetUniqueId + ncclCommInitRank, ncclAllReduce,
// ncclAllGather, ncclSend/ncclRecv, group calls.
//
// The communicators of one ncclCommInitAll, or of the ncclCommInitRank calls of one unique id, form a clique. As NCCL
// does, ncclCommInitRank waits until every rank of the id has called it, and refuses two ranks on one device. A collective is a rendezvous: each rank posts its buffers
// and waits; the last to arrive checks that every rank called the same operation with the same count and type,
// reduces, and releases them all. Sends are buffered, receives wait for their send. Calls between ncclGroupStart and
// ncclGroupEnd are queued and then run with one OS thread per device, so a program that would deadlock or mismatch
// its calls on GPUs does so here too - and a wait longer than REPRISE_EMU_NCCL_TIMEOUT seconds (default 10) stops
// the program with what every rank is waiting for, instead of hanging.
#include <nccl.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "kernels/emu/emu_internal.h"

namespace {

const int MAX_RANKS = 8;

struct message {
    std::vector<char> data;
    size_t count;
    ncclDataType_t type;
};

struct clique {
    int n, alive;   // alive: communicators not yet destroyed
    std::mutex mu;
    std::condition_variable cv;
    long generation = 0;
    int arrived = 0;
    struct post {
        const void *send;
        void *recv;
        size_t count;
        ncclDataType_t type;
        ncclRedOp_t op;
    } posts[MAX_RANKS];
    std::deque<message> box[MAX_RANKS][MAX_RANKS];   // [from][to]
    std::string waiting[MAX_RANKS];                  // what each rank waits in, for deadlock reports
};

}   // namespace

struct ncclComm {
    int rank, device;
    clique *cl;
};

namespace {

size_t type_size(ncclDataType_t t) {
    switch (t) {
    case ncclInt8: case ncclUint8: case ncclFloat8e4m3: case ncclFloat8e5m2: return 1;
    case ncclFloat16: case ncclBfloat16: return 2;
    case ncclInt32: case ncclUint32: case ncclFloat32: return 4;
    default: return 8;
    }
}

double get(const void *p, ncclDataType_t t, size_t i) {
    switch (t) {
    case ncclFloat32: return static_cast<const float *>(p)[i];
    case ncclFloat64: return static_cast<const double *>(p)[i];
    case ncclFloat16: return __half2float(static_cast<const __half *>(p)[i]);
    case ncclBfloat16: return __bfloat162float(static_cast<const __nv_bfloat16 *>(p)[i]);
    case ncclInt32: return static_cast<const int *>(p)[i];
    default: return 0;
    }
}

void put(void *p, ncclDataType_t t, size_t i, double v) {
    switch (t) {
    case ncclFloat32: static_cast<float *>(p)[i] = (float)v; break;
    case ncclFloat64: static_cast<double *>(p)[i] = v; break;
    case ncclFloat16: static_cast<__half *>(p)[i] = __float2half((float)v); break;
    case ncclBfloat16: static_cast<__nv_bfloat16 *>(p)[i] = __float2bfloat16((float)v); break;
    case ncclInt32: static_cast<int *>(p)[i] = (int)v; break;
    default: break;
    }
}

std::chrono::seconds timeout() {
    const char *s = getenv("REPRISE_EMU_NCCL_TIMEOUT");
    return std::chrono::seconds(s ? atoi(s) : 10);
}

// Waits on the clique until done(); on timeout, reports what every rank waits for and aborts.
template <typename F> void wait_or_die(clique *c, std::unique_lock<std::mutex> &lk, int rank, const std::string &what, F done) {
    c->waiting[rank] = what;
    if (!c->cv.wait_for(lk, timeout(), done)) {
        std::string all;
        for (int r = 0; r < c->n; r++) all += "\n  rank " + std::to_string(r) + ": " + (c->waiting[r].empty() ? "not in NCCL" : c->waiting[r]);
        emu::fatal("NCCL deadlock: rank %d waited %lld s in %s; ranks are waiting in:%s", rank, (long long)timeout().count(),
                   what.c_str(), all.c_str());
    }
    c->waiting[rank].clear();
}

// A collective's meeting: posts this rank's buffers and waits for the other ranks; true in the last to arrive,
// which then does the collective for all and calls release().
bool rendezvous(clique *c, std::unique_lock<std::mutex> &lk, int rank, const clique::post &p, const std::string &what) {
    long gen = c->generation;
    c->posts[rank] = p;
    if (++c->arrived < c->n) {
        wait_or_die(c, lk, rank, what, [&] { return c->generation != gen; });
        return false;
    }
    return true;
}

void release(clique *c) {
    c->arrived = 0;
    c->generation++;
    c->cv.notify_all();
}

ncclResult_t all_reduce(const void *send, void *recv, size_t count, ncclDataType_t type, ncclRedOp_t op, ncclComm_t comm) {
    clique *c = comm->cl;
    std::unique_lock<std::mutex> lk(c->mu);
    if (!rendezvous(c, lk, comm->rank, clique::post{send, recv, count, type, op}, "ncclAllReduce(count " + std::to_string(count) + ")"))
        return ncclSuccess;
    for (int r = 1; r < c->n; r++)
        if (c->posts[r].count != c->posts[0].count || c->posts[r].type != c->posts[0].type || c->posts[r].op != c->posts[0].op)
            emu::fatal("mismatched ncclAllReduce: rank 0 reduces %zu elements of type %d with op %d, rank %d %zu of type %d "
                       "with op %d", c->posts[0].count, c->posts[0].type, c->posts[0].op, r, c->posts[r].count,
                       c->posts[r].type, c->posts[r].op);
    std::vector<double> acc(count);
    for (size_t i = 0; i < count; i++) {
        double v = get(c->posts[0].send, type, i);
        for (int r = 1; r < c->n; r++) {
            double x = get(c->posts[r].send, type, i);
            v = op == ncclSum ? v + x : op == ncclProd ? v * x : op == ncclMax ? (x > v ? x : v) : op == ncclMin ? (x < v ? x : v) : v + x;
        }
        acc[i] = op == ncclAvg ? v / c->n : v;
    }
    for (int r = 0; r < c->n; r++)
        for (size_t i = 0; i < count; i++) put(c->posts[r].recv, type, i, acc[i]);
    release(c);
    return ncclSuccess;
}

// Every rank's count elements, concatenated in rank order, into every rank's recv.
ncclResult_t all_gather(const void *send, void *recv, size_t count, ncclDataType_t type, ncclComm_t comm) {
    clique *c = comm->cl;
    std::unique_lock<std::mutex> lk(c->mu);
    if (!rendezvous(c, lk, comm->rank, clique::post{send, recv, count, type, ncclSum}, "ncclAllGather(count " + std::to_string(count) + ")"))
        return ncclSuccess;
    for (int r = 1; r < c->n; r++)
        if (c->posts[r].count != c->posts[0].count || c->posts[r].type != c->posts[0].type)
            emu::fatal("mismatched ncclAllGather: rank 0 gathers %zu elements of type %d, rank %d %zu of type %d",
                       c->posts[0].count, c->posts[0].type, r, c->posts[r].count, c->posts[r].type);
    size_t bytes = count * type_size(type);
    std::vector<char> all(bytes * c->n);
    for (int r = 0; r < c->n; r++) memcpy(all.data() + r * bytes, c->posts[r].send, bytes);
    for (int r = 0; r < c->n; r++) memcpy(c->posts[r].recv, all.data(), all.size());
    release(c);
    return ncclSuccess;
}

ncclResult_t send(const void *buf, size_t count, ncclDataType_t type, int peer, ncclComm_t comm) {
    clique *c = comm->cl;
    std::lock_guard<std::mutex> lk(c->mu);
    const char *p = static_cast<const char *>(buf);
    c->box[comm->rank][peer].push_back(message{std::vector<char>(p, p + count * type_size(type)), count, type});
    c->cv.notify_all();
    return ncclSuccess;
}

ncclResult_t recv(void *buf, size_t count, ncclDataType_t type, int peer, ncclComm_t comm) {
    clique *c = comm->cl;
    std::unique_lock<std::mutex> lk(c->mu);
    auto &q = c->box[peer][comm->rank];
    wait_or_die(c, lk, comm->rank, "ncclRecv(from rank " + std::to_string(peer) + ", count " + std::to_string(count) + ")",
                [&] { return !q.empty(); });
    message m = std::move(q.front());
    q.pop_front();
    if (m.count != count || m.type != type)
        emu::fatal("mismatched ncclSend/ncclRecv: rank %d sent %zu elements of type %d, rank %d receives %zu of type %d",
                   peer, m.count, m.type, comm->rank, count, type);
    memcpy(buf, m.data.data(), m.data.size());
    return ncclSuccess;
}

struct queued {
    ncclComm_t comm;
    cudaStream_t stream;
    std::function<ncclResult_t()> run;
};
thread_local int group_depth = 0;
thread_local std::vector<queued> group_ops;

// Runs now, queues it inside a group, or records it while the stream captures a graph (replayed with the graph).
ncclResult_t enqueue(ncclComm_t comm, cudaStream_t stream, std::function<ncclResult_t()> run) {
    if (group_depth > 0) {
        group_ops.push_back(queued{comm, stream, std::move(run)});
        return ncclSuccess;
    }
    cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
    if (stream) cudaStreamIsCapturing(stream, &capturing);
    if (capturing == cudaStreamCaptureStatusNone) {
        if (stream) cudaStreamSynchronize(stream);   // after the stream's earlier work, as on a GPU
        return run();
    }
    emu::submit(stream, emu::op{emu::op::LIBRARY, "nccl", nullptr, [run]() {
                                   if (run() != ncclSuccess) emu::fatal("an NCCL call replayed from a CUDA graph failed");
                               }});
    return ncclSuccess;
}

bool valid_buffer(const void *p, size_t count, ncclDataType_t t) { return count == 0 || emu::is_device_range(p, count * type_size(t)); }

}   // namespace

extern "C" {

ncclResult_t ncclCommInitAll(ncclComm_t *comms, int ndev, const int *devlist) {
    if (ndev < 1 || ndev > MAX_RANKS) return ncclInvalidArgument;
    int count;
    cudaGetDeviceCount(&count);
    clique *c = new clique();
    c->n = c->alive = ndev;
    for (int i = 0; i < ndev; i++) {
        int dev = devlist ? devlist[i] : i;
        if (dev < 0 || dev >= count) {
            delete c;
            return ncclInvalidArgument;
        }
        comms[i] = new ncclComm{i, dev, c};
    }
    return ncclSuccess;
}

ncclResult_t ncclGetUniqueId(ncclUniqueId *id) {
    static std::atomic<unsigned long> next{1};
    if (!id) return ncclInvalidArgument;
    memset(id, 0, sizeof *id);
    snprintf(id->internal, sizeof id->internal, "reprise-emu-%lu", next++);
    return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId id, int rank) {
    if (!comm || nranks < 1 || nranks > MAX_RANKS || rank < 0 || rank >= nranks) return ncclInvalidArgument;
    struct pending {
        clique *c;
        int joined, left, devices[MAX_RANKS];
        bool complete, duplicate;
    };
    static std::mutex mu;
    static std::condition_variable cv;
    static std::map<std::string, pending> waiting;
    int device = 0;
    cudaGetDevice(&device);
    std::string key(id.internal, strnlen(id.internal, sizeof id.internal));
    std::unique_lock<std::mutex> lk(mu);
    pending &p = waiting[key];
    if (!p.c) {
        p.c = new clique();
        p.c->n = p.c->alive = nranks;
    }
    if (p.c->n != nranks) return ncclInvalidArgument;
    p.devices[rank] = device;
    clique *c = p.c;
    if (++p.joined == nranks) {
        for (int a = 0; a < nranks; a++)
            for (int b = a + 1; b < nranks; b++) p.duplicate |= p.devices[a] == p.devices[b];
        p.complete = true;
        cv.notify_all();
    } else if (!cv.wait_for(lk, timeout(), [&] { return p.complete; }))
        emu::fatal("NCCL deadlock: rank %d of %d waited %lld s in ncclCommInitRank for the other ranks", rank, nranks,
                   (long long)timeout().count());
    bool duplicate = p.duplicate;
    // the last rank to leave forgets the id (every rank has read what it needs)
    if (++p.left == nranks) {
        if (duplicate) delete c;
        waiting.erase(key);
    }
    if (duplicate) {
        fprintf(stderr, "NCCL WARN Duplicate GPU detected : rank %d and another rank both on CUDA device %d\n", rank, device);
        *comm = nullptr;
        return ncclInvalidUsage;
    }
    *comm = new ncclComm{rank, device, c};
    return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
    if (!comm) return ncclInvalidArgument;
    bool last;
    {
        std::lock_guard<std::mutex> lk(comm->cl->mu);
        last = --comm->cl->alive == 0;
    }
    if (last) delete comm->cl;
    delete comm;
    return ncclSuccess;
}

ncclResult_t ncclCommCount(const ncclComm_t comm, int *count) {
    *count = comm->cl->n;
    return ncclSuccess;
}

ncclResult_t ncclCommUserRank(const ncclComm_t comm, int *rank) {
    *rank = comm->rank;
    return ncclSuccess;
}

const char *ncclGetErrorString(ncclResult_t r) {
    switch (r) {
    case ncclSuccess: return "no error";
    case ncclInvalidArgument: return "invalid argument (run with NCCL_DEBUG=WARN for details)";
    case ncclInvalidUsage: return "invalid usage (run with NCCL_DEBUG=WARN for details)";
    default: return "unhandled error";
    }
}

ncclResult_t ncclAllReduce(const void *send, void *recv, size_t count, ncclDataType_t type, ncclRedOp_t op,
                           ncclComm_t comm, cudaStream_t stream) {
    if (!comm || !valid_buffer(send, count, type) || !valid_buffer(recv, count, type) || op < ncclSum || op > ncclAvg)
        return ncclInvalidArgument;
    return enqueue(comm, stream, [=]() { return all_reduce(send, recv, count, type, op, comm); });
}

ncclResult_t ncclAllGather(const void *send, void *recv, size_t count, ncclDataType_t type, ncclComm_t comm, cudaStream_t stream) {
    if (!comm || !valid_buffer(send, count, type) || !valid_buffer(recv, count * comm->cl->n, type)) return ncclInvalidArgument;
    return enqueue(comm, stream, [=]() { return all_gather(send, recv, count, type, comm); });
}

ncclResult_t ncclSend(const void *buf, size_t count, ncclDataType_t type, int peer, ncclComm_t comm, cudaStream_t stream) {
    if (!comm || peer < 0 || peer >= comm->cl->n || !valid_buffer(buf, count, type)) return ncclInvalidArgument;
    return enqueue(comm, stream, [=]() { return send(buf, count, type, peer, comm); });
}

ncclResult_t ncclRecv(void *buf, size_t count, ncclDataType_t type, int peer, ncclComm_t comm, cudaStream_t stream) {
    if (!comm || peer < 0 || peer >= comm->cl->n || !valid_buffer(buf, count, type)) return ncclInvalidArgument;
    return enqueue(comm, stream, [=]() { return recv(buf, count, type, peer, comm); });
}

ncclResult_t ncclGroupStart() {
    group_depth++;
    return ncclSuccess;
}

ncclResult_t ncclGroupEnd() {
    if (group_depth == 0) return ncclInvalidUsage;
    if (--group_depth > 0) return ncclSuccess;
    std::vector<queued> ops;
    ops.swap(group_ops);
    // one thread per communicator, each running that device's calls in order
    std::vector<ncclComm_t> comms;
    for (const queued &q : ops) {
        bool seen = false;
        for (ncclComm_t c : comms) seen |= c == q.comm;
        if (!seen) comms.push_back(q.comm);
    }
    for (const queued &q : ops)   // each call runs after its stream's earlier work
        if (q.stream) cudaStreamSynchronize(q.stream);
    std::vector<ncclResult_t> results(comms.size(), ncclSuccess);
    std::vector<std::thread> threads;
    for (size_t i = 0; i < comms.size(); i++)
        threads.emplace_back([&, i]() {
            cudaSetDevice(comms[i]->device);
            for (const queued &q : ops)
                if (q.comm == comms[i] && results[i] == ncclSuccess) results[i] = q.run();
        });
    for (std::thread &t : threads) t.join();
    for (ncclResult_t r : results)
        if (r != ncclSuccess) return r;
    return ncclSuccess;
}

}   // extern "C"
