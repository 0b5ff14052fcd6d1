"""``edgeseg demo``: the toolkit end to end on synthetic scenes (``steps``) and its report."""

from edgeseg.demo.steps import DemoConfig, Steps, run_demo

__all__ = ["DemoConfig", "Steps", "run_demo"]
