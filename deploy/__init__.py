"""Deployment of exported GCNet detectors with Paddle Inference (see deploy/README.md)."""
