"""The offline competition package: building ``submission.zip`` (:mod:`submission.package`), the runner inside it
(:mod:`submission.runner`) and the harness that runs a zip as the competition's container would
(:mod:`submission.harness`)."""
