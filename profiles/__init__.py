"""The shipped benchmark profiles (CSV files), installed with the package as rifebench.profiles so
that `rifebench bench --profile cpu` finds them outside a checkout (bench/profiles.py)."""
