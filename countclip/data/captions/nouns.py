"""General word knowledge for the caption classifier, apart from the rule word lists
(:mod:`countclip.data.captions.words`): which nouns name things a picture can show (people,
animals, objects), which name things it cannot (ideas, events, amounts), and which caption
words mark news or a work's title.

Why: the classifier learns a weight for each word it saw at least twice on the tune split's
~900 captions, so a caption whose noun it never saw ("Three kittens", "four ravens") is scored
on its context alone. These lists were written from general knowledge of English (what a
photograph, a drawing or a product listing shows), not taken from the labelled captions; they
enter the model as features ("head_concrete", "head_cat=animal", "head_abstract",
"news_word", "work_word"), weighed by the data like every other feature. Cross-validated on the
tune split they raised recall at 90% rejection of non-counts (docs/captions.md).

All entries are lower-case singulars; :func:`noun_category` and :func:`is_abstract_noun` take a
plural ("businessmen", "puppies", "knives") and try its singular forms.
"""

from __future__ import annotations

from collections.abc import Iterator


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: People, by role or relation: "two women", "three businessmen", "four firefighters".
PEOPLE = _words(
    """
    person man woman boy girl child kid baby toddler teen teenager adult friend sister brother
    daughter son mother father mom mum dad parent grandparent grandmother grandfather grandma
    grandpa granddaughter grandson aunt uncle cousin twin sibling niece nephew wife husband
    couple bride groom bridesmaid family gentleman lady guy bloke dude businessman businesswoman
    businessperson colleague coworker partner worker employee student pupil teacher doctor nurse
    surgeon dentist scientist engineer architect chef cook baker waiter waitress farmer soldier
    officer policeman policewoman cop firefighter fireman pilot sailor astronaut player athlete
    runner cyclist skier surfer swimmer dancer singer musician guitarist drummer artist painter
    actor actress model ballerina clown monk nun priest knight king queen prince princess
    warrior ninja pirate cowboy hiker tourist traveler traveller climber fisherman hunter rider
    jockey boxer wrestler footballer golfer skater gymnast cheerleader graduate volunteer
    shopper customer fan spectator passenger driver guard builder plumber electrician mechanic
    carpenter lawyer politician leader executive manager boss member patient villager elder
    senior youngster schoolgirl schoolboy schoolchild superhero fairy angel witch wizard elf
    dwarf giant zombie vampire robot alien doll snowman mannequin figure figurine statue
    portrait silhouette face hand foot finger
    """
)
#: Animals, real and drawn: "three kittens", "two giraffes", "a pair of swans".
ANIMALS = _words(
    """
    animal dog puppy pup cat kitten kitty horse pony foal donkey cow calf bull ox sheep lamb
    goat pig piglet hen chicken chick rooster duck duckling goose gosling swan bird parrot owl
    eagle hawk falcon pigeon dove sparrow crow raven robin penguin flamingo peacock turkey
    ostrich rabbit bunny hare mouse rat hamster squirrel chipmunk hedgehog fox wolf bear cub
    lion lioness tiger leopard cheetah panther jaguar elephant giraffe zebra rhino rhinoceros
    hippo hippopotamus camel llama alpaca deer fawn elk moose reindeer kangaroo koala panda
    monkey ape gorilla chimpanzee orangutan bat seal walrus otter beaver raccoon badger dolphin
    whale shark fish goldfish salmon trout turtle tortoise frog toad lizard snake crocodile
    alligator dinosaur butterfly bee ant spider beetle ladybug ladybird dragonfly snail crab
    lobster shrimp octopus jellyfish starfish seahorse unicorn dragon
    """
)
#: Things a photograph, drawing or product listing shows: furniture, tableware, clothes, food,
#: plants, vehicles, buildings, tools, toys, shapes and symbols.
OBJECTS = _words(
    """
    chair table stool bench sofa couch armchair bed pillow cushion lamp lantern candle
    candlestick candleholder vase pot planter jar bottle glass cup mug teacup bowl plate dish
    saucer spoon fork knife chopstick pan kettle teapot jug pitcher tray basket box crate bag
    handbag purse backpack suitcase wallet hat cap helmet shoe boot sneaker sandal sock glove
    scarf tie dress shirt skirt jacket coat sweater hoodie jean trouser pant ring earring
    necklace bracelet watch brooch pendant bead pearl diamond gem stone rock pebble shell
    feather leaf flower rose tulip daisy lily sunflower orchid tree palm plant cactus mushroom
    apple orange banana pear lemon lime cherry strawberry grape peach plum tomato potato carrot
    onion pepper egg cookie cake cupcake muffin donut doughnut pizza burger sandwich pie loaf
    bun croissant pancake macaron candy chocolate lollipop ball balloon toy block cube dice card
    book notebook pencil pen crayon brush marker paper envelope letter sticker stamp coin key
    lock bell clock phone smartphone laptop computer tablet monitor screen camera lens
    television radio speaker headphone guitar violin piano drum trumpet flute microphone car
    truck bus van bike bicycle motorcycle scooter boat ship sailboat yacht canoe kayak plane
    airplane jet helicopter rocket train tram tractor wheel tire tyre house cottage cabin barn
    tower castle church building skyscraper bridge window door gate fence pillar column arch
    sculpture painting print poster frame photo picture drawing sketch icon symbol sign flag
    banner heart star circle square triangle cross arrow shape hexagon sphere pyramid cone
    button magnet tool hammer screwdriver wrench saw drill axe shovel rake ladder bucket barrel
    can tin bin umbrella kite sled ski skateboard surfboard racket goal net sword shield gun
    rifle pistol bow cannon medal trophy crown mask ornament decoration wreath garland ribbon
    gift present package parcel pumpkin gourd snowflake cloud moon sun planet wine beer drink
    cocktail soda juice bulb chandelier sconce mirror rug carpet towel blanket quilt curtain
    shelf cabinet dresser drawer desk wardrobe cupboard rack hanger hook nail screw bolt
    bookend coaster napkin placemat
    """
)
#: Nouns that name nothing a picture shows as N separate things: "two ways", "three reasons",
#: "four wins", "five deaths", "ten percent".
ABSTRACT = _words(
    """
    thing idea reason way tip step trick hack secret fact lesson rule law question answer story
    word phrase quote song track album episode chapter verse game match win loss victory defeat
    goal point run title award prize nomination vote seat term decade generation era phase
    stage level dimension option choice kind type sort variety category class method approach
    strategy plan project program programme policy change issue problem solution challenge
    mistake error risk danger benefit advantage feature element factor principle value habit
    trend myth lie truth sign symptom cause effect result case death injury charge count crime
    arrest offence offense conviction sentence job role position career shift hour day night
    week month year minute second time mile kilometer meter dollar pound euro percent
    """
)
#: Caption words of news reports, whose people are often not pictured ("Three people have
#: been charged", "two fighters miss weight").
NEWS_WORDS = _words(
    """
    killed kill kills charged charges arrested arrest accused accuse accuses injured injures
    died dies dead death deaths murdered murder sentenced jailed convicted rescued missing
    announced announces approved approves named names signed signs said says report reports
    reported claims claimed wins won win beat beats lost loses face faces faced sued sues
    fined suspended resigned resign elected hired fired banned investigated investigation
    allegedly alleged police court judge trial lawsuit victims suspect suspects wounded shot
    shooting crash
    """
)
#: Caption words of a work's title or listing ("Two Little Girls in Blue ... novel", "... DVD").
WORK_WORDS = _words(
    """
    book novel novels ebook paperback hardcover edition author album soundtrack lyrics film
    movie movies dvd blu-ray bluray cd vinyl episode episodes season trailer review reviews
    documentary sequel trilogy remake podcast magazine comic manga anime chapter
    """
)

