"""Latency benchmark of every backend on the same real frames: model only and frame to detections.

    python benchmarks/latency.py --backends torch,ort,ort-int8 \\
        --size 640x512 --batch 1 --runs 300 --warmup 50 [--threads 2] \\
        [--json out.json] [--plot out.png] [--sizes 320x256,640x512,1280x1024]

Backends (``--backends``, comma separated):

| name | what runs |
|---|---|
| ``torch`` | PyTorch eager FP32 (the reference every ratio is taken against), ``--torch-device`` |
| ``ort`` | ONNX Runtime CPU, FP32 raw-head graph |
| ``ort-int8`` | ONNX Runtime CPU, INT8 Q/DQ graph (ModelOpt PTQ, ``oscar_edge.export.quantize``) |
| ``ort-int8-ortq`` | ONNX Runtime CPU, INT8 graph from ONNX Runtime's own quantizer \
(``quantize.py --int8-target onnxruntime``: Q/DQ around every op, u8 activations, s8 per-channel \
weights, fused into integer kernels by ORT; the same calibration images) |
| ``ort-fp16`` | ONNX Runtime CPU, FP16 graph (ModelOpt AutoCast, FP32 I/O) |
| ``trt-fp32`` / ``trt-fp16`` / ``trt-int8`` | TensorRT engine ending in the decode + NMS plugins, \
static shape, built with ``export/build_engine.py``'s code; "not available: TensorRT not \
installed" where TensorRT is absent |
| ``openvino`` / ``openvino-int8`` / ``openvino-fp16`` | OpenVINO CPU on the graph of ``ort`` / \
``ort-int8`` (the INT8 Q/DQ file TensorRT builds from) / ``ort-fp16``, compiled for the static \
shape of the run, precision hint ``--ov-hint`` (default: the runtime's, bf16 on a CPU with bf16, \
else f32; ``--ov-hint f32,bf16`` runs each openvino key once per hint; the row label names it) |

``--baseline-checkpoint PT`` times a second model (e.g. the previous shipped one) with every
backend, each right after the main model: rows ``<key> [baseline]`` and a "vs baseline" table.

``--precision {fp32,fp16,int8}`` turns the plain keys ``ort``, ``openvino`` and ``trt`` into that
precision's key (``--backends torch,ort,openvino --precision int8`` = ``torch,ort-int8,
openvino-int8``).

Models: for ``oscar-edge`` the shipped ``oscar_edge/weights/oscar-edge.pt`` / ``.onnx``; other
presets (no trained weights) use random-init weights (``--seed``; classification biases set to
-10 so that, as with a trained model, few locations pass the score threshold and decode + NMS is
not flooded with every grid point) exported to ONNX on the fly; ``--checkpoint`` uses given
weights. For the shipped model the INT8 Q/DQ and FP16 keys (``ort-int8``, ``ort-fp16``, their
``openvino-*`` and ``trt-*`` twins) run the shipped ``oscar-edge.int8.onnx`` / ``.fp16.onnx``, the
files ``--precision`` picks (no ModelOpt needed, e.g. on a Jetson). Other INT8 / FP16 graphs and
TensorRT engines are made on the fly and cached in
``--work-dir`` (default ``$XDG_CACHE_HOME/oscar-edge/bench`` or ``~/.cache/oscar-edge/bench``),
keyed by the SHA-256 of the FP32 graph and of the recipe (the quantize module's source, the
calibration images, the ModelOpt / ONNX Runtime versions; for engines also the shape, the
TensorRT version and the plugin library), so a changed recipe makes a new file.

Frames: ``--frames`` images of the SIRST-V2 ``--split`` (default ``val_full``, in split order)
under ``--data`` (default ``oscar_edge.data.default_data_root()``), decoded once to 8-bit grey
(``read_grey``) before any timing. Every backend sees the same frames in the same order:

* **model only**: the frames letterboxed with ``prepare(grey, input_size=(H, W))`` beforehand
  (batch ``--batch``); timed: one backend call, (B, 3, H, W) float32 in -> outputs as numpy
  arrays out (host to host: for TensorRT the host<->device copies and the decode + NMS plugins
  are inside, as the engine ends in them);
* **frame to detections**: timed per iteration from the decoded grey frame to detections in
  frame pixels, with three stages: ``preprocess`` (``Detector.preprocess``: resize, normalise,
  pad), ``inference`` (the backend call), ``postprocess`` (``Detector.postprocess``: decode +
  NMS by the native C++ library ``liboscar_postprocess.so``, mapping back to frame pixels).

Statistics (``time.perf_counter_ns`` around each call, ``--warmup`` untimed calls first): min,
mean, p50, p90, p95, p99, max, standard deviation and CV over the ``--runs`` timed calls; the
percentiles are ``numpy.percentile`` (linear interpolation) through ``oscar_edge.latency``'s
Reservoir, as the runtime reports them. Throughput = frames / wall time of the timed loop.
Unstable-spread warning (stated in every report): CV (population std / mean) > ``--cv-limit``
(10 %) or p99 / p50 > ``--tail-limit`` (1.5). trtexec warns above 1 % CV of GPU compute time
(``kUNSTABLE_PERF_REPORTING_THRESHOLD`` in samples/common/sampleReporting.cpp); host-side Python
timings on a shared CPU carry scheduler noise, hence the wider limits here.

Ratios: each backend's p50 speed relative to PyTorch eager FP32 in the same run (``torch`` p50 /
backend p50), and achieved GFLOP/s = ``count_gflops`` of the preset at the size (1 MAC = 1 FLOP,
convolutions only, the paper's MMCV convention) x batch / model-only p50; the same with
2 FLOP per MAC is given in a separate, labelled column.

Goals (printed at the end): ONNX Runtime FP32 >= 2.5x PyTorch eager (model only, p50); INT8 Q/DQ
>= 1.7x FP32 (``ort-int8`` and ``ort-int8-ortq`` vs ``ort``, ``trt-int8`` vs ``trt-fp32``); the shipped model's frame to
detections < 10 ms p50 at 640x512; post-processing < 5 % of that path (stage p50 / total p50);
OpenVINO INT8 >= 2.5x ONNX Runtime FP32 (``openvino-int8`` vs ``ort``), with the achieved INT8
GMAC/s against the CPU's nominal INT8 peak (``machine.compute_peaks``: cores x reported GHz x
INT8 MAC per cycle of its best instruction, written out in the report). A missed goal names the
stage that holds it back (stage p50s of the full path).

Jetson mode (auto: ``/etc/nv_tegra_release`` or a Jetson ``/proc/device-tree/model``; force with
``--jetson``, turn off with ``--no-jetson``): records ``nvpmodel -q`` and whether
``jetson_clocks`` is on (``jetson_clocks --show``, ``sudo -n`` if needed, else the cpufreq /
devfreq min = max rule read from sysfs), samples ``tegrastats --interval`` in a thread during the
whole run (plus an idle baseline of ``--idle-s`` before the first backend) and reports, per
backend and phase, average power of the total rail (VDD_IN; VIN; POM_5V_IN; on AGX Orin
VDD_GPU_SOC + VDD_CPU_CV + VIN_SYS_5V0), every rail, GPU / CPU clocks, temperatures and energy
per frame (mJ = average mW x wall s / frames, also above idle). The equivalent ``trtexec``
command of every TensorRT backend is printed with the flags chosen explicitly (CUDA graph,
spin-wait and no data transfers ON = the trtexec 11 defaults), so 10.x and 11.x runs compare.

Output: Markdown on stdout (progress on stderr), ``--json`` (machine, versions, thread settings,
command line, every sample), ``--plot`` PNG (latency distribution per backend; latency vs input
area with ``--sizes``). Exit code 0, also when a backend is not available here (it is listed as
such); 1 when a backend failed (its reason is in the report); 2 for bad arguments or data.
A phase is also flagged when other processes used more than 10 % of the CPUs meanwhile
(``/proc/stat`` busy time minus this process's CPU time). CPU figures from one machine say
nothing about another (a Jetson's Arm cores least of all): the JSON records what ran where.

Code layout (package ``benchmarks/latency_bench``; ``benchmarks/latency.py`` is the script):
``common`` (paths, logging, ``--size`` parsing), ``machine`` (CPU, ISA flags, versions, CPU
load), ``stats`` (statistics, frames, timing loops), ``jetson`` (nvpmodel, jetson_clocks,
tegrastats power, trtexec commands), ``backends`` (the table of ``--backends`` keys, models,
graphs, engines, handles), ``run`` (the measurements and the JSON record), ``goals`` (goals,
speed ratios), ``report`` (Markdown, JSON, plot), ``cli`` (command line, ``main``).
"""
from __future__ import annotations

import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
if (_REPO / "oscar_edge" / "__init__.py").is_file():  # run from a checkout: use its package
    sys.path.insert(0, str(_REPO))
