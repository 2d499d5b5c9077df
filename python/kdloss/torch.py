"""kdloss for PyTorch: distillation terms with a fused gradient.

    from kdloss.torch import DistillationReg
    reg = DistillationReg(factor=1.0, temperature=2.0, distance="cross_entropy")
    loss = task_loss + reg(student_logits, teacher_logits)
    loss.backward()

Distances (DISTANCES; s, t student and teacher logits, q = softmax(s/T),
r = softmax(t/T), per row, then reduced over rows):
  "cross_entropy"              -sum r log(q + 1e-5)            LwF (kdloss's original)
  "MSE"                        mean (s - t)^2, T ignored        DER, DER++
  "soft_cross_entropy"         -sum r log q                     PyCIL's _KD_loss, Mammoth's LwF
  "kl_div"                     sum r (log r - log q)            F.kl_div(log_softmax(s/T),
                                                                softmax(t/T), "batchmean"):
                                                                Avalanche, torchdistill, Megatron
  "kl_div_reverse"             sum q (log q - log r)            Megatron's reverse KL
  "cross_entropy_uniform_eps"  -sum r log((q + 1e-5/C)/(1 + 1e-5))   FACIL's LwF
  "jsd"                        beta KL(r||M) + (1-beta) KL(q||M), M = beta r + (1-beta) q
                                                                Liger-Kernel's LigerJSD, GKD
  "bce_sigmoid"                mean over classes of BCE(sigmoid(s), sigmoid(t)), T ignored:
                               F.binary_cross_entropy_with_logits(s, sigmoid(t))  iCaRL
None multiplies by T^2: put it in factor if you want it. reduction "mean"
(default; with row_weight w: sum w_i d_i / sum w_i, 0 when every weight is 0,
as a padding mask gives) or "sum" (sum w_i d_i), times factor. row_weight: a
1-D tensor of one weight per row (finite, >= 0; 0 skips a padding row), a
constant like the teacher.

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

DISTANCES = {"cross_entropy": _lib.KD_CROSS_ENTROPY, "MSE": _lib.KD_MSE,
             "soft_cross_entropy": _lib.KD_SOFT_CROSS_ENTROPY, "kl_div": _lib.KD_KL_DIV,
             "kl_div_reverse": _lib.KD_KL_DIV_REVERSE,
             "cross_entropy_uniform_eps": _lib.KD_CROSS_ENTROPY_UNIFORM_EPS,
             "jsd": _lib.KD_JSD, "bce_sigmoid": _lib.KD_BCE_SIGMOID}
REDUCTIONS = {"mean": _lib.KD_REDUCE_MEAN, "sum": _lib.KD_REDUCE_SUM}
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
_loss_ex_f32 = _lib.loss_ex_f32
_Params = _lib.Params
_MEAN = _lib.KD_REDUCE_MEAN
_JSD = _lib.KD_JSD
_NO_DOUBLE_BACKWARD = ("kdloss: double backward is not supported: the distillation gradient is "
                       "computed by kdloss, not traced, so it has no gradient of its own "
                       "(backward with create_graph=True reached kdloss)")


def _check_params(factor, temperature, distance, beta=0.5, reduction="mean"):
    """(kd_distance code, factor, temperature, beta, kd_reduction code) as the
    C call takes them."""
    code = DISTANCES.get(distance) if isinstance(distance, str) else None
    if code is None:
        raise ValueError(f"kdloss: unknown distance {distance!r}; valid: "
                         + ", ".join(repr(d) for d in DISTANCES))
    red = REDUCTIONS.get(reduction) if isinstance(reduction, str) else None
    if red is None:
        raise ValueError(f"kdloss: unknown reduction {reduction!r}; valid: "
                         + ", ".join(repr(r) for r in REDUCTIONS))
    try:
        if any(isinstance(x, (str, bytes)) for x in (factor, temperature, beta)):
            raise TypeError
        factor, temperature, beta = float(factor), float(temperature), float(beta)
    except (TypeError, ValueError):
        raise TypeError(f"kdloss: factor, temperature and beta must be real numbers, got "
                        f"{type(factor).__name__}, {type(temperature).__name__} and "
                        f"{type(beta).__name__}") from None
    if not math.isfinite(factor):
        raise ValueError(f"kdloss: factor must be finite, got {factor}")
    if not (temperature > 0 and math.isfinite(temperature)):
        raise ValueError(f"kdloss: temperature must be finite and > 0, got {temperature}")
    if code == _lib.KD_JSD and not 0 < beta < 1:
        raise ValueError(f"kdloss: jsd needs 0 < beta < 1, got {beta}")
    return code, factor, temperature, beta, red


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


def _check_weight(row_weight, rows):
    """row_weight as float32 contiguous rows weights, or None."""
    if row_weight is None:
        return None
    w = row_weight
    if not isinstance(w, _Tensor):
        raise TypeError(f"kdloss: row_weight must be a tensor or None, got {type(w).__name__}")
    if w.dim() != 1 or w.shape[0] != rows:
        raise ValueError(f"kdloss: row_weight must be 1-D with one weight per row ({rows}), "
                         f"got {tuple(w.shape)}")
    if not w.is_cpu or w.dtype not in _DTYPES or w.layout is not _STRIDED:
        raise TypeError(f"kdloss: row_weight must be a dense float CPU tensor, got {w.dtype} "
                        f"({w.layout}) on {w.device}")
    if w.requires_grad and _grad_enabled():
        raise ValueError("kdloss: row_weight requires grad; kdloss treats the weights as "
                         "constants: pass row_weight.detach()")
    return w.detach().to(_F32).contiguous()


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
    """One C call on _distill's arguments: the float32 loss, and with_grad the
    dense float32 gradient. call: (kd_distance code, factor, temperature,
    rows, cols, student, its row stride, teacher, its row stride) for the
    older entry points, or (_Params, rows, cols, student, ..., teacher, ...)
    for kd_loss_ex_f32."""
    loss = _new_f32(())
    ex = type(call[0]) is _Params
    rows, cols = call[1:3] if ex else call[3:5]
    grad = _new_f32((rows, cols)) if with_grad else None
    if ex:
        status = _loss_ex_f32(*call, loss.data_ptr(), None,
                              None if grad is None else grad.data_ptr(), cols)
    elif with_grad:
        status = _loss_grad_f32(*call, loss.data_ptr(), grad.data_ptr(), cols)
    else:
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


def _distill(student, teacher, params, row_weight):
    # s, t and the weights (copies when the layout or dtype needs them) live
    # until the call returns.
    rows, cols, s, lds, t, ldt = _operands(student, teacher)
    code, factor, temperature, beta, reduction = params
    if row_weight is None and reduction == _MEAN and (code != _JSD or beta == 0.5):
        # kd_loss_f32 and kd_loss_grad_f32 are this call bit for bit, without
        # the parameter struct.
        call = (code, factor, temperature, rows, cols, s.data_ptr(), lds, t.data_ptr(), ldt)
    else:
        w = _check_weight(row_weight, rows)
        p = _Params(*params, None if w is None else w.data_ptr())
        call = (p, rows, cols, s.data_ptr(), lds, t.data_ptr(), ldt)
    # The teacher is no input of the Function: it is a constant (checked above).
    if student.requires_grad and _grad_enabled():
        return _DistillationFunction.apply(student, call)
    loss, _ = _compute(call, False)
    return loss if student.dtype is _F32 else loss.to(student.dtype)


def distillation_loss(student, teacher, *, factor, temperature, distance, beta=0.5,
                      reduction="mean", row_weight=None):
    """factor * the distillation distance (a DISTANCES name) between student
    and teacher logits, reduced over rows ("mean" or "sum", with optional
    row_weight), a 0-d tensor in the student's dtype. beta: "jsd" only."""
    return _distill(student, teacher,
                    _check_params(factor, temperature, distance, beta, reduction), row_weight)