#: Classes of the word before a number (:func:`word_class`): "the three", "with two", "set of
#: four", "by two", "are two".
DETERMINERS = _words("the a an these those this that my our your his her their its all both")
JOINS = _words("with and & plus +")
PREPOSITIONS = _words("by in on at for from featuring feat. shows showing show depicting including")
VERBS = _words("are were is was have has had depicts features holding holds hold")

#: Plurals the suffix rules of :func:`singulars` miss.
_IRREGULAR = {
    "men": "man",
    "women": "woman",
    "children": "child",
    "people": "person",
    "feet": "foot",
    "teeth": "tooth",
    "mice": "mouse",
    "geese": "goose",
    "sheep": "sheep",
    "fish": "fish",
    "deer": "deer",
    "knives": "knife",
    "leaves": "leaf",
    "wolves": "wolf",
    "calves": "calf",
    "shelves": "shelf",
    "halves": "half",
    "loaves": "loaf",
    "scarves": "scarf",
    "elves": "elf",
    "dwarves": "dwarf",
    "wives": "wife",
    "lives": "life",
    "oxen": "ox",
    "dice": "dice",
    "cacti": "cactus",
    "jeans": "jean",
    "pants": "pant",
    "trousers": "trouser",
}
_CATEGORY: dict[str, str] = {}
for _name, _nouns in (("person", PEOPLE), ("animal", ANIMALS), ("object", OBJECTS)):
    for _noun in sorted(_nouns):
        _CATEGORY.setdefault(_noun, _name)


def singulars(word: str) -> Iterator[str]:
    """The singular forms a lower-case plural may have ("puppies" -> "puppy", "boxes" -> "box",
    "businessmen" -> "businessman"), most specific first; nothing for a word not ending like a
    plural."""
    if word in _IRREGULAR:
        yield _IRREGULAR[word]
    if word.endswith("men") and len(word) > 4:
        yield word[:-3] + "man"
    if word.endswith("ies"):
        yield word[:-3] + "y"
    if word.endswith("es"):
        yield word[:-2]
    if word.endswith("s") and not word.endswith("ss"):
        yield word[:-1]


def noun_category(plural: str) -> str | None:
    """``"person"``, ``"animal"`` or ``"object"`` when the plural names things a picture can show
    (:data:`PEOPLE`, :data:`ANIMALS`, :data:`OBJECTS`), else None."""
    for s in singulars(plural):
        category = _CATEGORY.get(s)
        if category is not None:
            return category
    return None


def is_abstract_noun(plural: str) -> bool:
    """Whether the plural names things no picture shows as separate items (:data:`ABSTRACT`)."""
    return plural in ABSTRACT or any(s in ABSTRACT for s in singulars(plural))


def word_class(word: str) -> str:
    """The class of a lower-case word next to a number: ``start`` (none: the caption starts),
    ``det``, ``of``, ``join``, ``prep``, ``verb``, ``punct`` (not a word) or ``word``."""
    if word == "<start>":
        return "start"
    if word in DETERMINERS:
        return "det"
    if word == "of":
        return "of"
    if word in JOINS:
        return "join"
    if word in PREPOSITIONS:
        return "prep"
    if word in VERBS:
        return "verb"
    if not word.isalpha():
        return "punct"
    return "word"
