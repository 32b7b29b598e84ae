"""Models: the policy bundle format and its onnxruntime runtime (robot side, no torch), and the torch
side (policy network, text encoder, exporter; later the R3M reward and the agent).

Importing this package imports no torch: robot-side code imports `models.bundle` / `models.runtime` only.
"""
