"""Evaluation reports that run as ignite handlers inside MONAI evaluators."""
