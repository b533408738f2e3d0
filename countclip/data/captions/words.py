"""Word lists the caption rules use. Kept apart from the rules so they are easy to review.

All entries are lower case; rules compare them with ``token.lower_``. The lists aim at what real
LAION captions contain (product titles, stock-photo descriptions, blog headlines), not at the
synthetic templates.
"""

from __future__ import annotations

from countclip.counts import DIGIT_COUNTS, NUMBER_WORDS, WORD_COUNTS  # noqa: F401 (re-exported)
from countclip.data.captions.titles import PICTURED_TITLES, TITLES  # noqa: F401 (re-exported)


def _words(text: str) -> frozenset[str]:
    """A word set written as one space-separated string (easier to read and extend)."""
    return frozenset(text.split())


#: Number words outside two..ten: another number in the caption means another count.
OTHER_NUMBER_WORDS = _words(
    "zero eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty "
    "thirty forty fifty sixty seventy eighty ninety hundred thousand million billion dozen "
    "dozens hundreds thousands millions"
)
TENS_WORDS = _words("twenty thirty forty fifty sixty seventy eighty ninety")
LARGER_NEXT = _words(
    "hundred hundreds thousand thousands million millions billion trillion dozen dozens grand "
    "point k"
)
LARGER_PREV = TENS_WORDS | _words("hundred thousand million billion point")

HYPHENS = frozenset({"-", "‐", "‑", "–", "—"})
RANGE_LINKS = HYPHENS | frozenset({"to", "or", "/", "through", "thru"})
COORDINATORS = frozenset({"and", "&", "with", "plus", ",", "+", "or", "/"})

TIME_UNITS = _words(
    "second seconds sec secs minute minutes min mins hour hours hr hrs h day days night nights "
    "week weeks weekend weekends wk wks month months mo mos year years yr yrs decade decades "
    "century centuries millennia millennium semester semesters term terms season seasons "
    "lifetime lifetimes moment moments"
)  # not "generations": "three generations of women" are three people pictured
AGE_UNITS = _words("day days week weeks month months year years yr yrs")
CLOCK_NEXT = _words("o'clock oclock o’clock am pm a.m. p.m. a.m p.m noon midnight")
CLOCK_MINUTES = _words("fifteen thirty forty fifty twenty ten five")
DURATION_MODIFIERS = _words(
    "full long short whole more additional extra consecutive straight entire solid separate "
    "hot cold rainy sunny happy great amazing wonderful fun busy lovely beautiful glorious "
    "magical exciting fantastic perfect incredible hard short fabulous relaxing quick few"
)
AGE_PREV = _words("age aged ages turns turned turning")
AGE_NEXT = _words("birthday bday b-day yo y.o. y/o")

MONTHS = _words(
    "january february march april june july august september october november december jan feb "
    "apr jun jul aug sep sept oct nov dec"
)  # "may" handled separately: only the capitalised month counts
WEEKDAYS = _words("monday tuesday wednesday thursday friday saturday sunday")
ORDINALS = _words(
    "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth "
    "1st 2nd 3rd 4th 5th 6th 7th 8th 9th 10th"
)

