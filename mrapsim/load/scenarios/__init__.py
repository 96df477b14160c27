"""The built-in scenarios, each a Python scenario file (`mrapsim load --scenario NAME`): copy
one next to your run and change it (see mrapsim/load/users.py for the API)."""
