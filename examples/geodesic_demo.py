"""Straight lines vs likely paths between points of a 2-D mixture (the ``fastinterp geodesic`` demo).

python examples/geodesic_demo.py [--out DIR] [--no-plot] [--pairs 6] [--lam 2 20] [--n-grid 100] [--seed 0]
"""

import sys

from fastinterp.geometry.demo import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
