"""curator: scraped scalp-disease photos in, a clean, versioned Hugging Face dataset out.

Modules, one per stage (data flows down this list):

    workspace   find / create the workspace folder
    config      curator.toml as one frozen, checked Config
    catalog     SQLite connection, atomic(), migrations
    store       content-addressed objects/ of original bytes
    errors      the exception tree and exit codes
    output      results to stdout, messages and progress to stderr
    ingest      fetch URLs and files, validate, store, record provenance
    hashing     pixel and perceptual hashes of a decoded image
    dedup       exact and near-duplicate clusters
    labeling    label events, derived labels, import/export, agreement
    prompt      the interactive labeling prompt
    split       sticky, cluster-aware, stratified split
    preprocess  resize, denoise, equalize, enhance; balance by augmentation
    release     build releases/vX.Y.Z (parquet + manifest + card)
    diff        what changed between two releases (also the card's changelog)
    audit       cross-split exact/near duplicate check of any dataset folder
    publish     push a release to the Hub (or a folder), tagged
    cli/        the command line
"""

__version__ = "0.1.0"
