"""The datasheet parts of the card: the questions of "Datasheets for Datasets" (Gebru et al.,
2021) and of the Hub's dataset card template that only a person can answer, and the computed
composition facts (image sizes, aspects, formats, skin types the sources supplied, the estimated
skin tone, and the two compared).

A person's answers come from ``[card]`` in curator.toml (:class:`curator.config.CardConfig`);
an unanswered question is printed as a visible "not provided" line, and :func:`missing_answers`
gives ``curator release`` one warning for each.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from curator.skintone import BAND_NAMES, UNKNOWN

if TYPE_CHECKING:
    from dataset_card.card import CardFacts

SPLITS = ("train", "validation", "test")
# [card] key -> the question it answers, as the card and the warnings name it
QUESTIONS: dict[str, str] = {
    "motivation": "why the dataset was created",
    "curated_by": "who curated it",
    "funded_by": "who funded it",
    "contact": "whom to contact",
    "consent": "whether the people shown consented",
    "ethics_review": "whether an ethics review took place",
    "personal_information": "what personal and sensitive information the images hold",
    "annotator_expertise": "who the annotators are and their expertise",
    "annotation_guidelines": "which guidelines the annotators followed",
    "maintenance": "who maintains the dataset and how",
}
NOT_PROVIDED = "**Not provided.**"
_FITZPATRICK = ("I", "II", "III", "IV", "V", "VI")
# supplied skin-type scale (curator.provenance.SKIN_SCALES) -> its name and how a type is written
SCALE_WORDS: dict[str, tuple[str, Callable[[int], str]]] = {
    "fitzpatrick": ("Fitzpatrick type", lambda t: _FITZPATRICK[t - 1]),
    "monk": ("Monk skin tone", str),
}
# the wording of each kind of source (curator's sources.kind)
SOURCE_WORDS = {
    "url": "collected from public web pages",
    "file": "read from local image files",
    "table": "listed in source tables",
    "hub": "taken from datasets on the Hugging Face Hub",
    "unknown": "from sources that were not recorded",
}


def missing_answers(answers: dict[str, str], classes: list[str], descriptions: dict[str, str]) -> list[str]:
    """One release warning per unanswered datasheet question (and one for the class descriptions)."""
    warnings = [
        f"card: no answer for {question} (set card.{key} in curator.toml); the card says \"not provided\""
        for key, question in QUESTIONS.items() if not answers.get(key, "").strip()
    ]
    undescribed = [c for c in classes if not descriptions.get(c, "").strip()]
    if undescribed:
        warnings.append(f"card: no description for class(es) {', '.join(undescribed)} "
                        "(set [card.classes] in curator.toml); the card says \"not provided\"")
    return warnings


def answer(facts: CardFacts, key: str) -> str:
    """The person's answer, or the visible not-provided line naming the key to set."""
    text = facts.answers.get(key, "").strip()
    return text or f"{NOT_PROVIDED} (`card.{key}` in curator.toml)"


def origin(facts: CardFacts) -> str:
    """How the images were obtained, worded for the kinds of source this release holds."""
    kinds = sorted({s.kind for s in facts.sources}, key=lambda k: list(SOURCE_WORDS).index(k)
                   if k in SOURCE_WORDS else len(SOURCE_WORDS))
    words = [SOURCE_WORDS.get(k, f"from sources of kind {k}") for k in kinds]
    if not words:
        return "from sources that were not recorded"
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _table(header: list[str], rows: list[list[Any]]) -> str:
    from dataset_card.card import table

    return table(header, rows)


# ---------------------------------------------------------------- sections


def motivation(facts: CardFacts) -> str:
    return (
        "## Motivation\n\n"
        f"- Purpose: {answer(facts, 'motivation')}\n"
        f"- Curated by: {answer(facts, 'curated_by')}\n"
        f"- Funded by: {answer(facts, 'funded_by')}\n"
        "- Built with curator, which records every source, duplicate, label decision and review finding "
        "in its catalog; the numbers in this card come from that catalog and this release's files."
    )


