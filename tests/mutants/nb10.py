"""Wrong answers to the exercises of notebook 10 (see tests/test_mutants.py)."""

NOTEBOOK = "10_evaluation_and_demo.ipynb"

_BLEU = """
def ngrams(words, k):
    return Counter(tuple(words[i:i + k]) for i in range(len(words) - k + 1))

log_sum = 0.0
for k in range(1, n + 1):
    counts = ngrams(hypothesis, k)
    max_ref = Counter()
    for ref in references:
        for gram, c in ngrams(ref, k).items():
            max_ref[gram] = {merge}
    clipped = {clipped}
    total = max(len(hypothesis) - k + 1, 0)
    if clipped == 0:
        return 0.0
    log_sum += {add}
c = len(hypothesis)
r = {r}
brevity = {brevity}
return brevity * {mean}
"""
_BLEU_GOOD = dict(merge="max(max_ref[gram], c)", clipped="sum(min(c, max_ref[gram]) for gram, c in counts.items())",
                  add="math.log(clipped / total)", r="min((abs(len(ref) - c), len(ref)) for ref in references)[1]",
                  brevity="1.0 if c > r else math.exp(1 - r / c)", mean="math.exp(log_sum / n)")

_ROUGE = """
def lcs(a, b):
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    best = 0
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            if a[i - 1] == b[j - 1]:
                table[i][j] = table[i - 1][j - 1] + 1
            else:
                table[i][j] = {otherwise}
            best = max(best, table[i][j])
    return {result}

lengths = [lcs(hypothesis, ref) for ref in references]
precision = {precision}
recall = {recall}
if precision == 0 or recall == 0:
    return 0.0
return {f}
"""
_ROUGE_GOOD = dict(otherwise="max(table[i - 1][j], table[i][j - 1])", result="table[len(a)][len(b)]",
                   precision="max(m / len(hypothesis) for m in lengths)",
                   recall="max(m / len(ref) for m, ref in zip(lengths, references))",
                   f="(1 + beta**2) * precision * recall / (recall + beta**2 * precision)")

_STEP = """
vocab_size = log_probs.shape[1]
candidates = ({candidates}).reshape(-1)  # (k * vocab_size,)
top, index = candidates.topk(beam_size)
return top, {parents}, {words}
"""
_STEP_GOOD = dict(candidates="scores[:, None] + log_probs", parents="index // vocab_size", words="index % vocab_size")

_PEAK = """
row, col = {divmod}
width, height = {size}
cx0, cy0 = col * width / grid, row * height / grid
cx1, cy1 = cx0 + width / grid, cy0 + height / grid
return bool({overlap})
"""
_PEAK_GOOD = dict(divmod="divmod(int(torch.as_tensor(alpha).argmax()), grid)", size="image_size",
                  overlap="min(cx1, box[2]) > max(cx0, box[0]) and min(cy1, box[3]) > max(cy0, box[1])")

