"""The application layer: the ``hakuna`` command line and its commands, pipeline orchestration, folder mode,
training, review, ablation, the demo and the Ray runner.  The stage packages (``camtrap``, ``detector``,
``classifier``, ``fusion``) never import it; the offline package carries only :mod:`hakuna.pipeline` of it."""
