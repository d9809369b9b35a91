"""How to read each analyze figure, in plain words (shown under the figure in report.html)."""

NORMS = ("Magnitudes are L2 norms of each token's key or value vector within one kv_head, averaged over "
         "layers and kv_heads. The L2 norm of a key does not change under RoPE (a rotation), so it "
         "describes the key itself, not where it sits.")

EXPLANATIONS = {
    "kv_cache_layers": (
        "One small heatmap per layer, keys on top and values below. Rows are token positions (blocks of "
        "positions are averaged for long prompts, so nothing is squashed away), columns are the kv_head x "
        "head_dim channels, and dashed lines separate kv_heads. Colour is |x| on one scale shared by all "
        "layers and clipped at the 99.5th percentile. A bright vertical stripe is a channel that is large for "
        "every token (an outlier channel: the reason keys are quantized per channel); a bright horizontal "
        "line is one token that is large everywhere, often the first token."),
    "kv_cache_statistics": (
        "Four panels across layers, keys in blue and values in red. (a) Sparsity is the share of elements "
        "with |x| below the threshold: the cache is dense, so values near 0 % are expected and mean "
        "there is nothing to skip. (b) K-V correlation is the Spearman rank correlation, over positions, "
        "between each token's key norm and value norm in the same kv_head, averaged over kv_heads: "
        "+1 means tokens with large keys also have large values. (c) and (d) are the standard deviation "
        "and mean |x| of all elements of the layer, a measure of scale, not of importance."),
    "kv_value_distribution": (
        "Histograms of every key and value element with a log count axis, so the tails are visible. "
        "A Gaussian has excess kurtosis 0 and almost nothing beyond 6 standard deviations; a large "
        "kurtosis or outlier share means a few extreme values would stretch a uniform quantization grid "
        "and waste most of its levels on empty range."),
    "kv_pca_by_position": (
        "Each point is one position of the chosen layer: its key (left) or value (right) vector, with "
        "kv_heads concatenated, projected on the first two principal components; colour is position. "
        "Keys are post-RoPE as cached, so a smooth colour gradient partly reflects position itself. "
        "Orange rings are attention sinks and black triangles special tokens; they often sit far from "
        "the rest."),
    "head_specialization": (
        "Each point is a query head of the chosen layer. Its place comes from its attention pattern, "
        "recomputed exactly from the captured queries and keys: x is how far back it looks on average "
        "(in tokens), y is how spread its attention is (0 = one key, 1 = uniform), and point size is the "
        "share it gives the first position. Colour groups the query heads that share one kv_head (GQA): "
        "those heads read the same cached keys and values, so pruning that kv_head removes all of them. "
        "Heads close together behave alike on this prompt; that alone does not prove they are redundant."),
    "kv_quantization_error": (
        "Error from quantizing the cache at 16, 8, 4 and 2 bits. 16 bits means rounding to float16, not an "
        "integer grid; lower widths use asymmetric min-max integer grids with one scale per tensor, per "
        "token, or per channel (groups of positions). The top row is the relative error of the tensor, "
        "the bottom row the relative error of the attention output when only keys (left) or only values "
        "(right) are quantized, which is what the model actually feels. KIVI quantizes keys per channel "
        "and values per token; a gap between the lines shows why."),
    "low_importance_tokens": (
        "Left: every token by key and value norm; red crosses are those with the lowest magnitude, the "
        "tokens a magnitude rule would evict first. Right: the attention each of them actually receives, "
        "against the median token. A cross that is an attention sink (orange) takes a large share of "
        "attention and must not be evicted: a low magnitude does not make it unimportant. " + NORMS),
    "token_importance_comparison": (
        "The highest-magnitude (circles) and lowest-magnitude (crosses) tokens on key-norm x value-norm "
        "axes, coloured by the attention they receive. If magnitude meant importance, the circles would be "
        "bright and the crosses dark; where they are not, magnitude is the wrong proxy on this prompt. "
        + NORMS),
    "token_magnitude_distributions": (
        "Boxplots of key and value norms by token type: number, punctuation, stopword (scikit-learn's "
        "English list), proper noun (capitalised, not sentence-initial), special/BOS, whitespace, subword "
        "continuation and other. Boxes span the middle half, the line is the median, dots are outliers; "
        "n is how many tokens the type has in this prompt, and small n deserve little trust. " + NORMS),
    "token_magnitudes": (
        "Top: key and value norm of every token by position, with attention sinks marked by orange "
        "lines. Bottom: the mean norm per token type, keys against values. Spikes at the start are "
        "common: the first tokens often carry unusual keys and near-zero values. " + NORMS),
    "token_key_value_scatter": (
        "Every token placed by key norm (x) and value norm (y), coloured by position; the highest-"
        "magnitude tokens are labelled with their text and orange rings mark attention sinks. A diagonal "
        "cloud means key and value norms rise together. " + NORMS),
    "head_sparsity": (
        "Share of near-zero elements for each layer and kv_head, keys and values. The colour scale is "
        "set by the largest value, printed in the title: on a dense cache it is tiny, and the figure "
        "then says there are no zero heads to skip."),
    "pruning_heatmap_by_layer_head": (
        "Pruning potential of each layer and kv_head: 1 minus the head's attention-weighted value norm "
        "over the largest one. A head that looks mostly at tokens with small values (usually a sink) "
        "writes little into the model and scores near 1. It is a proxy from one prompt; when "
        "kvscope prune --scan has been run, the measured perplexity change of evicting each head is shown "
        "beside it, so you can see whether the score predicts it."),
    "layer_pruning_potential": (
        "The same score per layer (mean over its kv_heads). A tall bar is a layer whose heads write "
        "little; with a scan, the lower panel shows the perplexity change actually measured when the "
        "layer's cache is evicted, and the Spearman correlation between the two."),
    "head_pruning_potential": (
        "Pruning potential by kv_head index: dots are single layers, the bar their mean. Head 2 of layer "
        "3 and head 2 of layer 20 are unrelated heads that happen to share an index, so the bar is only "
        "a summary; decisions belong to the (layer, kv_head) heatmap."),
    "weight_magnitude_distribution": (
        "Histograms of the absolute k_proj and v_proj weights over all layers, on log axes. They show the "
        "scale and tail of the projections that produce the cache; weights near zero are not the same as "
        "cache entries near zero."),
    "importance_validation": (
        "For each layer, the Spearman correlation over tokens between an importance proxy and the "
        "attention the token receives (per query that can see it): magnitude (the seeds' proxy), KNorm "
        "(minus the key norm, Devoto et al. 2024) and the value norm. Positive means the proxy ranks "
        "tokens like attention does. With a leave-one-out ground truth (kvscope prune --leave-one-out) "
        "the right panel correlates each proxy with the measured loss of removing each token."),
}
EXPLANATIONS["layer_statistics"] = EXPLANATIONS["kv_cache_statistics"]
