# Typed contract of an InPlace-ABN backend (met by reference.py, ocnet_iabn_cpu, ocnet_iabn_cuda).
# Shapes: x, z, dz are (N, C, *) contiguous; vectors are (C,). Statistics, weight and bias use the
# accumulation dtype (float64 for float64 inputs, float32 otherwise). Without affine, weight and
# bias are empty tensors (gamma = 1, beta = 0). gamma = |weight| + eps everywhere.
from torch import Tensor

def has_cuda() -> bool: ...
def mean_var(x: Tensor) -> tuple[Tensor, Tensor]: ...  # (mean, biased var)
def forward(x: Tensor, mean: Tensor, var: Tensor, weight: Tensor, bias: Tensor,
            affine: bool, eps: float) -> Tensor: ...  # in place: x <- (x-mean)*rsqrt(var+eps)*gamma+beta
def edz_eydz(z: Tensor, dz: Tensor, weight: Tensor, bias: Tensor, affine: bool,
             eps: float) -> tuple[Tensor, Tensor]: ...  # (sum dz, sum y*dz), y = (z-beta)/gamma
def backward(z: Tensor, dz: Tensor, var: Tensor, weight: Tensor, bias: Tensor, edz: Tensor,
             eydz: Tensor, affine: bool, eps: float) -> tuple[Tensor, Tensor, Tensor]: ...
    # (dx, dweight = eydz*sign(weight), dbias = edz); dx uses the local count n = numel/C
def leaky_relu_forward(x: Tensor, slope: float) -> None: ...  # in place
def leaky_relu_backward(z: Tensor, dz: Tensor, slope: float) -> None: ...  # in place, z<0: dz*=slope, z/=slope
def elu_forward(x: Tensor) -> None: ...  # in place
def elu_backward(z: Tensor, dz: Tensor) -> None: ...  # in place, z<0: dz*=(z+1), z=log1p(z)