def sources_by_kind(facts: CardFacts) -> str:
    """Per-source counts: images per kind of source."""
    counts: dict[str, int] = {}
    for s in facts.sources:
        counts[s.kind] = counts.get(s.kind, 0) + s.images
    rows = [[SOURCE_WORDS.get(k, k), n] for k, n in sorted(counts.items())]
    return _table(["how the images were obtained", "images"], rows)


def image_formats(facts: CardFacts) -> str:
    c = facts.composition
    if not c:
        return ""
    parts = ["### Image sizes, aspects and formats", "",
             f"Of the {c['images']} originals in this release, before preprocessing (the released images "
             "are the preprocessed copies; their `width` and `height` are columns):", ""]
    for title, key in (("shorter side (pixels)", "sizes"), ("aspect (width / height)", "aspects"),
                       ("format", "formats")):
        parts += [_table([title, "images"], [[k, n] for k, n in c[key].items()]), ""]
    parts.append(f"Median size {c['median_width']} x {c['median_height']} pixels.")
    if c.get("plot"):
        parts += ["", f"![Image sizes, aspects and formats]({c['plot']})"]
    return "\n".join(parts)


def supplied_skin_type(facts: CardFacts) -> str:
    """Originals per skin type a source supplied, by class and split; empty when none did."""
    supplied = facts.skin_tone.get("supplied", {})
    if not supplied:
        return ""
    parts = ["### Skin type supplied by the sources", "",
             "Where a source supplied a skin type per image (the `fitzpatrick` and `monk` columns), this "
             "card reports it instead of the image-based estimate below. Originals per supplied type, by "
             "class and by split:"]
    for scale, counts in supplied.items():
        name, label = SCALE_WORDS[scale]
        types = list(next(iter(counts["per_class"].values())))
        rows = [[group, *[n[t] for t in types]]
                for group, n in (*counts["per_class"].items(), *counts["per_split"].items())]
        parts += ["", _table([f"{name}: class or split", *[label(int(t)) for t in types]], rows)]
    return "\n".join(parts)


def skin_tone(facts: CardFacts) -> str:
    s = facts.skin_tone
    head = "### Estimated skin tone"
    if not s:
        return f"{head}\n\nNot estimated for this release."
    header = ["class or split", *BAND_NAMES, UNKNOWN]
    rows = [[name, *[counts.get(b, 0) for b in (*BAND_NAMES, UNKNOWN)]]
            for name, counts in (*s["per_class"].items(), *s["per_split"].items())]
    estimated = sum(sum(counts.values()) for counts in s["per_class"].values())
    which = (f"The {originals(estimated)} whose source supplied no skin type, per band, by class and by "
             "split:" if s.get("supplied") else "Originals per band, by class and by split:")
    return (
        f"{head}\n\n"
        "**An uncalibrated, image-based estimate, not a Fitzpatrick type.** For each original the "
        "Individual Typology Angle, ITA = arctan((L* - 50) / b*) in degrees, is taken over the pixels "
        "that look like skin (a YCrCb skin-colour box, 20 <= L* <= 95, b* > 0: hair, shadows and "
        "coloured backgrounds left out) and its median put in the usual bands: very light > 55, "
        "light 41-55, intermediate 28-41, tan 10-28, brown -30 to 10, dark < -30. Lighting, white "
        "balance and camera processing shift it as much as skin does, and brown or red hair can pass "
        "as skin, so read it as a rough picture of the photos, not of the people. `unknown`: too few "
        "skin-coloured pixels.\n\n"
        f"{which}\n\n" + _table(header, rows)
    )


