"""Lets ``pytest examples/tuneloop-example-plugin/tests`` import the plugin without installing it.

pytest puts the folder of a top-level conftest.py (this one) on ``sys.path``.
"""
