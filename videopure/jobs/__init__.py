"""Whole-dataset jobs built from the library's pieces (in one process here; in Ray actors by pipelines/)."""

from videopure.jobs.purify_dataset import PurifyJob, pending_records, purify_dataset, start_run, write_summary
from videopure.jobs.stages import ClipDecoder, ClipPurifier, ClipWriter

__all__ = ["PurifyJob", "purify_dataset", "pending_records", "start_run", "write_summary", "ClipDecoder", "ClipPurifier", "ClipWriter"]