def skin_type_comparison(facts: CardFacts) -> str:
    """Each supplied scale against the ITA band of the same originals, with the agreement in words."""
    comparison = facts.skin_tone.get("comparison", {})
    if not comparison:
        return ""
    parts = ["### Supplied skin type against the estimate"]
    for scale, c in comparison.items():
        name, label = SCALE_WORDS[scale]
        rows = [[label(int(t)), *bands.values()] for t, bands in c["table"].items() if sum(bands.values())]
        parts += ["", f"The {originals(c['images'])} with a supplied {name}, by the ITA band estimated from "
                  "the same image:", "", _table([name, *BAND_NAMES, UNKNOWN], rows), "", _agreement(c)]
    parts += ["", "ITA is an uncalibrated estimate from the photo, moved by lighting, white balance and "
              "camera processing, and a Fitzpatrick type describes how skin reacts to the sun rather than "
              "its colour in a picture: where the two disagree, the supplied type is the one this card "
              "reports."]
    return "\n".join(parts)


def _agreement(c: dict[str, Any]) -> str:
    known = c["estimated"]
    if not known:
        return "None of them had enough skin-coloured pixels for an estimate, so the two are not compared."
    rho = c["rank_correlation"]
    order = (f"Spearman's rank correlation between the supplied type and the darkness of the estimate (-ITA) "
             f"is {rho:.2f} (1: the same order; 0: no relation)." if rho is not None else
             "Too few images, or too little spread, for a rank correlation.")
    if "same_band" not in c:
        return f"Of the {known} with an estimate: {order}"
    same, within = c["same_band"], c["within_one"]
    return (f"Reading the bands as types I to VI (very light I, light II, intermediate III, tan IV, brown V, "
            f"dark VI), the estimate agrees with the supplied type for {same} of the {originals(known)} with "
            f"an estimate ({_percent(same, known)}) and is at most one band off for {within} "
            f"({_percent(within, known)}). {order}")


def originals(n: int) -> str:
    return f"{n} original" if n == 1 else f"{n} originals"


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%"


def personal_information(facts: CardFacts) -> str:
    privacy = facts.review.get("privacy", {})
    decided = ", ".join(f"{d} {n}" for d, n in privacy.items()) or "none decided"
    return (
        "### Personal and sensitive information\n\n"
        f"{answer(facts, 'personal_information')}\n\n"
        "- Health information: each image is labelled with a scalp condition.\n"
        "- Metadata: every released image is re-encoded from its pixels, so no EXIF, GPS or ICC data "
        "is carried.\n"
        f"- Faces and eyes found by the review checks, resolved: {decided} (see Data review)."
    )


def consent(facts: CardFacts) -> str:
    scraped = sum(s.images for s in facts.sources if s.kind == "url")
    recorded = (
        f"\n- What curator recorded: no consent for any image; the {scraped} collected from public web pages "
        "were fetched without contacting the people shown or asking for their consent."
        if scraped else ""
    )
    return (
        "### Consent and ethics review\n\n"
        f"- Consent of the people shown: {answer(facts, 'consent')}\n"
        f"- Ethics review: {answer(facts, 'ethics_review')}" + recorded
    )


def annotators(facts: CardFacts) -> str:
    return (
        f"- Annotators' expertise: {answer(facts, 'annotator_expertise')}\n"
        f"- Annotation guidelines: {answer(facts, 'annotation_guidelines')}"
    )


def distribution(facts: CardFacts) -> str:
    where = (f"on the Hugging Face Hub as `{facts.hub_repo}`, each release a tagged commit"
             if facts.hub_repo else "not yet on the Hub (`dataset.hub_repo` is not set)")
    return (
        "## Distribution\n\n"
        f"- Where: {where}; `curator publish --to DIR` copies a release to a folder.\n"
        f"- Licence: `{facts.license}`, with each image's source terms (see Sources and licences).\n"
        "- Access terms: the card's metadata carries an access prompt (`extra_gated_prompt`) that the Hub "
        "shows once the repo is gated: research and education use only, no diagnosis, no attempt to "
        "identify anyone."
    )


def maintenance(facts: CardFacts) -> str:
    return (
        "## Maintenance\n\n"
        f"- Maintained by: {answer(facts, 'maintenance')}\n"
        f"- Contact: {answer(facts, 'contact')}\n"
        "- Versions: semantic versions, each immutable once built; a change of classes is a major "
        "version, images added or removed a minor one, labels, settings or card text a patch. Earlier "
        "versions stay loadable by their tag (see How to load)."
    )
