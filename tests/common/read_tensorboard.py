"""Reads a run directory's TensorBoard event files with TensorBoard's own
reader (the EventAccumulator behind `tensorboard --logdir`) and prints what
it found as JSON: every scalar tag's (step, wall time, value) and every
histogram tag's (step, count, sum). The Rust tests compare it with
metrics.jsonl. Usage: python read_tensorboard.py RUN_DIR"""

import json
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

# 0 keeps every event (the default samples them).
acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0, "histograms": 0})
acc.Reload()
tags = acc.Tags()
print(
    json.dumps(
        {
            "scalars": {
                t: [[e.step, e.wall_time, e.value] for e in acc.Scalars(t)]
                for t in tags["scalars"]
            },
            "histograms": {
                t: [[e.step, e.histogram_value.num, e.histogram_value.sum] for e in acc.Histograms(t)]
                for t in tags["histograms"]
            },
        }
    )
)
