"""Whole-dataset jobs built from the library's pieces (run in one process here; in actors by pipelines/)."""

from videopure.jobs.purify_dataset import PurifyJob, purify_dataset

__all__ = ["PurifyJob", "purify_dataset"]
