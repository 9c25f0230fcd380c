/*
 * oscar_plugin_names.h -- names, versions, namespace, attribute names and defaults of the OSCAR
 * TensorRT plugins. The ONE place these strings live: the plugins include it, and Python (the
 * tests, the ONNX export) parses it, so keep every value on one line as
 *     #define OSCAR_<NAME> "string"      or      #define OSCAR_<NAME> <number>
 *
 * ONNX mapping (onnx-tensorrt): node op_type = plugin name, attribute plugin_version = version,
 * attribute plugin_namespace (or the node's domain, TensorRT >= 10.10) = namespace; the other
 * node attributes become PluginFields of the same names (ONNX float -> kFLOAT32, int -> kINT32).
 */
#ifndef OSCAR_PLUGIN_NAMES_H
#define OSCAR_PLUGIN_NAMES_H

/* The empty namespace, as NVIDIA's own plugins and REGISTER_TENSORRT_PLUGIN (which registers
 * under "") use: registration and lookup then agree without a custom registrar. */
#define OSCAR_PLUGIN_NAMESPACE ""

/* OscarDecode: 5 raw head tensors -> boxes [B,K,4], scores [B,K], count [B]. */
#define OSCAR_DECODE_PLUGIN_NAME "OscarDecode"
#define OSCAR_DECODE_PLUGIN_VERSION "1"
#define OSCAR_DECODE_ATTR_SCORE_THRESHOLD "score_threshold"
#define OSCAR_DECODE_ATTR_TOPK "topk"
#define OSCAR_DECODE_DEFAULT_SCORE_THRESHOLD 0.05F
#define OSCAR_DECODE_DEFAULT_TOPK 1000
/* The largest topk the CUDA decode supports (its in-block sort holds 4096 keys). */
#define OSCAR_DECODE_MAX_TOPK 4096

/* OscarNMS: boxes [B,K,4], scores [B,K], count [B] -> num [B], boxes [B,M,4], scores [B,M]. */
#define OSCAR_NMS_PLUGIN_NAME "OscarNMS"
#define OSCAR_NMS_PLUGIN_VERSION "1"
#define OSCAR_NMS_ATTR_IOU_THRESHOLD "iou_threshold"
#define OSCAR_NMS_ATTR_MAX_DETECTIONS "max_detections"
#define OSCAR_NMS_DEFAULT_IOU_THRESHOLD 0.5F
#define OSCAR_NMS_DEFAULT_MAX_DETECTIONS 100
/* The largest candidate count K the CUDA NMS supports (same in-block sort). */
#define OSCAR_NMS_MAX_CANDIDATES 4096

/* OscarPeakRefine (rule 6): image [B,C,H,W], boxes [B,M,4], num [B], letterbox [B,4]
 * -> boxes [B,M,4], each kept box moved so that its centre sits on the image peak inside it. */
#define OSCAR_PEAK_REFINE_PLUGIN_NAME "OscarPeakRefine"
#define OSCAR_PEAK_REFINE_PLUGIN_VERSION "1"
#define OSCAR_PEAK_REFINE_ATTR_CENTROID "centroid"
#define OSCAR_PEAK_REFINE_DEFAULT_CENTROID 1

#endif /* OSCAR_PLUGIN_NAMES_H */
