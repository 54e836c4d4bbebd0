"""The runner: end-to-end prediction, the offline competition package, and the ``hakuna`` command line."""
