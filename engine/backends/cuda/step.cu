// The CUDA backend's forward step: BF16 weights uploaded once (every visit of a layer uses the same device pointers), a BF16 KV
// cache per visit, float32 activations. A layer execution takes its sequences' rows (in place, or gathered), then:
// the QKV projections (BF16 activations through reprise's batch-invariant tensor-core GEMM) with the RMSNorm folded
// in (its weight in the columns, each row's 1/rms in the epilogue), attention (split-KV for decode rows, doing bias +
// q/k norm + RoPE + KV append itself; for a prompt's rows qkv_rope, then the tiled flash-style kernel), the output
// projection adding the residual and leaving the next norm's statistics, gate/up with that norm folded in and SwiGLU
// in its epilogue, down adding the residual.
//
// Tensor parallel (--tp N): one host thread per GPU (rank), each holding 1/N of every unique layer
// (engine/tensor_parallel.c says which rows and columns): its query heads' whole GQA groups of Q/K/V and their KV,
// its rows of gate/up, and the matching columns of O and down, whose partial outputs one all-reduce each sums
// (NCCL, or device copies when the ranks share one GPU); the embedding and LM head by vocabulary, so sampling moves
// only each rank's candidates (an all-gather), never logit rows. The residual stream is whole on every rank. With
// N = 1 the same code runs on the caller's thread, with no collective.
//
// Decode steps run as CUDA graphs, one per rank, collectives included: the second step of a shape (the engine's
// key: sequences, schedules, one token each) is captured from the stream and instantiated - a shape seen once, as
// the last steps of a sweep's batch where sequences finish one by one, is never worth a capture - and later steps of
// that shape only refresh pinned host staging buffers - tokens, every layer execution's rows' positions and KV slots'
// page tables, a sampling step's per-row requests - which the graph's copies (one each, a step) read (a row's logit edits
// are read by the edit kernel from mapped pinned memory), and replay; attention's grid is sized by the
// run's context, its CTAs taking the splits up to each row's current length. A layer execution whose rows
// follow one another (a decode step's, where its sequences all visit the layer) works on the residual stream in
// place: no copy nodes within a visit. Everything else a kernel needs lives at fixed
// device addresses, so one graph serves the whole generation. On sm_90 the step's kernels go out with programmatic
// dependent launch (kernels/launch.h): each is launched while the one before finishes, and waits for it.
#include "engine/backends/cuda/internal.h"

