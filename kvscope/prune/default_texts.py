"""kvscope's own default texts for ``kvscope prune``: a prompt full of specific facts and a
continuation that repeats them, so evicting the wrong prompt tokens visibly costs perplexity."""

DEFAULT_PROMPT = (
    "Field notes from the Harrow Point lighthouse, written by the keeper, Mara Ellison.\n"
    "The lamp was rebuilt in 1931 and burns for eleven hours on a winter night. Its beam turns once every "
    "twelve seconds, and sailors know the light by its pattern: two short flashes, then one long one. "
    "The tower has 143 steps. On the ninth landing there is a brass plate with the name of the first "
    "keeper, Tobias Rook, who kept the light for thirty-two years.\n"
    "Every Tuesday a boat named the Grey Heron brings oil, bread and letters from the village of Saltmere. "
    "The boatman, Ivo Brandt, always asks for a cup of black tea with two spoons of honey. In March the "
    "storms are worst, and the keeper writes the wind speed in a green ledger every four hours.\n"
    "Question: describe the lighthouse and its keepers."
)

DEFAULT_CONTINUATION = (
    " The Harrow Point lighthouse is kept by Mara Ellison. Its lamp was rebuilt in 1931 and its beam turns "
    "once every twelve seconds, with two short flashes and then one long one. The tower has 143 steps, and "
    "a brass plate on the ninth landing names the first keeper, Tobias Rook, who kept the light for "
    "thirty-two years. Every Tuesday the Grey Heron comes from Saltmere, and its boatman, Ivo Brandt, "
    "drinks black tea with two spoons of honey."
)
