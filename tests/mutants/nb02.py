"""Wrong answers to the exercises of notebook 02 (see tests/test_mutants.py)."""

NOTEBOOK = "02_filtering_and_convolution.ipynb"

_CONV2D = """
image, kernel = np.asarray(image, dtype=np.float64), np.asarray(kernel, dtype=np.float64)
{prep}
kh, kw = kernel.shape
out = np.zeros((image.shape[0] - kh + 1, image.shape[1] - kw + 1))
for i in range(out.shape[0]):
    for j in range(out.shape[1]):
        out[i, j] = np.sum(image[i:i + kh, j:j + kw] * kernel)
return out
"""

MUTANTS = {
    "02_conv2d": [
        dict(name="flipped kernel (textbook convolution)", common=True, hint="asymmetric",
             source=_CONV2D.format(prep="kernel = kernel[::-1, ::-1]")),
        dict(name="transposed kernel", common=True, source=_CONV2D.format(prep="kernel = kernel.T.copy()")),
        dict(name="output one row and column too small", common=True, source="""
image, kernel = np.asarray(image, dtype=np.float64), np.asarray(kernel, dtype=np.float64)
kh, kw = kernel.shape
out = np.zeros((image.shape[0] - kh, image.shape[1] - kw))
for i in range(out.shape[0]):
    for j in range(out.shape[1]):
        out[i, j] = np.sum(image[i:i + kh, j:j + kw] * kernel)
return out
"""),
        dict(name="assumes a square kernel", common=True, source="""
image, kernel = np.asarray(image, dtype=np.float64), np.asarray(kernel, dtype=np.float64)
k = kernel.shape[0]
out = np.zeros((image.shape[0] - k + 1, image.shape[1] - k + 1))
for i in range(out.shape[0]):
    for j in range(out.shape[1]):
        out[i, j] = np.sum(image[i:i + k, j:j + k] * kernel[:k, :k])
return out
"""),
    ],
    "02_output_size": [
        dict(name="padding counted once", common=True, source="return (n - f + padding) // stride + 1"),
        dict(name="true division", common=True, source="return (n - f + 2 * padding) / stride + 1"),
        dict(name="forgets the +1", common=True, source="return (n - f + 2 * padding) // stride"),
        dict(name="rounds up", common=True, source="return -(-(n - f + 2 * padding) // stride) + 1"),
    ],
    "02_conv1d": [
        dict(name="ignores the padding", common=True, source="""
x = np.asarray(signal, dtype=np.float64)
k = np.asarray(kernel, dtype=np.float64)
n_out = (len(x) - len(k)) // stride + 1
return np.array([x[i * stride:i * stride + len(k)] @ k for i in range(n_out)])
"""),
        dict(name="flipped kernel", common=True, source="""
x = np.pad(np.asarray(signal, dtype=np.float64), padding)
k = np.asarray(kernel, dtype=np.float64)[::-1]
n_out = (len(x) - len(k)) // stride + 1
return np.array([x[i * stride:i * stride + len(k)] @ k for i in range(n_out)])
"""),
        dict(name="window start does not move by the stride", common=True, source="""
x = np.pad(np.asarray(signal, dtype=np.float64), padding)
k = np.asarray(kernel, dtype=np.float64)
n_out = (len(x) - len(k)) // stride + 1
return np.array([x[i:i + len(k)] @ k for i in range(n_out)])
"""),
        dict(name="padding on the left only", common=True, source="""
x = np.pad(np.asarray(signal, dtype=np.float64), (padding, 0))
k = np.asarray(kernel, dtype=np.float64)
n_out = (len(x) - len(k)) // stride + 1
return np.array([x[i * stride:i * stride + len(k)] @ k for i in range(n_out)])
"""),
    ],
    "02_median_filter": [
        dict(name="zero padding instead of repeating the border", common=True, source="""
p = size // 2
padded = np.pad(image, p)
out = np.empty_like(image)
for i in range(image.shape[0]):
    for j in range(image.shape[1]):
        out[i, j] = np.median(padded[i:i + size, j:j + size])
return out
"""),
        dict(name="mean instead of median", common=True, source="""
p = size // 2
padded = np.pad(image, p, mode="edge")
out = np.empty_like(image)
for i in range(image.shape[0]):
    for j in range(image.shape[1]):
        out[i, j] = np.mean(padded[i:i + size, j:j + size])
return out
"""),
        dict(name="window not centred (pads by size)", common=True, source="""
p = size
padded = np.pad(image, p, mode="edge")
out = np.empty_like(image)
for i in range(image.shape[0]):
    for j in range(image.shape[1]):
        out[i, j] = np.median(padded[i:i + size, j:j + size])
return out
"""),
        dict(name="float result", common=True, source="""
p = size // 2
padded = np.pad(image, p, mode="edge")
out = np.zeros(image.shape)
for i in range(image.shape[0]):
    for j in range(image.shape[1]):
        out[i, j] = np.median(padded[i:i + size, j:j + size])
return out
"""),
    ],
}