namespace reprise_cuda {

// A step's graph key: a decode step - the whole call in one window, one row per sequence, from the embeddings to
// logits or samples of at most graph_rows rows (the plan's decode rows, up to PLAN_GRAPH_ROWS_MAX) - hashed over
// what its captured graph fixes: each layer execution's layer and parts (their rows, in place or gathered) and, for
// a sampling step, its candidate records' stride and whether edits and log-probabilities run. Positions, lengths,
// KV page tables and each row's sampling request are not in it: a replay reads them from the staging, and
// attention's grid is sized by the run's context
// (ctx), whatever the slots' capacity, so a sequence keeps its graph as it grows and a server's requests share
// theirs. 0: a step never captured (a prompt's, a span's, every row's logits, or positions past ctx).
static sample_step_shape sample_shape(const sample_row *req, int n) {
    sample_step_shape sh = {1, 0, false};
    for (int i = 0; i < n; i++) {
        int k = sample_candidates_k(req[i].p->temp, req[i].p->top_k);
        if (k > sh.k_stride) sh.k_stride = k;
        sh.edits += (size_t)req[i].n_edits, sh.logprobs |= req[i].n_top >= 0 && req[i].lp;
    }
    return sh;
}

unsigned long long graph_key(const step_plan *p, const sample_step_shape &sh, int ctx, int graph_rows) {
    if (!p->whole_call || p->from_hidden || p->to_hidden || p->all_logits || p->n_rows > graph_rows) return 0;
    unsigned long long h = 1469598103934665603ull;
    auto mix = [&h](unsigned long long v) { h = (h ^ v) * 1099511628211ull; };
    mix((unsigned long long)p->n_rows);
    if (p->sample) {   // a sampling step is another graph than a logits step
        mix(0x5a3b1e), mix((unsigned long long)sh.k_stride), mix((unsigned long long)(sh.edits > 0)), mix((unsigned long long)sh.logprobs);
    }
    for (int x = 0; x < p->n_execs; x++) {
        const layer_exec &e = p->execs[x];
        mix((unsigned long long)e.layer), mix((unsigned long long)e.n_parts);
        for (int i = 0; i < e.n_parts; i++) {
            if (e.parts[i].n_rows != 1 || e.parts[i].prompt || e.max_end > ctx) return 0;
            mix((unsigned long long)e.parts[i].row0);
        }
    }
    return h ? h : 1;
}

void step_begin(backend *base, const step_plan *step) {
    cuda_backend *b = cb(base);
    if (b->allocations_at_start < 0) b->allocations_at_start = device_allocations;
    b->step_shape = step->sample ? sample_shape(step->sample, step->n_out) : sample_step_shape{1, 0, false};
    unsigned long long key = graph_key(step, b->step_shape, b->ranks[0]->plan.shape.ctx, b->ranks[0]->graph_rows);
    size_t staged_rows = 0;
    for (int x = 0; x < step->n_execs; x++) staged_rows += (size_t)step->execs[x].n_rows;
    size_t edits = b->step_shape.edits;
    if (edits > b->edits_cap) {   // before any capture (pinned allocation is not capturable); graphs read the old
        size_t cap = b->edits_cap ? b->edits_cap : 4096;
        while (cap < edits) cap *= 2;
        CUDA_CHECK(cudaFreeHost(b->stage_edits));
        CUDA_CHECK(cudaFreeHost(b->stage_edit_raw));
        CUDA_CHECK(cudaMallocHost((void **)&b->stage_edits, cap * sizeof(logit_edit)));
        CUDA_CHECK(cudaMallocHost((void **)&b->stage_edit_raw, cap * sizeof(float)));
        b->edits_cap = cap;
        each(b, drop_graphs);
    }
    // a sampling step's requests: each row's filters, draw and edit range, its edits in the mapped staging
    b->step_params.clear();
    for (int i = 0, at = 0; step->sample && i < step->n_out; i++) {
        const sample_row &q = step->sample[i];
        b->step_params.push_back({q.p->temp, q.p->top_p, q.p->min_p, q.uniform, q.p->top_k,
                                  q.n_top >= 0 && q.lp ? std::min(q.n_top, SAMPLE_MAX_LOGPROBS) : -1, at, q.n_edits});
        if (q.n_edits) memcpy(b->stage_edits + at, q.edits, sizeof(logit_edit) * (size_t)q.n_edits);
        at += q.n_edits;
    }
    if (b->step_params.size() > (size_t)b->ranks[0]->cap_logit_rows) {   // sampled rows are sequences' last: never more
        fprintf(stderr, "reprise: a step samples more rows than the plan's logits rows (internal error)\n");
        abort();
    }
    each(b, [&](rank_state *r) {
        // A window of a long prompt ends no sequence, so nothing synchronised it: its copies from the pinned staging
        // (tokens, positions, KV rows) may still be in flight, and this step is about to overwrite that staging. A
        // step that ended with its logits or ids synchronised already (every decode step): no wait added there.
        if (r->staged_unsynced) CUDA_CHECK(cudaStreamSynchronize(r->stream));
        r->staged_unsynced = true;
        r->stage_at = 0;
        r->stats_x = nullptr;   // the residual stream's rows are written anew (embed, write_rows)
        if (staged_rows > r->stage_cap) grow_stage(r, staged_rows);   // before any capture: pinned allocation is not capturable
        r->key = key;
        r->mode = EAGER;
        if (b->use_graphs && key) {
            if (r->graphs.count(key)) r->mode = REPLAY;
            else if (r->seen.count(key)) r->mode = CAPTURE;
            else {
                if (r->seen.size() >= 64 * b->graph_cache) r->seen.clear();   // bounded too: a long sweep sees many shapes
                r->seen.insert(key);
            }
        }
        if (r->mode == CAPTURE) CUDA_CHECK(cudaStreamBeginCapture(r->stream, cudaStreamCaptureModeThreadLocal));
        // every layer execution's rows - KV page tables and positions - staged, and copied in one piece (a replay
        // refreshes the staging its graph's copy reads)
        step_meta h = step_meta_at(r->stage_meta, staged_rows);
        size_t at = 0;
        for (int x = 0; x < step->n_execs; x++) {
            const layer_exec &e = step->execs[x];
            for (int i = 0; i < e.n_rows; i++, at++) {
                const kv_slot *kv = e.parts[e.row_part[i]].kv;
                h.kv[at] = rank_kv(kv, r), h.pos[at] = e.row_pos[i];
            }
        }
        r->meta_rows = staged_rows;
        if (r->mode != REPLAY && staged_rows)
            CUDA_CHECK(cudaMemcpyAsync(r->d_meta, r->stage_meta, staged_rows * PLAN_META_ROW_BYTES, cudaMemcpyHostToDevice, r->stream));
        // the sampling requests too, here: the step's last kernels (norm, LM head, sampling) then follow one another
        size_t n_params = b->step_params.size();
        if (n_params) memcpy(r->stage_params, b->step_params.data(), n_params * sizeof(sample_row_params));
        if (r->mode != REPLAY && n_params)
            CUDA_CHECK(cudaMemcpyAsync(r->d_params, r->stage_params, n_params * sizeof(sample_row_params), cudaMemcpyHostToDevice,
                                       r->stream));
    });
}

// Tokens are staged as the engine hands them over, sequence by sequence, and embedded by one copy and one launch for
// each run of consecutive rows (a decode step's: one), before the step's first layer execution or row copy.
void flush_embed(cuda_backend *b, rank_state *r) {
    int row0 = r->embed_lo, n = r->embed_hi - r->embed_lo, dim = b->base.cfg->dim;
    r->embed_lo = r->embed_hi = 0;
    if (n <= 0 || r->mode == REPLAY) return;
    CUDA_CHECK(cudaMemcpyAsync(r->d_tokens + row0, r->stage_tokens + row0, n * sizeof(int), cudaMemcpyHostToDevice, r->stream));
    CUDA_CHECK(launch_embed(r->embed, r->d_tokens + row0, n, dim, r->shard.vocab0, r->shard.n_vocab, r->x + (size_t)row0 * dim,
                            r->stream));
    all_reduce(b, r, &rank_state::x, (size_t)row0 * dim, (size_t)n * dim);   // each token's row is on one rank
}

void embed(backend *base, const int *tokens, int n, int row0) {
    cuda_backend *b = cb(base);
    if (b->ranks[0]->mode == REPLAY) {   // only the staging to refresh: from this thread, the rank threads idle
        for (rank_state *r : b->ranks) memcpy(r->stage_tokens + row0, tokens, n * sizeof(int));
        return;
    }
    each(b, [&](rank_state *r) {
        if (r->embed_hi > r->embed_lo && row0 != r->embed_hi) flush_embed(b, r);   // not the run's next rows
        memcpy(r->stage_tokens + row0, tokens, n * sizeof(int));
        if (r->embed_hi <= r->embed_lo) r->embed_lo = row0;
        r->embed_hi = row0 + n;
    });
}

// out (R, N) = X (R, K) . W^T by reprise's tensor-core GEMM (gemm_mma.cu), for every R, through out's epilogue (Q, K,
// V stored from stacked weights; the residual added; SwiGLU of interleaved gate/up), its input the BF16 rows the
// kernel before wrote (RMSNorm, attention, the gate/up GEMM: no conversion launch). One numeric rule whatever the
// batch (K's segments fixed by the weight's shape), so a sequence's logits do not depend on the sequences beside it.
void linear(rank_state *r, const bf16 *X, gemm_weight W, int R, int N, int K, gemm_out out) {
    CUDA_CHECK(launch_gemm_mma(X, W, R, N, K, out, r->gemm_ws, r->stream));
}


void layer_rank(cuda_backend *b, rank_state *r, const layer_exec *e) {
    const model_config *c = b->base.cfg;
    const std::vector<bf16 *> &w = r->layers[e->layer];
    const std::vector<gemm_weight> &proj = r->proj[e->layer];
    const visit_part *parts = e->parts;
    int n_parts = e->n_parts, R = e->n_rows;
    int dim = c->dim, hd = c->head_dim, heads = r->shard.n_heads, kv_heads = r->shard.n_kv_heads;
    int qd = heads * hd, kvd = kv_heads * hd, hidden = r->shard.n_hidden;

    flush_embed(b, r);
    // each row's position and KV slot: the next rows of the step's metadata, which step_begin copied
    if (r->stage_at + R > r->meta_rows) {   // cannot be: step_begin staged every execution's rows
        fprintf(stderr, "reprise: step metadata overrun (internal error)\n");
        abort();
    }
    step_meta d = step_meta_at(r->d_meta, r->meta_rows);
    int *pos = d.pos + r->stage_at;
    kv_table *kv = d.kv + r->stage_at;
    r->stage_at += R;
    // A decode-sized call (the steps graphs capture) has the splits of the run's context, so that the grid is the
    // same at every step (its CTAs take the splits up to each row's length), into scratch reserved up front; a
    // prefill-sized one (never captured) those of its current length.
    const int chunk = ATTENTION_CHUNK;
    int decode_sized = R <= r->graph_rows, ctx = std::max(r->plan.shape.ctx, e->max_end);
    int n_splits = ((decode_sized ? ctx : e->max_end) + chunk - 1) / chunk;
    int any_prefill = e->any_prompt;   // then the split-KV kernel only serves single-row parts, one at a time
    size_t need = (size_t)(any_prefill ? 1 : R) * heads * n_splits * (hd + 2), counters = attention_counters(any_prefill ? 1 : R, heads);
    if (need > r->cap_partial || counters > r->cap_att_count) {
        if (r->mode != EAGER) {   // cannot be: decode-sized scratch is reserved for the longest context
            fprintf(stderr, "reprise: attention scratch too small for a captured step (internal error)\n");
            abort();
        }
        if (need > r->cap_partial) realloc_dev(&r->partial, need * sizeof(float)), r->cap_partial = need;
        if (counters > r->cap_att_count) {
            realloc_dev(&r->att_count, counters * sizeof(unsigned)), r->cap_att_count = counters;
            CUDA_CHECK(cudaMemsetAsync(r->att_count, 0, counters * sizeof(unsigned), r->stream));
        }
        drop_graphs(r);
    }
    // the parts' rows: in place where they follow one another in part order (a decode step's every execution
    // where all its sequences visit the layer), else gathered into xb and copied back at the end
    bool in_place = true;
    for (int p = 0, i = 0; p < n_parts; i += parts[p].n_rows, p++) in_place &= parts[p].row0 == parts[0].row0 + i;
    float *xr = in_place ? r->x + (size_t)parts[0].row0 * dim : r->xb;
    if (!in_place)
        for (int p = 0, i = 0; p < n_parts; i += parts[p].n_rows, p++)
            CUDA_CHECK(cudaMemcpyAsync(r->xb + (size_t)i * dim, r->x + (size_t)parts[p].row0 * dim,
                                       sizeof(float) * dim * parts[p].n_rows, cudaMemcpyDeviceToDevice, r->stream));

    // attention block: this rank's heads; the RMSNorm folded into the QKV GEMM (its weight in Q/K/V's columns, each
    // row's 1 / rms in the epilogue) from the rows' statistics the previous visit's down projection left, when it
    // ran on these very rows in place (a decode step's visits after the first), else made here
    if (!(in_place && r->stats_x == xr && r->stats_rows == R))
        CUDA_CHECK(launch_row_stats(xr, nullptr, R, dim, r->x_bf16, r->row_ssq, r->stream));
    linear(r, r->x_bf16, proj[W_Q], R, qd + 2 * kvd, dim,
                gemm_store_segments(r->q, r->k, qd, r->v, qd + kvd, r->row_ssq, c->norm_eps));
    // one query per sequence (decode): split-KV over all rows, bias + q/k norm + RoPE + KV append done by the
    // attention kernel itself; a sequence's prompt: those first (qkv_rope), then the tiled prefill kernel (their
    // output in BF16: the output projection's input)
    qkv_raw raw = {r->k, r->v, w[W_Q_BIAS], w[W_K_BIAS], w[W_V_BIAS], w[W_Q_NORM], w[W_K_NORM], r->inv_freq, c->norm_eps};
    if (!any_prefill)
        CUDA_CHECK(launch_attention(r->q, &raw, pos, kv, R, heads, kv_heads, hd, n_splits, chunk,
                                    r->partial, r->att_count, nullptr, r->act_bf16, r->stream));
    else {
        CUDA_CHECK(launch_qkv_rope(r->q, r->k, r->v, raw.bq, raw.bk, raw.bv, raw.q_norm, raw.k_norm, r->inv_freq, pos, kv, R,
                                   heads, kv_heads, hd, c->norm_eps, r->stream));
        for (int p = 0, i = 0; p < n_parts; i += parts[p].n_rows, p++) {
            float *qr = r->q + (size_t)i * qd;
            bf16 *ar = r->act_bf16 + (size_t)i * qd;
            if (parts[p].prompt)
                CUDA_CHECK(launch_attention_prefill(qr, parts[p].n_rows, parts[p].pos0, rank_kv(parts[p].kv, r), heads,
                                                    kv_heads, hd, nullptr, ar, r->stream));
            else
                CUDA_CHECK(launch_attention(qr, nullptr, pos + i, kv + i, 1, heads, kv_heads, hd,
                                            n_splits, chunk, r->partial, r->att_count, nullptr, ar, r->stream));
        }
    }
    // one GPU: the residual added in the GEMM's epilogue, which also leaves the rows in BF16 and their sums of
    // squares (the next RMSNorm's statistics); tensor parallel: the ranks' partial sums all-reduced first, then
    // added by row_stats, which leaves the same
    bool whole = b->tp == 1;
    linear(r, r->act_bf16, proj[W_O], R, dim, qd, whole ? gemm_add_to(xr, r->x_bf16, r->row_ssq) : gemm_store(r->tmp));
    if (!whole) {
        all_reduce(b, r, &rank_state::tmp, 0, (size_t)R * dim);
        CUDA_CHECK(launch_row_stats(xr, r->tmp, R, dim, r->x_bf16, r->row_ssq, r->stream));
    }

    // MLP block: the RMSNorm folded into this rank's rows of gate/up (its weight in their columns, each row's
    // 1 / rms and SwiGLU in the GEMM's epilogue: gate and up interleaved), then its columns of down
    linear(r, r->x_bf16, proj[W_GATE], R, gemm_swiglu_rows(hidden), dim, gemm_swiglu(r->mlp_bf16, hidden, r->row_ssq, c->norm_eps));
    linear(r, r->mlp_bf16, proj[W_DOWN], R, dim, hidden, whole ? gemm_add_to(xr, r->x_bf16, r->row_ssq) : gemm_store(r->tmp));
    if (!whole) {
        all_reduce(b, r, &rank_state::tmp, 0, (size_t)R * dim);
        CUDA_CHECK(launch_row_stats(xr, r->tmp, R, dim, r->x_bf16, r->row_ssq, r->stream));
    }
    r->stats_x = in_place ? xr : nullptr, r->stats_rows = R;   // the next visit's statistics, if it takes these rows

    if (!in_place)
        for (int p = 0, i = 0; p < n_parts; i += parts[p].n_rows, p++)
            CUDA_CHECK(cudaMemcpyAsync(r->x + (size_t)parts[p].row0 * dim, r->xb + (size_t)i * dim,
                                   sizeof(float) * dim * parts[p].n_rows, cudaMemcpyDeviceToDevice, r->stream));
}

// A replayed step's executions are in its graph (their rows' metadata staged by step_begin): nothing to hand to
// the rank threads, which under --tp would cost a wake-up per layer visit.
void layer_run(backend *base, const layer_exec *e) {
    cuda_backend *b = cb(base);
    if (b->ranks[0]->mode == REPLAY) return;   // every rank replays the same steps
    each(b, [&](rank_state *r) { layer_rank(b, r, e); });
}

void read_rows(backend *base, int row0, int n, float *out) {
    cuda_backend *b = cb(base);
    int dim = base->cfg->dim;
    each(b, [&](rank_state *r) {   // the residual stream is the same on every rank
        flush_embed(b, r);
        if (r->rank == 0)
            CUDA_CHECK(cudaMemcpyAsync(out, r->x + (size_t)row0 * dim, sizeof(float) * n * dim, cudaMemcpyDeviceToHost, r->stream));
        CUDA_CHECK(cudaStreamSynchronize(r->stream));
        r->staged_unsynced = false;
    });
}

// The stash (a sweep's snapshots of the hidden state): device copies on each rank's stream, in order with the steps
// around them; nothing crosses to the host and nothing waits.
void stash_rows(backend *base, long at, int row0, int n) {
    cuda_backend *b = cb(base);
    int dim = base->cfg->dim;
    each(b, [&](rank_state *r) {   // the residual stream is the same on every rank: each keeps its own copy
        flush_embed(b, r);
        CUDA_CHECK(cudaMemcpyAsync(r->stash + (size_t)at * dim, r->x + (size_t)row0 * dim, sizeof(float) * n * dim,
                                   cudaMemcpyDeviceToDevice, r->stream));
    });
}

void unstash_rows(backend *base, long at, int row0, int n) {
    cuda_backend *b = cb(base);
    int dim = base->cfg->dim;
    each(b, [&](rank_state *r) {
        flush_embed(b, r);
        r->stats_x = nullptr;
        CUDA_CHECK(cudaMemcpyAsync(r->x + (size_t)row0 * dim, r->stash + (size_t)at * dim, sizeof(float) * n * dim,
                                   cudaMemcpyDeviceToDevice, r->stream));
    });
}

void write_rows(backend *base, int row0, int n, const float *in) {
    cuda_backend *b = cb(base);
    int dim = base->cfg->dim;
    each(b, [&](rank_state *r) {
        flush_embed(b, r);
        r->stats_x = nullptr;
        CUDA_CHECK(cudaMemcpyAsync(r->x + (size_t)row0 * dim, in, sizeof(float) * n * dim, cudaMemcpyHostToDevice, r->stream));
        CUDA_CHECK(cudaStreamSynchronize(r->stream));
        r->staged_unsynced = false;
    });
}

// The end of a step on one rank: final norm and its vocabulary's LM head for the given rows, then either the
// logits (each rank fills its columns of out_logits) or, given out_ids, sampled ids (the step's requests, staged and copied
// by step_begin, drawn as b->step_shape says - log-probability records, if asked, before the edits, then the edits,
// the candidates, the ranks' candidates gathered, rank 0's pick into out_ids (rows, 2): id and logit; each rank's
// records to out_lp, slice s's row i at out_lp[s * lp_rows + i]). A capturing step is instantiated and replayed here.
// An eager step with more rows than the logits buffers hold goes in chunks (score's every-row logits).
void finish_rows(cuda_backend *b, rank_state *r, const int *rows, int n, float *out_logits, int *out_ids,
                 sample_logprob_record *out_lp, int lp_rows) {
    const model_config *c = b->base.cfg;
    const bool sampling = out_ids != nullptr;
    const int nv = r->shard.n_vocab, slices = r->sample_slices, k_stride = b->step_shape.k_stride;
    const bool edits = b->step_shape.edits > 0, logprobs = b->step_shape.logprobs;
    flush_embed(b, r);
    if (r->mode != REPLAY) {
        bool in_order = true;   // consecutive rows (a decode step's) are normalised where they are, others gathered
        for (int i = 1; i < n; i++) in_order &= rows[i] == rows[0] + i;
        float *xr = in_order ? r->x + (size_t)rows[0] * c->dim : r->xb;
        for (int i = 0; i < n && !in_order; i++)
            CUDA_CHECK(cudaMemcpyAsync(r->xb + (size_t)i * c->dim, r->x + (size_t)rows[i] * c->dim, sizeof(float) * c->dim,
                                       cudaMemcpyDeviceToDevice, r->stream));
        CUDA_CHECK(launch_rmsnorm(xr, nullptr, r->final_norm, n, c->dim, c->norm_eps, nullptr, r->act_bf16, r->stream));
        linear(r, r->act_bf16, gemm_weight_bf16(r->lm_head), n, nv, c->dim, gemm_store(r->d_logits));
        if (sampling) {
            // each rank's vocabulary in sample_slices slices, a CTA each; rank 0 merges every rank's slices
            size_t slice_bytes = (size_t)n * SAMPLE_CANDIDATE_ROW_BYTES(k_stride);
            if (logprobs) {
                CUDA_CHECK(launch_sample_logprobs(r->d_logits, n, nv, r->shard.vocab0, r->d_params, slices, r->d_logprobs, r->stream));
                CUDA_CHECK(cudaMemcpyAsync(r->stage_logprobs, r->d_logprobs, (size_t)slices * n * sizeof(sample_logprob_record),
                                           cudaMemcpyDeviceToHost, r->stream));
            }
            if (edits)
                CUDA_CHECK(launch_sample_edits(r->d_logits, n, nv, r->shard.vocab0, r->d_params, b->stage_edits, b->stage_edit_raw,
                                               r->stream));
            CUDA_CHECK(launch_sample_candidates(r->d_logits, n, nv, r->shard.vocab0, r->d_params, k_stride, slices, r->d_cand,
                                                r->stream));
            const unsigned char *cand = b->tp > 1 ? all_gather_candidates(b, r, slices * slice_bytes) : r->d_cand;
            if (r->rank == 0) {
                CUDA_CHECK(launch_sample_pick(cand, b->tp * slices, slice_bytes, n, k_stride, r->d_params, r->d_ids, r->stream));
                CUDA_CHECK(cudaMemcpyAsync(r->stage_ids, r->d_ids, sizeof(int) * 2 * n, cudaMemcpyDeviceToHost, r->stream));
            }
        } else
            CUDA_CHECK(cudaMemcpyAsync(r->stage_logits, r->d_logits, sizeof(float) * n * nv, cudaMemcpyDeviceToHost, r->stream));
    }
    if (r->mode == CAPTURE) {
        cudaGraph_t g;
        cudaGraphExec_t exec;
        CUDA_CHECK(cudaStreamEndCapture(r->stream, &g));
        CUDA_CHECK(cudaGraphInstantiate(&exec, g, 0));
        CUDA_CHECK(cudaGraphDestroy(g));
        if (r->graphs.size() >= b->graph_cache) {   // evict the least recently used
            auto lru = r->graphs.begin();
            for (auto it = r->graphs.begin(); it != r->graphs.end(); ++it)
                if (it->second.last_used < lru->second.last_used) lru = it;
            cudaGraphExecDestroy(lru->second.exec);
            r->graphs.erase(lru);
        }
        r->graphs[r->key] = {exec, 0};
        r->graph_captures++;
        r->mode = REPLAY;
    } else if (r->mode == REPLAY)
        r->graph_replays++;
    if (r->mode == REPLAY) {
        rank_state::graph &g = r->graphs[r->key];
        g.last_used = ++r->clock;
        CUDA_CHECK(cudaGraphLaunch(g.exec, r->stream));
    }
    CUDA_CHECK(cudaStreamSynchronize(r->stream));
    r->staged_unsynced = false;
    if (sampling) {
        if (r->rank == 0) memcpy(out_ids, r->stage_ids, sizeof(int) * 2 * n);
        for (int s = 0; s < slices && logprobs; s++)
            memcpy(out_lp + (size_t)s * lp_rows, r->stage_logprobs + (size_t)s * n, (size_t)n * sizeof(sample_logprob_record));
    } else
        for (int i = 0; i < n; i++)
            memcpy(out_logits + (size_t)i * c->vocab_size + r->shard.vocab0, r->stage_logits + (size_t)i * nv, sizeof(float) * nv);
}

// Sampling when out_ids is given; out_lp: (tp, sample_slices, n) records when sampling with log-probabilities.
void finish_step(cuda_backend *b, const int *rows, int n, float *out_logits, int *out_ids, sample_logprob_record *out_lp) {
    each(b, [&](rank_state *r) {
        int chunk = r->cap_logit_rows < r->cap_rows ? r->cap_logit_rows : r->cap_rows;
        if (n > chunk && r->mode != EAGER) {   // cannot be: captured steps have at most graph_rows rows
            fprintf(stderr, "reprise: a captured step's logits exceed the planned rows (internal error)\n");
            abort();
        }
        sample_logprob_record *lp = out_lp ? out_lp + (size_t)r->rank * r->sample_slices * n : nullptr;
        for (int i = 0; i < n; i += chunk) {   // a sampling step's rows are sequences' last: always one chunk
            int k = n - i < chunk ? n - i : chunk;
            finish_rows(b, r, rows + i, k, out_ids ? nullptr : out_logits + (size_t)i * b->base.cfg->vocab_size,
                        out_ids ? out_ids + 2 * i : nullptr, lp ? lp + i : nullptr, n);
        }
        r->mode = EAGER;
    });
}

void logits(backend *base, const int *rows, int n, float *out) { finish_step(cb(base), rows, n, out, nullptr, nullptr); }

// A row's log-probabilities from its records (every rank's slices): the largest logit, the sums scaled to it, the
// top lists merged; the chosen id's logit before its edit (the edit kernel kept it) or as the pick saw it.
static void row_logprobs(const cuda_backend *b, const sample_logprob_record *lp, int n, int row, const sample_row *req,
                         const sample_row_params *params, int id, float picked) {
    int records = b->tp * b->ranks[0]->sample_slices;
    float mx = -INFINITY;
    std::vector<std::pair<float, int>> top;
    for (int s = 0; s < records; s++) {
        const sample_logprob_record *rec = &lp[(size_t)s * n + row];
        if (!(rec->max <= mx)) mx = rec->max;   // NaN (a row not finite) wins
        for (int j = 0; j < rec->n; j++) top.push_back({rec->top[j].v, rec->top[j].id});
    }
    double sum = 0;
    for (int s = 0; s < records; s++) {
        const sample_logprob_record *rec = &lp[(size_t)s * n + row];
        sum += rec->max == mx ? rec->sum : rec->sum * exp((double)rec->max - mx);
    }
    std::sort(top.begin(), top.end(), [](const std::pair<float, int> &x, const std::pair<float, int> &y) {
        return x.first > y.first || (x.first == y.first && x.second < y.second);
    });
    int n_top = std::min((int)top.size(), std::min(req->n_top, SAMPLE_MAX_LOGPROBS));
    float top_v[SAMPLE_MAX_LOGPROBS];
    int top_id[SAMPLE_MAX_LOGPROBS];
    for (int j = 0; j < n_top; j++) top_v[j] = top[j].first, top_id[j] = top[j].second;
    float logit = id < 0 ? NAN : picked;
    const logit_edit *e = std::lower_bound(req->edits, req->edits + req->n_edits, id,
                                           [](const logit_edit &x, int want) { return x.id < want; });
    if (id >= 0 && e != req->edits + req->n_edits && e->id == id) logit = b->stage_edit_raw[params->edit0 + (e - req->edits)];
    token_logprob_finish(req->lp, id, logit, mx, sum, top_v, top_id, n_top);
}

// The device draws each row by its request (engine/sampler.h's sample_row); a row its candidates cannot decide
// (SAMPLE_NEEDS_HOST: top-k off with a nucleus past SAMPLE_MAX_K tokens, say) gets its logits and is drawn on the
// host by the same rule and draw. No other row's logits leave the device.
void sample(backend *base, const int *rows, int n, sample_row *req) {
    cuda_backend *b = cb(base);
    const std::vector<sample_row_params> &params = b->step_params;   // step_begin staged them from the same requests
    if ((int)params.size() != n) {
        fprintf(stderr, "reprise: sample() without its step's requests (internal error)\n");
        abort();
    }
    std::vector<int> out(2 * (size_t)n);
    std::vector<sample_logprob_record> lp(b->step_shape.logprobs ? (size_t)b->tp * b->ranks[0]->sample_slices * n : 0);
    finish_step(b, rows, n, nullptr, out.data(), lp.empty() ? nullptr : lp.data());
    std::vector<int> host_rows, host_at;
    for (int i = 0; i < n; i++) {
        req[i].id = out[2 * i];
        if (req[i].id == SAMPLE_NEEDS_HOST) host_rows.push_back(rows[i]), host_at.push_back(i);
        else if (params[i].n_top >= 0) {
            float picked;
            memcpy(&picked, &out[2 * i + 1], sizeof picked);
            row_logprobs(b, lp.data(), n, i, &req[i], &params[i], req[i].id, picked);
        }
    }
    if (host_rows.empty()) return;
    int vocab = b->base.cfg->vocab_size;
    std::vector<float> lg((size_t)host_rows.size() * vocab);
    std::vector<sample_row> host_req;
    for (int i : host_at) host_req.push_back(req[i]);
    finish_step(b, host_rows.data(), (int)host_rows.size(), lg.data(), nullptr, nullptr);   // eager: x holds the rows
    sample_rows_host(lg.data(), vocab, host_req.data(), (int)host_req.size(), nullptr, nullptr);
    for (size_t j = 0; j < host_at.size(); j++) req[host_at[j]].id = host_req[j].id;
    b->host_sampled_rows += (long)host_rows.size();
}

}   // namespace reprise_cuda
