"""Synthetic Snapshot-Serengeti-like camera-trap data in the competition's exact layout (for tests and the demo)."""

from camtrap.synth.generate import SynthOutput, generate
from camtrap.synth.plan import SynthConfig

__all__ = ["SynthConfig", "SynthOutput", "generate"]
