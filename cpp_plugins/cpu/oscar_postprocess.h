/*
 * oscar_postprocess.h -- C ABI of the CPU twin of the OscarDecode / OscarNMS plugins.
 *
 * Semantics: spec section 6 as written in oscar_edge/postprocess.py (the reference); arithmetic
 * from ../common/oscar_math.h. Layouts are those of the TensorRT plugins (cpp_plugins/README.md):
 *
 *   raw inputs   refine_score [B,1,H4,W4], refine_bbox [B,4,H4,W4], refine_noco [B,1,H4,W4],
 *                coarse_score [B,1,H8,W8], coarse_bbox [B,4,H8,W8] (log-distances: decode
 *                applies exp); float32, C order;
 *                H4 = 2*H8, W4 = 2*W8.
 *   clamp_hw     [B,2] float32 (height, width) to clamp boxes to, or NULL for (4*H4, 4*W4).
 *   decode out   boxes [B,topk,4], scores [B,topk] float32, count [B] int32; rows past count
 *                are zero.
 *   nms out      num [B] int32, boxes [B,max_det,4], scores [B,max_det] float32, optional
 *                index [B,max_det] int32 (candidate row of each kept box, -1 past num).
 *   peak refine  image [B,C,H,W] float32 (the network input; channel 0 is used), letterbox
 *                [B,4] float32 (content height, content width, scale_y, scale_x) or NULL for
 *                (H, W, 1, 1); boxes / out [B,max_det,4] float32, num [B] int32.
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

/* Bumped whenever a signature below changes; oscar_edge/native.py checks it.
 * 2: oscar_peak_refine; oscar_postprocess takes the image for the peak refinement. */
#define OSCAR_ABI_VERSION 2

/* peak_flags of oscar_postprocess: refine the kept boxes on the image (rule 6), and do it with
 * the 3x3 centroid (OSCAR_PEAK_REFINE | OSCAR_PEAK_CENTROID is the shipped default). */
#define OSCAR_PEAK_REFINE 1
#define OSCAR_PEAK_CENTROID 2

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

/* Rule 6 (the OscarPeakRefine plugin): every kept box b < clamp(num[b], 0, max_det)
 * is moved so that its centre sits on the peak of channel 0 of `image` inside it
 * (postprocess.peak_refine); rows past num are written as zeros. out_boxes may be `boxes`.
 * centroid: 0 or 1 (3x3 intensity-weighted centroid). */
OSCAR_API int32_t oscar_peak_refine(float const* image, int32_t batch, int32_t channels, int32_t height,
    int32_t width, float const* boxes, int32_t const* num, int32_t max_det, float const* letterbox,
    int32_t centroid, float* out_boxes);

/* oscar_decode followed by oscar_nms, image by image, without materialising [B,topk] outputs;
 * then, when peak_flags has OSCAR_PEAK_REFINE, the peak refinement of the kept boxes on `image`
 * [B,C,H,W] (content = clamp_hw, or (4*H4, 4*W4) when clamp_hw is NULL; scale_yx [B,2]
 * (scale_y, scale_x), NULL for (1, 1)). image may be NULL when peak_flags is 0. */
OSCAR_API int32_t oscar_postprocess(float const* refine_score, float const* refine_bbox,
    float const* refine_noco, float const* coarse_score, float const* coarse_bbox, int32_t batch,
    int32_t h4, int32_t w4, int32_t h8, int32_t w8, float const* clamp_hw, float score_threshold,
    int32_t topk, float iou_threshold, int32_t max_det, float const* image, int32_t channels,
    int32_t height, int32_t width, float const* scale_yx, int32_t peak_flags, int32_t* num,
    float* out_boxes, float* out_scores, void* workspace, size_t workspace_size);

#ifdef __cplusplus
}
#endif

#endif /* OSCAR_POSTPROCESS_H */
