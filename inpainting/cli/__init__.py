"""What the command lines (train, evaluate, predict, export, demo) share, one concern a module.

``instantiate``: callbacks and loggers from their config groups, the ``???`` check before a run starts.
``header``: the few lines that say what a run does, and the whole config tree saved in its run dir.
``errors``: the user-error policy (one line and exit 1, or a traceback for a bug) and the run-dir clean-up.
``hints``: "did you mean" for a typo'd key and how to quote a value Hydra cannot parse.
"""
