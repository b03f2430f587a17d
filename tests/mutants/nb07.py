"""Wrong answers to the exercises of notebook 07 (see tests/test_mutants.py)."""

NOTEBOOK = "07_caption_data.ipynb"

_PARSE = """
parts = {split}
if len(parts) == 2:  # the missing separator: "4 A dog runs ..."
    number, _, caption = parts[1].partition(" ")
    parts = [parts[0], number, caption.strip()]
if len(parts) != 3:
    return None
name, number, caption = parts
if {reject}:
    return None
return name, caption
"""
_PARSE_GOOD = dict(split='[p.strip() for p in line.split("|", 2)]',
                   reject='not name.lower().endswith((".jpg", ".jpeg", ".png")) or not number.isdigit() or not caption')

_ITOS = """
counts = Counter(token for tokens in token_lists for token in tokens)
words = [w for w, c in counts.items() if {keep} and w not in SPECIALS]
return {result}
"""
_ITOS_GOOD = dict(keep="c >= min_freq", result="SPECIALS + sorted(words, key=lambda w: (-counts[w], w))")

_PAD = """
lengths = torch.tensor([{length} for c in captions], dtype={dtype})
padded = torch.full((len(captions), {width}), pad_id, dtype=torch.long)
for i, c in enumerate(captions):
    padded[i, : len(c)] = c
return padded, lengths
"""
_PAD_GOOD = dict(length="len(c)", dtype="torch.long", width="int(lengths.max())")

_NEAREST = """
unit = {unit}
similarity = unit @ unit[words.index(word)]  # (n_words,)
order = {order}
return {pick}
"""
_NEAREST_GOOD = dict(unit="vectors / np.linalg.norm(vectors, axis=1, keepdims=True)", order="np.argsort(-similarity)",
                     pick="[words[i] for i in order if words[i] != word][:k]")

MUTANTS = {
    "07_parse_results_row": [
        dict(name="fields not stripped", common=True,
             source=_PARSE.format(**{**_PARSE_GOOD, "split": 'line.split("|", 2)'})),
        dict(name="no repair of the missing separator", common=True, source="""
parts = [p.strip() for p in line.split("|", 2)]
if len(parts) != 3:
    return None
name, number, caption = parts
if not name.lower().endswith((".jpg", ".jpeg", ".png")) or not number.isdigit() or not caption:
    return None
return name, caption
"""),
        dict(name="empty caption accepted", common=True, source=_PARSE.format(**{
            **_PARSE_GOOD, "reject": 'not name.lower().endswith((".jpg", ".jpeg", ".png")) or not number.isdigit()'})),
        dict(name="split on every '|' (captions containing '|' are cut)",
             source=_PARSE.format(**{**_PARSE_GOOD, "split": '[p.strip() for p in line.split("|")][:3]'})),
    ],
    "07_tokenize": [
        dict(name="not lowercased", common=True, source="""
text = unicodedata.normalize("NFC", text)
return re.findall(r"[^\\W_]+", text)
"""),
        dict(name="split on spaces (punctuation kept)", common=True, source="return text.lower().split()"),
        dict(name="\\w+ keeps underscores", source="""
text = unicodedata.normalize("NFC", text).lower()
return re.findall(r"\\w+", text)
"""),
        dict(name="no Unicode normalisation", source="return re.findall(r\"[^\\W_]+\", text.lower())"),
        dict(name="ASCII letters only", common=True, source="return re.findall(r\"[a-z0-9]+\", text.lower())"),
    ],
    "07_build_itos": [
        dict(name="count > min_freq (off by one)", common=True,
             source=_ITOS.format(**{**_ITOS_GOOD, "keep": "c > min_freq"})),
        dict(name="special tokens forgotten", common=True,
             source=_ITOS.format(**{**_ITOS_GOOD, "result": "sorted(words, key=lambda w: (-counts[w], w))"})),
        dict(name="alphabetical order", source=_ITOS.format(**{**_ITOS_GOOD, "result": "SPECIALS + sorted(words)"})),
        dict(name="ties not broken by the word", source=_ITOS.format(**{
            **_ITOS_GOOD, "result": "SPECIALS + sorted(words, key=lambda w: -counts[w])"})),
    ],
    "07_pad_captions": [
        dict(name="lengths as float", common=True, hint="torch.long",
             source=_PAD.format(**{**_PAD_GOOD, "dtype": "torch.float32"})),
        dict(name="lengths without <start> and <end>", common=True,
             source=_PAD.format(**{**_PAD_GOOD, "length": "len(c) - 2"}).replace(
                 "int(lengths.max())", "int(lengths.max()) + 2")),
        dict(name="width of the first caption", source=_PAD.format(**{**_PAD_GOOD, "width": "len(captions[0])"})),
        dict(name="pads with zeros whatever pad_id", source="""
lengths = torch.tensor([len(c) for c in captions], dtype=torch.long)
padded = torch.zeros((len(captions), int(lengths.max())), dtype=torch.long)
for i, c in enumerate(captions):
    padded[i, : len(c)] = c
return padded, lengths
"""),
    ],
    "07_nearest_words": [
        dict(name="dot product without normalising", common=True,
             source=_NEAREST.format(**{**_NEAREST_GOOD, "unit": "vectors"})),
        dict(name="the word itself kept", common=True,
             source=_NEAREST.format(**{**_NEAREST_GOOD, "pick": "[words[i] for i in order][:k]"})),
        dict(name="least similar first", common=True,
             source=_NEAREST.format(**{**_NEAREST_GOOD, "order": "np.argsort(similarity)"})),
        dict(name="normalised over the wrong axis", source=_NEAREST.format(**{
            **_NEAREST_GOOD, "unit": "vectors / np.linalg.norm(vectors, axis=0, keepdims=True)"})),
    ],
}

