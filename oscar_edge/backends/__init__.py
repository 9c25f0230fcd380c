"""Inference backends: each turns a (B, 3, H, W) float32 array into the five raw outputs."""
