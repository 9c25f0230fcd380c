"""Runtime input and output: video sources by URI, the capture thread, drawing, outputs.

numpy + OpenCV only. See ``sources.py`` for the URIs, ``capture.py`` for the capture thread,
``synthetic.py`` for the procedural infrared scenes, ``outputs.py`` / ``render.py`` for what
the runtime writes.
"""
