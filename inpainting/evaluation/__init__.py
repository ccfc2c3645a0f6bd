"""Evaluation: classical baselines, methods, fixed mask sets, metrics, the evaluator and its reports."""
