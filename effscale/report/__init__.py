"""What a run shows a person: one self-contained HTML page per run (:mod:`.html`, built from
the sections in :mod:`.sections`) and the class activation map grid (:mod:`.cam`).

This layer reads what ``search`` and ``compare`` write (the run directory and the study) and
sits above both; the commands call it at the end of a run and ``effscale report --html``.
"""
