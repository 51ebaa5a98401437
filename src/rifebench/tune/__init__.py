"""`rifebench tune`: the fastest configuration within a quality floor (tune/cli.py)."""
