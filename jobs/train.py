"""The script each Horovod rank runs (started by ``horovodrun`` or ``pipeline train``).

``pipeline train --data SHARDS --run RUN -np N`` builds the horovodrun command around it;
by hand: ``horovodrun -np 2 -H localhost:2 --gloo --network-interface lo python
jobs/train.py --data SHARDS --run RUN``.
"""

import sys

from pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
