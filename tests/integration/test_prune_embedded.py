"""One short check on the embedded SmolLM2-135M: GQA grouping, masking vs removal, KIVI ordering."""

import pytest
import torch

from kvscope.prune.evict import build_cache, continuation_logits, prefill, structural_keep
from kvscope.prune.lab import Plan, measure
from kvscope.prune.scan import encode_texts
from kvscope.quant import parse_spec

pytestmark = pytest.mark.embedded


def test_embedded_masking_removal_and_quantization(embedded):
    model, tok, info = embedded
    ids, cont = encode_texts(
        tok, info, "The lighthouse keeper is Mara Ellison. The keeper is", " Mara Ellison, who lives by the sea."
    )
    pre = prefill(model, tok, info, ids)
    n = pre.n_positions
    keep = structural_keep(info, n, [3, 17], None) & structural_keep(info, n, None, None)
    keep[:, :, 2] = False  # plus token 2 everywhere: rectangular, so removable
    removed = continuation_logits(model, build_cache(model.config, pre, keep, "remove"), cont, n)
    masked = continuation_logits(model, build_cache(model.config, pre, keep, "mask"), cont, n)
    torch.testing.assert_close(removed, masked, atol=1e-4, rtol=1e-4)
    base = measure(model, pre, cont, Plan("baseline"))
    k8 = measure(model, pre, cont, Plan("K8V8", quant=parse_spec("K8V8R0")))
    k2 = measure(model, pre, cont, Plan("K2V2", quant=parse_spec("K2V2R0")))
    assert base.kv_bytes == 2 * 30 * 3 * n * 64 * 4
    assert abs(k8.ppl / base.ppl - 1) < 0.02 and k2.ppl > k8.ppl
    assert k2.kv_bytes < k8.kv_bytes < base.kv_bytes / 3