class DistillationReg(nn.Module):
    """A distillation term times factor: LwF's ("cross_entropy": softmax at
    temperature, -sum r log(q + 1e-5), mean over rows), DER's ("MSE"), or a
    framework's (the other DISTANCES names; beta for "jsd").

    forward(student_logits, teacher_logits, row_weight=None) returns a 0-d
    tensor; the teacher and the weights are constants. factor, temperature,
    distance, beta and reduction are plain attributes and are checked again
    on every call."""

    beta = 0.5
    reduction = "mean"

    def __init__(self, factor, temperature, distance, *, beta=0.5, reduction="mean"):
        super().__init__()
        _check_params(factor, temperature, distance, beta, reduction)
        self.factor = factor
        self.temperature = temperature
        self.distance = distance
        self.beta = beta
        self.reduction = reduction

    def forward(self, student_logits, teacher_logits, row_weight=None):
        return _distill(student_logits, teacher_logits,
                        _check_params(self.factor, self.temperature, self.distance, self.beta,
                                      self.reduction), row_weight)

    def extra_repr(self):
        text = f"factor={self.factor!r}, temperature={self.temperature!r}, " \
               f"distance={self.distance!r}"
        if self.distance == "jsd":
            text += f", beta={self.beta!r}"
        if self.reduction != "mean":
            text += f", reduction={self.reduction!r}"
        return text
