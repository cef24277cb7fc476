"""The dataset card of a release: ``README.md`` with Hub YAML metadata and a Markdown body.

    card.render(facts)                         the whole README.md from a CardFacts value
    card.metadata(facts)                       the YAML block as a dict
    replace_baseline_section(text, markdown)   swap the baseline section (curator baseline)
    datasheet.missing_answers(...)             one release warning per unanswered [card] question

card.py holds the metadata and the sections built from catalog facts; datasheet.py the questions a
person answers in curator.toml's [card] and the composition and skin-tone sections.
"""

from dataset_card.card import (
    BASELINE_END,
    BASELINE_START,
    CardFacts,
    SourceFacts,
    render,
    replace_baseline_section,
)

__all__ = ["BASELINE_END", "BASELINE_START", "CardFacts", "SourceFacts", "render", "replace_baseline_section"]
