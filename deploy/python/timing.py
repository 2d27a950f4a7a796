"""Per-stage wall-clock timing with warm-up excluded: medians, p90 and FPS."""
import time
from contextlib import contextmanager

import numpy as np

STAGES = ('preprocess', 'inference', 'postprocess')


class StageTimer:
    """Records seconds per image for each stage; `recording=False` during warm-up."""

    def __init__(self):
        self.samples = {stage: [] for stage in STAGES}
        self.recording = True

    @contextmanager
    def stage(self, name, images=1):
        start = time.perf_counter()
        yield
        if self.recording:
            self.samples[name].append((time.perf_counter() - start) / images)

    def summary(self):
        """{stage: {median_ms, p90_ms, runs}, total_median_ms, fps}; fps = 1 / median total."""
        out = {}
        for stage, values in self.samples.items():
            if values:
                ms = np.array(values) * 1000.0
                out[stage] = {'median_ms': round(float(np.median(ms)), 2),
                              'p90_ms': round(float(np.percentile(ms, 90)), 2),
                              'runs': len(values)}
        totals = [sum(v) for v in zip(*[self.samples[s] for s in STAGES if self.samples[s]])]
        if totals:
            total_ms = float(np.median(totals)) * 1000.0
            out['total_median_ms'] = round(total_ms, 2)
            out['total_p90_ms'] = round(float(np.percentile(totals, 90)) * 1000.0, 2)
            out['fps'] = round(1000.0 / total_ms, 3) if total_ms > 0 else None
        return out


def format_table(summary):
    lines = ['| stage | median ms/image | p90 ms/image | runs |', '| --- | ---: | ---: | ---: |']
    for stage in STAGES:
        if stage in summary:
            s = summary[stage]
            lines.append(f"| {stage} | {s['median_ms']:.1f} | {s['p90_ms']:.1f} | {s['runs']} |")
    if 'total_median_ms' in summary:
        lines.append(f"| total | {summary['total_median_ms']:.1f} | {summary['total_p90_ms']:.1f} |"
                     f" FPS {summary['fps']} |")
    return '\n'.join(lines)
