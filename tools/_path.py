"""Lets `python tools/<tool>.py` import ppdet_gcnet from a source checkout without installing."""
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
