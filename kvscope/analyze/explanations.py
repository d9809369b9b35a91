"""How to read each analyze figure, in plain words (each registry entry carries its text; shown under
the figure in report.html and in a notebook)."""

EXPLANATIONS = {
    "kv_cache_layers": (
        "One small heatmap per layer, keys on top and values below. Rows are token positions: every position "
        "gets its own pixel row up to 256 positions; longer prompts show the maximum |x| over blocks of "
        "positions (the title says how many), so a single large position never disappears. Columns are the "
        "kv_head x head_dim channels, and dashed lines separate kv_heads. By default each layer has its own "
        "colour scale (clipped at its 99.5th percentile), so quiet early layers are not black; --cache-scale "
        "shared puts all layers on one scale, and a log scale is used when one element exceeds the clip limit"
        " more than 20-fold (--cache-norm). A vertical stripe is a channel that is large for every token (an "
        "outlier channel, the reason keys are quantized per channel); a horizontal line is one position that "
        "stands out. On SmolLM2 the first token's key is smaller than average, not brighter: look before "
        "assuming."
    ),
    "kv_cache_statistics": (
        "Four panels across layers, keys in blue and values in red. (a) Sparsity is the share of elements "
        "with |x| below the threshold: the cache is dense, so values near 0 % are expected and mean there is "
        "nothing to skip. (b) K-V correlation is the Spearman rank correlation, over positions, between each "
        "token's key norm and value norm in the same kv_head, averaged over kv_heads: +1 means tokens with "
        "large keys also have large values. (c) and (d) are the standard deviation and mean |x| of all "
        "elements of the layer, a measure of scale, not of importance."
    ),
    "kv_value_distribution": (
        "Histograms of every key and value element with a log count axis, so the tails are visible. A "
        "Gaussian has excess kurtosis 0 and almost nothing beyond 6 standard deviations; a large kurtosis or "
        "outlier share means a few extreme values would stretch a uniform quantization grid and waste most of"
        " its levels on empty range."
    ),
    "kv_pca_by_position": (
        "Each point is one position of the chosen layer: its key (left) or value (right) vector, with "
        "kv_heads concatenated, projected on the first two principal components; colour is position. Keys are"
        " post-RoPE as cached (values carry no RoPE), so a smooth colour gradient partly reflects position "
        "itself. Orange rings are attention sinks and black triangles special tokens; they often sit far from"
        " the rest."
    ),
    "head_specialization": (
        "Each point on the left is a query head of the chosen layer: x is the share of its attention that "
        "goes to the attention sinks (detected sinks, or position 0), y is how far back its remaining, non-"
        "sink attention looks on average (in tokens). Measured on all attention, look-back mostly repeats the"
        " sink share, because the sink is the farthest token; separating them shows which heads are local and"
        " which read far. Colour groups the query heads that share one kv_head (GQA). The two heatmaps give "
        "the same two numbers for every layer and query head. Attention is recomputed from the captured "
        "queries and keys with the model's own score scale; the title says how closely it matches the "
        "captured attention. A sliding-window layer is left blank: its cache holds only the last window - 1 "
        "keys, too few to recompute the prompt's attention, so the scatter shows the nearest full layer (and "
        "nothing is claimed when every layer is windowed)."
    ),
    "kv_quantization_error": (
        "Error of quantizing the cache against what it costs: the x axis is effective bits per element, "
        "counting the packed codes plus every float16 scale and zero point, so schemes with smaller groups "
        "pay for their extra statistics. tensor = one scale per layer tensor; token/gN = per N channels of a "
        "position (KIVI's values); channel/gN = per channel over N positions (KIVI's keys). token/g32 and "
        "channel/g32 cost the same, so their gap is a fair comparison. Rows: relative tensor error; relative "
        "attention-output error when only keys or only values are quantized; and the end-to-end next-token KL"
        " divergence against the unquantized cache, measured with the model (skipped, with the reason, when "
        "it is not loaded or a layer keeps a sliding window)."
    ),
    "low_importance_tokens": (
        "Left: every token by key and value norm; red crosses are those with the lowest magnitude, the tokens"
        " a magnitude rule would evict first. Right: the attention each of them actually receives, divided by "
        "the median of the tokens around its position (attention per seeing query favours the last tokens, "
        "which few queries see, each from close by; this ratio does not), against the median token. A cross "
        "that is an attention sink (orange) takes a large share of attention and "
        "must not be evicted: a low magnitude does not make it unimportant. Magnitudes are L2 norms of each "
        "token's key or value vector within one kv_head, averaged over layers and kv_heads. The L2 norm of a "
        "key does not change under RoPE (a rotation), so it describes the key itself, not where it sits."
    ),
    "token_importance_comparison": (
        "The highest-magnitude (circles) and lowest-magnitude (crosses) tokens on key-norm x value-norm axes,"
        " coloured by the attention they receive. If magnitude meant importance, the circles would be bright "
        "and the crosses dark; where they are not, magnitude is the wrong proxy on this prompt. Magnitudes "
        "are L2 norms of each token's key or value vector within one kv_head, averaged over layers and "
        "kv_heads. The L2 norm of a key does not change under RoPE (a rotation), so it describes the key "
        "itself, not where it sits."
    ),
    "token_magnitude_distributions": (
        "Boxplots of key and value norms by token type: number, punctuation, stopword (kvscope's English "
        "function-word list), proper noun (capitalised, not sentence-initial), special/BOS, whitespace and "
        "other; the type is given per word, so every BPE piece of a word shares it. Boxes span the middle "
        "half, the line is the median, dots are outliers; n is how many tokens the type has in this prompt, "
        "and small n deserve little trust. Magnitudes are L2 norms of each token's key or value vector within"
        " one kv_head, averaged over layers and kv_heads. The L2 norm of a key does not change under RoPE (a "
        "rotation), so it describes the key itself, not where it sits."
    ),
    "token_magnitudes": (
        "Top: key and value norm of every token by position, with attention sinks marked by orange lines. "
        "Bottom: the mean norm per token type, keys against values. The first tokens often carry unusual keys"
        " and near-zero values. Magnitudes are L2 norms of each token's key or value vector within one "
        "kv_head, averaged over layers and kv_heads. The L2 norm of a key does not change under RoPE (a "
        "rotation), so it describes the key itself, not where it sits."
    ),
    "token_key_value_scatter": (
        "Every token placed by key norm (x) and value norm (y), coloured by position; the highest-magnitude "
        "tokens are labelled with their text and orange rings mark attention sinks. A diagonal cloud means "
        "key and value norms rise together. Magnitudes are L2 norms of each token's key or value vector "
        "within one kv_head, averaged over layers and kv_heads. The L2 norm of a key does not change under "
        "RoPE (a rotation), so it describes the key itself, not where it sits."
    ),
    "head_sparsity": (
        "Share of elements with |x| below the threshold, for each layer and kv_head, keys and values. The "
        "colour scale runs to the largest share, printed in the title; on a dense cache that maximum is tiny,"
        " which is itself the finding: there are no zero heads to skip."
    ),
    "pruning_heatmap_by_layer_head": (
        "Pruning potential of each layer and kv_head: 1 minus the head's attention-weighted value norm over "
        "the largest one. A head that looks mostly at tokens with small values (usually a sink) writes little"
        " into the model and scores near 1. It is a proxy from one prompt; when kvscope prune --scan has been"
        " run, the measured perplexity change of evicting each head is shown beside it, so you can see "
        "whether the score predicts it."
    ),
    "layer_pruning_potential": (
        "The same score per layer (mean over its kv_heads). A tall bar is a layer whose heads write little; "
        "with a scan, the lower panel shows the perplexity change actually measured when the layer's cache is"
        " evicted, and the Spearman correlation between the two."
    ),
    "head_pruning_potential": (
        "Pruning potential by kv_head index: dots are single layers, the bar their mean. Head 2 of layer 3 "
        "and head 2 of layer 20 are unrelated heads that happen to share an index, so the bar is only a "
        "summary; decisions belong to the (layer, kv_head) heatmap."
    ),
    "weight_magnitude_distribution": (
        "Histograms of the absolute k_proj and v_proj weights over all layers, on log axes. They show the "
        "scale and tail of the projections that produce the cache; weights near zero are not the same as "
        "cache entries near zero. For the embedded model the weights come from a 4-bit GGUF file (at most 16 "
        "distinct values per block of 32 weights), so the histogram shows that quantization grid, not the "
        "trained full-precision weights."
    ),
    "importance_validation": (
        "Does a proxy rank tokens like their importance, once position is accounted for? Attention received "
        "tracks position, so every correlation here is a partial Spearman correlation given position. Left: "
        "per layer, each proxy against attention received. Right: each proxy against each reference present; "
        "the leave-one-out ground truth (kvscope prune --leave-one-out on the same text) is used for the "
        "verdict whenever it exists, and the verdict says when the two references disagree. One prompt is an "
        "example; run --prompts default for an interval over prompts."
    ),
}
