"""The directory `mrapsim exec` puts first on a child's PYTHONPATH: its `sitecustomize` module
redirects `*.amazonaws.com` to the edge inside that Python process (see mrapsim/exec.py)."""
