# Attribute lexicon for CUHK-PEDES, ICFG-PEDES, RSTPReid and WebPerson
# captions: the colour and garment words that are frequent in their
# vocabularies, with synonyms grouped (grey/gray, a jacket and a coat are
# one garment class, so "a red jacket" and "a blue coat" disagree).
# Colours that annotators use for one another are one value (dark blue and
# navy; khaki, beige and tan): a finer split would count their synonyms as
# contradictions. Extend it from a corpus's own vocabulary (CUHK-PEDES
# ships processed_tokens) with tools/analysis_tools/lexicon_coverage.py.
attribute_lexicon = dict(
    colours=dict(
        black=['black', 'dark'],
        white=['white', 'light-coloured', 'light-colored', 'cream'],
        grey=['grey', 'gray', 'silver'],
        red=['red', 'maroon', 'burgundy'],
        blue=['blue', 'light blue', 'sky blue'],
        navy=['navy', 'navy blue', 'dark blue'],
        green=['green', 'olive', 'dark green', 'light green'],
        yellow=['yellow', 'gold', 'golden'],
        orange=['orange'],
        pink=['pink', 'rose'],
        purple=['purple', 'violet', 'lavender'],
        brown=['brown', 'dark brown', 'light brown', 'coffee'],
        khaki=['khaki', 'beige', 'tan'],
        blonde=['blonde', 'blond']),
    garments=dict(
        upper=['shirt', 't-shirt', 'tee', 'top', 'tank top', 'blouse',
               'jacket', 'coat', 'overcoat', 'down jacket', 'sweater',
               'jumper', 'hoodie', 'sweatshirt', 'cardigan', 'vest',
               'polo', 'suit jacket', 'windbreaker'],
        lower=['pants', 'trousers', 'jeans', 'shorts', 'skirt', 'leggings',
               'capris', 'slacks', 'sweatpants'],
        dress=['dress'],
        shoes=['shoes', 'sneakers', 'boots', 'sandals', 'heels',
               'slippers', 'flats', 'loafers', 'trainers'],
        hair=['hair'],
        bag=['bag', 'backpack', 'handbag', 'purse', 'shoulder bag',
             'satchel', 'tote'],
        headwear=['hat', 'cap', 'beanie', 'helmet'],
        socks=['socks', 'stockings']),
    max_gap=3)