MEASURE_UNITS = _words(
    "inch inches in. ft foot feet yard yards yd yds mile miles mi meter meters metre metres m cm "
    "millimetre millimetres millimeter millimeters centimetre centimetres centimeter centimeters "
    "mm km kilometer kilometers kilometre kilometres gram grams g kg kgs kilo kilos kilogram "
    "kilograms pound pounds lb lbs ounce ounces oz ton tons tonne tonnes liter liters litre "
    "litres l ml gallon gallons gal quart quarts pint pints tablespoon tablespoons teaspoon "
    "teaspoons tbsp tsp percent per cent pct % degree degrees ° dollar dollars buck bucks usd "
    "euro euros eur cent cents penny pence pennies yen rupee rupees quid bob mph kph km/h mb gb "
    "tb kb mp megapixel megapixels hp watt watts w volt volts v amp amps kw kwh psi calorie "
    "calories cal kcal bit bits byte bytes acre acres hectare hectares sq carat carats ct "
    "karat gauge awg db hz khz mhz ghz rpm fps mile-an-hour "
    "miles-per-hour ply"
)
CURRENCY_PREV = _words("$ £ € ¥ ₹ usd eur gbp rs")
PORTION_UNITS = _words(
    "cup cups spoon spoons spoonful spoonfuls scoop scoops slice slices glass glasses bowl bowls"
)  # "two cups of flour" (a measure), but "two cups of coffee" (two cups)
#: What a portion measures in a recipe: "two cups of <these>" is an amount, not two cups.
INGREDIENTS = _words(
    "flour sugar water milk rice butter oil salt pepper oats broth stock cream yogurt yoghurt "
    "honey vinegar cocoa cornstarch starch yeast baking dough batter sauce syrup juice chopped "
    "grated diced sliced melted minced shredded powdered all-purpose whole granulated brown"
)
#: Words that make a caption a recipe, where "two cups of ..." is an amount whatever follows.
RECIPE_WORDS = _words(
    "recipe recipes ingredient ingredients add mix stir whisk bake preheat combine pour knead "
    "simmer tbsp tsp teaspoon teaspoons tablespoon tablespoons"
)
RATING_CONTEXT = _words("rating rated review reviews hotel hotels resort resorts out")

MULTIPLIER_NEXT = _words(
    "times time fold x × quarter quarters third thirds half halves fourth fourths fifth fifths "
    "sixths sevenths eighths ninths tenths percent"
)
#: "times two"; "x" and "×" only after a number ("3 x two"): "mugs x two" is two mugs.
MULTIPLIER_PREV = frozenset({"x", "×", "times"})

SCORE_WORDS = _words("nil love goals goal points runs wickets touchdowns")
VERSUS = frozenset({"vs", "vs.", "v", "v.", "versus"})

APPROX_PREV = _words(
    "about around approximately approx approx. roughly nearly almost over under some maybe "
    "perhaps least most than circa ca. ~ within"
)
APPROX_NEXT = frozenset({"+", "plus", "ish", "-ish", "odd"})

#: "Season Two", "Part Three", "Number Five", "Chapter Ten": an identifier, not a count.
LABEL_PREV = _words(
    "season part chapter episode ep ep. volume vol vol. book act scene level phase round stage "
    "step grade class type size number no no. num nr nº # model version ver v. series "
    "generation gen mark mk edition issue lesson unit module week day year page figure fig "
    "fig. table plate gate terminal platform channel room apartment apt suite floor lot route "
    "highway interstate hwy track disc disk cd dvd tape game match race heat leg lap category "
    "division league tier zone ward district sector block row section aisle exit pier bay "
    "dock station line studio psalm verse article rule law factor player jersey shirt seat "
    "pier ch. station code cat. id level pt pt. stage series"
)
#: "Windows Ten", "PlayStation Two", "Xbox One": a product name.
MODEL_PREV = _words(
    "windows iphone ipad ipod galaxy pixel playstation ps xbox nintendo wii android ios macos "
    "photoshop kindle gopro fifa madden gta diablo"
)
#: Words that, before a *digit*, are not a product name even when capitalised.
DIGIT_OK_PREV = _words(
    "set of pack lot box bundle kit case pcs pieces with and for the a an only buy get save "
    "all these those my our your his her their top best"
)

