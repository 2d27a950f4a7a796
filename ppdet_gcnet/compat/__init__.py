"""Fixes for an installed PaddleDetection that predates this Paddle; filled in per defect."""
