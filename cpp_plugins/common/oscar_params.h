/*
 * oscar_params.h -- the plain parameter structs of the three plugins (attributes, with the
 * defaults of oscar_plugin_names.h), shared by the CUDA launchers and the plugin classes.
 */
#ifndef OSCAR_PARAMS_H
#define OSCAR_PARAMS_H

#include "oscar_plugin_names.h"

#include <stdint.h>

namespace oscar
{

//! OscarDecode attributes.
struct DecodeParameters
{
    float scoreThreshold{OSCAR_DECODE_DEFAULT_SCORE_THRESHOLD}; //!< keep sigmoid(refine) > this
    int32_t topk{OSCAR_DECODE_DEFAULT_TOPK};                    //!< K: candidates per image, 1..4096
};

//! OscarNMS attributes.
struct NMSParameters
{
    float iouThreshold{OSCAR_NMS_DEFAULT_IOU_THRESHOLD};        //!< suppress when IoU > this
    int32_t maxDetections{OSCAR_NMS_DEFAULT_MAX_DETECTIONS};    //!< M: detections per image, >= 1
};

//! OscarPeakRefine attributes.
struct PeakRefineParameters
{
    int32_t centroid{OSCAR_PEAK_REFINE_DEFAULT_CENTROID}; //!< 1: 3x3 intensity-weighted centroid
};

} // namespace oscar

#endif /* OSCAR_PARAMS_H */
