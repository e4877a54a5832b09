// Tensor maps for the bulk tensor copy engine (kernels/ptx.h's tma_load_2d): the driver's cuTensorMapEncodeTiled
// under nvcc (found through the runtime's driver entry points, so nothing links libcuda), the fields the emulation's
// copy twin reads otherwise; the same checks first in both, so a shape the engine refuses fails here alike.
#include "kernels/ptx.h"

#ifdef __CUDACC__
#include <cudaTypedefs.h>
#endif

cudaError_t tma_map_2d(tma_map *m, const void *base, int elem_bytes, uint64_t rows, uint64_t cols, uint64_t row_bytes,
                       unsigned box_rows, unsigned box_cols, tma_swizzle sw) {
    // cuTensorMapEncodeTiled's rules (cuda.h): a 16-byte aligned base, strides a multiple of 16 below 2^40, box sides
    // 1..256 with a row of a multiple of 16 bytes, and a swizzled row no wider than its span. The emulation asks one
    // thing more, that a swizzled row fill its span exactly (the layout the kernels use, and the one whose pattern
    // the ISA draws).
    size_t box_row_bytes = (size_t)box_cols * elem_bytes;
    if (!m || !base || (elem_bytes != 1 && elem_bytes != 2) || reinterpret_cast<uintptr_t>(base) % 16 || rows == 0 ||
        cols == 0 || rows > (1ull << 32) || cols > (1ull << 32) || row_bytes % 16 || row_bytes >= (1ull << 40) ||
        row_bytes < cols * elem_bytes || box_rows < 1 || box_rows > 256 || box_cols < 1 || box_cols > 256 ||
        box_row_bytes % 16 || (sw != TMA_SWIZZLE_NONE && box_row_bytes != tma_swizzle_span(sw)) || sw < TMA_SWIZZLE_NONE ||
        sw > TMA_SWIZZLE_128B)
        return cudaErrorInvalidValue;
#ifdef __CUDACC__
    static PFN_cuTensorMapEncodeTiled_v12000 encode = nullptr;
    if (!encode) {
        cudaDriverEntryPointQueryResult found;
        if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", (void **)&encode, 12000, cudaEnableDefault, &found) !=
                cudaSuccess ||
            found != cudaDriverEntryPointSuccess || !encode)
            return encode = nullptr, cudaErrorNotSupported;
    }
    cuuint64_t dims[2] = {cols, rows}, strides[1] = {row_bytes};
    cuuint32_t box[2] = {box_cols, box_rows}, steps[2] = {1, 1};
    CUresult r = encode(&m->map, elem_bytes == 2 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_UINT8, 2,
                        const_cast<void *>(base), dims, strides, box, steps, CU_TENSOR_MAP_INTERLEAVE_NONE,
                        (CUtensorMapSwizzle)sw, CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    return r == CUDA_SUCCESS ? cudaSuccess : cudaErrorInvalidValue;
#else
    m->base = static_cast<const unsigned char *>(base);
    m->dim[0] = cols, m->dim[1] = rows, m->row_bytes = row_bytes;
    m->box[0] = box_cols, m->box[1] = box_rows;
    m->elem_bytes = elem_bytes, m->swizzle = sw;
    return cudaSuccess;
#endif
}
