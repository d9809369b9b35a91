"""Filler prose for the synthetic tasks: kvscope's own sentences, with no digits in them, so a
needle's number can only come from the needle. Sentences are drawn with a seeded ``random.Random``.
"""

from __future__ import annotations

import random

SENTENCES = (
    "The river bends twice before it reaches the old mill at the edge of the valley.",
    "In the morning the market fills with carts of apples, onions and bright yellow squash.",
    "A narrow path climbs through the pines to a meadow where the wind never quite stops.",
    "The librarian keeps a drawer of lost bookmarks and never throws a single one away.",
    "Clouds gathered over the hills, but the rain held off until the evening bell had rung.",
    "Children raced paper boats along the gutter while their parents talked about the weather.",
    "The baker opens before sunrise, and the smell of warm bread drifts down the empty street.",
    "Moss covers the north side of the stone wall that marks the end of the orchard.",
    "A ferry crosses the lake every hour, carrying bicycles, dogs and sleepy commuters.",
    "The museum's quiet hall holds maps drawn by sailors who never saw the coast they described.",
    "Snow settled on the rooftops, and the town grew so still that footsteps echoed.",
    "The gardener prunes the roses in late winter so that they bloom fully in the summer.",
    "Old letters in the attic describe a journey across the mountains on foot and by mule.",
    "At the station a violinist plays the same slow tune for travellers who rarely stop to listen.",
    "The lighthouse beam swept across the bay, touching each fishing boat in turn.",
    "Bees hum among the lavender, and the whole hillside smells faintly of honey.",
    "Her workshop is full of clocks, each one ticking at its own slightly different pace.",
    "A fox crossed the frozen field at dusk and vanished into the hedge without a sound.",
    "The village council meets in a drafty hall and argues mostly about the bridge.",
    "Lanterns were hung along the harbour wall for the festival at the end of autumn.",
    "The professor talks about ancient trade routes as if she had walked every one of them.",
    "On windy days the kites above the beach pull so hard that small children hold on with both hands.",
    "The chess club plays in the back room of the cafe, and nobody is allowed to speak during a game.",
    "Thick fog rolled in from the sea and hid the far shore for most of the afternoon.",
    "A cat sleeps in the bookshop window, ignoring everyone who taps on the glass.",
    "Farmers watch the sky closely in spring, hoping for rain that is gentle rather than heavy.",
    "The tram rattles past the cathedral, its bell ringing at every corner.",
    "Wild strawberries grow along the railway embankment, small and very sweet.",
    "The choir practises on Thursday nights, and the sound carries across the square.",
    "A heron stood motionless in the shallows, waiting patiently for a careless fish.",
    "The potter shapes each bowl by hand and signs the base with a small drawing of a leaf.",
    "Travellers often mistake the quiet inn for a private house and walk straight past it.",
)


def filler(rng: random.Random, n: int) -> list[str]:
    """``n`` filler sentences drawn from :data:`SENTENCES` (no sentence twice in a row)."""
    out: list[str] = []
    while len(out) < n:
        s = rng.choice(SENTENCES)
        if not out or s != out[-1]:
            out.append(s)
    return out
