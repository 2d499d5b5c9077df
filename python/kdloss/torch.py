"""kdloss for PyTorch: the LwF / DER distillation term with a fused gradient.

    from kdloss.torch import DistillationReg
    reg = DistillationReg(factor=1.0, temperature=2.0, distance="cross_entropy")
    loss = task_loss + reg(student_logits, teacher_logits)
    loss.backward()

Inputs: 2-D [batch, classes] CPU tensors of equal shape. float32 is computed
as it is; a float32 tensor whose columns are adjacent is passed with its row
stride (a column slice of wider logits costs no copy); other layouts are made
contiguous. float64, float16 and bfloat16 are converted to float32, computed
there, and the loss and gradient come back in the student's dtype.
The teacher is a constant: if it requires grad while grad mode is on, the
call raises ValueError (detach it). Every argument error is raised before any
work; NaN or +inf logits (for MSE any infinity; -inf masks a cross-entropy
class) raise ValueError with the library's status text.

With a student that requires grad (and grad mode on), forward computes the
loss and the gradient in one call and backward scales the stored gradient by
the incoming one; otherwise forward computes the loss only. Double backward
is not supported. Several threads may call it at once.
"""
import math

import torch
from torch import nn

from . import _lib

__all__ = ["DistillationReg", "distillation_loss", "DISTANCES"]

DISTANCES = {"cross_entropy": _lib.KD_CROSS_ENTROPY, "MSE": _lib.KD_MSE}
_F32 = torch.float32
_STRIDED = torch.strided
_CONTIGUOUS = torch.contiguous_format
_Tensor = torch.Tensor
# The outputs come from new_empty on a float32 CPU prototype: always on the
# CPU whatever the default device, and cheaper to call than torch.empty(dtype=).
_new_f32 = torch.empty((), dtype=torch.float32, device="cpu").new_empty
_grad_enabled = torch.is_grad_enabled
_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
_loss_f32 = _lib.loss_f32
_loss_grad_f32 = _lib.loss_grad_f32
_NO_DOUBLE_BACKWARD = ("kdloss: double backward is not supported: the distillation gradient is "
                       "computed by kdloss, not traced, so it has no gradient of its own "
                       "(backward with create_graph=True reached kdloss)")


def _check_params(factor, temperature, distance):
    """(kd_distance code, factor, temperature) as the C call takes them."""
    code = DISTANCES.get(distance) if isinstance(distance, str) else None
    if code is None:
        raise ValueError(f"kdloss: unknown distance {distance!r}; valid: "
                         + ", ".join(repr(d) for d in DISTANCES))
    try:
        if isinstance(factor, (str, bytes)) or isinstance(temperature, (str, bytes)):
            raise TypeError
        factor, temperature = float(factor), float(temperature)
    except (TypeError, ValueError):
        raise TypeError(f"kdloss: factor and temperature must be real numbers, got "
                        f"{type(factor).__name__} and {type(temperature).__name__}") from None
    if not math.isfinite(factor):
        raise ValueError(f"kdloss: factor must be finite, got {factor}")
    if not (temperature > 0 and math.isfinite(temperature)):
        raise ValueError(f"kdloss: temperature must be finite and > 0, got {temperature}")
    return code, factor, temperature


def _check_logits(student, teacher):
    """(rows, cols) of the logits; the argument errors raised otherwise."""
    if not isinstance(student, _Tensor) or not isinstance(teacher, _Tensor):
        raise TypeError(f"kdloss: student and teacher logits must be tensors, got "
                        f"{type(student).__name__} and {type(teacher).__name__}")
    shape = student.shape
    if len(shape) != 2 or shape != teacher.shape:
        raise ValueError(f"kdloss: student and teacher logits must be 2-D [batch, classes] "
                         f"of the same shape, got {tuple(shape)} and {tuple(teacher.shape)}")
    rows, cols = shape
    if not (rows and cols):
        raise ValueError(f"kdloss: empty logits {tuple(shape)}")
    if not (student.is_cpu and teacher.is_cpu):
        raise ValueError(f"kdloss: logits must be on the CPU, got {student.device} and "
                         f"{teacher.device}")
    if student.dtype not in _DTYPES or teacher.dtype not in _DTYPES \
            or student.layout is not _STRIDED or teacher.layout is not _STRIDED:
        raise TypeError(f"kdloss: logits must be dense float32, float64, float16 or bfloat16, "
                        f"got {student.dtype} ({student.layout}) and {teacher.dtype} "
                        f"({teacher.layout})")
    if teacher.requires_grad and _grad_enabled():
        raise ValueError("kdloss: teacher logits require grad; kdloss treats the teacher as a "
                         "constant: pass teacher_logits.detach() (or compute them under "
                         "torch.no_grad())")
    return rows, cols


