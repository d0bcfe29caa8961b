"""The script each Horovod rank runs (started by ``horovodrun`` or ``pipeline train``).

``pipeline train [CONFIG.yaml] --data SHARDS --run RUN -np N`` writes the resolved config
to ``RUN/config.yaml`` and starts ``horovodrun -np N -H localhost:N --gloo
--network-interface lo python jobs/train.py RUN/config.yaml``. Inside a rank (horovodrun
exports ``HOROVOD_RANK``) ``pipeline train`` trains as that rank instead of launching
again. By hand, the same: ``horovodrun -np 2 -H localhost:2 --gloo --network-interface lo
python jobs/train.py conf/local.yaml --data SHARDS --run RUN``.

Exit status 0 on success, 1 when training failed, 2 on bad usage or config; the error
is one line on stderr (``--debug`` or ``PIPELINE_DEBUG=1`` shows the traceback).
"""

import sys

from pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