MUTANTS = {
    "10_bleu": [
        dict(name="clipping forgotten", common=True, hint="clipped",
             source=_BLEU.format(**{**_BLEU_GOOD, "clipped": "sum(c for gram, c in counts.items() if max_ref[gram])"})),
        dict(name="no brevity penalty", common=True, hint="brevity penalty",
             source=_BLEU.format(**{**_BLEU_GOOD, "brevity": "1.0"})),
        dict(name="brevity penalty upside down, exp(1 - c/r)", common=True, hint="brevity penalty",
             source=_BLEU.format(**{**_BLEU_GOOD, "brevity": "1.0 if c > r else math.exp(1 - c / r)"})),
        dict(name="arithmetic mean of the precisions", common=True, hint="geometric mean",
             source=_BLEU.format(**{**_BLEU_GOOD, "add": "clipped / total", "mean": "log_sum / n"})),
        dict(name="the longest reference instead of the closest", source=_BLEU.format(
            **{**_BLEU_GOOD, "r": "max(len(ref) for ref in references)"})),
        dict(name="counts added over the references instead of their maximum",
             source=_BLEU.format(**{**_BLEU_GOOD, "merge": "max_ref[gram] + c"})),
    ],
    "10_rouge_l": [
        dict(name="precision and recall swapped in F", common=True, source=_ROUGE.format(
            **{**_ROUGE_GOOD, "f": "(1 + beta**2) * precision * recall / (precision + beta**2 * recall)"})),
        dict(name="beta ignored (F1)", common=True,
             source=_ROUGE.format(**{**_ROUGE_GOOD, "f": "2 * precision * recall / (recall + precision)"})),
        dict(name="beta not squared", common=True, source=_ROUGE.format(
            **{**_ROUGE_GOOD, "f": "(1 + beta) * precision * recall / (recall + beta * precision)"})),
        dict(name="longest common substring instead of subsequence", common=True,
             source=_ROUGE.format(**{**_ROUGE_GOOD, "otherwise": "0", "result": "best"})),
        dict(name="average over the references instead of the best", source=_ROUGE.format(**{
            **_ROUGE_GOOD, "precision": "sum(m / len(hypothesis) for m in lengths) / len(lengths)",
            "recall": "sum(m / len(ref) for m, ref in zip(lengths, references)) / len(lengths)"})),
    ],
    "10_beam_step": [
        dict(name="beam scores not accumulated", common=True, hint="beam score + log p",
             source=_STEP.format(**{**_STEP_GOOD, "candidates": "log_probs"})),
        dict(name="probabilities multiplied by the score", common=True,
             source=_STEP.format(**{**_STEP_GOOD, "candidates": "scores[:, None] * log_probs"})),
        dict(name="parent and word swapped", common=True,
             source=_STEP.format(**{**_STEP_GOOD, "parents": "index % vocab_size", "words": "index // vocab_size"})),
        dict(name="divided by the number of beams", common=True,
             source=_STEP.format(**{**_STEP_GOOD, "parents": "index // len(scores)", "words": "index % len(scores)"})),
        dict(name="the best word of each beam (top-k per beam)", common=True, hint="k x vocab_size", source="""
top, words = (scores[:, None] + log_probs).max(dim=1)  # the best word of each beam
order = top.argsort(descending=True)[:beam_size]
return top[order], order, words[order]
"""),
    ],
    "10_peak_on_object": [
        dict(name="row and column swapped", common=True, hint="row 5 // 3",
             source=_PEAK.format(**{**_PEAK_GOOD,
                                    "divmod": "divmod(int(torch.as_tensor(alpha).argmax()), grid)[::-1]"})),
        dict(name="width and height swapped", common=True, hint="200 wide",
             source=_PEAK.format(**{**_PEAK_GOOD, "size": "image_size[::-1]"})),
        dict(name="touching edges count as overlap", common=True, hint="touching", source=_PEAK.format(**{
            **_PEAK_GOOD, "overlap": "min(cx1, box[2]) >= max(cx0, box[0]) and min(cy1, box[3]) >= max(cy0, box[1])"})),
        dict(name="the box's centre must lie in the region", common=True, source=_PEAK.format(
            **{**_PEAK_GOOD, "overlap": "cx0 < (box[0] + box[2]) / 2 < cx1 and cy0 < (box[1] + box[3]) / 2 < cy1"})),
        dict(name="only the x-axis overlap tested", source=_PEAK.format(
            **{**_PEAK_GOOD, "overlap": "min(cx1, box[2]) > max(cx0, box[0])"})),
    ],
}

# The batched beam search: one template, one wrong line (or two) per mutant.
_BEAM = """
batch, k, device = features.shape[0], beam_size, features.device
state = decoder.init_state(features.repeat_interleave(k, dim=0))
words = torch.full((batch * k,), start_id, dtype=torch.long, device=device)
scores = torch.full((batch, k), float("-inf"), device=device)
{first}
tokens = torch.zeros(batch * k, 0, dtype=torch.long, device=device)
history = torch.zeros(batch * k, 0, features.shape[1], device=device)
finished = [[] for _ in range(batch)]
for _ in range({steps}):
    logits, state, alpha = decoder.step(state, words)
    log_probs = {log_probs}
    vocab_size = log_probs.shape[1]
    candidates = ({candidates}).reshape(batch, k * vocab_size)
    top, index = candidates.topk(k, dim=1)
    parents = (torch.arange(batch, device=device)[:, None] * k + index // vocab_size).reshape(-1)
    words = (index % vocab_size).reshape(-1)
    state = {state}
    tokens = torch.cat([tokens[parents], words[:, None]], dim=1)
    history = torch.cat([history[parents], alpha[parents, None].float()], dim=1)
    ended = (words == end_id).reshape(batch, k)
    for i, j in ended.nonzero().tolist():
        if {room}:
            row = i * k + j
            finished[i].append(Caption({ids}, {alphas}, float(top[i, j]), True))
    scores = {mask}
    if all(len(f) >= k for f in finished):
        break
best = []
for i, captions in enumerate(finished):
    if not captions:
        row = i * k + int(scores[i].argmax())
        captions.append(Caption(tokens[row].tolist(), history[row], float(scores.reshape(-1)[row]), False))
    best.append({pick})
return best
"""
_BEAM_GOOD = dict(first="scores[:, 0] = 0.0", steps="max_len", log_probs="logits.float().log_softmax(dim=1)",
                  candidates="scores.reshape(-1, 1) + log_probs", state="tuple(s[parents] for s in state)",
                  room="len(finished[i]) < k", ids="tokens[row, :-1].tolist()", alphas="history[row, :-1]",
                  mask='top.masked_fill(ended, float("-inf"))', pick="max(captions, key=lambda c: c.score)")
