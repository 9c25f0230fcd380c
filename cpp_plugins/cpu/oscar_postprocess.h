/*
 * oscar_postprocess.h -- C ABI of the CPU twin of the OscarDecode / OscarNMS plugins.
 *
 * Semantics: spec section 6 as written in oscar_edge/postprocess.py (the reference); arithmetic
 * from ../common/oscar_math.h. Layouts are those of the TensorRT plugins (cpp_plugins/README.md):
 *
 *   raw inputs   refine_score [B,1,H4,W4], refine_bbox [B,4,H4,W4], refine_noco [B,1,H4,W4],
 *                coarse_score [B,1,H8,W8], coarse_bbox [B,4,H8,W8]; float32, C order;
 *                H4 = 2*H8, W4 = 2*W8.
 *   clamp_hw     [B,2] float32 (height, width) to clamp boxes to, or NULL for (4*H4, 4*W4).
 *   decode out   boxes [B,topk,4], scores [B,topk] float32, count [B] int32; rows past count
 *                are zero.
 *   nms out      num [B] int32, boxes [B,max_det,4], scores [B,max_det] float32, optional
 *                index [B,max_det] int32 (candidate row of each kept box, -1 past num).
 *
 * All buffers are caller-provided. Scratch memory is the caller's `workspace` of at least
 * oscar_workspace_size(H4, W4, topk) bytes (any alignment); the functions never allocate, so a
 * caller that keeps its buffers does no allocation per call. Not re-entrant on one workspace.
 * Return value: OSCAR_OK or an error code (oscar_status_string names it); outputs are
 * unspecified after an error.
 */
#ifndef OSCAR_POSTPROCESS_H
#define OSCAR_POSTPROCESS_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define OSCAR_API __declspec(dllexport)
#else
#define OSCAR_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever a signature below changes; oscar_edge/native.py checks it. */
#define OSCAR_ABI_VERSION 1

enum OscarStatus
{
    OSCAR_OK = 0,
    OSCAR_ERR_NULL_POINTER = 1,   /* a required pointer is NULL */
    OSCAR_ERR_BAD_ARGUMENT = 2,   /* batch < 0, topk < 1, max_det < 1, k < 0, ... */
    OSCAR_ERR_GRID_MISMATCH = 3,  /* H4 != 2*H8 or W4 != 2*W8 */
    OSCAR_ERR_WORKSPACE = 4       /* workspace smaller than oscar_workspace_size() */
};

OSCAR_API int32_t oscar_abi_version(void);

OSCAR_API char const* oscar_status_string(int32_t status);

/* Scratch bytes needed by oscar_decode / oscar_postprocess for a P2 grid h4 x w4 and topk, and
 * by oscar_nms for k = topk candidates per image (pass h4 = w4 = 0). 0 for invalid sizes. */
OSCAR_API size_t oscar_workspace_size(int32_t h4, int32_t w4, int32_t topk);

/* y[i] = sigmoid(x[i]) with the shared float32 arithmetic (for tests). */
OSCAR_API void oscar_sigmoid(float const* x, float* y, int64_t n);

/* Rules 1-4: candidates per image, sorted by sigmoid(refine) descending, ties lower index. */
OSCAR_API int32_t oscar_decode(float const* refine_score, float const* refine_bbox,
    float const* refine_noco, float const* coarse_score, float const* coarse_bbox, int32_t batch,
    int32_t h4, int32_t w4, int32_t h8, int32_t w8, float const* clamp_hw, float score_threshold,
    int32_t topk, float* boxes, float* scores, int32_t* count, void* workspace,
    size_t workspace_size);

/* Rule 5 on decoded candidates boxes [B,k,4], scores [B,k], count [B] (count clamped to
 * [0, k]). out_index may be NULL. */
OSCAR_API int32_t oscar_nms(float const* boxes, float const* scores, int32_t const* count,
    int32_t batch, int32_t k, float iou_threshold, int32_t max_det, int32_t* num,
    float* out_boxes, float* out_scores, int32_t* out_index, void* workspace,
    size_t workspace_size);

/* oscar_decode followed by oscar_nms, image by image, without materialising [B,topk] outputs. */
OSCAR_API int32_t oscar_postprocess(float const* refine_score, float const* refine_bbox,
    float const* refine_noco, float const* coarse_score, float const* coarse_bbox, int32_t batch,
    int32_t h4, int32_t w4, int32_t h8, int32_t w8, float const* clamp_hw, float score_threshold,
    int32_t topk, float iou_threshold, int32_t max_det, int32_t* num, float* out_boxes,
    float* out_scores, void* workspace, size_t workspace_size);

#ifdef __cplusplus
}
#endif

#endif /* OSCAR_POSTPROCESS_H */
