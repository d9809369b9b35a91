"""kvscope's own built-in texts for the ``text`` task: eight texts of different kinds, each split into
a context (prefilled and compressed) and a continuation (scored by perplexity). Each continuation
reuses facts from its context, so evicting the wrong tokens costs perplexity.

Entries: ``(kind, title, context, continuation)``.
"""


def _text(kind: str, title: str, context: str, continuation: str) -> tuple[str, str, str, str]:
    return kind, title, context, continuation


NARRATIVE = _text(
    "narrative",
    "The clockmaker's apprentice",
    "Wren Halloway was fourteen when she became apprentice to Ottilie March, the clockmaker of Bellwater. "
    "The shop stood at the corner of Tanner Lane, beneath a sign shaped like a golden pocket watch. Ottilie "
    "was a tall woman with silver spectacles who spoke little and listened to clocks the way other people "
    "listen to music. On Wren's first morning she was given a broom, a magnifying glass and a single rule: "
    "never wind the tall blue clock in the back room. The clock had stopped at seven minutes past three, and "
    "Ottilie would not say why. For a whole winter Wren swept brass shavings, sorted springs by size and "
    "learned to take apart a mantel clock without losing a screw. In the evenings she watched the blue clock "
    "and wondered what would happen if it ran again. One night in March, when a storm knocked out the lamps "
    "on Tanner Lane, Wren heard a faint ticking from the back room.",
    " She lit a candle and found the tall blue clock running, its hands moving past seven minutes past three "
    "for the first time in years. Ottilie March was standing beside it in her silver spectacles, and for once "
    'she was smiling. "My father built it," she said, "and it only runs when Bellwater is in the dark." '
    "Wren kept the rule after that, but she never again swept the back room without listening for the clock.",
)

TECHNICAL = _text(
    "technical",
    "Configuring the ingest service",
    "The ingest service reads events from the message queue and writes them to the archive in batches. "
    "Three settings control its behaviour. The first, batch_size, is the number of events collected before "
    "a write; its default is 500, and raising it lowers the number of writes at the cost of memory. The "
    "second, flush_interval, is the longest time an event may wait in memory; its default is 30 seconds, so "
    "a quiet queue still reaches the archive twice a minute. The third, retry_limit, is the number of times "
    "a failed write is attempted before the batch is moved to the dead-letter folder; its default is 5. "
    "All three are read from the file ingest.toml at start-up and cannot be changed while the service runs. "
    "When the archive is unreachable, the service keeps accepting events until memory use passes the "
    "limit set by max_buffer_mb, after which it stops reading from the queue.",
    " To summarise the defaults: batch_size is 500 events, flush_interval is 30 seconds and retry_limit is 5 "
    "attempts. Each setting lives in ingest.toml and takes effect only after a restart. If writes keep failing, "
    "look in the dead-letter folder first, then check whether memory use has reached max_buffer_mb, because "
    "at that point the service has stopped reading from the queue.",
)

DIALOGUE = _text(
    "dialogue",
    "At the ticket counter",
    "Clerk: Good afternoon. Where are you travelling today?\n"
    "Passenger: To Marlow, please. One return ticket.\n"
    "Clerk: The next train to Marlow leaves from platform four at twenty past two. Would you like a window seat?\n"
    "Passenger: Yes, a window seat would be lovely. How long is the journey?\n"
    "Clerk: About an hour and ten minutes. You change at Redbridge, where the connecting train waits on "
    "platform two.\n"
    "Passenger: Platform two at Redbridge. And when does the last train come back from Marlow?\n"
    "Clerk: The last return leaves Marlow at ten to eleven tonight. After that there is only the night bus.\n"
    "Passenger: I will make sure to catch it. Can I pay by card?\n"
    "Clerk: Of course. That will be eighteen pounds fifty for the return.\n",
    "Passenger: Here you are. So, platform four now, change at Redbridge on platform two, and the last train "
    "back from Marlow is at ten to eleven.\n"
    "Clerk: Exactly right. Your window seat is in coach C. Have a pleasant trip to Marlow.\n"
    "Passenger: Thank you very much. Eighteen pounds fifty well spent, I hope.\n",
)

CODE = _text(
    "code",
    "A small inventory module",
    "class Inventory:\n"
    '    """Counts items by name and refuses to go below zero."""\n\n'
    "    def __init__(self):\n"
    "        self.counts = {}\n\n"
    "    def add(self, name, amount=1):\n"
    "        if amount <= 0:\n"
    '            raise ValueError("amount must be positive")\n'
    "        self.counts[name] = self.counts.get(name, 0) + amount\n\n"
    "    def remove(self, name, amount=1):\n"
    "        have = self.counts.get(name, 0)\n"
    "        if amount > have:\n"
    '            raise ValueError(f"only {have} of {name} left")\n'
    "        self.counts[name] = have - amount\n\n"
    "    def total(self):\n"
    "        return sum(self.counts.values())\n\n\n"
    "def test_inventory():\n"
    "    inv = Inventory()\n"
    '    inv.add("apple", 3)\n'
    '    inv.add("pear")\n',
    '    inv.remove("apple", 2)\n'
    '    assert inv.counts["apple"] == 1\n'
    '    assert inv.counts["pear"] == 1\n'
    "    assert inv.total() == 2\n"
    "    try:\n"
    '        inv.remove("pear", 5)\n'
    "    except ValueError as exc:\n"
    '        assert "only 1 of pear left" in str(exc)\n'
    "    else:\n"
    '        raise AssertionError("remove should refuse to go below zero")\n',
)

