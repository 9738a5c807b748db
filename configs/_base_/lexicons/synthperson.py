# Attribute lexicon of SynthPerson's captions (gadms/datasets/synth): its
# colour words and its garment words with the synonyms its captions use.
# ConsensusTokens and CounterfactualTokenScorer read it (docs/method.md,
# "Consensus and counterfactual guidance").
attribute_lexicon = dict(
    colours=dict(
        black=['black'], white=['white'], grey=['gray', 'grey'],
        red=['red'], blue=['blue'], green=['green'], yellow=['yellow'],
        orange=['orange'], pink=['pink'], purple=['purple'],
        brown=['brown'], blonde=['blonde']),
    garments=dict(
        upper=['t-shirt', 'tee', 'shirt', 'jacket', 'coat', 'hoodie',
               'hooded sweatshirt', 'sweater', 'jumper'],
        lower=['trousers', 'pants', 'jeans', 'shorts', 'skirt'],
        shoes=['sneakers', 'boots', 'shoes'],
        hair=['hair'],
        bag=['backpack', 'handbag', 'shoulder bag'],
        headwear=['cap', 'hat', 'beanie']),
    max_gap=3)
