"""curator: scraped scalp-disease photos in, a clean, versioned Hugging Face dataset out.

Modules, one per stage (data flows down this list):

    workspace   find / create the workspace folder
    config      curator.toml as one frozen, checked Config
    catalog     SQLite connection, atomic(), migrations
    store       content-addressed objects/ of original bytes
    fsutil      atomic file writes and folders
    errors      the exception tree and exit codes
    output      results to stdout, messages and progress to stderr
    engine      where per-image work runs: this machine's pools, or Ray tasks (--engine ray)
    ingest/     sources.py parses input lines, fetch.py downloads, validate.py decodes and
                checks, run.py stores and records one outcome per source, remote.py the same
                work as Ray tasks with cluster-wide per-host limits
    hashing     pixel and perceptual hashes of a decoded image; the multi-index Hamming search
    dedup       exact and near-duplicate clusters (hash match + keypoint confirmation); stable
                cluster ids and the representative rule
    groups      patient/lesion group ids of images (input columns, [groups] pattern)
    review/     `curator review`: quality, privacy, off-topic and label-issue checks, findings
                and decisions in the catalog, the review prompt (see review/__init__.py)
    status      counts for `curator status`
    labeling    label events, derived labels, conflict policy, import/export, hints
    agreement   Cohen's and Fleiss' kappa, Krippendorff's alpha, Landis & Koch readings
    prompt      the interactive labeling prompt
    termimage   images in the terminal: kitty, iTerm2, sixel, half-blocks
    split       sticky, cluster- and group-aware, stratified split
    preprocess  resize, denoise, equalize, enhance; the shared lossless encoder
    balance     oversampling by deterministic augmentation, or class weights
    licences    [[sources]] licence rules per URL prefix or domain
    skintone    estimated skin tone of an image: ITA over its skin pixels, in bands
    composition the card's composition facts: sizes, aspects, formats (and their plot), skin tone
    versions    semantic versions of releases
    release     build releases/vX.Y.Z (parquet + manifest + card)
    released    read a built release: list, resolve, the typed Manifest, verified before use
    diff        what changed between two releases (also the card's changelog)
    audit       cross-split exact/near duplicate check of any dataset folder
    publish     push a release to the Hub (or a folder), tagged
    synthetic   generated scalp-like photos for the demo, tests and benchmarks
    demo        `curator demo`: every stage, offline
    cli/        the command line

The baseline CNN lives in the sibling package ``baseline``, the card in ``dataset_card``.
"""

__version__ = "0.1.0"
