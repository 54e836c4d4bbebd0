"""What Hakuna's stages share: the label schema, the data layout, image loading, result types and the metric.

Import the submodules (``camtrap.labels``, ``camtrap.dataset``, ...); importing the package does nothing else.
"""
