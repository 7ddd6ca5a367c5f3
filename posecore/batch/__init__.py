"""Batch fits of many frames (a folder, a glob, a movie) on Ray: ``python -m posecore batch``."""