_LAYER = """
pad = {pad}
x = np.pad(np.asarray(images, dtype=np.float64), pad)
weight = np.asarray(weight, dtype=np.float64){flip}
kh, kw = weight.shape[2:]
h_out = (x.shape[2] - kh) // stride + 1
w_out = (x.shape[3] - kw) // stride + 1
out = np.zeros((x.shape[0], weight.shape[0], h_out, w_out))
for i in range(h_out):
    for j in range(w_out):
        window = {window}
        out[:, :, i, j] = {combine}
return {result}
"""
_LAYER_GOOD = dict(pad="((0, 0), (0, 0), (padding, padding), (padding, padding))", flip="",
                   window="x[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]",
                   combine="np.tensordot(window, weight, axes=([1, 2, 3], [1, 2, 3]))",
                   result="out + np.asarray(bias, dtype=np.float64)[None, :, None, None]")

MUTANTS["02_conv2d_layer"] = [
    dict(name="padding ignored", common=True, source=_LAYER.format(**{**_LAYER_GOOD, "pad": "0"})),
    dict(name="batch and channel axes padded too", source=_LAYER.format(**{**_LAYER_GOOD, "pad": "padding"})),
    dict(name="window start ignores the stride", common=True,
         source=_LAYER.format(**{**_LAYER_GOOD, "window": "x[:, :, i:i + kh, j:j + kw]"})),
    dict(name="bias forgotten", common=True, source=_LAYER.format(**{**_LAYER_GOOD, "result": "out"})),
    dict(name="only the first input channel", common=True, source=_LAYER.format(**{
        **_LAYER_GOOD, "combine": "np.tensordot(window[:, :1], weight[:, :1], axes=([1, 2, 3], [1, 2, 3]))"})),
    dict(name="kernels flipped", common=True, source=_LAYER.format(**{**_LAYER_GOOD, "flip": "[:, :, ::-1, ::-1]"})),
]

_IM2COL = """
x = np.pad(np.asarray(images, dtype=np.float64), {pad})
batch, channels = x.shape[:2]
h_out = (x.shape[2] - kh) // stride + 1
w_out = (x.shape[3] - kw) // stride + 1
cols = np.empty((batch, channels * kh * kw, h_out * w_out))
for i in range(h_out):
    for j in range(w_out):
        window = {window}
        cols[:, :, {column}] = {flat}
return cols
"""
_IM2COL_GOOD = dict(pad="((0, 0), (0, 0), (padding, padding), (padding, padding))",
                    window="x[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]", column="i * w_out + j",
                    flat="window.reshape(batch, -1)")
_GEMM = """
weight = np.asarray(weight, dtype=np.float64)
c_out, _, kh, kw = weight.shape
cols = im2col(images, kh, kw, stride, padding)
h_out = (images.shape[2] + 2 * padding - kh) // stride + 1
w_out = (images.shape[3] + 2 * padding - kw) // stride + 1
out = {flat_weight} @ cols{bias}
return out.reshape({shape})
"""
_GEMM_GOOD = dict(flat_weight="weight.reshape(c_out, -1)", bias=" + np.asarray(bias, dtype=np.float64)[:, None]",
                  shape="-1, c_out, h_out, w_out")

MUTANTS["02_im2col"] = [
    dict(name="window flattened kernel position first, channel last", common=True, hint="F.unfold",
         source=_IM2COL.format(**{**_IM2COL_GOOD, "flat": "window.transpose(0, 2, 3, 1).reshape(batch, -1)"})),
    dict(name="columns in column-major order of the positions", common=True, hint="one step to the right",
         source=_IM2COL.format(**{**_IM2COL_GOOD, "column": "j * h_out + i"})),
    dict(name="padding ignored", common=True, source=_IM2COL.format(**{**_IM2COL_GOOD, "pad": "0"})),
    dict(name="window start ignores the stride", common=True,
         source=_IM2COL.format(**{**_IM2COL_GOOD, "window": "x[:, :, i:i + kh, j:j + kw]"})),
    dict(name="bias forgotten", common=True, block=1, source=_GEMM.format(**{**_GEMM_GOOD, "bias": ""})),
    dict(name="output reshaped to (W_out, H_out)", common=True, block=1,
         source=_GEMM.format(**{**_GEMM_GOOD, "shape": "-1, c_out, w_out, h_out"})),
    dict(name="weights flattened in another order than the columns", common=True, block=1,
         source=_GEMM.format(**{**_GEMM_GOOD, "flat_weight": "weight.transpose(0, 2, 3, 1).reshape(c_out, -1)"})),
]
