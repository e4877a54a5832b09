// The tensor-parallel collectives of a step: all-reduce of partial sums, all-gather of sampling candidates.
#include "engine/backends/cuda/internal.h"

namespace reprise_cuda {

// The ranks' copies of one buffer (the member `buf` of each, `count` floats from element `at`) summed, in place on
// every rank, in rank order, so that a row's sum does not depend on how many rows the message has (batch
// invariance): two ranks by NCCL's all-reduce (a sum of two is the same in either order); more by NCCL's all-gather
// of every rank's copy into `reduce` and a sum over them in rank order (NCCL's ring all-reduce adds each chunk in
// another order, and the chunks follow the message's size); where the ranks share a GPU, each rank sums all ranks'
// copies in rank order into its scratch once every rank has written its copy, and copies the sum back once every
// rank has read them.
void all_reduce(cuda_backend *b, rank_state *r, float *rank_state::*buf, size_t at, size_t count) {
    if (b->tp <= 1 || count == 0) return;
    float *mine = r->*buf + at;
    if (!b->share_gpu && b->tp == 2) {
        NCCL_CHECK(ncclAllReduce(mine, mine, count, ncclFloat32, ncclSum, r->comm, r->stream));
        return;
    }
    if (!b->share_gpu) {
        NCCL_CHECK(ncclAllGather(mine, r->reduce, count, ncclFloat32, r->comm, r->stream));
        buffer_list gathered;
        gathered.n = b->tp;
        for (int s = 0; s < b->tp; s++) gathered.p[s] = r->reduce + (size_t)s * count;
        CUDA_CHECK(launch_sum_buffers(gathered, (long)count, mine, r->stream));
        return;
    }
    buffer_list all;
    all.n = b->tp;
    for (int s = 0; s < b->tp; s++) all.p[s] = b->ranks[s]->*buf + at;
    CUDA_CHECK(cudaEventRecord(r->ready, r->stream));
    b->barrier.wait();
    for (rank_state *o : b->ranks) CUDA_CHECK(cudaStreamWaitEvent(r->stream, o->ready, 0));
    CUDA_CHECK(launch_sum_buffers(all, (long)count, r->reduce, r->stream));
    CUDA_CHECK(cudaEventRecord(r->done, r->stream));
    b->barrier.wait();
    for (rank_state *o : b->ranks) CUDA_CHECK(cudaStreamWaitEvent(r->stream, o->done, 0));
    CUDA_CHECK(cudaMemcpyAsync(mine, r->reduce, count * sizeof(float), cudaMemcpyDeviceToDevice, r->stream));
}

// Every rank's first `bytes` of d_cand gathered, in rank order, after the room for this rank's own candidate records
// (its sample_slices slices of plan.logit_rows rows) in every rank's d_cand: NCCL's all-gather, or device copies
// where the ranks share a GPU.
unsigned char *all_gather_candidates(cuda_backend *b, rank_state *r, size_t bytes) {
    unsigned char *gathered = r->d_cand + (size_t)r->sample_slices * r->cap_logit_rows * SAMPLE_CANDIDATE_ROW_BYTES(SAMPLE_MAX_K);
    if (!b->share_gpu) {
        NCCL_CHECK(ncclAllGather(r->d_cand, gathered, bytes, ncclUint8, r->comm, r->stream));
        return gathered;
    }
    CUDA_CHECK(cudaEventRecord(r->ready, r->stream));
    b->barrier.wait();
    for (rank_state *o : b->ranks) {
        CUDA_CHECK(cudaStreamWaitEvent(r->stream, o->ready, 0));
        CUDA_CHECK(cudaMemcpyAsync(gathered + o->rank * bytes, o->d_cand, bytes, cudaMemcpyDeviceToDevice, r->stream));
    }
    CUDA_CHECK(cudaEventRecord(r->done, r->stream));
    b->barrier.wait();   // no rank writes its candidates again before every rank has copied them
    for (rank_state *o : b->ranks) CUDA_CHECK(cudaStreamWaitEvent(r->stream, o->done, 0));
    return gathered;
}

}   // namespace reprise_cuda
