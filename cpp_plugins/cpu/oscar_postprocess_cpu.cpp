/*
 * CPU implementation of OSCAR decode + NMS (the twin of the CUDA kernels / TensorRT plugins).
 * See oscar_postprocess.h for the ABI and oscar_edge/postprocess.py for the reference rules.
 *
 * Build flags that matter: -ffp-contract=off, no -ffast-math (see ../common/oscar_math.h).
 */
#include "oscar_postprocess.h"

#include "../common/oscar_math.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>

namespace
{

constexpr size_t kAlign = 64;

size_t alignUp(size_t n)
{
    return (n + kAlign - 1) / kAlign * kAlign;
}

// Scratch layout, carved from the caller's workspace (sizes for one image; images run in turn).
struct Scratch
{
    uint64_t* cand;     // [h4*w4] rank keys of the candidates
    float* candBoxes;   // [topk*4] decoded boxes of one image (oscar_postprocess)
    float* candScores;  // [topk]   final scores of one image (oscar_postprocess)
    uint64_t* order;    // [topk]   NMS order keys
    int32_t* kept;      // [topk]   kept rows
};

size_t scratchBytes(int64_t points, int64_t topk)
{
    return alignUp(static_cast<size_t>(points) * sizeof(uint64_t))
        + alignUp(static_cast<size_t>(topk) * 4 * sizeof(float)) + alignUp(static_cast<size_t>(topk) * sizeof(float))
        + alignUp(static_cast<size_t>(topk) * sizeof(uint64_t)) + alignUp(static_cast<size_t>(topk) * sizeof(int32_t))
        + kAlign;
}

bool carve(void* workspace, size_t wsBytes, int64_t points, int64_t topk, Scratch& s)
{
    if (workspace == nullptr || wsBytes < scratchBytes(points, topk))
    {
        return false;
    }
    uintptr_t p = (reinterpret_cast<uintptr_t>(workspace) + kAlign - 1) / kAlign * kAlign;
    auto take = [&p](size_t bytes) {
        uintptr_t const at = p;
        p += alignUp(bytes);
        return at;
    };
    s.cand = reinterpret_cast<uint64_t*>(take(static_cast<size_t>(points) * sizeof(uint64_t)));
    s.candBoxes = reinterpret_cast<float*>(take(static_cast<size_t>(topk) * 4 * sizeof(float)));
    s.candScores = reinterpret_cast<float*>(take(static_cast<size_t>(topk) * sizeof(float)));
    s.order = reinterpret_cast<uint64_t*>(take(static_cast<size_t>(topk) * sizeof(uint64_t)));
    s.kept = reinterpret_cast<int32_t*>(take(static_cast<size_t>(topk) * sizeof(int32_t)));
    return true;
}

// Lower bound on the refine logit below which sigmoid(x) <= thr for sure: the exact test
// sigmoid(x) > thr then runs only on points above it. The 0.01 margin in logit units is >100x
// the error of oscar_sigmoid for thresholds in (1e-4, 1 - 1e-4); outside that range every
// point is tested.
float logitPrefilter(float thr)
{
    if (!(thr > 1e-4F && thr < 1.0F - 1e-4F))
    {
        return -INFINITY;
    }
    double const t = static_cast<double>(thr);
    return static_cast<float>(std::log(t / (1.0 - t)) - 0.01);
}

struct Grid
{
    int32_t h4, w4, h8, w8;
};

// Rules 1-4 for one image. Writes m <= topk candidates (boxes, final scores) and returns m.
int32_t decodeImage(float const* rs, float const* rb, float const* rn, float const* cs, float const* cb,
    Grid const& g, float clampH, float clampW, float thr, int32_t topk, uint64_t* cand, float* boxes,
    float* scores)
{
    int64_t const hw4 = static_cast<int64_t>(g.h4) * g.w4;
    int64_t const hw8 = static_cast<int64_t>(g.h8) * g.w8;
    float const xlo = logitPrefilter(thr);

    // Rule 2: threshold on sigmoid(refine).
    int64_t n = 0;
    for (int64_t p = 0; p < hw4; ++p)
    {
        float const x = rs[p];
        if (x > xlo || xlo == -INFINITY)
        {
            float const s = oscar_sigmoid(x);
            if (s > thr)
            {
                cand[n++] = oscar_rank_key(oscar_score_key(s), static_cast<uint32_t>(p));
            }
        }
    }
    // Top-K by (score desc, index asc): keys are unique, so this is the stable sort's prefix.
    int64_t const m = std::min<int64_t>(n, topk);
    if (n > m)
    {
        std::nth_element(cand, cand + m, cand + n, std::greater<uint64_t>());
    }
    std::sort(cand, cand + m, std::greater<uint64_t>());

    // Rules 1, 3, 4 for the kept candidates.
    for (int64_t r = 0; r < m; ++r)
    {
        uint32_t const p = oscar_rank_key_index(cand[r]);
        int32_t const i = static_cast<int32_t>(p / static_cast<uint32_t>(g.w4));
        int32_t const j = static_cast<int32_t>(p % static_cast<uint32_t>(g.w4));
        int64_t const q = static_cast<int64_t>(i >> 1) * g.w8 + (j >> 1);
        float const coarse[4] = {cb[q], cb[hw8 + q], cb[2 * hw8 + q], cb[3 * hw8 + q]};
        float const delta[4] = {rb[p], rb[hw4 + p], rb[2 * hw4 + p], rb[3 * hw4 + p]};
        oscar_decode_point(i, j, coarse, delta, clampH, clampW, boxes + 4 * r);
        float const sr = oscar_score_from_key(static_cast<uint32_t>(cand[r] >> 32));
        scores[r] = oscar_score_product(sr, oscar_sigmoid(cs[q]), oscar_sigmoid(rn[p]));
    }
    return static_cast<int32_t>(m);
}

// Rule 5 for one image: greedy NMS over m candidates; writes kept rows, returns their number.
int32_t nmsImage(float const* boxes, float const* scores, int32_t m, float iouThr, int32_t maxDet,
    uint64_t* order, int32_t* kept)
{
    for (int32_t r = 0; r < m; ++r)
    {
        order[r] = oscar_rank_key(oscar_score_key(scores[r]), static_cast<uint32_t>(r));
    }
    std::sort(order, order + m, std::greater<uint64_t>());
    int32_t nk = 0;
    for (int32_t t = 0; t < m && nk < maxDet; ++t)
    {
        int32_t const r = static_cast<int32_t>(oscar_rank_key_index(order[t]));
        float const* b = boxes + 4 * static_cast<int64_t>(r);
        bool suppressed = false;
        for (int32_t k = 0; k < nk && !suppressed; ++k)
        {
            suppressed = oscar_suppresses(boxes + 4 * static_cast<int64_t>(kept[k]), b, iouThr) != 0;
        }
        if (!suppressed)
        {
            kept[nk++] = r;
        }
    }
    return nk;
}

void writeKept(float const* boxes, float const* scores, int32_t const* kept, int32_t nk, int32_t maxDet,
    float* outBoxes, float* outScores, int32_t* outIndex)
{
    for (int32_t t = 0; t < maxDet; ++t)
    {
        if (t < nk)
        {
            std::memcpy(outBoxes + 4 * static_cast<int64_t>(t), boxes + 4 * static_cast<int64_t>(kept[t]),
                4 * sizeof(float));
            outScores[t] = scores[kept[t]];
        }
        else
        {
            std::memset(outBoxes + 4 * static_cast<int64_t>(t), 0, 4 * sizeof(float));
            outScores[t] = 0.0F;
        }
        if (outIndex != nullptr)
        {
            outIndex[t] = t < nk ? kept[t] : -1;
        }
    }
}

int32_t checkDecodeArgs(void const* rs, void const* rb, void const* rn, void const* cs, void const* cb, int32_t batch,
    int32_t h4, int32_t w4, int32_t h8, int32_t w8, int32_t topk)
{
    if (batch < 0 || topk < 1 || h4 < 0 || w4 < 0 || h8 < 0 || w8 < 0)
    {
        return OSCAR_ERR_BAD_ARGUMENT;
    }
    if (h4 != 2 * h8 || w4 != 2 * w8)
    {
        return OSCAR_ERR_GRID_MISMATCH;
    }
    if (batch > 0 && (rs == nullptr || rb == nullptr || rn == nullptr || cs == nullptr || cb == nullptr))
    {
        return OSCAR_ERR_NULL_POINTER;
    }
    return OSCAR_OK;
}

void clampFor(float const* clampHw, int32_t b, Grid const& g, float& h, float& w)
{
    if (clampHw != nullptr)
    {
        h = clampHw[2 * b];
        w = clampHw[2 * b + 1];
    }
    else
    {
        h = static_cast<float>(OSCAR_REFINE_STRIDE * g.h4);
        w = static_cast<float>(OSCAR_REFINE_STRIDE * g.w4);
    }
}

} // namespace