def _rows_f32(x, rows, cols):
    """x ([rows, cols], checked) as float32 rows with unit column stride, and
    its row stride. A copy is made from x.detach(): no autograd record."""
    if x.dtype is _F32:
        ld_row, ld_col = x.stride()
        if (ld_col == 1 or cols == 1) and (ld_row >= cols or rows == 1):
            return x, (ld_row if rows > 1 else cols)
        return x.detach().contiguous(), cols
    return x.detach().to(_F32, memory_format=_CONTIGUOUS), cols


def _raise(status):
    text = f"kdloss: {_lib.status_str(status)}"
    if status == _lib.KD_ERR_NOMEM:
        raise MemoryError(text)
    raise ValueError(text)


def _compute(call, with_grad):
    """One C call on _distill's arguments (code, factor, temperature, rows,
    cols, student, its row stride, teacher, its row stride): the float32
    loss, and with_grad the dense float32 gradient."""
    loss = _new_f32(())
    if with_grad:
        cols = call[4]
        grad = _new_f32((call[3], cols))
        status = _loss_grad_f32(*call, loss.data_ptr(), grad.data_ptr(), cols)
    else:
        grad = None
        status = _loss_f32(*call, loss.data_ptr())
    if status:
        _raise(status)
    return loss, grad


class _DistillationFunction(torch.autograd.Function):
    """Loss and gradient in one call; backward scales the stored gradient."""

    @staticmethod
    def forward(ctx, student, call):
        loss, grad = _compute(call, True)
        dtype = student.dtype
        if dtype is _F32:
            ctx.save_for_backward(grad)
            return loss
        ctx.save_for_backward(grad.to(dtype))
        return loss.to(dtype)

    @staticmethod
    def backward(ctx, grad_output):
        if _grad_enabled():
            raise RuntimeError(_NO_DOUBLE_BACKWARD)
        # The usual grad_output is exactly 1 (loss.backward(), or a sum of
        # losses): the saved gradient is then handed on as it is, and once
        # autograd releases it (no retain_graph) it becomes .grad without a copy.
        grad, = ctx.saved_tensors
        if grad_output.item() != 1.0:
            grad = grad * grad_output
        return grad, None


def _operands(student, teacher):
    """(rows, cols, s, lds, t, ldt): the logits as the C call takes them,
    float32 rows with unit column stride and their row strides, after every
    argument error of the logits."""
    try:
        # The common case recognised with the fewest tensor reads: float32 CPU
        # row-major logits of one non-empty 2-D shape and a constant teacher.
        # Anything else, or a read that raises (a list, a sparse tensor, a
        # shape that does not unpack), takes the full checks below.
        if student.dtype is _F32 and teacher.dtype is _F32 and student.is_cpu \
                and teacher.is_cpu:
            shape = student.shape
            rows, cols = shape
            lds, cs = student.stride()
            ldt, ct = teacher.stride()
            if shape == teacher.shape and rows and cols and cs == 1 and ct == 1 \
                    and lds >= cols and ldt >= cols \
                    and not (teacher.requires_grad and _grad_enabled()):
                return rows, cols, student, lds, teacher, ldt
    except (AttributeError, RuntimeError, ValueError):
        pass
    rows, cols = _check_logits(student, teacher)
    s, lds = _rows_f32(student, rows, cols)
    t, ldt = _rows_f32(teacher, rows, cols)
    return rows, cols, s, lds, t, ldt


def _distill(student, teacher, code, factor, temperature):
    # s and t (copies when the layout or dtype needs them) live until the call returns.
    rows, cols, s, lds, t, ldt = _operands(student, teacher)
    call = (code, factor, temperature, rows, cols, s.data_ptr(), lds, t.data_ptr(), ldt)
    # The teacher is no input of the Function: it is a constant (checked above).
    if student.requires_grad and _grad_enabled():
        return _DistillationFunction.apply(student, call)
    loss, _ = _compute(call, False)
    return loss if student.dtype is _F32 else loss.to(student.dtype)


def distillation_loss(student, teacher, *, factor, temperature, distance):
    """factor * the distillation distance ("cross_entropy" or "MSE") between
    student and teacher logits, a 0-d tensor in the student's dtype."""
    return _distill(student, teacher, *_check_params(factor, temperature, distance))


class DistillationReg(nn.Module):
    """The distillation term of LwF ("cross_entropy": softmax at temperature,
    -sum r log(q + 1e-5), mean over rows) or DER ("MSE"), times factor.

    forward(student_logits, teacher_logits) returns a 0-d tensor; the teacher
    is a constant. factor, temperature and distance are plain attributes and
    are checked again on every call."""

    def __init__(self, factor, temperature, distance):
        super().__init__()
        _check_params(factor, temperature, distance)
        self.factor = factor
        self.temperature = temperature
        self.distance = distance

    def forward(self, student_logits, teacher_logits):
        return _distill(student_logits, teacher_logits,
                        *_check_params(self.factor, self.temperature, self.distance))

    def extra_repr(self):
        return f"factor={self.factor!r}, temperature={self.temperature!r}, " \
               f"distance={self.distance!r}"
