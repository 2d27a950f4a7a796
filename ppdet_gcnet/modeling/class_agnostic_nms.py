"""Class-agnostic NMS for R-CNN detections: boxes of every class suppress each other.

ppdet's MultiClassNMS suppresses boxes class by class, so one object can be reported once per
class whose score passes the threshold (a circle as "circle 0.8" and "square 0.4"). Where
objects of different classes do not overlap (the bundled shapes data: every object has its own
place), the lower-scored of those duplicates is a second guess at the same object, not another
object. `ClassAgnosticNMS` runs one greedy NMS over the class-specific boxes of all classes
together (mmdetection's `class_agnostic=True`), so each object keeps its best class. Same
arguments as MultiClassNMS; `nms_top_k` then counts the boxes of all classes together.
"""
import paddle
from ppdet.core.workspace import register, serializable
from ppdet.modeling import ops
from ppdet.modeling.layers import MultiClassNMS

__all__ = ['ClassAgnosticNMS']


@register
@serializable
class ClassAgnosticNMS(MultiClassNMS):
    """MultiClassNMS over R-CNN's per-RoI class boxes with all classes in one NMS group."""
    class_agnostic = True  # read by the ONNX form (ppdet_gcnet.deploy.onnx_forms.detections)

    def __call__(self, bboxes, score, background_label=-1):
        """bboxes: (boxes [M, C, 4], per-image RoI counts [N]); score [M, C] (R-CNN's form; the
        background column already dropped). Returns (rows [K, 6]: class, score, box; per-image
        counts [N]; the RoI index of each row, or None unless `return_index`)."""
        if not isinstance(bboxes, tuple):
            raise ValueError("ClassAgnosticNMS takes R-CNN's (boxes [M, C, 4], counts) input")
        boxes, rois_num = bboxes
        num_classes = score.shape[1]
        # box (m, c) becomes box m * C + c of the one group
        out, count, index = ops.multiclass_nms(
            boxes.reshape([-1, 1, 4]), score.reshape([-1, 1]), self.score_threshold,
            self.nms_top_k, self.keep_top_k, nms_threshold=self.nms_threshold,
            normalized=self.normalized, nms_eta=self.nms_eta, background_label=-1,
            return_index=True, return_rois_num=True, rois_num=rois_num * num_classes)
        index = index.reshape([-1]).astype('int64')
        label = (index % num_classes).astype(out.dtype).unsqueeze(1)
        out = paddle.concat([label, out[:, 1:]], axis=1)
        return out, count, (index // num_classes if self.return_index else None)