extern "C" {

OSCAR_API int32_t oscar_abi_version(void)
{
    return OSCAR_ABI_VERSION;
}

OSCAR_API char const* oscar_status_string(int32_t status)
{
    switch (status)
    {
    case OSCAR_OK: return "ok";
    case OSCAR_ERR_NULL_POINTER: return "a required pointer is NULL";
    case OSCAR_ERR_BAD_ARGUMENT: return "bad argument (negative size, topk < 1 or max_det < 1)";
    case OSCAR_ERR_GRID_MISMATCH: return "the P2 grid is not twice the P3 grid";
    case OSCAR_ERR_WORKSPACE: return "workspace missing or smaller than oscar_workspace_size()";
    default: return "unknown status";
    }
}

OSCAR_API size_t oscar_workspace_size(int32_t h4, int32_t w4, int32_t topk)
{
    if (h4 < 0 || w4 < 0 || topk < 0)
    {
        return 0;
    }
    return scratchBytes(static_cast<int64_t>(h4) * w4, topk);
}

OSCAR_API void oscar_sigmoid(float const* x, float* y, int64_t n)
{
    for (int64_t i = 0; i < n; ++i)
    {
        y[i] = oscar_sigmoid(x[i]);
    }
}

OSCAR_API int32_t oscar_decode(float const* refine_score, float const* refine_bbox, float const* refine_noco,
    float const* coarse_score, float const* coarse_bbox, int32_t batch, int32_t h4, int32_t w4, int32_t h8,
    int32_t w8, float const* clamp_hw, float score_threshold, int32_t topk, float* boxes, float* scores,
    int32_t* count, void* workspace, size_t workspace_size)
{
    int32_t const st
        = checkDecodeArgs(refine_score, refine_bbox, refine_noco, coarse_score, coarse_bbox, batch, h4, w4, h8, w8, topk);
    if (st != OSCAR_OK)
    {
        return st;
    }
    if (batch > 0 && (boxes == nullptr || scores == nullptr || count == nullptr))
    {
        return OSCAR_ERR_NULL_POINTER;
    }
    Grid const g{h4, w4, h8, w8};
    int64_t const hw4 = static_cast<int64_t>(h4) * w4;
    int64_t const hw8 = static_cast<int64_t>(h8) * w8;
    Scratch s{};
    if (!carve(workspace, workspace_size, hw4, topk, s))
    {
        return OSCAR_ERR_WORKSPACE;
    }
    for (int32_t b = 0; b < batch; ++b)
    {
        float ch = 0.0F;
        float cw = 0.0F;
        clampFor(clamp_hw, b, g, ch, cw);
        float* ob = boxes + static_cast<int64_t>(b) * topk * 4;
        float* os = scores + static_cast<int64_t>(b) * topk;
        int32_t const m = decodeImage(refine_score + b * hw4, refine_bbox + b * 4 * hw4, refine_noco + b * hw4,
            coarse_score + b * hw8, coarse_bbox + b * 4 * hw8, g, ch, cw, score_threshold, topk, s.cand, ob, os);
        std::memset(ob + 4 * static_cast<int64_t>(m), 0, static_cast<size_t>(topk - m) * 4 * sizeof(float));
        std::memset(os + m, 0, static_cast<size_t>(topk - m) * sizeof(float));
        count[b] = m;
    }
    return OSCAR_OK;
}

OSCAR_API int32_t oscar_nms(float const* boxes, float const* scores, int32_t const* count, int32_t batch, int32_t k,
    float iou_threshold, int32_t max_det, int32_t* num, float* out_boxes, float* out_scores, int32_t* out_index,
    void* workspace, size_t workspace_size)
{
    if (batch < 0 || k < 0 || max_det < 1)
    {
        return OSCAR_ERR_BAD_ARGUMENT;
    }
    if (batch > 0
        && (boxes == nullptr || scores == nullptr || count == nullptr || num == nullptr || out_boxes == nullptr
            || out_scores == nullptr))
    {
        return OSCAR_ERR_NULL_POINTER;
    }
    Scratch s{};
    if (!carve(workspace, workspace_size, 0, k, s))
    {
        return OSCAR_ERR_WORKSPACE;
    }
    for (int32_t b = 0; b < batch; ++b)
    {
        int32_t const m = std::max(0, std::min(count[b], k));
        float const* bb = boxes + static_cast<int64_t>(b) * k * 4;
        float const* bs = scores + static_cast<int64_t>(b) * k;
        int32_t const nk = nmsImage(bb, bs, m, iou_threshold, max_det, s.order, s.kept);
        writeKept(bb, bs, s.kept, nk, max_det, out_boxes + static_cast<int64_t>(b) * max_det * 4,
            out_scores + static_cast<int64_t>(b) * max_det,
            out_index != nullptr ? out_index + static_cast<int64_t>(b) * max_det : nullptr);
        num[b] = nk;
    }
    return OSCAR_OK;
}

OSCAR_API int32_t oscar_peak_refine(float const* image, int32_t batch, int32_t channels, int32_t height,
    int32_t width, float const* boxes, int32_t const* num, int32_t max_det, float const* letterbox,
    int32_t centroid, float* out_boxes)
{
    if (batch < 0 || max_det < 0 || (batch > 0 && (channels < 1 || height < 1 || width < 1)))
    {
        return OSCAR_ERR_BAD_ARGUMENT;
    }
    if (batch > 0 && max_det > 0 && (image == nullptr || boxes == nullptr || num == nullptr || out_boxes == nullptr))
    {
        return OSCAR_ERR_NULL_POINTER;
    }
    int64_t const plane = static_cast<int64_t>(height) * width;
    for (int32_t b = 0; b < batch; ++b)
    {
        float const* img = image + static_cast<int64_t>(b) * channels * plane;
        float const* lb = letterbox != nullptr ? letterbox + 4 * static_cast<int64_t>(b) : nullptr;
        float const ch = lb != nullptr ? lb[0] : static_cast<float>(height);
        float const cw = lb != nullptr ? lb[1] : static_cast<float>(width);
        float const sy = lb != nullptr ? lb[2] : 1.0F;
        float const sx = lb != nullptr ? lb[3] : 1.0F;
        int32_t const n = std::max(0, std::min(num[b], max_det));
        float const* in = boxes + static_cast<int64_t>(b) * max_det * 4;
        float* out = out_boxes + static_cast<int64_t>(b) * max_det * 4;
        for (int32_t r = 0; r < n; ++r)
        {
            float box[4];
            std::memcpy(box, in + 4 * static_cast<int64_t>(r), sizeof box);
            oscar_peak_refine_box(img, height, width, ch, cw, sy, sx, centroid != 0 ? 1 : 0, box,
                out + 4 * static_cast<int64_t>(r));
        }
        std::memset(out + 4 * static_cast<int64_t>(n), 0, static_cast<size_t>(max_det - n) * 4 * sizeof(float));
    }
    return OSCAR_OK;
}

OSCAR_API int32_t oscar_postprocess(float const* refine_score, float const* refine_bbox, float const* refine_noco,
    float const* coarse_score, float const* coarse_bbox, int32_t batch, int32_t h4, int32_t w4, int32_t h8, int32_t w8,
    float const* clamp_hw, float score_threshold, int32_t topk, float iou_threshold, int32_t max_det,
    float const* image, int32_t channels, int32_t height, int32_t width, float const* scale_yx, int32_t peak_flags,
    int32_t* num, float* out_boxes, float* out_scores, void* workspace, size_t workspace_size)
{
    int32_t const st
        = checkDecodeArgs(refine_score, refine_bbox, refine_noco, coarse_score, coarse_bbox, batch, h4, w4, h8, w8, topk);
    if (st != OSCAR_OK)
    {
        return st;
    }
    bool const refine = (peak_flags & OSCAR_PEAK_REFINE) != 0;
    if (max_det < 1 || (refine && batch > 0 && (channels < 1 || height < 1 || width < 1)))
    {
        return OSCAR_ERR_BAD_ARGUMENT;
    }
    if (batch > 0 && (num == nullptr || out_boxes == nullptr || out_scores == nullptr || (refine && image == nullptr)))
    {
        return OSCAR_ERR_NULL_POINTER;
    }
    Grid const g{h4, w4, h8, w8};
    int64_t const hw4 = static_cast<int64_t>(h4) * w4;
    int64_t const hw8 = static_cast<int64_t>(h8) * w8;
    int64_t const plane = static_cast<int64_t>(height) * width;
    int32_t const centroid = (peak_flags & OSCAR_PEAK_CENTROID) != 0 ? 1 : 0;
    Scratch s{};
    if (!carve(workspace, workspace_size, hw4, topk, s))
    {
        return OSCAR_ERR_WORKSPACE;
    }
    for (int32_t b = 0; b < batch; ++b)
    {
        float ch = 0.0F;
        float cw = 0.0F;
        clampFor(clamp_hw, b, g, ch, cw);
        int32_t const m = decodeImage(refine_score + b * hw4, refine_bbox + b * 4 * hw4, refine_noco + b * hw4,
            coarse_score + b * hw8, coarse_bbox + b * 4 * hw8, g, ch, cw, score_threshold, topk, s.cand, s.candBoxes,
            s.candScores);
        int32_t const nk = nmsImage(s.candBoxes, s.candScores, m, iou_threshold, max_det, s.order, s.kept);
        float* ob = out_boxes + static_cast<int64_t>(b) * max_det * 4;
        writeKept(s.candBoxes, s.candScores, s.kept, nk, max_det, ob, out_scores + static_cast<int64_t>(b) * max_det,
            nullptr);
        num[b] = nk;
        if (refine)
        {
            float const* img = image + static_cast<int64_t>(b) * channels * plane;
            float const sy = scale_yx != nullptr ? scale_yx[2 * b] : 1.0F;
            float const sx = scale_yx != nullptr ? scale_yx[2 * b + 1] : 1.0F;
            for (int32_t r = 0; r < nk; ++r)
            {
                float* box = ob + 4 * static_cast<int64_t>(r);
                oscar_peak_refine_box(img, height, width, ch, cw, sy, sx, centroid, box, box);
            }
        }
    }
    return OSCAR_OK;
}

} // extern "C"