_PER_BEAM = """
batch, k, device = features.shape[0], beam_size, features.device
state = decoder.init_state(features.repeat_interleave(k, dim=0))
words = torch.full((batch * k,), start_id, dtype=torch.long, device=device)
scores = torch.full((batch, k), float("-inf"), device=device)
scores[:, 0] = 0.0
tokens = torch.zeros(batch * k, 0, dtype=torch.long, device=device)
history = torch.zeros(batch * k, 0, features.shape[1], device=device)
finished = [[] for _ in range(batch)]
for _ in range(max_len):
    logits, state, alpha = decoder.step(state, words)
    log_probs = logits.float().log_softmax(dim=1)
    top, words = (scores.reshape(-1, 1) + log_probs).max(dim=1)  # the best word of each beam
    top = top.reshape(batch, k)
    tokens = torch.cat([tokens, words[:, None]], dim=1)
    history = torch.cat([history, alpha[:, None].float()], dim=1)
    ended = (words == end_id).reshape(batch, k)
    for i, j in ended.nonzero().tolist():
        if len(finished[i]) < k:
            row = i * k + j
            finished[i].append(Caption(tokens[row, :-1].tolist(), history[row, :-1], float(top[i, j]), True))
    scores = top.masked_fill(ended, float("-inf"))
    if all(len(f) >= k for f in finished):
        break
best = []
for i, captions in enumerate(finished):
    if not captions:
        row = i * k + int(scores[i].argmax())
        captions.append(Caption(tokens[row].tolist(), history[row], float(scores.reshape(-1)[row]), False))
    best.append(max(captions, key=lambda c: c.score))
return best
"""

MUTANTS["10_batched_beam_search"] = [
    dict(name="beam scores not accumulated", common=True, hint="beam's score + log p",
         source=_BEAM.format(**{**_BEAM_GOOD, "candidates": "log_probs"})),
    dict(name="top-k of each beam instead of over k x vocab_size", common=True, hint="k x vocab_size",
         source=_PER_BEAM),
    dict(name="finished beams kept expanding", common=True, source=_BEAM.format(**{**_BEAM_GOOD, "mask": "top"})),
    dict(name="one step short (max_len - 1)", common=True, hint="max_len",
         source=_BEAM.format(**{**_BEAM_GOOD, "steps": "max_len - 1"})),
    dict(name="the beams' states not reordered", common=True,
         source=_BEAM.format(**{**_BEAM_GOOD, "state": "state"})),
    dict(name="all k beams start alive (duplicates)", common=True,
         source=_BEAM.format(**{**_BEAM_GOOD, "first": "scores[:] = 0.0"})),
    dict(name="<end> kept in the caption", common=True, hint="leave out <start> and <end>",
         source=_BEAM.format(**{**_BEAM_GOOD, "ids": "tokens[row].tolist()", "alphas": "history[row]"})),
    dict(name="raw logits instead of log-probabilities", common=True,
         source=_BEAM.format(**{**_BEAM_GOOD, "log_probs": "logits.float()"})),
    dict(name="the first finished caption instead of the best",
         source=_BEAM.format(**{**_BEAM_GOOD, "pick": "captions[0]"})),
    dict(name="an image keeps collecting captions after k", source=_BEAM.format(**{**_BEAM_GOOD, "room": "True"})),
    dict(name="the attention of the next word (rows shifted by one)",
         source=_BEAM.format(**{**_BEAM_GOOD, "alphas": "history[row, 1:]"})),
]
