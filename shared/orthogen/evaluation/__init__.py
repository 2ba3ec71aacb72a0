"""Evaluation pieces that are not handlers: the mean-volume baseline and the text metric table."""
from orthogen.evaluation.mean_volume_baseline import mean_training_volume
from orthogen.evaluation.metric_table_text import format_metric_table

__all__ = ["format_metric_table", "mean_training_volume"]