RECIPE = _text(
    "recipe",
    "Lentil soup for four",
    "This lentil soup feeds four people and takes about forty minutes. You will need two hundred grams of "
    "red lentils, one large onion, two carrots, three cloves of garlic, a teaspoon of ground cumin, a can of "
    "chopped tomatoes, a litre of vegetable stock and the juice of half a lemon. Start by chopping the onion "
    "and the carrots into small pieces. Warm two spoons of olive oil in a heavy pot and cook the onion over a "
    "medium heat for five minutes, until it is soft but not brown. Add the carrots and the garlic and cook for "
    "three minutes more. Stir in the cumin, then the lentils, so that every lentil is coated in oil. Pour in "
    "the chopped tomatoes and the vegetable stock, bring the pot to the boil and then lower the heat.",
    " Let the soup simmer for twenty-five minutes, stirring now and then, until the red lentils have fallen "
    "apart and the carrots are tender. Take the pot off the heat, squeeze in the juice of half a lemon and "
    "season with salt and pepper. Blend half of the soup if you like it smooth, and serve it to your four "
    "guests with warm bread and a little more cumin on top.",
)

LETTER = _text(
    "letter",
    "A letter from the coast",
    "Dear Tomas,\n\nThank you for your letter and for the photographs of the new orchard. The cherry trees "
    "look much stronger than I expected after such a dry spring. Here at Gull Cove the summer has been busy. "
    "Aunt Helga finally sold the blue rowing boat to the Petersen family, who plan to paint it yellow, which "
    "she says is a crime. The cafe on the pier has a new owner, a quiet man from Lisbon named Duarte, and his "
    "almond cake is already famous along the whole coast. I have started swimming every morning before work, "
    "even when the water is cold enough to make me shout. Next month I will visit you for the harvest, "
    "arriving on the Friday train, and I will bring a whole almond cake from Duarte if it survives the trip.\n",
    "\nPlease tell your mother that Aunt Helga sends her love, and that she is still cross about the yellow "
    "paint on the blue rowing boat. Give the cherry trees a little extra water before I come. I will see you "
    "on the Friday train, with Duarte's almond cake and a bag of shells from Gull Cove.\n\nWith love,\nIngrid",
)

NEWS = _text(
    "news",
    "Bridge reopens after repairs",
    "The Old Stone Bridge over the River Lark reopened to traffic on Monday after eleven months of repairs. "
    "The bridge, built in the eighteenth century, was closed last winter when engineers found deep cracks in "
    "two of its five arches. The repair cost the county council four million pounds, almost a million more "
    "than first planned, because the original stone had to come from the same quarry at Fenwick that supplied "
    "it two hundred years ago. During the closure, drivers faced a detour of nine miles through the village "
    "of Ashby, and shop owners in the town centre said their takings fell by a third. At the reopening, the "
    "council leader, Priya Nandakumar, thanked residents for their patience and said the bridge would now "
    "carry traffic safely for another century.",
    " Local businesses welcomed the news. The owner of a bakery beside the Old Stone Bridge said that the "
    "nine-mile detour through Ashby had kept many customers away, and that she hoped trade would recover "
    "before Christmas. Councillor Nandakumar added that the four million pounds had been well spent, since "
    "the stone from the Fenwick quarry matches the arches exactly.",
)

SCIENCE = _text(
    "science",
    "Why leaves change colour",
    "The green colour of a leaf comes from chlorophyll, the pigment that captures light for photosynthesis. "
    "A leaf also contains yellow and orange pigments called carotenoids, but during the summer they are "
    "hidden because there is so much more chlorophyll. Chlorophyll breaks down in sunlight and the tree "
    "keeps rebuilding it as long as the days are long and warm. In autumn, as the nights grow longer, many "
    "trees stop making new chlorophyll and begin to recover nutrients such as nitrogen from their leaves "
    "before the leaves fall. As the chlorophyll fades, the carotenoids that were there all along become "
    "visible, which is why birch and poplar leaves turn yellow. Red colours have a different origin: some "
    "trees, such as maples, make new pigments called anthocyanins in autumn, especially after sunny days and "
    "cool nights.",
    " So the yellow of a birch leaf is revealed, because the carotenoids were present all summer beneath the "
    "chlorophyll, while the red of a maple leaf is made fresh in autumn as anthocyanins. Sunny days and cool "
    "nights favour the anthocyanins, which is why the brightest red autumns follow a dry, bright September.",
)

TEXTS: tuple[tuple[str, str, str, str], ...] = (NARRATIVE, TECHNICAL, DIALOGUE, CODE, RECIPE, LETTER, NEWS, SCIENCE)