#: Singular heads of compound modifiers whose number counts nothing pictured: "two tone
#: jacket", "five star hotel", "four door sedan", "two seater sofa", "three bedroom house".
COMPOUND_HEADS = _words(
    "tone star door seat seater story storey bedroom bed bath bathroom room wheel "
    "wheeler speed way ply slice cup car lane level hole ingredient "
    "pin man person player string blade arm port channel core stroke step point part "
    "gang phase leaf course color colour ring button prong poster handed legged "
    "sided headed eyed footed wheeled armed winged toed horned masted storied "
    "faced pronged tailed bladed engined bedded seated coloured colored toned fingered time "
    "timer dimensional d cylinder valve gear shot ball track pointed toe liter litre inch foot "
    "mile minute hour day week month year page letter word digit figure"
)
#: Compound heads whose number *is* the count of pictured parts: "a four pack of socks" (four
#: socks), "six drawer chest" (six drawers), "three piece luggage set", "two tier cake",
#: "five light chandelier", "four burner stove", "three shelf bookcase".
PART_HEADS = _words(
    "pack pk piece pc pcs drawer tier tiered layer layered shelf burner light bulb panel pane"
)
#: "eight colored pencils": before a plural noun, these count the noun ("two colored" alone is a
#: compound, like "two-tone").
COLOUR_MODIFIERS = _words("colored coloured")
#: Words that end the noun phrase after a number ("two of them", "three on a table").
PHRASE_BREAKS = _words(
    "of on in at with for from by to into onto over under and or but near behind beside "
    "between during after before while is are was were as than against along around per via"
)
#: "Five Ways To ...", "Ten Tips for ...", "Three Reasons Why ...": blog headlines.
LISTICLE_NOUNS = _words(
    "ways tips things reasons steps ideas facts secrets rules lessons mistakes questions tricks "
    "hacks benefits trends habits myths strategies techniques methods principles "
    "characteristics elements factors thoughts takeaways truths answers "
    "challenges lies pillars laws commandments traits essentials must-haves"
)
#: Lists whose items are often pictured ("the three colour options", "six examples of kitchen
#: cabinets"): a headline only when a headline word follows ("Five options to consider").
PICTURED_LIST_NOUNS = _words("options examples variations versions styles designs stages")
HEADLINE_NEXT = _words("to that you why how which we every worth i")
LISTICLE_PREV = frozenset({"top"})  # "Top Ten", "top five"
BIG_NAMES = frozenset(
    {
        "big",
        "fab",
        "famous",
        "secret",
        "magnificent",
        "fantastic",
        "final",
        "hateful",
        "jackson",
        "maroon",
        "power",
    }
)

#: Words that mark stock-photo and catalogue boilerplate (a feature of the classifier): they
#: say the caption describes a picture, or a product in one, rather than a headline.
BOILERPLATE = _words(
    "stock photo photos photography image images picture vector illustration royalty free "
    "isolated background icon icons clipart clip art shutterstock dreamstime alamy istock "
    "depositphotos 123rf getty closeup close-up portrait studio white"
)

#: Irregular plurals, so "two men" is not read as a singular compound head.
IRREGULAR_PLURALS = _words(
    "men women children people feet teeth mice geese sheep fish deer oxen dice cattle series "
    "species aircraft police kids fungi cacti"
)

REJECT_REASONS: dict[str, str] = {
    "no_number": "no number word two..ten as a standalone token",
    "one_of": "'one of' (the number describes a group the subject belongs to)",
    "multiple_counts": "two different counts (another number word or digit counts something)",
    "ambiguous": "an approximate or ranged count ('two or three', 'about ten', 'family of four')",
    "time": "a time or duration ('two hours', 'at seven pm', 'three days')",
    "age": "an age ('ten years old', 'a two-year-old', 'aged five')",
    "date": "a date or ordinal next to the number ('May five', 'two first')",
    "measure": "a measure, price or rating ('two inches', '$5', 'two cups of flour')",
    "multiplier": "a multiplier or fraction ('two times', 'three-quarters', 'two and a half')",
    "larger_number": "part of a larger number ('twenty-two', 'two hundred', 'three dozen')",
    "score": "a score ('three to one', '3-2', 'two nil')",
    "model_number": "a product or model name ('Windows Ten', 'iPhone 7', 'PlayStation Two')",
    "label": "an identifier ('Season Two', 'Part Three', 'Number Five', 'Day Ten')",
    "title": "a title, name or idiom ('Seven Seas', 'Three Musketeers', 'Top Ten', 'high five')",
    "listicle": "a headline listing ideas ('Five Ways To ...', 'Ten Tips for ...')",
    "compound": "a compound modifier ('two-tone', 'five star hotel', 'four cheese pizza')",
    "no_noun": "a number with no noun after it ('dinner for two', 'a mother of three')",
    "not_nummod": "with a trained parser: the number does not modify a noun (nummod)",
    "classifier": "the classifier scores no number word as a count of visible things (below "
    "captions.count_threshold)",
}