_PAIRS = """
self.pairs = []
for key in {keys}:
    for raw in {raws}:
        tokens = text.tokenize(raw)
        {cut}
        self.pairs.append((key, {encode}))
"""
_PAIRS_GOOD = dict(keys="keys", raws="captions[key]",
                   cut="if max_len is not None:\n            tokens = tokens[:max_len]",
                   encode="vocab.encode(tokens)")

MUTANTS["07_caption_dataset"] = [
    dict(name="max_len ignored", common=True, source=_PAIRS.format(**{**_PAIRS_GOOD, "cut": "pass"})),
    dict(name="cut after encode (loses <end>)", common=True, hint="<end>", source=_PAIRS.format(**{
        **_PAIRS_GOOD, "cut": "pass",
        "encode": "vocab.encode(tokens)[: max_len + 1] if max_len else vocab.encode(tokens)"})),
    dict(name="one caption per image", common=True,
         source=_PAIRS.format(**{**_PAIRS_GOOD, "raws": "captions[key][:1]"})),
    dict(name="images in dict order instead of `keys`", common=True, hint="keys",
         source=_PAIRS.format(**{**_PAIRS_GOOD, "keys": "images"})),
    dict(name="ids returned as a list", common=True, block=2, hint="torch.long", source="""
key, ids = self.pairs[idx]
return self.images[key], ids
"""),
    dict(name="ids as float", common=True, block=2, hint="torch.long", source="""
key, ids = self.pairs[idx]
return self.images[key], torch.tensor(ids, dtype=torch.float32)
"""),
    dict(name="images concatenated instead of stacked", common=True, block=3, source="""
images = torch.cat([image for image, _ in batch])
captions, lengths = datasets.pad_captions([ids for _, ids in batch])
return images, captions, lengths
"""),
    dict(name="len counts images, not pairs", common=True, block=1, source="return len(self.images)"),
]

_BUCKET = """
order = {order}
size = {size}
batches = []
for start in range(0, len(order), size):
    sorted_pool = {sort}
    batches += [sorted_pool[k:k + self.batch_size] for k in {starts}]
{emit}
"""
_FIXED = "generator=torch.Generator().manual_seed(0)"
_BUCKET_GOOD = dict(order="torch.randperm(len(self.lengths), generator=self.generator).tolist()",
                    size="self.pool * self.batch_size",
                    sort="sorted(order[start:start + size], key=lambda i: self.lengths[i])",
                    starts="range(0, len(sorted_pool), self.batch_size)",
                    emit="for i in torch.randperm(len(batches), generator=self.generator).tolist():\n"
                         "    yield batches[i]")

MUTANTS["07_bucket_sampler"] = [
    dict(name="pools sorted by index, not by length", common=True, hint="sort each pool by length", block=1,
         source=_BUCKET.format(**{**_BUCKET_GOOD, "sort": "sorted(order[start:start + size])"})),
    dict(name="batches yielded in sorted order, never shuffled", common=True, block=1,
         source=_BUCKET.format(**{**_BUCKET_GOOD, "emit": "yield from batches"})),
    dict(name="the last, smaller batch of a pool dropped", common=True, hint="exactly once", block=1,
         source=_BUCKET.format(**{**_BUCKET_GOOD,
                                  "starts": "range(0, len(sorted_pool) - self.batch_size + 1, self.batch_size)"})),
    dict(name="one sort over everything, no pools", common=True, block=1,
         source=_BUCKET.format(**{**_BUCKET_GOOD, "size": "len(order)"})),
    dict(name="no shuffle before sorting", common=True, block=1,
         source=_BUCKET.format(**{**_BUCKET_GOOD, "order": "list(range(len(self.lengths)))"})),
    dict(name="the same permutation every epoch", common=True, hint="new permutation", block=1,
         source=_BUCKET.format(**{**_BUCKET_GOOD, "order": f"torch.randperm(len(self.lengths), {_FIXED}).tolist()",
                                  "emit": f"for i in torch.randperm(len(batches), {_FIXED}).tolist():\n"
                                          "    yield batches[i]"})),
    dict(name="len rounds the last pool down", common=True, hint="number of batches", block=2, source="""
full_pools, rest = divmod(len(self.lengths), self.pool * self.batch_size)
return full_pools * self.pool + rest // self.batch_size
"""),
    dict(name="len counts the items, not the batches", common=True, hint="number of batches", block=2,
         source="return len(self.lengths)"),
]
