"""Wrong answers to the exercises of notebook 01 (see tests/test_mutants.py)."""

NOTEBOOK = "01_images_as_arrays.ipynb"

MUTANTS = {
    "01_to_grey": [
        dict(name="channels in BGR order", common=True, source="""
rgb = rgb.astype(np.float64)
return 0.114 * rgb[:, :, 0] + 0.587 * rgb[:, :, 1] + 0.299 * rgb[:, :, 2]
"""),
        dict(name="plain mean of the channels", common=True, source="""
return rgb.astype(np.float64).mean(axis=2)
"""),
        dict(name="rounded down to uint8", common=True, source="""
rgb = rgb.astype(np.float64)
return (0.299 * rgb[:, :, 0] + 0.587 * rgb[:, :, 1] + 0.114 * rgb[:, :, 2]).astype(np.uint8)
"""),
        dict(name="weights applied to rows instead of channels", source="""
rgb = rgb.astype(np.float64)
return (rgb * np.array([0.299, 0.587, 0.114])[:, None, None][: rgb.shape[0]]).sum(axis=2)
"""),
    ],
    "01_bmp_size": [
        dict(name="rows not padded", common=True, source="""
return 54 + 3 * width * height
"""),
        dict(name="adds the remainder instead of the missing bytes", common=True, source="""
row = 3 * width
row += row % 4
return 54 + row * height
"""),
        dict(name="always adds a padding word", common=True, source="""
row = (3 * width // 4 + 1) * 4
return 54 + row * height
"""),
        dict(name="forgets the header", common=True, source="""
row = 3 * width
row += (-row) % 4
return row * height
"""),
    ],
    "01_psnr": [
        dict(name="uint8 difference wraps around", common=True, source="""
mse = np.mean((a - b) ** 2)
if mse == 0:
    return float("inf")
return float(10 * np.log10(255**2 / mse))
"""),
        dict(name="peak not squared", common=True, source="""
mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
if mse == 0:
    return float("inf")
return float(10 * np.log10(255 / mse))
"""),
        dict(name="sum instead of mean", common=True, source="""
mse = np.sum((a.astype(np.float64) - b.astype(np.float64)) ** 2)
if mse == 0:
    return float("inf")
return float(10 * np.log10(255**2 / mse))
"""),
        dict(name="20 log10 of the MSE (RMSE formula without the root)", common=True, source="""
mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
if mse == 0:
    return float("inf")
return float(20 * np.log10(255 / mse))
"""),
    ],
    "01_histogram": [
        dict(name="fancy-index += does not accumulate repeats", common=True, source="""
counts = np.zeros(256, dtype=np.int64)
counts[grey.ravel()] += 1
return counts
"""),
        dict(name="uint8 counts overflow past 255", common=True, source="""
counts = np.zeros(256, dtype=np.uint8)
np.add.at(counts, grey.ravel(), 1)
return counts
"""),
        dict(name="bincount without minlength", source="""
return np.bincount(grey.ravel())
"""),
        dict(name="np.histogram without a range (bins follow the image's min and max)", source="""
return np.histogram(grey, bins=256)[0]
"""),
    ],
}

_EQ = """
counts = np.bincount(grey.ravel(), minlength=256)
cdf = {cdf}
cdf_min = {cdf_min}
{guard}
lut = {lut}
lut = np.clip(lut, 0, 255).astype(np.uint8)
return lut[grey]
"""
_EQ_GOOD = dict(cdf="np.cumsum(counts)", cdf_min="cdf[cdf > 0][0]",
                guard="if grey.size == cdf_min:\n    return grey.copy()",
                lut="np.round((cdf - cdf_min) / (grey.size - cdf_min) * 255)")

MUTANTS["01_equalize"] = [
    dict(name="cdf_min not subtracted", common=True,
         source=_EQ.format(**{**_EQ_GOOD, "lut": "np.round(cdf / grey.size * 255)"})),
    dict(name="cdf_min = cdf[0] (level 0 may be absent)", common=True,
         source=_EQ.format(**{**_EQ_GOOD, "cdf_min": "cdf[0]", "guard": "pass"})),
    dict(name="truncated instead of rounded", common=True,
         source=_EQ.format(**{**_EQ_GOOD, "lut": "np.floor((cdf - cdf_min) / (grey.size - cdf_min) * 255)"})),
    dict(name="no guard for a flat image", common=True, source=_EQ.format(**{**_EQ_GOOD, "guard": "pass"})),
    dict(name="exclusive cumulative sum", common=True,
         source=_EQ.format(**{**_EQ_GOOD, "cdf": "np.cumsum(counts) - counts"})),
]

_BMP = """
height, width = rgb.shape[:2]
row_bytes = {row_bytes}
data_bytes = row_bytes * height
file_header = struct.pack({file_header})
info_header = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, data_bytes, 3780, 3780, 0, 0)
rows = []
for row in {rows}:
    pixels = {pixels}.tobytes()
    rows.append(pixels + bytes(row_bytes - len(pixels)))
return file_header + info_header + b"".join(rows)
"""
_BMP_GOOD = dict(row_bytes="3 * width + (-3 * width) % 4", file_header='"<2sIHHI", b"BM", 54 + data_bytes, 0, 0, 54',
                 rows="rgb[::-1]", pixels="row[:, ::-1]")

MUTANTS["01_bmp_bytes"] = [
    dict(name="rows top row first", common=True, hint="bottom row first",
         source=_BMP.format(**{**_BMP_GOOD, "rows": "rgb"})),
    dict(name="pixels as red, green, blue", common=True, hint="blue, green, red",
         source=_BMP.format(**{**_BMP_GOOD, "pixels": "row"})),
    dict(name="rows not padded", common=True, hint="multiple of 4",
         source=_BMP.format(**{**_BMP_GOOD, "row_bytes": "3 * width"})),
    dict(name="big-endian header", common=True, hint="little-endian",
         source=_BMP.format(**{**_BMP_GOOD, "file_header": '">2sIHHI", b"BM", 54 + data_bytes, 0, 0, 54'})),
    dict(name="file size without the header", common=True, hint="file size",
         source=_BMP.format(**{**_BMP_GOOD, "file_header": '"<2sIHHI", b"BM", data_bytes, 0, 0, 54'})),
    dict(name="padding to a multiple of 4 pixels instead of bytes", common=True,
         source=_BMP.format(**{**_BMP_GOOD, "row_bytes": "3 * (width + (-width) % 4)"})),
]
